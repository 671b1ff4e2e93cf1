"""bench.results: the results root (``--results``, else ``$LRBENCH_RESULTS``, else ``./results``), run
lookup and the atomic writer; nothing is written inside the package."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import bench
from bench.results import ENV_VAR, RunNotFound, atomic_write, find_run, results_root, write_json

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(bench.__file__).resolve().parent


def test_results_root_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert results_root() == tmp_path / "results"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert results_root() == tmp_path / "env"
    assert results_root(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv(ENV_VAR, "")
    assert results_root() == tmp_path / "results"


@pytest.mark.parametrize("command", ["run", "report", "speed", "conformance", "train-speed", "find-lr"])
def test_help_defaults_are_not_inside_the_package(command, tmp_path):
    """``lrbench <command> --help`` from any folder: the results defaults name ./results or $LRBENCH_RESULTS,
    never the package's source folder."""
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    r = subprocess.run([sys.executable, "-m", "bench.cli", command, "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    text = " ".join(r.stdout.split())  # help text is wrapped
    assert str(PACKAGE) not in text and str(PACKAGE.parent) not in text, text
    assert f"${ENV_VAR}" in text and "./results" in text, text


def test_find_run(tmp_path):
    for rid in ("20260101-a", "20260101-b", "20260202-c"):
        (tmp_path / "runs" / rid).mkdir(parents=True)
        (tmp_path / "runs" / rid / "meta.json").write_text("{}")
    assert find_run("20260202-c", tmp_path) == tmp_path / "runs" / "20260202-c"
    assert find_run(tmp_path / "runs" / "20260101-a") == tmp_path / "runs" / "20260101-a"
    assert find_run("20260202", tmp_path, prefix=True) == tmp_path / "runs" / "20260202-c"
    with pytest.raises(RunNotFound, match="no run '20260202'.*runs there: 20260101-a, 20260101-b, 20260202-c"):
        find_run("20260202", tmp_path)
    with pytest.raises(RunNotFound, match="matches several runs: 20260101-a, 20260101-b"):
        find_run("20260101", tmp_path, prefix=True)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}

    def broken(p: Path):
        p.write_text("half")
        raise OSError("disk full")
    with pytest.raises(OSError):
        atomic_write(tmp_path / "a.json", broken)
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


TINY = """
name = "tiny"
epochs = 1
seeds = [0]
batch_size = 1000
[model]
widths = [784, 8, 10]
[peak_lr]
sgd = 0.1
[schedules]
constant = "Constant(lr=peak)"
"""


@pytest.mark.parametrize("where", ["--results", "env", "cwd"])
def test_a_run_lands_under_the_results_root(where, tmp_path, monkeypatch):
    """``lrbench run`` writes runs/<id>/ under --results, else $LRBENCH_RESULTS, else ./results."""
    from bench.cli import main
    src = tmp_path / "tiny.toml"
    src.write_text(TINY)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(ENV_VAR, raising=False)
    args = ["run", "--matrix", str(src), "--device", "cpu", "--run-id", "r", "--no-report", "--no-progress"]
    expected = {"--results": tmp_path / "given", "env": tmp_path / "env", "cwd": work / "results"}[where]
    if where == "--results":
        args += ["--results", str(expected)]
    elif where == "env":
        monkeypatch.setenv(ENV_VAR, str(expected))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    meta = json.loads((expected / "runs" / "r" / "meta.json").read_text())
    assert meta["status"] == "complete" and (expected / "runs" / "r" / "summary.csv").is_file()
    assert not (PACKAGE / "results").exists() and not list(PACKAGE.rglob("meta.json"))
