"""The measurements after a complete run, beside its training: the roofline of its first chunk's step
(``meta.json``'s ``throughput.roofline``: the step against its matmuls alone plus its optimizer's bytes at the
copy bandwidth, :mod:`bench.speed.roofline`). ``lrbench run`` calls it for a local batched run, before the
step cost (:mod:`bench.speed.step_cost`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..results import write_json

__all__ = ["roofline_of_run"]


def roofline_of_run(run_dir: Path) -> dict | None:
    """Measure the run's first chunk against its roofline and record it in meta.json (returned); None for a run
    this does not apply to (not complete, not batched, trained by Ray). A failed measurement is recorded as
    ``{"error": ...}``: it never fails a finished run."""
    from ..matrix.runner import run_configs
    from . import roofline
    path = Path(run_dir) / "meta.json"
    meta = json.loads(path.read_text())
    if meta.get("status") != "complete" or meta.get("trainer") != "batched" or meta.get("executor") != "local":
        return None
    tp = meta.get("throughput") or {}
    matrix, configs = run_configs(meta)
    chunk_row = _first_chunk_row(Path(run_dir))
    train_s, steps = chunk_row.get("train_s"), chunk_row.get("steps")
    ok = train_s is not None and steps and math.isfinite(float(train_s))
    try:
        step = roofline.make_step([configs[i] for i in meta["chunks"][0]],
                                  matrix.train_spec(optim_impl=meta.get("optim_impl") or "auto"),
                                  device=meta["device"])
        out = roofline.measure(step, step_s=float(train_s) / float(steps) if ok else None)
        out["chunk"] = int(chunk_row.get("chunk", 0))
    except (RuntimeError, ValueError, TypeError) as e:  # a measurement must not fail a finished run
        out = {"error": f"{type(e).__name__}: {e}"}
    tp["roofline"] = out
    meta["throughput"] = tp
    write_json(path, meta)
    return out


def _first_chunk_row(run_dir: Path) -> dict:
    """throughput.csv's first row (the run's first chunk), as the runner wrote it."""
    import pandas as pd
    tp = pd.read_csv(run_dir / "throughput.csv")
    return tp.iloc[0].to_dict() if len(tp) else {}
