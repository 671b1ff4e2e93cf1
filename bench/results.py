"""Where results go and how they are written: the results root, run lookup, one atomic writer, the run lock.

The root is ``--results``, else ``$LRBENCH_RESULTS``, else ``./results`` in the working directory (a
clone's own ``results/`` when run from its root); nothing is written inside the package. Every file is
written to a hidden temporary name in its folder and renamed, so a reader never sees half a file. A
command that writes into a run folder holds its lock (:func:`run_lock`) while it does.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Callable

__all__ = ["ENV_VAR", "DEFAULT_HELP", "RunNotFound", "RunLocked", "results_root", "run_ids", "find_run",
           "run_lock", "lock_path", "atomic_write", "write_text", "write_json", "write_csv", "collapsed",
           "COLLAPSE_CHANCE_MULTIPLE"]

ENV_VAR = "LRBENCH_RESULTS"
#: What a command's help shows as the default of its results option.
DEFAULT_HELP = f"${ENV_VAR}, else ./results"


#: A model collapsed when its training loss went non-finite or its final validation accuracy stayed below this
#: multiple of chance (1 / classes): 20% on Fashion-MNIST (DESIGN.md). A collapse counts as diverged everywhere.
COLLAPSE_CHANCE_MULTIPLE = 2.0


def collapsed(rows, n_classes: int = 10):
    """Per summary row (a pandas DataFrame of summary.csv): ``diverged or not final_val_acc >= 2 / n_classes``
    (a missing or NaN accuracy is a collapse). A boolean Series."""
    div = rows["diverged"].map(lambda v: str(v).strip().lower() in ("true", "1")).astype(bool)
    acc = rows["final_val_acc"].astype(float) if "final_val_acc" in rows else div.map(lambda _: float("nan"))
    return div | ~(acc >= COLLAPSE_CHANCE_MULTIPLE / n_classes)


class RunNotFound(LookupError):
    """No run folder (or several) matches what was asked for; the message lists the runs there."""


def results_root(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit`` when given, else ``$LRBENCH_RESULTS`` when set, else ``./results`` of the working directory."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit)
    env = os.environ.get(ENV_VAR, "")
    return Path(env) if env else Path.cwd() / "results"


def run_ids(results_dir: str | os.PathLike | None = None) -> list[str]:
    """The run ids (folders with a ``meta.json``) under ``<root>/runs/``, sorted."""
    runs_dir = results_root(results_dir) / "runs"
    return sorted(q.name for q in runs_dir.glob("*") if (q / "meta.json").is_file()) if runs_dir.is_dir() else []


def find_run(run: str | os.PathLike, results_dir: str | os.PathLike | None = None, *, prefix: bool = False) -> Path:
    """A run folder path (holding a ``meta.json``) or a run id under ``<root>/runs/`` -> the run folder;
    with ``prefix``, also a unique prefix of a run id. Raises :class:`RunNotFound` otherwise."""
    p = Path(run)
    if (p / "meta.json").is_file():
        return p
    runs_dir = results_root(results_dir) / "runs"
    runs = run_ids(results_dir)
    if str(run) in runs:
        return runs_dir / str(run)
    matches = [r for r in runs if r.startswith(str(run))] if prefix else []
    if len(matches) == 1:
        return runs_dir / matches[0]
    if len(matches) > 1:
        raise RunNotFound(f"{str(run)!r} matches several runs: {', '.join(matches)}")
    raise RunNotFound(f"no run {str(run)!r}: not a folder with a meta.json, and not a run under {runs_dir} "
                      f"(runs there: {', '.join(runs) if runs else 'none'})")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary path beside ``path``, then rename it to ``path``.

    An ``OSError`` (a full disk, a file-size limit, no permission) leaves ``path`` as it was and is raised
    with ``path`` as its ``filename`` (writers such as pyarrow's and ``write()`` itself name no file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | os.PathLike, obj, **dumps) -> Path:
    """JSON with an indent of 2 and a final newline; NumPy scalars and arrays become numbers and lists."""
    return write_text(path, json.dumps(obj, **{"indent": 2, "default": _json_default, **dumps}) + "\n")


def write_csv(path: str | os.PathLike, rows, columns, **writer) -> Path:
    """Rows (dicts) as CSV with ``columns`` as the header (``csv.DictWriter`` options in ``writer``)."""
    import csv

    def write(p: Path):
        with p.open("w", newline="") as f:
            w = csv.DictWriter(f, columns, **writer)
            w.writeheader()
            w.writerows(rows)
    return atomic_write(path, write)


# ------------------------------------------------------------------------------------------- run lock

class RunLocked(RuntimeError):
    """Another process holds the run folder's lock: ``holder`` is what it wrote into the lock file (pid, host,
    command, since; empty when it could not be read)."""

    def __init__(self, run_dir: Path, lock: Path, holder: dict):
        self.run_dir, self.lock, self.holder = Path(run_dir), Path(lock), holder
        who = (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, since {holder.get('since', '?')} "
               f"({holder.get('command', '?')})" if holder else "a process that left no details")
        super().__init__(f"run {self.run_dir.name} is being written by {who}; lock {self.lock}")


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock file of a run folder: ``.<run-id>.lock`` beside it (it exists before the folder does)."""
    run_dir = Path(os.path.abspath(run_dir))
    parent = Path(os.path.realpath(run_dir.parent))
    return parent / f".{run_dir.name}.lock"


_held: set[str] = set()  # the lock files this process holds (re-entered, never self-blocked)
_held_guard = threading.Lock()


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, command: str | None = None):
    """Hold the run folder's lock: an exclusive ``flock`` on :func:`lock_path`, or :class:`RunLocked` at once.

    The kernel drops the lock when its process ends, however it ends (``kill -9`` too): nothing is left to
    clean up. The holder writes its pid, host, command and start time into the file for a second writer's
    message, and removes the file when it lets go. Re-entrant within a process. The folder above the run
    (``<root>/runs/``) is created when missing. Where the OS has no ``fcntl`` (Windows) nothing is locked."""
    import socket
    import sys
    import time
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on the platforms lrbench is tested on
        yield lock_path(run_dir)
        return

    path = lock_path(run_dir)
    key = str(path)
    with _held_guard:
        reentered = key in _held
    if reentered:  # the outermost holder lets go
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(Path(run_dir), path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        # the file may have been removed by the holder we waited behind: lock the one at the path
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with contextlib.suppress(OSError):  # a full disk: the lock holds without its note
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    with _held_guard:
        _held.add(key)
    try:
        yield path
    finally:
        with _held_guard:
            _held.discard(key)
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still locked: a waiter that opened it sees it gone and retries
        os.close(fd)


def _read_holder(fd: int) -> dict:
    """The holder's note; it writes it just after locking, so an empty file is read again a few times."""
    import time
    for _ in range(20):
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return {}


def _json_default(o):
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
