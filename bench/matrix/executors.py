"""Where a run's chunks train: :class:`LocalExecutor` (this process, one chunk after the other, the
default) or :class:`RayExecutor` (Ray tasks on a private local cluster or on an existing one).

An executor's ``run(jobs, trainer=..., spec=..., data=..., device=..., progress=...)`` trains each job with
``bench.train.registry.train(trainer, configs, data, spec, device, progress)`` (or the ``train`` given) and yields ``(chunk, ChunkResult, info)`` as chunks finish; the runner writes each part itself (the driver
owns the run folder: no shared file system). ``info`` is recorded in the part's JSON: ``executor``,
``node`` (host name), ``device`` (what trained it), ``threads`` (torch's thread count during the chunk),
``matmul_flop_per_s`` (a torch matmul measured where the chunk ran), for Ray also ``node_id`` and ``node_ip``.

Ray (``pip install 'lrbench[ray]'``): the driver loads the data once and puts it in the object store
(numpy arrays, read zero-copy by the tasks of a node), submits every unfinished chunk as a task
(``num_cpus=cpus_per_task``, ``num_gpus=gpus_per_task``) and collects results with ``ray.wait``. Each
task sets torch's and Numba's threads to its CPU share (a reused worker keeps the count of its first
task otherwise) and trains on ``cuda:0`` (the GPU Ray gave it) when it asked for one and torch sees it,
else on the CPU. Tasks are retried ``max_retries`` times when their worker dies, never after a Python
exception of the trainer (deterministic: it is reported and the run stops).
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import tempfile
import warnings
from typing import Callable, Iterator, NamedTuple, Sequence

__all__ = ["EXECUTORS", "ExecutorError", "ChunkJob", "LocalExecutor", "RayExecutor", "make_executor"]

EXECUTORS = ("local", "ray")


class ExecutorError(RuntimeError):
    """An executor that cannot start (no Ray, no GPU in the cluster, ...) or a chunk that failed."""


class ChunkJob(NamedTuple):
    chunk: int          # index in the run's chunk plan
    configs: list       # its TrainConfigs


def matmul_rate(trainer: str, device: str) -> float:
    """The framework that trains measures its own matmul (FLOP/s of a 1024^3 float32 matmul)."""
    if trainer == "keras":
        from ..train.keras import matmul_flop_rate_tf
        return matmul_flop_rate_tf()
    import torch

    from ..machine import matmul_flop_rate
    return matmul_flop_rate(torch.device(device))


# ---------------------------------------------------------------------------------------------- local

class LocalExecutor:
    """One chunk after the other in this process (the default; what ``lrbench run`` always did)."""
    name = "local"

    def describe(self) -> dict:
        return {"executor": "local"}

    def run(self, jobs: Sequence[ChunkJob], *, trainer: str, spec, data, device: str, progress,
            train: Callable | None = None) -> Iterator[tuple]:
        import numba
        import torch

        from ..train import registry
        matmul = matmul_rate(trainer, device)
        for j, job in enumerate(jobs):
            progress.start_chunk(j, job.chunk, len(job.configs), spec.epochs)
            result = (train or registry.train)(trainer, job.configs, data, spec, device, progress.epoch_done)
            yield job.chunk, result, {"executor": "local", "node": platform.node(), "device": device,
                                      "threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
                                      "matmul_flop_per_s": matmul}


# ------------------------------------------------------------------------------------------------ ray

_DATA_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _pack(data) -> dict:
    """FashionMNIST -> a dict of numpy arrays (the object store hands them to tasks without a copy)."""
    out = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    for k in _DATA_ARRAYS:
        out[k] = out[k].detach().cpu().numpy()
    return out


def _unpack(packed: dict):
    import torch

    from ..train.data import FashionMNIST
    fields = dict(packed)
    with warnings.catch_warnings():  # read-only shared memory: the trainer only reads (and gathers) it
        warnings.filterwarnings("ignore", message=".*not writable.*")
        for k in _DATA_ARRAYS:
            fields[k] = torch.from_numpy(fields[k])
    return FashionMNIST(**fields)


class _ProgressSink:
    """A small actor: tasks report chunk starts and epochs; the driver drains them into its progress bars."""

    def __init__(self):
        self.events = []

    def push(self, event):
        self.events.append(event)

    def drain(self):
        out, self.events = self.events, []
        return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def _chunk_task(train, chunk, configs, packed, spec, trainer, want_gpu, cpus, sink):
    """One chunk as a Ray task: threads = the task's CPU share, device = its GPU when torch sees one."""
    import numba
    import ray
    import torch

    torch.set_num_threads(cpus)
    numba.set_num_threads(max(1, min(cpus, numba.config.NUMBA_NUM_THREADS)))
    device = "cuda:0" if want_gpu and torch.cuda.is_available() else "cpu"
    ctx = ray.get_runtime_context()
    node = {"node": platform.node(), "node_id": ctx.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "device": device,
            "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else _cpu_name(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    sink.push.remote(("start", chunk, node))
    data = _unpack(packed)

    def progress(epoch, rows):
        accs = [r["val_acc"] for r in rows if r.get("trained") and math.isfinite(r["val_acc"])]
        sink.push.remote(("epoch", chunk, epoch, len(rows), max(accs) if accs else math.nan))

    if train is None:
        from ..train.registry import train
    result = train(trainer, configs, data, spec, device, progress)
    info = {"executor": "ray", **node, "threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "matmul_flop_per_s": matmul_rate(trainer, device)}
    return result, info


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'lrbench[ray]' (or pip install ray)") from None
    return ray


class RayExecutor:
    """Chunks as Ray tasks.

    ``address``: None starts a private local cluster sized to this machine (``num_cpus``: all cores;
    object store ``object_store_bytes``, default 1 GiB; a short temporary folder under /tmp, Ray's
    socket paths being limited to 107 bytes) and stops it at the end; ``"auto"`` or ``"HOST:PORT"``
    attaches to a running cluster (``ray start``). A process already connected to Ray (``ray.init``
    before the run) keeps its connection.
    """
    name = "ray"

    def __init__(self, address: str | None = None, *, cpus_per_task: int = 1, gpus_per_task: float | None = None,
                 max_retries: int = 3, num_cpus: int | None = None, object_store_bytes: int | None = None):
        if int(cpus_per_task) < 1:
            raise ExecutorError(f"--cpus-per-task must be >= 1, got {cpus_per_task}")
        if gpus_per_task is not None and not (gpus_per_task >= 0 and math.isfinite(gpus_per_task)):
            raise ExecutorError(f"--gpus-per-task must be >= 0, got {gpus_per_task}")
        if int(max_retries) < 0:
            raise ExecutorError(f"--max-retries must be >= 0, got {max_retries}")
        self.address = address
        self.cpus_per_task = int(cpus_per_task)
        self.gpus_per_task = gpus_per_task
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self.object_store_bytes = object_store_bytes
        self._ray = None
        self._owns = False      # we started (or connected) and shut down at the end
        self._tmp = None
        self.resources: dict = {}

    # -- cluster
    def start(self, data_bytes: int = 0):
        """Connect (or start the private cluster); idempotent."""
        if self._ray is not None:
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        private = self.address is None
        if private:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written under ~/.ray
        ray = _import_ray()
        import logging
        if not ray.is_initialized():
            if private:
                self._tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: 107-byte socket paths
                store = self.object_store_bytes or max(2 ** 30, 3 * int(data_bytes))
                root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
                try:
                    ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                             _temp_dir=self._tmp, object_store_memory=store, log_to_driver=False,
                             logging_level=logging.WARNING,
                             runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}})
                except BaseException:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    self._tmp = None
                    raise
            else:
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
                except (ConnectionError, RuntimeError, ValueError) as e:
                    raise ExecutorError(f"--address {self.address}: cannot connect to a Ray cluster ({e}); "
                                        f"start one with ray start --head") from None
            self._owns = True
        self._ray = ray
        self.resources = dict(ray.cluster_resources())

    def shutdown(self):
        if self._ray is not None and self._owns:
            self._ray.shutdown()
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)
        self._ray, self._owns, self._tmp = None, False, None

    def _largest_node(self, key: str) -> float:
        return max((n.get("Resources", {}).get(key, 0.0) for n in self._ray.nodes() if n.get("Alive")), default=0.0)

    def resolve_device(self, device: str) -> str:
        """``cpu`` or ``cuda`` from the request and the cluster's resources; a GPU request on a cluster
        without (enough) GPUs fails now rather than waiting forever."""
        gpus = self.resources.get("GPU", 0.0)
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda"):
            raise ExecutorError(f"--device must be auto, cpu or cuda, got {device!r}")
        if self.gpus_per_task is None:
            self.gpus_per_task = 0.0 if device == "cpu" or (device == "auto" and not gpus) else 1.0
        if device == "cpu" and self.gpus_per_task > 0:
            raise ExecutorError("--device cpu with --gpus-per-task > 0: give one or the other")
        if self.gpus_per_task > 0 and self._largest_node("GPU") < self.gpus_per_task:
            raise ExecutorError(f"--gpus-per-task {self.gpus_per_task:g}: no node of the Ray cluster has that many "
                                f"GPUs (cluster: {self.summary()}); a GPU task would wait forever. Use "
                                f"--device cpu or add GPU nodes")
        if self._largest_node("CPU") < self.cpus_per_task:
            raise ExecutorError(f"--cpus-per-task {self.cpus_per_task}: no node of the Ray cluster has that many "
                                f"CPUs (cluster: {self.summary()}); the tasks would wait forever")
        return "cuda" if self.gpus_per_task > 0 else "cpu"

    def slots(self) -> int:
        """Tasks the cluster runs at once."""
        n = self.resources.get("CPU", 1.0) // self.cpus_per_task
        if self.gpus_per_task:
            n = min(n, self.resources.get("GPU", 0.0) // self.gpus_per_task)
        return max(1, int(n))

    def summary(self) -> str:
        nodes = sum(1 for n in self._ray.nodes() if n.get("Alive")) if self._ray else 0
        return (f"{nodes} node(s), {self.resources.get('CPU', 0):g} CPUs, {self.resources.get('GPU', 0):g} GPUs")

    def describe(self) -> dict:
        return {"executor": "ray", "address": self.address or "local (private)", "ray": self._ray.__version__,
                "cluster": {k: v for k, v in self.resources.items() if k in ("CPU", "GPU", "memory")},
                "nodes": sum(1 for n in self._ray.nodes() if n.get("Alive")), "cpus_per_task": self.cpus_per_task,
                "gpus_per_task": self.gpus_per_task, "max_retries": self.max_retries}

    # -- chunks
    def run(self, jobs: Sequence[ChunkJob], *, trainer: str, spec, data, device: str, progress,
            train: Callable | None = None) -> Iterator[tuple]:
        ray = self._ray
        if ray is None:
            raise ExecutorError("RayExecutor.run before start()")
        if not jobs:
            return
        packed = ray.put(_pack(data))
        sink = ray.remote(num_cpus=0)(_ProgressSink).remote()
        task = ray.remote(_chunk_task).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task or 0,
                                               max_retries=self.max_retries, retry_exceptions=False)
        want_gpu = bool(self.gpus_per_task)
        pending = {task.remote(train, job.chunk, job.configs, packed, spec, trainer, want_gpu,
                               self.cpus_per_task, sink): job for job in jobs}
        started = 0
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ev in ray.get(sink.drain.remote()):
                    if ev[0] == "start":
                        progress.task_started(started, ev[1], sum(len(j.configs) for j in jobs if j.chunk == ev[1]),
                                              spec.epochs, f"{ev[2]['node']} {ev[2]['device']}")
                        started += 1
                    else:
                        progress.task_epoch(*ev[1:])
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        result, info = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        cause = e.cause if getattr(e, "cause", None) is not None else e
                        raise ExecutorError(f"chunk {job.chunk} failed in its Ray task (not retried: a trainer "
                                            f"error repeats): {type(cause).__name__}: {cause}") from None
                    except ray.exceptions.RayError as e:
                        raise ExecutorError(f"chunk {job.chunk} lost after {self.max_retries} retries "
                                            f"(--max-retries): {type(e).__name__}: {e}") from None
                    progress.task_finished(job.chunk, len(job.configs) * spec.epochs)
                    yield job.chunk, result, info
        finally:
            # cancel only what is still running: force-cancelling a task whose reply is arriving trips a Ray
            # core-worker check (observed: "Tried to complete task that was not pending", then abort)
            if pending:
                _, running = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                for ref in running:
                    ray.cancel(ref, force=True)
            ray.kill(sink)


def make_executor(name: str = "local", **options):
    """``local`` or ``ray`` (options: those of :class:`RayExecutor`)."""
    if name == "local":
        if any(v is not None for v in options.values()):
            raise ExecutorError(f"{', '.join(k for k, v in options.items() if v is not None)}: options of "
                                f"--executor ray")
        return LocalExecutor()
    if name == "ray":
        _import_ray()
        return RayExecutor(**{k: v for k, v in options.items() if v is not None})
    raise ExecutorError(f"--executor must be one of {EXECUTORS}, got {name!r}")
