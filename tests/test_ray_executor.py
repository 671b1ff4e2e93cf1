"""lrbench run on Ray (bench.matrix.executors.RayExecutor): real tasks on one private 2-CPU cluster for the module
(declared with one GPU, so GPU requests can be checked on a CPU machine), real training on a slice of
Fashion-MNIST. Results equal the local executor's bit for bit; a killed driver resumes on Ray or locally."""
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from bench.train.data import load_fashion_mnist  # noqa: E402
from bench.matrix.executors import ChunkJob, ExecutorError, RayExecutor  # noqa: E402
from bench.matrix import load_matrix  # noqa: E402
from bench.matrix.progress import RunProgress  # noqa: E402
from bench.matrix.runner import RunError, run_matrix  # noqa: E402
from bench.results import RunLocked  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIME_COLUMNS = ["epoch_time_s", "model_time_s"]
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
"""


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: 2 CPUs, 1 declared (simulated) GPU; its GCS address."""
    if ray.is_initialized():
        pytest.skip("this process is already connected to Ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a 107-byte limit
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, _temp_dir=tmp,
             object_store_memory=400 * 2 ** 20, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist("cpu").head(3000, 1000, 1000)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny.toml"
    p.write_text(textwrap.dedent(TINY))
    return load_matrix(p)


@pytest.fixture(scope="module")
def small(matrix):
    """4 models, 1 epoch."""
    return matrix.replace(seeds=[0], epochs=1, schedules={"constant": "Constant(lr=peak)", "plateau": "plateau"})


@pytest.fixture(scope="module")
def local_run(matrix, data, tmp_path_factory):
    return run_matrix(matrix, results_dir=tmp_path_factory.mktemp("local"), run_id="local", device="cpu",
                      chunk_size=2, data=data, progress=False)


def assert_same_results(a, b):
    """epochs.parquet and summary.csv equal, time columns aside."""
    pd.testing.assert_frame_equal(pd.read_csv(a / "summary.csv"), pd.read_csv(b / "summary.csv"))
    pd.testing.assert_frame_equal(pd.read_parquet(a / "epochs.parquet").drop(columns=TIME_COLUMNS),
                                  pd.read_parquet(b / "epochs.parquet").drop(columns=TIME_COLUMNS))


def parts(run):
    return [json.loads(p.read_text()) for p in sorted((run / "parts").glob("chunk-*.json"))]


def test_ray_run_equals_local_run(cluster, matrix, data, local_run, tmp_path):
    run = run_matrix(matrix, results_dir=tmp_path, run_id="r", device="cpu", chunk_size=2, data=data,
                     progress=True, executor=RayExecutor(address=cluster))
    assert_same_results(run, local_run)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["executor"] == "ray"
    assert meta["ray"]["cpus_per_task"] == 1 and meta["ray"]["gpus_per_task"] == 0 and meta["ray"]["max_retries"] == 3
    assert meta["device"] == "cpu" and meta["chunks"] == json.loads((local_run / "meta.json").read_text())["chunks"]
    node = ray.get_runtime_context().get_node_id()
    for p in parts(run):
        assert p["executor"] == "ray" and p["node_id"] == node and p["node"] and p["device"] == "cpu"
        assert p["threads"] == 1 and p["numba_threads"] == 1 and p["gpu_ids"] == []
    assert ray.is_initialized()  # a connection the run did not make is left open


def test_each_task_sets_its_threads(cluster, small, data, tmp_path):
    """Workers are reused between tasks: each task sets torch's and Numba's threads to its own CPU share."""
    for cpus in (2, 1):  # the module's first test ran 1-CPU tasks on these workers
        run = run_matrix(small, results_dir=tmp_path, run_id=f"t{cpus}-{time.monotonic_ns()}", device="cpu",
                         chunk_size=2, data=data, progress=False,
                         executor=RayExecutor(address=cluster, cpus_per_task=cpus))
        assert {(p["threads"], p["numba_threads"]) for p in parts(run)} == {(cpus, cpus)}


def test_gpu_request_reaches_the_task(cluster, small, data, tmp_path):
    """--device auto on a cluster with GPUs asks each task for one; the task trains where torch can (the
    declared GPU is not real here: the CPU) and records it."""
    run = run_matrix(small, results_dir=tmp_path, run_id="g", data=data,
                     progress=False, executor=RayExecutor(address=cluster))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["ray"]["gpus_per_task"] == 1 and meta["device"] == "cuda"
    assert len(meta["chunks"]) == 1  # GPU tasks: the matrix split over the cluster's GPUs (one here)
    (p,) = parts(run)
    assert p["gpu_ids"] == ["0"] and p["device"] == "cpu"


def test_requests_the_cluster_cannot_meet_fail_at_once(cluster, matrix, data, tmp_path):
    for kw, msg in ((dict(gpus_per_task=2), "--gpus-per-task 2: no node of the Ray cluster has that many GPUs"),
                    (dict(cpus_per_task=3), "--cpus-per-task 3: no node of the Ray cluster has that many CPUs")):
        with pytest.raises(RunError, match=msg):
            run_matrix(matrix, results_dir=tmp_path, run_id="x", device="auto", data=data, progress=False,
                       executor=RayExecutor(address=cluster, **kw))
        assert not (tmp_path / "runs" / "x").exists()
    with pytest.raises(RunError, match="--device cpu with --gpus-per-task"):
        run_matrix(matrix, results_dir=tmp_path, device="cpu", data=data, progress=False,
                   executor=RayExecutor(address=cluster, gpus_per_task=1))


def test_trainer_error_stops_the_run_and_is_reported(cluster, matrix, data, tmp_path):
    broken = dataclasses.replace(matrix, widths=(783, 32, 10))  # a shape error inside the trainer
    with pytest.raises(RunError, match=r"chunk \d+ failed in its Ray task \(not retried.*ValueError: BatchedMLP"):
        run_matrix(broken, results_dir=tmp_path, run_id="b", device="cpu", chunk_size=6, data=data,
                   progress=False, executor=RayExecutor(address=cluster))
    meta = json.loads((tmp_path / "runs" / "b" / "meta.json").read_text())
    assert meta["status"] == "failed" and "ValueError" in meta["error"]


def test_worker_death_is_retried(cluster, small, data, tmp_path):
    """A worker that dies (os._exit) mid-chunk: the chunk runs again on a new worker, up to max_retries."""
    log = str(tmp_path / "attempts")

    def dies_on_first_attempt(trainer, configs, data, spec, device, progress):
        from bench.train.registry import train
        with open(log, "a") as f:
            f.write("x")
        if os.path.getsize(log) == 1:
            os._exit(1)
        return train(trainer, configs, data, spec, device, progress)

    ex = RayExecutor(address=cluster, max_retries=1)
    ex.start()
    ex.resolve_device("cpu")
    job = [ChunkJob(0, small.configs()[:2])]
    kw = dict(train=dies_on_first_attempt, trainer="batched", spec=small.train_spec(), data=data, device="cpu")
    with RunProgress("w", 2, 1, enabled=False) as bar:
        ((k, result, info),) = list(ex.run(job, progress=bar, **kw))
    assert open(log).read() == "xx" and k == 0 and len(result.summary) == 2
    os.unlink(log)
    ex.max_retries = 0
    with pytest.raises(ExecutorError, match="chunk 0 lost after 0 retries"):
        with RunProgress("w", 2, 1, enabled=False) as bar:
            list(ex.run(job, progress=bar, **kw))


DRIVER = """
import sys
from bench.train.data import load_fashion_mnist
from bench.matrix.executors import RayExecutor
from bench.matrix import load_matrix
from bench.matrix.runner import run_matrix
d = load_fashion_mnist("cpu").head(3000, 1000, 1000)
m = load_matrix(sys.argv[1])
run_matrix(m, results_dir=sys.argv[2], run_id="k", device="cpu", chunk_size=2, data=d, progress=False,
           executor=RayExecutor(address=sys.argv[3]))
"""


def test_killed_driver_resumes_on_ray_or_locally(cluster, matrix, data, local_run, tmp_path):
    """A driver (its own process, attached to the cluster) stopped by SIGTERM after its first part: the
    finished parts stay; --resume on Ray and --resume locally both finish it to the local run's results.
    While it runs it holds the run folder's lock: a second driver (Ray or local, new or --resume, on the same
    run id) stops at once naming it (the driver is paused with SIGSTOP meanwhile: no race)."""
    src = tmp_path / "tiny.toml"
    src.write_text(textwrap.dedent(TINY))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(tmp_path), cluster], cwd=ROOT)
    run = tmp_path / "runs" / "k"
    deadline = time.monotonic() + 300
    while not list((run / "parts").glob("chunk-*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((run / "parts").glob("chunk-*.json")), "no chunk finished"
    proc.send_signal(signal.SIGSTOP)

    def files():
        return {p.name: p.stat().st_mtime_ns for p in run.rglob("*")}
    try:
        before = files()
        held = f"run k is being written by pid {proc.pid} on host {socket.gethostname()}"
        with pytest.raises(RunLocked, match=held):
            run_matrix(resume="k", results_dir=tmp_path, data=data, progress=False,
                       executor=RayExecutor(address=cluster))
        with pytest.raises(RunLocked, match=held):
            run_matrix(matrix, results_dir=tmp_path, run_id="k", device="cpu", data=data, progress=False)
        assert files() == before  # the second drivers wrote nothing
    finally:
        proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) != 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["executor"] == "ray"
    finished = parts(run)
    assert 1 <= len(finished) < len(meta["chunks"])
    shutil.copytree(run, tmp_path / "runs" / "k2")
    meta["run_id"] = "k2"
    (tmp_path / "runs" / "k2" / "meta.json").write_text(json.dumps(meta))

    run_matrix(resume="k", results_dir=tmp_path, data=data, progress=False,
               executor=RayExecutor(address=cluster))
    run_matrix(resume="k2", results_dir=tmp_path, data=data, progress=False)  # local
    for r in (run, tmp_path / "runs" / "k2"):
        assert json.loads((r / "meta.json").read_text())["status"] == "complete"
        assert_same_results(r, local_run)
        assert [p for p in parts(r) if p["chunk"] in {f["chunk"] for f in finished}] == finished  # kept
    assert {p["executor"] for p in parts(tmp_path / "runs" / "k2")} == {"ray", "local"}
    assert json.loads((tmp_path / "runs" / "k2" / "meta.json").read_text())["executor"] == "local"
