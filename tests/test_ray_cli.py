"""lrbench run --executor ray from the command line: a private local cluster started (and stopped) by the
command, results equal to --executor local, clear errors (no Ray installed, a GPU request on a cluster
without GPUs), and a truncated part retrained on --resume with a warning, not a pyarrow traceback."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = """
name = "small"
epochs = 1
seeds = [0]
batch_size = 100
[model]
widths = [784, 32, 10]
[peak_lr]
sgd = 0.1
adam = 0.002
[schedules]
constant = "Constant(lr=peak)"
cosine = "Cosine(lr=peak, decay_steps=total)"
plateau = "plateau"
"""
TIME_COLUMNS = ["epoch_time_s", "model_time_s"]


def lrbench(*args, env=None, check=True, prelude=""):
    """``lrbench ARGS`` in a fresh process (``prelude``: Python run before the CLI)."""
    code = f"{prelude}\nimport sys\nfrom bench.cli import main\nmain(sys.argv[1:], prog_name='lrbench')"
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"lrbench {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "small.toml"
    p.write_text(textwrap.dedent(SMALL))
    return p


@pytest.fixture(scope="module")
def local_run(small, tmp_path_factory):
    res = tmp_path_factory.mktemp("res")
    lrbench("run", "--matrix", small, "--chunk-size", 3, "--results", res, "--run-id", "local", "--no-report",
            "--no-progress")
    return res / "runs" / "local"


def test_ray_executor_from_the_command_line_equals_local(small, local_run, tmp_path):
    pytest.importorskip("ray")
    lrbench("run", "--matrix", small, "--chunk-size", 3, "--results", tmp_path, "--run-id", "ray", "--no-report",
            "--no-progress", "--executor", "ray")
    run = tmp_path / "runs" / "ray"
    pd.testing.assert_frame_equal(pd.read_csv(run / "summary.csv"), pd.read_csv(local_run / "summary.csv"))
    pd.testing.assert_frame_equal(pd.read_parquet(run / "epochs.parquet").drop(columns=TIME_COLUMNS),
                                  pd.read_parquet(local_run / "epochs.parquet").drop(columns=TIME_COLUMNS))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["executor"] == "ray" and meta["ray"]["address"] == "local (private)"
    assert meta["ray"]["cluster"]["CPU"] == os.cpu_count()
    assert not list(tmp_path.glob("**/.*.tmp-*"))


def test_gpu_request_on_a_cluster_without_gpus_fails_at_once(small, tmp_path):
    pytest.importorskip("ray")
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has GPUs")
    p = lrbench("run", "--matrix", small, "--results", tmp_path, "--executor", "ray", "--gpus-per-task", 1,
                check=False)
    assert p.returncode == 1, p.stderr
    assert "--gpus-per-task 1: no node of the Ray cluster has that many GPUs" in p.stderr
    assert "wait forever" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "runs").exists()


def test_without_ray_the_error_names_the_extra(small, tmp_path):
    p = lrbench("run", "--matrix", small, "--results", tmp_path, "--executor", "ray", check=False,
                prelude="import sys; sys.modules['ray'] = None  # as if not installed")
    assert p.returncode == 1 and "pip install 'lrbench[ray]'" in p.stderr and "Traceback" not in p.stderr


def test_ray_options_need_the_ray_executor(small, tmp_path):
    p = lrbench("run", "--matrix", small, "--results", tmp_path, "--address", "auto", check=False)
    assert p.returncode == 2 and "--executor ray" in p.stderr


def test_truncated_part_is_retrained_on_resume(local_run, tmp_path):
    """The 7-byte chunk file of issue 15: --resume warns naming it, retrains its chunk, finishes the run."""
    run = tmp_path / "runs" / "t"
    shutil.copytree(local_run, run)
    meta = json.loads((run / "meta.json").read_text())
    meta.update(run_id="t", status="interrupted")
    (run / "meta.json").write_text(json.dumps(meta))
    bad = run / "parts" / "chunk-0001.epochs.parquet"
    bad.write_bytes(bad.read_bytes()[:7])
    p = lrbench("run", "--resume", "t", "--results", tmp_path, "--no-report", "--no-progress")
    assert "Traceback" not in p.stderr and "ArrowInvalid" not in p.stderr
    assert f"warning: {bad}: checksum mismatch (7 bytes" in " ".join(p.stderr.split())
    assert "chunk 1 will be trained again" in " ".join(p.stderr.split())
    pd.testing.assert_frame_equal(pd.read_csv(run / "summary.csv"), pd.read_csv(local_run / "summary.csv"))
