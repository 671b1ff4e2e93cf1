"""Run a matrix: chunks of configurations trained together, results written atomically, resumable.

``run_matrix(matrix, ...)`` -> the run folder ``results/runs/<run-id>/`` (DESIGN.md's results layout):

* ``meta.json``: run id, status ("running" | "interrupted" | "complete"), command, the resolved matrix,
  framework, trainer ("batched" | "sequential" | "keras"), device and its name, threads, git commit and
  whether the tree was dirty, versions, start / end (UTC), shard, the chunk plan, the resolved peaks,
  aggregate throughput (with a torch matmul FLOP rate measured in the same run), the data's origin.
* ``epochs.parquet``: ``bench.trainer.HISTORY_COLUMNS`` + ``trainer``, ``chunk``, ``model_time_s``
  (this model's share of the epoch's wall time: the chunk's epoch time / models in the chunk for the
  batched trainer, the model's own epoch time otherwise; its cumulative sum is the time-to-result clock).
* ``summary.csv``: ``bench.trainer.SUMMARY_COLUMNS`` + ``trainer``, ``chunk``; ``throughput.csv``: one
  row per chunk.
* ``parts/chunk-NNNN.*``: each finished chunk, written as soon as it finishes (the ``.json`` written last
  marks it done). ``--resume`` skips finished chunks; an interrupted run (Ctrl-C or SIGTERM) loses at
  most the chunk in flight.

Every file is written to a temporary name in the same folder and renamed (``os.replace``): a reader
never sees half a file. Chunks: configurations in matrix order, ``chunk_size`` at a time (default: the
whole matrix on CUDA; 72 models on the CPU, about 3 GB; 6 for the one-at-a-time trainers). Shard ``i/n`` trains chunks ``i-1, i-1+n, ...``;
``merge_runs`` joins the shards' folders into one run.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .matrix import Matrix, from_dict

__all__ = ["RESULTS", "TRAINERS", "RunError", "run_matrix", "merge_runs", "resolve_run", "plan_chunks",
           "EXTRA_HISTORY", "EXTRA_SUMMARY", "THROUGHPUT_COLUMNS"]

RESULTS = Path(__file__).resolve().parent.parent / "results"
TRAINERS = ("batched", "sequential", "keras")
EXTRA_HISTORY = ["trainer", "chunk", "model_time_s"]
EXTRA_SUMMARY = ["trainer", "chunk"]
THROUGHPUT_COLUMNS = ["chunk", "trainer", "device", "n_models", "epochs", "steps", "batch_size", "n_train",
                      "wall_s", "samples_per_s", "model_epochs_per_s", "flop_per_s", "flops", "matmul_flop_per_s"]
CPU_CHUNK = 72  # the quick matrix in one chunk; 9% more model-epochs/s than 36 on the 2-core CPU
ONE_AT_A_TIME_CHUNK = 6  # sequential / Keras: no memory reason to group; small chunks make resume finer


class RunError(RuntimeError):
    """A run that cannot start or continue (unknown run id, mismatched shards, ...)."""


# ----------------------------------------------------------------------------------------- small helpers

def _utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n"))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _git(*args) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device) -> dict:
    """Machine, versions and commit for meta.json."""
    import torch

    from importlib import metadata

    from .speed import machine
    info = machine(frameworks=False)
    for dist in ("torch", "tensorflow", "keras"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else info.get("cpu", "")
    versions = {k: info[k] for k in ("python", "numpy", "numba", "torch", "keras", "tensorflow", "lrcore")
                if k in info}
    versions["pandas"] = pd.__version__
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"device": str(dev), "device_name": name, "cpu": info.get("cpu", ""),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "n_threads": torch.get_num_threads(), "platform": info.get("platform", platform.platform()),
            "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None,
            "versions": versions}


def resolve_device(device: str) -> str:
    """auto -> cuda when torch sees a GPU, else cpu; cuda without a GPU is an error."""
    import torch
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                       "use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise RunError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return "cuda:0" if device == "cuda" else device


def plan_chunks(n_configs: int, chunk_size: int) -> list[list[int]]:
    """Consecutive config indices, ``chunk_size`` at a time."""
    return [list(range(a, min(a + chunk_size, n_configs))) for a in range(0, n_configs, chunk_size)]


def resolve_run(run: str | Path, results_dir: Path = RESULTS) -> Path:
    """A run id (under ``results/runs/``) or a folder path -> the run folder (with a meta.json)."""
    p = Path(run)
    for cand in (p, Path(results_dir) / "runs" / str(run)):
        if (cand / "meta.json").is_file():
            return cand
    runs = sorted(q.name for q in (Path(results_dir) / "runs").glob("*") if (q / "meta.json").is_file())
    raise RunError(f"no run {str(run)!r} (looked for {p}/meta.json and {Path(results_dir) / 'runs' / str(run)}"
                   f"/meta.json); runs here: {', '.join(runs) if runs else 'none'}")


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


def _train(trainer: str, configs, data, matrix: Matrix, device: str, progress, optim_impl: str = "auto"):
    kw = dict(epochs=matrix.epochs, batch_size=matrix.batch_size, widths=matrix.widths,
              activation=matrix.activation, dropout=matrix.dropout,
              early_stopping=matrix.early_stopping or None, plateau_kwargs=matrix.plateau, progress=progress)
    if trainer == "batched":
        from .trainer import train_chunk
        return train_chunk(configs, data, device=device, optim_impl=optim_impl, **kw)
    if trainer == "sequential":
        from .sequential import train_sequential
        return train_sequential(configs, data, device=device, **kw)
    from .keras_trainer import train_keras
    return train_keras(configs, data, **kw)


def _chunk_paths(run_dir: Path, k: int) -> dict[str, Path]:
    base = run_dir / "parts" / f"chunk-{k:04d}"
    return {"epochs": base.with_suffix(".epochs.parquet"), "summary": base.with_suffix(".summary.csv"),
            "done": base.with_suffix(".json")}


def _chunk_done(run_dir: Path, k: int) -> bool:
    return all(p.is_file() for p in _chunk_paths(run_dir, k).values())


def _save_chunk(run_dir: Path, k: int, indices: list[int], result, trainer: str, matmul: float) -> dict:
    paths = _chunk_paths(run_dir, k)
    paths["epochs"].parent.mkdir(parents=True, exist_ok=True)
    hist, summ = result.history.copy(), result.summary.copy()
    glob = np.asarray(indices)
    hist["model"] = glob[hist["model"].to_numpy()]
    summ["model"] = glob[summ["model"].to_numpy()]
    hist["trainer"], summ["trainer"] = trainer, trainer
    hist["chunk"], summ["chunk"] = k, k
    share = len(indices) if trainer == "batched" else 1
    hist["model_time_s"] = hist["epoch_time_s"] / share
    _atomic_write(paths["epochs"], lambda p: hist.to_parquet(p, index=False))
    _atomic_write(paths["summary"], lambda p: summ.to_csv(p, index=False))
    tp = {c: result.throughput.get(c) for c in THROUGHPUT_COLUMNS if c in result.throughput}
    tp.update(chunk=k, trainer=trainer, matmul_flop_per_s=matmul)
    write_json(paths["done"], tp)
    return tp


def _assemble(run_dir: Path, n_chunks: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Join the finished parts into epochs.parquet, summary.csv, throughput.csv (atomic)."""
    from .trainer import HISTORY_COLUMNS, SUMMARY_COLUMNS
    done = [k for k in range(n_chunks) if _chunk_done(run_dir, k)]
    hist = pd.concat([pd.read_parquet(_chunk_paths(run_dir, k)["epochs"]) for k in done], ignore_index=True)
    summ = pd.concat([pd.read_csv(_chunk_paths(run_dir, k)["summary"]) for k in done], ignore_index=True)
    tp = pd.DataFrame([json.loads(_chunk_paths(run_dir, k)["done"].read_text()) for k in done])
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
    samples = float((tp["n_models"] * tp["epochs"] * tp["n_train"]).sum())
    return {"wall_s": wall, "model_epochs": me, "model_epochs_per_s": me / wall, "samples_per_s": samples / wall,
            "flop_per_s": float(tp["flops"].sum()) / wall,
            "matmul_flop_per_s": float(tp["matmul_flop_per_s"].median())}


def run_matrix(matrix: Matrix | None = None, *, results_dir: Path = RESULTS, run_id: str | None = None,
               device: str = "auto", trainer: str | None = None, shard: tuple[int, int] = (1, 1),
               chunk_size: int | None = None, data_dir=None, resume: str | None = None, report: bool = True,
               progress: bool = True, console=None, command: str | None = None, data=None,
               optim_impl: str = "auto") -> Path:
    """Train ``matrix`` (or continue run ``resume``) and write its run folder; returns the folder.

    ``data``: an already loaded :class:`bench.data.FashionMNIST` (e.g. a subset, in tests); default: load
    it from ``data_dir`` (or the usual places) onto the training device.
    """
    import torch

    from .data import load_fashion_mnist
    from .progress import RunProgress

    results_dir = Path(results_dir)
    if resume is not None:
        run_dir = resolve_run(resume, results_dir)
        meta = json.loads((run_dir / "meta.json").read_text())
        if meta.get("status") == "complete":
            raise RunError(f"run {meta['run_id']} is complete: nothing to resume")
        if meta.get("merged_from"):
            raise RunError(f"run {meta['run_id']} is a merge of shards: resume the shards instead")
        matrix = from_dict(meta["matrix"], source=meta["matrix"].get("source", ""))
        trainer, device = meta["trainer"], meta["device"]
        optim_impl = meta.get("optim_impl", optim_impl)
        shard = tuple(int(x) for x in meta["shard"].split("/"))
        chunks = meta["chunks"]
        peaks = meta["peak_lr"]
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RunError(f"run {meta['run_id']} ran on {device}; this machine has no CUDA GPU")
    else:
        if matrix is None:
            raise RunError("run_matrix: give a matrix or resume=<run-id>")
        trainer = trainer or ("keras" if matrix.framework == "keras" else "batched")
        if trainer not in TRAINERS:
            raise RunError(f"trainer must be one of {TRAINERS}, got {trainer!r}")
        native = [n for n, t in matrix.schedules.items() if t.strip().startswith("keras-native:")]
        if native and trainer != "keras" and matrix.framework == "keras":
            from .crossframework import torch_counterpart  # the PyTorch half of a cross-framework check
            matrix, native = torch_counterpart(matrix), []
        if native and trainer != "keras":
            raise RunError(f"matrix {matrix.name}: schedules {native} are real Keras objects (keras-native:); "
                           f"train them with the Keras trainer, not {trainer!r}")
        device = "cpu" if trainer == "keras" else resolve_device(device)
        i, n = shard
        if not (1 <= i <= n):
            raise RunError(f"--shard must be i/n with 1 <= i <= n, got {i}/{n}")
        size = chunk_size or (ONE_AT_A_TIME_CHUNK if trainer != "batched" else
                              matrix.n_configs if device.startswith("cuda") else CPU_CHUNK)
        if size < 1:
            raise RunError(f"--chunk-size must be >= 1, got {size}")
        chunks = plan_chunks(matrix.n_configs, size)
        peaks = dict(matrix.peak_lr)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        suffix = f"-{trainer}" if trainer != "batched" else ""
        run_id = run_id or f"{stamp}-{matrix.name}{suffix}" + (f"-shard{i}of{n}" if n > 1 else "")
        if "/" in run_id or run_id.startswith(".") or not run_id.strip():
            raise RunError(f"--run-id must be a plain folder name, got {run_id!r}")
        run_dir = results_dir / "runs" / run_id
        if run_dir.exists():
            raise RunError(f"run folder {run_dir} exists: pick another --run-id or --resume {run_id}")
        meta = None

    if data is None:
        data = load_fashion_mnist("cpu" if trainer == "keras" else device, data_dir)
    if matrix.needs_find() and any(v == "find" for v in peaks.values()):
        from rich.console import Console

        from .find_lr import SWEEP_STEPS, find_peaks
        todo = matrix.needs_find()
        say = console or Console(stderr=True)
        status = say.status(f"LR range test for the peaks of {', '.join(todo)} ({SWEEP_STEPS} steps, batched)")
        with status if progress else contextlib.nullcontext():
            found = find_peaks(todo, data, widths=matrix.widths, activation=matrix.activation,
                               dropout=matrix.dropout, batch_size=matrix.batch_size, device=device, seed=0,
                               out_dir=run_dir / "find_lr")
        peaks.update({k: float(v) for k, v in found.items()})
        if progress:
            say.print("peaks from the range test: " + ", ".join(f"{k} {v:.3g}" for k, v in found.items()) +
                      f" (curves and plot in {run_dir / 'find_lr'})")
    configs = matrix.configs(peaks)
    if trainer == "keras":  # the framework that trains measures its own matmul
        from .keras_trainer import matmul_flop_rate_tf
        matmul = matmul_flop_rate_tf()
    else:
        from .batched import matmul_flop_rate
        matmul = matmul_flop_rate(torch.device(device))

    if meta is None:
        run_dir.mkdir(parents=True, exist_ok=True)  # may hold find_lr/ already
        meta = {"run_id": run_id, "status": "running", "command": command or " ".join(sys.argv),
                "matrix": matrix.to_dict(), "framework": matrix.framework, "trainer": trainer,
                **environment(device), "started_utc": _utc(), "finished_utc": None, "epochs": matrix.epochs,
                "seeds": list(matrix.seeds), "shard": f"{shard[0]}/{shard[1]}", "n_configs": len(configs),
                "chunk_size": len(chunks[0]), "chunks": chunks, "peak_lr": peaks, "optim_impl": optim_impl,
                "data": {"dir": str(data.source), "sha256_verified": True, "n_train": len(data.x_train),
                         "n_val": len(data.x_val), "n_test": len(data.x_test), "split_seed": data.split_seed,
                         "normalisation": {"mean": data.mean, "std": data.std}}}
    meta["status"] = "running"
    meta.setdefault("resumed_utc", [])
    if resume is not None:
        meta["resumed_utc"].append(_utc())
    write_json(run_dir / "meta.json", meta)

    mine = [k for k in range(len(chunks)) if k % shard[1] == shard[0] - 1]
    todo = [k for k in mine if not _chunk_done(run_dir, k)]
    bar = RunProgress(meta["run_id"], sum(len(chunks[k]) for k in todo) * matrix.epochs, len(todo),
                      enabled=progress, console=console)
    try:
        with bar, _terminate_as_interrupt():
            for j, k in enumerate(todo):
                idx = chunks[k]
                bar.start_chunk(j, k, len(idx), matrix.epochs)
                result = _train(trainer, [configs[i] for i in idx], data, matrix, device, bar.epoch_done, optim_impl)
                _save_chunk(run_dir, k, idx, result, trainer, matmul)
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        write_json(run_dir / "meta.json", meta)
        if any(_chunk_done(run_dir, k) for k in mine):
            _assemble(run_dir, len(chunks))
        raise
    _, _, tp = _assemble(run_dir, len(chunks))
    meta["status"] = "complete"
    meta["finished_utc"] = _utc()
    meta["throughput"] = _aggregate(tp)
    write_json(run_dir / "meta.json", meta)
    if report and shard[1] == 1:
        write_report_if_available(run_dir, results_dir, console)
    return run_dir


def write_report_if_available(run_dir: Path, results_dir: Path, console=None):
    """report.html / report.md via bench.report (issue 6) when it is installed in this tree."""
    try:
        from .report import write_report
    except ImportError:
        return None
    return write_report(run_dir, results_dir)


# ---------------------------------------------------------------------------------------------- merge

def merge_runs(runs: list[str | Path], *, results_dir: Path = RESULTS, run_id: str | None = None,
               report: bool = True) -> Path:
    """Join the folders of a sharded run (``--shard 1/n`` ... ``n/n``) into one complete run."""
    dirs = [resolve_run(r, results_dir) for r in runs]
    metas = [json.loads((d / "meta.json").read_text()) for d in dirs]
    first = metas[0]
    for d, m in zip(dirs, metas):
        if m.get("status") != "complete":
            raise RunError(f"run {m['run_id']} is {m.get('status')!r}, not complete: finish it with "
                           f"lrbench run --resume {m['run_id']}")
        for key in ("matrix", "trainer", "device", "chunks", "peak_lr"):
            a = {k: v for k, v in m[key].items() if k != "source"} if key == "matrix" else m[key]
            b = {k: v for k, v in first[key].items() if k != "source"} if key == "matrix" else first[key]
            if a != b:
                raise RunError(f"runs {first['run_id']} and {m['run_id']} differ in {key}: not shards of one run")
    n_chunks = len(first["chunks"])
    owner: dict[int, Path] = {}
    for d in dirs:
        for k in range(n_chunks):
            if _chunk_done(d, k):
                if k in owner:
                    raise RunError(f"chunk {k} is in both {owner[k].name} and {d.name}")
                owner[k] = d
    missing = [k for k in range(n_chunks) if k not in owner]
    if missing:
        raise RunError(f"chunks {missing} are in none of the runs given: give every shard")
    run_id = run_id or first["run_id"].rsplit("-shard", 1)[0] + "-merged"
    out = Path(results_dir) / "runs" / run_id
    if out.exists():
        raise RunError(f"run folder {out} exists: pick another --run-id")
    (out / "parts").mkdir(parents=True)
    for k, d in owner.items():
        for p in _chunk_paths(d, k).values():
            shutil.copy2(p, out / "parts" / p.name)
    _, _, tp = _assemble(out, n_chunks)
    meta = dict(first)
    meta.update(run_id=run_id, status="complete", shard="1/1", merged_from=[m["run_id"] for m in metas],
                started_utc=min(m["started_utc"] for m in metas),
                finished_utc=max(m["finished_utc"] for m in metas), throughput=_aggregate(tp))
    write_json(out / "meta.json", meta)
    if report:
        write_report_if_available(out, results_dir)
    return out
