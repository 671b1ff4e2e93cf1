"""Run a matrix: chunks of configurations trained together, results written atomically, resumable.

``run_matrix(matrix, ...)`` -> the run folder ``results/runs/<run-id>/`` (DESIGN.md's results layout):

* ``meta.json``: run id, status ("running" | "interrupted" | "failed" | "complete"), command, the resolved
  matrix, framework, precision ("fp32" | "bf16"), trainer ("batched" | "sequential" | "keras"), device and its
  name, threads, the
  executor (``local`` | ``ray``; the settings of Ray under ``ray``), git commit and
  whether the tree was dirty, versions, start / end (UTC), the chunk plan, the resolved peaks,
  aggregate throughput (with a torch matmul FLOP rate measured in the same run), the data's origin.
* ``epochs.parquet``: ``bench.train.batched.HISTORY_COLUMNS`` + ``trainer``, ``chunk``, ``model_time_s``, ``precision``
  (this model's share of the epoch's wall time: the chunk's epoch time / models in the chunk for the
  batched trainer, the model's own epoch time otherwise; its cumulative sum is the time-to-result clock).
* ``summary.csv``: ``bench.train.batched.SUMMARY_COLUMNS`` + ``trainer``, ``chunk``, ``precision``;
  ``throughput.csv``: one row per chunk. A run without a ``precision`` (older runs) trained in fp32.
* ``parts/chunk-NNNN.*``: each finished chunk, written by this process as soon as it finishes (the
  ``.json`` written last marks it done; it holds the chunk's throughput, the executor, node, device and
  threads that trained it, and the SHA-256 and size of its two data files). ``--resume`` skips finished
  chunks, whichever executor trained them; a part whose JSON or data files do not match (a crash
  mid-write, a full disk) is retrained with a :class:`CorruptPartWarning` naming the file. An interrupted
  run (Ctrl-C or SIGTERM) loses at most the chunks in flight.

Every file is written to a temporary name in the same folder and renamed (``os.replace``): a reader
never sees half a file. Chunks: configurations in matrix order, ``chunk_size`` at a time (default: the
whole matrix on CUDA; 72 models on the CPU, about 3 GB, a tail under 9 models joining the last chunk; 6 for
the one-at-a-time trainers). Where chunks train is the executor's business (:mod:`bench.matrix.executors`:
this process, or Ray tasks on many machines).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ..machine import environment
from ..machine import utc as _utc
from ..results import RunNotFound, find_run, results_root, run_lock, write_json
from ..results import atomic_write as _atomic_write
from ..train.registry import TRAINERS, DeviceError, check_combination, resolve_device
from .spec import Matrix, from_dict
from .tuning import Stage, next_stage

__all__ = ["TRAINERS", "RunError", "RunWriteError", "CorruptPartWarning", "run_matrix", "resolve_run", "plan_chunks",
           "run_configs", "EXTRA_HISTORY", "EXTRA_SUMMARY", "THROUGHPUT_COLUMNS"]

EXTRA_HISTORY = ["trainer", "chunk", "model_time_s", "stage", "lr_factor", "precision"]
EXTRA_SUMMARY = ["trainer", "chunk", "stage", "lr_factor", "precision"]
THROUGHPUT_COLUMNS = ["chunk", "trainer", "device", "precision", "n_models", "epochs", "steps", "batch_size", "n_train",
                      "wall_s", "train_s", "samples_per_s", "model_epochs_per_s", "flop_per_s", "flops",
                      "matmul_flop_per_s"]
CPU_CHUNK = 72  # the quick matrix in one chunk; 9% more model-epochs/s than 36 on the 2-core CPU
ONE_AT_A_TIME_CHUNK = 6  # sequential / Keras: no memory reason to group; small chunks make resume finer


class RunError(RuntimeError):
    """A run that cannot start or continue (unknown run id, a failed chunk, ...)."""


class RunWriteError(RunError):
    """An ``OSError`` while writing the run folder (a full disk, no permission, a read-only file system):
    ``error`` is it, ``run_dir`` the run. What was saved before it stays; ``--resume`` continues."""

    def __init__(self, error: OSError, run_dir: Path):
        self.error, self.run_dir = error, Path(run_dir)
        super().__init__(f"run {self.run_dir.name}: {error.filename or 'a file'}: {error.strerror or error}")


class CorruptPartWarning(UserWarning):
    """A part file that does not match its checksum: its chunk is trained again."""


# ----------------------------------------------------------------------------------------- small helpers

def plan_chunks(n_configs: int, chunk_size: int) -> list[list[int]]:
    """Consecutive config indices in ``ceil(n / chunk_size)`` chunks of equal size (+-1), except that a
    remainder under ``chunk_size // 8`` adds no chunk of its own (a few models alone train far below the
    batched throughput: the quick matrix's 72 scheduled + 4 schedule-free models are one chunk of 76, a tuning
    grid of 370 six chunks of 61-62, not five of 72 and one of 10)."""
    if n_configs <= 0:
        return []
    k = -(-n_configs // chunk_size)
    if k > 1 and n_configs - (k - 1) * chunk_size < chunk_size // 8:
        k -= 1
    bounds = [round(i * n_configs / k) for i in range(k + 1)]
    return [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]


def resolve_run(run: str | Path, results_dir: Path | None = None) -> Path:
    """A run id (under ``<results>/runs/``) or a folder path -> the run folder (with a meta.json)."""
    try:
        return find_run(run, results_dir)
    except RunNotFound as e:
        raise RunError(str(e)) from None


class _RunFolder:
    """The run folder one call writes, locked before it is looked at (one writer per run folder: a second
    writer gets :class:`bench.results.RunLocked` at once). On an ``OSError`` the lock is let go after
    ``meta.json`` says "failed" (when the disk lets it), and a folder this call created that never got its
    ``meta.json`` is removed, so the same command can simply run again."""

    def __init__(self, command: str | None):
        self.dir: Path | None = None
        self.fresh = False
        self._command = command
        self._hold = contextlib.ExitStack()

    def claim(self, run: str | Path, results_dir: Path, *, new: bool) -> Path:
        """Lock run id / folder ``run``; a new run's folder must not exist yet, a resumed one must."""
        self.dir = results_dir / "runs" / str(run)
        if not new and ((Path(run) / "meta.json").is_file() or len(Path(run).parts) > 1):
            self.dir = Path(run)  # a folder path, as resolve_run reads it
        self._hold.enter_context(run_lock(self.dir, self._command))
        if not new:
            self.dir = resolve_run(run, results_dir)
        elif self.dir.exists():
            raise RunError(f"run folder {self.dir} exists: pick another --run-id or --resume {run}")
        else:
            self.fresh = True
        return self.dir

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        try:
            if isinstance(error, OSError) and self.dir is not None:
                meta_path = self.dir / "meta.json"
                if meta_path.is_file():
                    with contextlib.suppress(OSError, ValueError):
                        meta = json.loads(meta_path.read_text())
                        meta.update(status="failed", error=f"{error.filename or ''}: {error.strerror or error}")
                        write_json(meta_path, meta)
                elif self.fresh:
                    import shutil
                    shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            self._hold.close()


# ------------------------------------------------------------------------------------------------ run

@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a scheduler's or ``kill``'s stop) ends a run as Ctrl-C does: finished chunks are kept,
    meta.json says "interrupted", and ``--resume`` continues. Main thread only (signals need it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _chunk_paths(run_dir: Path, k: int) -> dict[str, Path]:
    base = run_dir / "parts" / f"chunk-{k:04d}"
    return {"epochs": base.with_suffix(".epochs.parquet"), "summary": base.with_suffix(".summary.csv"),
            "done": base.with_suffix(".json")}


def _sha256(path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _part_problem(run_dir: Path, k: int) -> str | None:
    """None when chunk ``k``'s part is complete and intact, "missing" when it was never finished, else
    what is wrong (naming the file). Parts written before checksums existed are checked by reading them."""
    paths = _chunk_paths(run_dir, k)
    if not paths["done"].is_file():
        return "missing"
    try:
        done = json.loads(paths["done"].read_text())
        if not isinstance(done, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as e:
        return f"{paths['done']}: unreadable ({e})"
    files = done.get("files")
    for key in ("epochs", "summary"):
        p = paths[key]
        if not p.is_file():
            return f"{p}: missing"
        want = (files or {}).get(p.name)
        if files is not None:
            if want is None:
                return f"{paths['done']}: no checksum for {p.name}"
            size = p.stat().st_size
            if size != want.get("bytes") or _sha256(p) != want.get("sha256"):
                return f"{p}: checksum mismatch ({size} bytes, {want.get('bytes')} expected): truncated or corrupt"
        else:
            try:
                pd.read_parquet(p) if key == "epochs" else pd.read_csv(p)
            except Exception as e:  # noqa: BLE001 - any reader error means the file is unusable
                return f"{p}: unreadable ({type(e).__name__}: {e})"
    return None


def _chunk_done(run_dir: Path, k: int) -> bool:
    return _part_problem(run_dir, k) is None


def _check_parts(run_dir: Path, n_chunks: int) -> list[int]:
    """The chunks still to train; a corrupt part is removed with a warning naming the file."""
    import warnings
    todo = []
    for k in range(n_chunks):
        problem = _part_problem(run_dir, k)
        if problem is None:
            continue
        if problem != "missing":
            warnings.warn(f"{problem}; chunk {k} will be trained again", CorruptPartWarning, stacklevel=3)
            for p in _chunk_paths(run_dir, k).values():
                p.unlink(missing_ok=True)
        todo.append(k)
    return todo


def _save_chunk(run_dir: Path, k: int, indices: list[int], result, trainer: str, info: dict,
                configs: list | None = None, precision: str = "fp32") -> dict:
    paths = _chunk_paths(run_dir, k)
    paths["epochs"].parent.mkdir(parents=True, exist_ok=True)
    hist, summ = result.history.copy(), result.summary.copy()
    local = hist["model"].to_numpy(), summ["model"].to_numpy()
    glob = np.asarray(indices)
    hist["model"] = glob[local[0]]
    summ["model"] = glob[local[1]]
    hist["trainer"], summ["trainer"] = trainer, trainer
    hist["chunk"], summ["chunk"] = k, k
    for col, default in (("stage", "main"), ("lr_factor", 1.0)):  # where a tuned run put each model
        values = np.asarray([getattr(c, col) or default for c in configs] if configs else [default] * len(indices))
        hist[col], summ[col] = values[local[0]], values[local[1]]
    hist["precision"], summ["precision"] = precision, precision
    share = len(indices) if trainer == "batched" else 1
    hist["model_time_s"] = hist["epoch_time_s"] / share
    _atomic_write(paths["epochs"], lambda p: hist.to_parquet(p, index=False))
    _atomic_write(paths["summary"], lambda p: summ.to_csv(p, index=False))
    tp = {c: result.throughput.get(c) for c in THROUGHPUT_COLUMNS if c in result.throughput}
    tp.update(chunk=k, trainer=trainer, precision=precision, matmul_flop_per_s=info.get("matmul_flop_per_s"))
    tp.update({key: v for key, v in info.items() if key != "matmul_flop_per_s"})
    tp["files"] = {p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
                   for p in (paths["epochs"], paths["summary"])}
    write_json(paths["done"], tp)  # last: its presence marks the chunk done
    return tp


def _assemble(run_dir: Path, n_chunks: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Join the finished parts into epochs.parquet, summary.csv, throughput.csv (atomic)."""
    from ..train.config import HISTORY_COLUMNS, SUMMARY_COLUMNS
    done = [k for k in range(n_chunks) if _chunk_done(run_dir, k)]
    hist = pd.concat([pd.read_parquet(_chunk_paths(run_dir, k)["epochs"]) for k in done], ignore_index=True)
    summ = pd.concat([pd.read_csv(_chunk_paths(run_dir, k)["summary"]) for k in done], ignore_index=True)
    tp = pd.DataFrame([{c: v for c, v in json.loads(_chunk_paths(run_dir, k)["done"].read_text()).items()
                        if c in THROUGHPUT_COLUMNS} for k in done])
    for frame in (hist, summ):  # parts written before stages existed
        for col, default in (("stage", "main"), ("lr_factor", 1.0)):
            if col not in frame:
                frame[col] = default
    for df in (hist, summ, tp):  # parts of a run that began before precision was recorded: fp32
        df["precision"] = df["precision"].fillna("fp32") if "precision" in df else "fp32"
    hist = hist.sort_values(["model", "epoch"], kind="stable")[HISTORY_COLUMNS + EXTRA_HISTORY]
    summ = summ.sort_values("model", kind="stable")[SUMMARY_COLUMNS + EXTRA_SUMMARY]
    tp = tp.reindex(columns=THROUGHPUT_COLUMNS)
    _atomic_write(run_dir / "epochs.parquet", lambda p: hist.to_parquet(p, index=False))
    _atomic_write(run_dir / "summary.csv", lambda p: summ.to_csv(p, index=False))
    _atomic_write(run_dir / "throughput.csv", lambda p: tp.to_csv(p, index=False))
    return hist, summ, tp


def _aggregate(tp: pd.DataFrame) -> dict:
    wall = float(tp["wall_s"].sum())
    me = float((tp["n_models"] * tp["epochs"]).sum())
    train = float(tp["train_s"].sum()) if "train_s" in tp and tp["train_s"].notna().all() else None
    samples = float((tp["n_models"] * tp["epochs"] * tp["n_train"]).sum())
    return {"wall_s": wall, "model_epochs": me, "model_epochs_per_s": me / wall, "samples_per_s": samples / wall,
            "flop_per_s": float(tp["flops"].sum()) / wall,
            "matmul_flop_per_s": float(tp["matmul_flop_per_s"].median()),
            **({"train_s": train} if train is not None else {})}


def _range_test(matrix: Matrix, find: list[str], data, device: str, run_dir: Path, progress: bool, console) -> dict:
    """Smith's LR range test, its curves, table and plot in ``run_dir/find_lr``: the peaks of the optimizers
    whose peak_lr is "find" (returned), and for a tuned run every optimizer's suggestion (the report draws it
    beside the tuned learning rates)."""
    from rich.console import Console

    from ..train.find_lr import SWEEP_STEPS, find_peaks
    todo = list(matrix.peak_lr) if matrix.tuning is not None else find
    say = console or Console(stderr=True)
    status = say.status(f"LR range test of {', '.join(todo)} ({SWEEP_STEPS} steps, batched)")
    with status if progress else contextlib.nullcontext():
        found = find_peaks(todo, data, matrix.train_spec(), device=device, seed=0, out_dir=run_dir / "find_lr",
                           required=find)
    if progress:
        say.print("LR range test: " + ", ".join(f"{k} {v:.3g}" for k, v in found.items()) +
                  f" (curves and plot in {run_dir / 'find_lr'})")
    return {k: float(found[k]) for k in find}


def _train_chunks(run_dir: Path, meta: dict, executor, chunks: list[list[int]], configs: list, stage: str, *,
                  spec, data, device: str, trainer: str, progress: bool, console) -> None:
    """Train every chunk without an intact part and write each part as it finishes; an interrupt or a
    failed chunk is recorded in meta.json ("interrupted" / "failed") with the finished parts assembled."""
    from .executors import ChunkJob, ExecutorError
    from .progress import RunProgress

    todo = _check_parts(run_dir, len(chunks))
    if not todo:
        return
    label = meta["run_id"] + (f" [{stage}]" if stage and stage != "main" else "")
    bar = RunProgress(label, sum(len(chunks[k]) for k in todo) * spec.epochs, len(todo), enabled=progress,
                      console=console)
    jobs = [ChunkJob(k, [configs[i] for i in chunks[k]]) for k in todo]

    def record_stop(e: BaseException):
        meta["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        if isinstance(e, ExecutorError):
            meta["error"] = str(e)
        write_json(run_dir / "meta.json", meta)

    try:
        with bar, _terminate_as_interrupt():
            finished = executor.run(jobs, trainer=trainer, spec=spec, data=data, device=device, progress=bar)
            with contextlib.closing(finished):  # an interrupt while a part is written still cancels the rest
                try:
                    for k, result, info in finished:
                        _save_chunk(run_dir, k, chunks[k], result, trainer, info, [configs[i] for i in chunks[k]],
                                    spec.precision)
                except (KeyboardInterrupt, ExecutorError) as e:
                    record_stop(e)  # before the executor cancels its tasks: a crash there keeps the status
                    raise
    except (KeyboardInterrupt, ExecutorError) as e:
        record_stop(e)
        if any(_chunk_done(run_dir, k) for k in range(len(chunks))):
            _assemble(run_dir, len(chunks))
        raise


@dataclasses.dataclass
class _Run:
    """One run's state, the same whether it is new or resumed: where it writes, what trains how and where."""
    dir: Path
    meta: dict | None        # None until a new run's meta.json is first written
    matrix: Matrix
    trainer: str
    device: str              # where chunks train
    chunks: list[list[int]]
    chunk_size: int | None   # the --chunk-size option (None: by device and trainer)
    peaks: dict
    optim_impl: str

    @property
    def spec(self):
        return self.matrix.train_spec(optim_impl=self.optim_impl)


def run_matrix(matrix: Matrix | None = None, *, results_dir: Path | None = None, run_id: str | None = None,
               device: str = "auto", trainer: str | None = None, chunk_size: int | None = None, data_dir=None,
               resume: str | None = None, progress: bool = True, console=None, command: str | None = None,
               data=None, executor=None, optim_impl: str = "auto") -> Path:
    """Train ``matrix`` (or continue run ``resume``) and write its run folder; returns the folder.

    ``results_dir``: the results root (default :func:`bench.results.results_root`). ``data``: an already
    loaded :class:`bench.train.data.FashionMNIST` (e.g. a subset, in tests); default: load it from
    ``data_dir`` (or the usual places) onto the training device. ``executor``: where the chunks train
    (:mod:`bench.matrix.executors`; default :class:`~bench.matrix.executors.LocalExecutor`, this process); a
    :class:`~bench.matrix.executors.RayExecutor` that this call connects is shut down at its end. The report
    and the post-run measurements (step cost, roofline: ``bench.speed``) are the caller's (``lrbench run``).
    """
    from .executors import ExecutorError, LocalExecutor

    executor = executor if executor is not None else LocalExecutor()
    folder = _RunFolder(command)
    try:
        with folder:
            if executor.name != "local":
                executor.start()
            if resume is not None:
                run = _resumed(folder, resume, results_root(results_dir), executor, optim_impl)
            else:
                run = _new(folder, matrix, results_root(results_dir), executor, run_id=run_id, device=device,
                           trainer=trainer, chunk_size=chunk_size, optim_impl=optim_impl)
            return _train_run(run, executor, data=data, data_dir=data_dir, progress=progress, console=console,
                              command=command, resumed=resume is not None)
    except ExecutorError as e:
        raise RunError(str(e)) from None
    except OSError as e:
        if folder.dir is None:
            raise
        raise RunWriteError(e, folder.dir) from e
    finally:
        if hasattr(executor, "shutdown"):
            executor.shutdown()


def _resumed(folder: _RunFolder, resume: str, results_dir: Path, executor, optim_impl: str) -> _Run:
    """The state of run ``resume`` from its meta.json (locked first, then read)."""
    run_dir = folder.claim(resume, results_dir, new=False)
    meta = json.loads((run_dir / "meta.json").read_text())
    if meta.get("status") == "complete":
        raise RunError(f"run {meta['run_id']} is complete: nothing to resume")
    device = meta["device"]
    if executor.name != "local":
        device = executor.resolve_device("cuda" if device.startswith("cuda") else "cpu")
    else:
        try:
            resolve_device(device, meta["trainer"])
        except DeviceError:
            raise RunError(f"run {meta['run_id']} ran on {device}; this machine has no CUDA GPU") from None
    return _Run(run_dir, meta, from_dict(meta["matrix"], source=meta["matrix"].get("source", "")), meta["trainer"],
                device, meta["chunks"], meta.get("chunk_size_option"), meta["peak_lr"],
                meta.get("optim_impl", optim_impl))


def _new(folder: _RunFolder, matrix: Matrix | None, results_dir: Path, executor, *, run_id, device, trainer,
         chunk_size, optim_impl) -> _Run:
    """A new run's state: its trainer (checked against the matrix), device and folder (locked)."""
    if matrix is None:
        raise RunError("run_matrix: give a matrix or resume=<run-id>")
    trainer = trainer or ("keras" if matrix.framework == "keras" else "batched")
    problem = check_combination(trainer, matrix.framework, matrix.precision)
    if problem:
        raise RunError(problem)
    native = [n for n, t in matrix.schedules.items() if t.strip().startswith("keras-native:")]
    if native and trainer != "keras" and matrix.framework == "keras":
        matrix, native = matrix.torch_counterpart(), []  # the PyTorch half of a cross-framework check
    if native and trainer != "keras":
        raise RunError(f"matrix {matrix.name}: schedules {native} are real Keras objects (keras-native:); "
                       f"train them with the Keras trainer, not {trainer!r}")
    try:
        device = (executor.resolve_device("cpu" if trainer == "keras" else device) if executor.name != "local"
                  else resolve_device(device, trainer))
    except DeviceError as e:
        raise RunError(str(e)) from None
    if chunk_size is not None and chunk_size < 1:
        raise RunError(f"--chunk-size must be >= 1, got {chunk_size}")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_id = run_id or f"{stamp}-{matrix.name}" + (f"-{trainer}" if trainer != "batched" else "")
    if "/" in run_id or run_id.startswith(".") or not run_id.strip():
        raise RunError(f"--run-id must be a plain folder name, got {run_id!r}")
    run_dir = folder.claim(run_id, results_dir, new=True)  # locked before the existence check
    return _Run(run_dir, None, matrix, trainer, device, [], chunk_size, dict(matrix.peak_lr), optim_impl)


def _train_run(run: _Run, executor, *, data, data_dir, progress, console, command, resumed: bool) -> Path:
    """1. the data, the LR range test where needed, meta.json; 2. the stage loop (train what is planned,
    plan the next stage from the results, repeat); 3. the run assembled and marked complete."""
    import torch

    from ..train.data import load_fashion_mnist
    local = executor.name == "local"
    # the driver's own device: where it loads the data (a Ray driver: the CPU, for the object store) and
    # runs the LR range test
    here = run.device if local else ("cuda:0" if run.device == "cuda" and torch.cuda.is_available() else "cpu")
    if data is None:
        data = load_fashion_mnist("cpu" if run.trainer == "keras" or not local else run.device, data_dir)
    find = [o for o, v in run.peaks.items() if v == "find"]
    if find or (run.matrix.tuning is not None and not (run.dir / "find_lr" / "find_lr.csv").is_file()):
        run.peaks.update(_range_test(run.matrix, find, data, here, run.dir, progress, console))
    if run.meta is None:
        run.meta = _new_meta(run, data, here, command, executor)
    _meta_running(run.meta, executor, resumed)
    write_json(run.dir / "meta.json", run.meta)
    stages = ([Stage.from_dict(d) for d in run.meta["stages"]] if "stages" in run.meta else
              [Stage("main", tuple((o, n, 1.0) for o, n in run.matrix.points), run.matrix.seeds)])  # older runs
    configs = [c for st in stages for c in st.configs(run.matrix, run.peaks)]
    while True:  # 1. train what is planned and not done; 2. plan the next stage from the results; 3. repeat
        _train_chunks(run.dir, run.meta, executor, run.chunks, configs, stages[-1].name if stages else "",
                      spec=run.spec, data=data, device=run.device, trainer=run.trainer, progress=progress,
                      console=console)
        summary = _assemble(run.dir, len(run.chunks))[1] if run.chunks else None
        stage = next_stage(run.matrix, stages, summary)
        if stage is None:
            break
        configs += _plan_stage(run, stage, stages, len(configs), executor)
    return _complete(run)


def _new_meta(run: _Run, data, here: str, command: str | None, executor) -> dict:
    """A new run's meta.json (DESIGN.md's results layout); its folder made (it may hold find_lr/ already)."""
    run.dir.mkdir(parents=True, exist_ok=True)
    m = run.matrix
    meta = {"run_id": run.dir.name, "status": "running", "command": command or " ".join(sys.argv),
            "matrix": m.to_dict(), "framework": m.framework, "precision": m.precision, "trainer": run.trainer,
            **environment(here), "started_utc": _utc(), "finished_utc": None, "epochs": m.epochs,
            "seeds": list(m.seeds), "n_configs": 0, "chunk_size_option": run.chunk_size,
            "chunks": run.chunks, "stages": [], "peak_lr": run.peaks, "optim_impl": run.optim_impl,
            "data": {"dir": str(data.source), "sha256_verified": True, "n_train": len(data.x_train),
                     "n_val": len(data.x_val), "n_test": len(data.x_test), "split_seed": data.split_seed,
                     "normalisation": {"mean": data.mean, "std": data.std}}}
    if executor.name != "local":
        meta.update(device=run.device, device_name=f"Ray cluster: {executor.summary()}", gpu=None)
    return meta


def _meta_running(meta: dict, executor, resumed: bool) -> None:
    """meta.json as a run (re)starts: running, the executor and its settings, when it was resumed."""
    meta["status"] = "running"
    meta.pop("error", None)
    settings = executor.describe()  # {"executor": "local" | "ray", its settings...}
    meta["executor"] = settings.pop("executor")
    meta.pop("ray", None)
    if settings:
        meta[meta["executor"]] = settings
    meta.setdefault("resumed_utc", [])
    if resumed:
        meta["resumed_utc"].append(_utc())


def _plan_stage(run: _Run, stage: Stage, stages: list, n_configs: int, executor) -> list:
    """Chunks for a new stage's configurations (returned), its files and meta.json entry written."""
    new = stage.configs(run.matrix, run.peaks)
    size = run.chunk_size or (ONE_AT_A_TIME_CHUNK if run.trainer != "batched" else
                              -(-len(new) // (1 if executor.name == "local" else executor.slots()))
                              if run.device.startswith("cuda") else CPU_CHUNK)
    first = len(run.chunks)
    run.chunks += [[n_configs + i for i in c] for c in plan_chunks(len(new), size)]
    stages.append(stage)
    for name, frame in stage.files.items():
        _atomic_write(run.dir / name, lambda p, f=frame: f.to_csv(p, index=False))
    meta = run.meta
    meta.update(stage.meta)
    meta["stages"] = meta.get("stages", []) + [{**stage.to_dict(), "chunks": list(range(first, len(run.chunks)))}]
    meta.update(chunks=run.chunks, n_configs=n_configs + len(new), chunk_size=len(run.chunks[0]))
    write_json(run.dir / "meta.json", meta)
    return new


def _complete(run: _Run) -> Path:
    """Every chunk's part checked, the run files assembled, meta.json marked complete with its throughput."""
    missing = [k for k in range(len(run.chunks)) if not _chunk_done(run.dir, k)]
    if missing:
        raise RunError(f"chunks {missing} of run {run.meta['run_id']} have no intact part after training: "
                       f"lrbench run --resume {run.meta['run_id']} trains them again")
    _, _, tp = _assemble(run.dir, len(run.chunks))
    run.meta["status"] = "complete"
    run.meta["finished_utc"] = _utc()
    run.meta["throughput"] = _aggregate(tp)
    write_json(run.dir / "meta.json", run.meta)
    return run.dir


def run_configs(meta: dict) -> tuple[Matrix, list]:
    """A run's matrix and every configuration it planned (``meta.json``'s chunk indices point into them)."""
    matrix = from_dict(meta["matrix"], source=meta["matrix"].get("source", ""))
    stages = ([Stage.from_dict(d) for d in meta["stages"]] if "stages" in meta else
              [Stage("main", tuple((o, n, 1.0) for o, n in matrix.points), matrix.seeds)])
    return matrix, [c for st in stages for c in st.configs(matrix, meta["peak_lr"])]
