"""Where results go and how they are written: the results root, run lookup, one atomic writer.

The root is ``--results``, else ``$LRBENCH_RESULTS``, else ``./results`` in the working directory (a
clone's own ``results/`` when run from its root); nothing is written inside the package. Every file is
written to a hidden temporary name in its folder and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

__all__ = ["ENV_VAR", "DEFAULT_HELP", "RunNotFound", "results_root", "run_ids", "find_run", "atomic_write",
           "write_text", "write_json", "write_csv"]

ENV_VAR = "LRBENCH_RESULTS"
#: What a command's help shows as the default of its results option.
DEFAULT_HELP = f"${ENV_VAR}, else ./results"


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
    """Call ``write(tmp)`` on a hidden temporary path beside ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
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


def _json_default(o):
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
