"""lrbench run: real training of a small matrix on a slice of Fashion-MNIST, the run folder's files,
the paired design, resume after an interruption, corrupt parts, and the sequential trainer."""
import json
import textwrap

import numpy as np
import pandas as pd
import pytest

import bench.matrix.runner as runner
from bench.train import registry
from bench.cli import write_run_report
from bench.matrix.runner import CorruptPartWarning, RunError, run_matrix
from bench.matrix.spec import load_matrix
from bench.train.batched import HISTORY_COLUMNS, SUMMARY_COLUMNS
from bench.train.data import load_fashion_mnist

TINY = """
name = "tiny"
epochs = 2
seeds = [0, 1]
batch_size = 100
[model]
widths = [784, 32, 10]
[peak_lr]
sgd = 0.1
adam = 0.002
[schedules]
constant = "Constant(lr=peak)"
cosine = "Warmup(Cosine(lr=peak, decay_steps=total - steps_per_epoch), steps=steps_per_epoch)"
plateau = "plateau"
[plateau]
patience = 5
"""


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist("cpu").head(3000, 1000, 1000)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny.toml"
    p.write_text(textwrap.dedent(TINY))
    return load_matrix(p)


@pytest.fixture(scope="module")
def full_run(matrix, data, tmp_path_factory):
    res = tmp_path_factory.mktemp("res")
    return run_matrix(matrix, results_dir=res, run_id="full", device="cpu", chunk_size=5, data=data,
                      progress=False)


def test_run_folder_files(full_run, matrix):
    meta = json.loads((full_run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["trainer"] == "batched" and meta["device"] == "cpu"
    assert meta["n_configs"] == matrix.n_configs == 12 and meta["chunks"][-1] == [8, 9, 10, 11]
    assert meta["matrix"]["schedules"] == matrix.schedules and meta["git_commit"]
    assert meta["throughput"]["model_epochs_per_s"] > 0 and meta["throughput"]["matmul_flop_per_s"] > 0
    hist = pd.read_parquet(full_run / "epochs.parquet")
    summ = pd.read_csv(full_run / "summary.csv")
    tp = pd.read_csv(full_run / "throughput.csv")
    assert list(hist.columns) == HISTORY_COLUMNS + ["trainer", "chunk", "model_time_s", "stage", "lr_factor", "precision"]
    assert list(summ.columns) == SUMMARY_COLUMNS + ["trainer", "chunk", "stage", "lr_factor", "precision"]
    assert (summ["stage"] == "main").all() and (summ["lr_factor"] == 1.0).all() and (summ["precision"] == "fp32").all()
    assert [st["name"] for st in meta["stages"]] == ["main"] and meta["stages"][0]["chunks"] == [0, 1, 2]
    assert meta["precision"] == "fp32" and set(hist["precision"]) == set(summ["precision"]) == {"fp32"}
    assert len(hist) == 12 * 2 and sorted(summ["model"]) == list(range(12)) and len(tp) == 3
    # configuration k of the matrix is model k
    for c, row in zip(matrix.configs(), summ.sort_values("model").itertuples()):
        assert (c.name, c.optimizer, c.seed, c.peak_lr) == (row.name, row.optimizer, row.seed, row.peak_lr)
    assert np.allclose(hist.groupby("chunk")["model_time_s"].sum(),
                       hist.groupby("chunk")["epoch_time_s"].sum() / hist.groupby("chunk")["model"].nunique())
    assert summ["test_acc"].between(0.5, 1).all()
    assert not list(full_run.glob("**/.*.tmp-*"))


def test_paired_design_same_seed_same_start(full_run):
    """constant and plateau (patience 5: no reduction in 2 epochs) with one optimizer and seed train the
    same model on the same batches: identical numbers, although they sit in different chunks."""
    s = pd.read_csv(full_run / "summary.csv").set_index(["optimizer", "name", "seed"])
    for opt in ("sgd", "adam"):
        for seed in (0, 1):
            a, b = s.loc[(opt, "constant", seed)], s.loc[(opt, "plateau", seed)]
            assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-5)
            assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-3)
    assert s.loc[("sgd", "constant", 1), "chunk"] != s.loc[("sgd", "plateau", 1), "chunk"]  # across chunks
    # different seeds differ
    assert s.loc[("sgd", "constant", 0), "final_train_loss"] != s.loc[("sgd", "constant", 1), "final_train_loss"]


def test_resume_after_interrupt_skips_finished_chunks(matrix, data, tmp_path, monkeypatch, full_run):
    calls = []
    real = registry.train

    def interrupt_second_chunk(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(registry, "train", interrupt_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_matrix(matrix, results_dir=tmp_path, run_id="r", device="cpu", chunk_size=5, data=data,
                   progress=False)
    run = tmp_path / "runs" / "r"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    assert len(pd.read_csv(run / "summary.csv")) == 4  # the finished chunk is already readable
    first = (run / "parts" / "chunk-0000.summary.csv").stat().st_mtime_ns
    monkeypatch.setattr(registry, "train", real)
    calls.clear()
    run_matrix(resume="r", results_dir=tmp_path, data=data, progress=False)
    assert (run / "parts" / "chunk-0000.summary.csv").stat().st_mtime_ns == first
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and len(meta["resumed_utc"]) == 1
    a = pd.read_csv(run / "summary.csv")
    b = pd.read_csv(full_run / "summary.csv")
    assert np.allclose(a["test_acc"], b["test_acc"], atol=2e-3)
    with pytest.raises(RunError, match="complete"):
        run_matrix(resume="r", results_dir=tmp_path, data=data, progress=False)


SIGTERM_SCRIPT = """
import sys
from bench.train.data import load_fashion_mnist
from bench.matrix.spec import load_matrix
from bench.matrix.runner import run_matrix
d = load_fashion_mnist("cpu").head(3000, 1000, 1000)
m = load_matrix(sys.argv[1]).replace(epochs=8)
run_matrix(m, results_dir=sys.argv[2], run_id="t", device="cpu", chunk_size=2, data=d, progress=False)
"""


def test_sigterm_stops_a_run_resumably(matrix, data, tmp_path):
    """A real SIGTERM to a training process: the finished chunks stay, meta.json says interrupted, and
    --resume finishes the run without redoing them."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "tiny.toml"
    src.write_text(textwrap.dedent(TINY))
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(src), str(tmp_path)],
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = tmp_path / "runs" / "t" / "parts" / "chunk-0000.json"
    deadline = time.monotonic() + 240
    while not done.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert done.exists(), "the first chunk never finished"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) != 0
    run = tmp_path / "runs" / "t"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    finished = sorted(p.name for p in (run / "parts").glob("chunk-*.json"))
    assert 1 <= len(finished) < len(meta["chunks"])
    stamp = (run / "parts" / "chunk-0000.summary.csv").stat().st_mtime_ns
    run_matrix(resume="t", results_dir=tmp_path, data=data, progress=False)
    assert (run / "parts" / "chunk-0000.summary.csv").stat().st_mtime_ns == stamp
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    assert len(pd.read_csv(run / "summary.csv")) == matrix.n_configs


def test_peak_lr_find_runs_the_range_test_into_the_run(data, tmp_path):
    """peak_lr = "find": the peaks come from one batched range test before training; its curves, table and
    plot are kept in the run folder and the report shows them."""
    src = tmp_path / "find.toml"
    src.write_text(textwrap.dedent("""
        name = "find"
        epochs = 1
        seeds = [0]
        batch_size = 100
        [model]
        widths = [784, 32, 10]
        [peak_lr]
        sgd = 0.1
        adam = "find"
        [schedules]
        constant = "Constant(lr=peak)"
    """))
    m = load_matrix(src)
    run = run_matrix(m, results_dir=tmp_path, run_id="f", device="cpu", data=data, progress=False)
    write_run_report(run, tmp_path)  # what lrbench run does after the run
    meta = json.loads((run / "meta.json").read_text())
    assert meta["peak_lr"]["sgd"] == 0.1 and isinstance(meta["peak_lr"]["adam"], float)
    found = pd.read_csv(run / "find_lr" / "find_lr.csv").set_index("optimizer")
    assert list(found.index) == ["adam"] and found.loc["adam", "suggested"] == pytest.approx(meta["peak_lr"]["adam"])
    assert 1e-5 < meta["peak_lr"]["adam"] < 1
    assert (run / "find_lr" / "find_lr.png").stat().st_size > 1000
    summ = pd.read_csv(run / "summary.csv")
    assert summ.loc[summ["optimizer"] == "adam", "peak_lr"].iloc[0] == pytest.approx(meta["peak_lr"]["adam"])
    html = (run / "report.html").read_text()
    assert "LR range test that chose the peak learning rates" in html and "find_lr.csv" in html


def _resume_interrupted_copy(src, dst):
    """A copy of a complete run folder that looks interrupted (for resume tests)."""
    import shutil
    shutil.copytree(src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta.update(status="interrupted", run_id=dst.name)
    (dst / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", ["truncated parquet", "flipped byte in csv", "truncated json"])
def test_corrupt_part_is_retrained_with_a_warning(full_run, data, tmp_path, damage):
    """A part that does not match its checksum (a crash mid-write without atomic rename, a full disk) is
    found on resume: its chunk is trained again, with a warning naming the file, never a pyarrow error."""
    run = tmp_path / "runs" / "c"
    _resume_interrupted_copy(full_run, run)
    parts = run / "parts"
    stamp = (parts / "chunk-0000.summary.csv").stat().st_mtime_ns
    if damage == "truncated parquet":
        bad = parts / "chunk-0002.epochs.parquet"
        bad.write_bytes(bad.read_bytes()[:7])
    elif damage == "flipped byte in csv":
        bad = parts / "chunk-0002.summary.csv"
        b = bytearray(bad.read_bytes())
        b[-3] = ord("7") if b[-3] != ord("7") else ord("3")
        bad.write_bytes(bytes(b))
    else:
        bad = parts / "chunk-0002.json"
        bad.write_text(bad.read_text()[:20])
    with pytest.warns(CorruptPartWarning, match=f"{bad.name}.*chunk 2 will be trained again"):
        run_matrix(resume="c", results_dir=tmp_path, data=data, progress=False)
    assert (parts / "chunk-0000.summary.csv").stat().st_mtime_ns == stamp  # intact parts kept
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    pd.testing.assert_frame_equal(pd.read_csv(run / "summary.csv"), pd.read_csv(full_run / "summary.csv"))
    assert runner._part_problem(run, 2) is None


def test_part_records_executor_node_device_and_checksums(full_run):
    part = json.loads((full_run / "parts" / "chunk-0001.json").read_text())
    assert part["executor"] == "local" and part["device"] == "cpu" and part["node"] and part["threads"] >= 1
    assert set(part["files"]) == {"chunk-0001.epochs.parquet", "chunk-0001.summary.csv"}
    assert part["files"]["chunk-0001.summary.csv"]["bytes"] == (full_run / "parts" / "chunk-0001.summary.csv").stat().st_size
    meta = json.loads((full_run / "meta.json").read_text())
    assert meta["executor"] == "local" and "ray" not in meta


def test_sequential_trainer_agrees_with_batched(matrix, data, tmp_path, full_run):
    d = run_matrix(matrix.replace(seeds=[0]), results_dir=tmp_path, device="cpu", trainer="sequential", data=data,
                   progress=False)
    assert json.loads((d / "meta.json").read_text())["trainer"] == "sequential"
    seq = pd.read_csv(d / "summary.csv").set_index(["optimizer", "name", "seed"])
    bat = pd.read_csv(full_run / "summary.csv").set_index(["optimizer", "name", "seed"])
    for key in seq.index:
        # same initial weights and batches; float32 summation order differs: close, not equal
        assert seq.loc[key, "final_train_loss"] == pytest.approx(bat.loc[key, "final_train_loss"], rel=2e-3)
        assert abs(seq.loc[key, "test_acc"] - bat.loc[key, "test_acc"]) <= 0.01
    h = pd.read_parquet(d / "epochs.parquet")
    assert (h["model_time_s"] == h["epoch_time_s"]).all()


def test_bad_requests_fail_clearly(matrix, data, tmp_path):
    with pytest.raises(RunError, match="no run 'nope'"):
        run_matrix(resume="nope", results_dir=tmp_path)
    run_matrix(matrix.replace(seeds=[0]), results_dir=tmp_path, run_id="x", device="cpu", data=data,
               progress=False, chunk_size=6)
    with pytest.raises(RunError, match="exists"):
        run_matrix(matrix, results_dir=tmp_path, run_id="x", device="cpu", data=data)


@pytest.mark.parametrize("n, size", [(1, 1), (7, 2), (76, 72), (222, 72), (80, 72), (81, 72), (144, 72), (10, 9),
                                     (370, 72)])
def test_plan_chunks_covers_every_config_once_in_order_without_a_tiny_tail(n, size):
    chunks = runner.plan_chunks(n, size)
    assert [i for c in chunks for i in c] == list(range(n))
    sizes = [len(c) for c in chunks]
    assert max(sizes) - min(sizes) <= 1  # balanced
    assert len(chunks) == max(1, n // size + (n % size >= size // 8 and n % size > 0))
    assert max(sizes) <= size + size // 8


def test_quick_matrix_is_two_chunks_on_the_cpu():
    quick = load_matrix("quick")
    assert quick.n_configs == 114 and len(runner.plan_chunks(quick.n_configs, runner.CPU_CHUNK)) == 2
    assert quick.n_tuning_models == 114 and len(runner.plan_chunks(quick.n_tuning_models, runner.CPU_CHUNK)) == 2
    default = load_matrix("default")
    assert [len(c) for c in runner.plan_chunks(default.n_tuning_models, runner.CPU_CHUNK)] == [62, 61, 62, 62, 61, 62]
