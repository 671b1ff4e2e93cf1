"""The stages of a run: lists of configurations, each planned from the results of the stages before it.

An untuned matrix has one stage, ``main``: its configurations at the hand-set peaks. A tuned matrix
(``[tuning]``, :class:`bench.matrix.spec.Tuning`) has ``tune`` (every (optimizer, schedule) at
``peak_lr * f`` for each grid factor ``f``, on the tuning seeds), then ``tune+1`` ... ``tune+extend`` (the next
factor outward for each configuration whose best factor is still on the edge of what it tried), then
``eval`` (each configuration at its selected factor, on the evaluation seeds). Selection reads validation
metrics of the tuning models only (:func:`select`). The runner trains the stages :func:`next_stage` gives
it and writes what a stage carries (``tuning.csv``, a ``meta.json`` entry); it knows nothing of tuning.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..train.config import TrainConfig
    from .spec import Matrix

__all__ = ["Stage", "next_stage", "select", "outward", "TUNING_COLUMNS"]

#: tuning.csv: one row per (optimizer, schedule, factor) trained on the tuning seeds.
TUNING_COLUMNS = ["optimizer", "schedule", "factor", "lr", "metric", "mean", "sd", "n_seeds", "diverged",
                  "stage", "selected", "on_edge"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """``points`` ((optimizer, schedule name, lr factor), in order) x ``seeds``; ``files`` (name -> DataFrame)
    and ``meta`` (key -> JSON value) are what the runner writes into the run folder before training it."""
    name: str
    points: tuple[tuple[str, str, float], ...]
    seeds: tuple[int, ...]
    files: dict = dataclasses.field(default_factory=dict, compare=False)
    meta: dict = dataclasses.field(default_factory=dict, compare=False)

    def configs(self, matrix: "Matrix", peaks: dict) -> list["TrainConfig"]:
        return matrix.point_configs(self.points, self.seeds, peaks, stage=self.name)

    def to_dict(self) -> dict:
        return {"name": self.name, "points": [list(p) for p in self.points], "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, d: dict) -> "Stage":
        return cls(d["name"], tuple((str(o), str(s), float(f)) for o, s, f in d["points"]), tuple(d["seeds"]))


def outward(factors: list[float], up: bool) -> float:
    """The next factor beyond the grid's edge, at the ratio of the two outermost factors on that side
    (half-decades stay half-decades), to 3 significant digits."""
    f = sorted(factors)
    a, b = (f[-1], f[-2]) if up else (f[0], f[1])
    return float(f"{a * a / b:.3g}")


def select(summary: "pd.DataFrame", matrix: "Matrix") -> "pd.DataFrame":
    """tuning.csv from the tuning models of ``summary`` (stage "tune..."): per (optimizer, schedule,
    factor) the mean and sd over tuning seeds of the metric; the selected factor has the highest mean among
    factors with no diverged tuning model (ties: the smaller factor); ``on_edge`` when it is the smallest or
    largest factor tried for its configuration. Reads validation metrics only."""
    import pandas as pd
    t = matrix.tuning
    s = summary[summary["stage"].astype(str).str.startswith("tune")]
    rows = []
    for (opt, name, f), g in s.groupby(["optimizer", "name", "lr_factor"], sort=False):
        vals = g[t.metric].astype(float)
        div = g["diverged"].map(lambda v: str(v).strip().lower() in ("true", "1")).astype(bool)
        rows.append(dict(optimizer=opt, schedule=name, factor=float(f), lr=float(g["peak_lr"].iloc[0]), metric=t.metric,
                         mean=float(vals.mean()), sd=float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                         n_seeds=len(g), diverged=int(div.sum()), stage=str(g["stage"].iloc[0]),
                         selected=False, on_edge=False))
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS)
    if table.empty:
        return table
    order = {p: i for i, p in enumerate(matrix.points)}
    table["_o"] = [order.get((o, n), len(order)) for o, n in zip(table["optimizer"], table["schedule"])]
    table = table.sort_values(["_o", "factor"], kind="stable").drop(columns="_o").reset_index(drop=True)
    for _, g in table.groupby(["optimizer", "schedule"], sort=False):
        ok = g[(g["diverged"] == 0) & np.isfinite(g["mean"])]
        if ok.empty:
            continue
        best = ok["mean"].max()
        i = ok[ok["mean"] == best]["factor"].idxmin()
        table.loc[i, "selected"] = True
        table.loc[i, "on_edge"] = bool(table.loc[i, "factor"] in (g["factor"].min(), g["factor"].max()))
    return table


def _extensions(table: "pd.DataFrame", matrix: "Matrix") -> list[tuple[str, str, float]]:
    """The next factor outward for each configuration selected on its edge with extensions left."""
    t = matrix.tuning
    grid = set(t.lr_factors)
    out = []
    for (opt, name), g in table.groupby(["optimizer", "schedule"], sort=False):
        sel = g[g["selected"]]
        if sel.empty or not bool(sel["on_edge"].iloc[0]):
            continue
        tried = sorted(g["factor"])
        if sum(f not in grid for f in tried) >= t.extend:
            continue
        f = float(sel["factor"].iloc[0])
        up = f == tried[-1] and len(tried) > 1
        out.append((opt, name, outward(tried, up=up)))
    return out


def _selection_meta(table: "pd.DataFrame", matrix: "Matrix") -> dict:
    t = matrix.tuning
    sel = table[table["selected"]]
    chosen: dict = {}
    for r in sel.itertuples():
        chosen.setdefault(r.optimizer, {})[r.schedule] = {"factor": r.factor, "lr": r.lr, "on_edge": bool(r.on_edge),
                                                         "mean": r.mean}
    missing = [f"{o} + {s}" for o, s in matrix.points if s not in chosen.get(o, {})]
    return {**t.to_dict(), "selected": chosen, "unselected": missing,
            "models": int(table["n_seeds"].sum()), "model_epochs": int(table["n_seeds"].sum()) * matrix.epochs,
            "on_edge": [f"{r.optimizer} + {r.schedule}" for r in sel.itertuples() if r.on_edge]}


def next_stage(matrix: "Matrix", stages: list[Stage], summary: "pd.DataFrame | None") -> Stage | None:
    """The stage after ``stages`` (trained; ``summary`` holds their models), or None when the run is done."""
    t = matrix.tuning
    if t is None:
        return None if stages else Stage("main", tuple((o, s, 1.0) for o, s in matrix.points), matrix.seeds)
    if not stages:
        return Stage("tune", tuple((o, s, f) for o, s in matrix.points for f in t.lr_factors), t.seeds)
    if stages[-1].name == "eval":
        return None
    table = select(summary, matrix)
    rounds = sum(st.name.startswith("tune+") for st in stages)
    ext = _extensions(table, matrix) if rounds < t.extend else []
    if ext:
        return Stage(f"tune+{rounds + 1}", tuple(ext), t.seeds)
    chosen = table[table["selected"]]
    by_point = {(r.optimizer, r.schedule): float(r.factor) for r in chosen.itertuples()}
    points = tuple((o, s, by_point[(o, s)]) for o, s in matrix.points if (o, s) in by_point)
    return Stage("eval", points, matrix.seeds, files={"tuning.csv": table},
                 meta={"tuning": _selection_meta(table, matrix)})
