"""The stages of a run: lists of configurations, each planned from the results of the stages before it.

Untuned: one stage, ``main``. Tuned (``[tuning]``, :class:`bench.matrix.spec.Tuning`): ``tune`` (every grid
factor on the screening seeds), ``tune+1`` ... (the next factor outward where the best sits on the edge),
``tune-confirm`` ... (the leading factors on the other tuning seeds, :func:`candidates`), then ``eval`` (each
configuration at its selected factor on the evaluation seeds). :func:`select` reads validation metrics only.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from ..results import collapsed

if TYPE_CHECKING:
    import pandas as pd

    from ..train.config import TrainConfig
    from .spec import Matrix

__all__ = ["Stage", "next_stage", "select", "candidates", "outward", "TUNING_COLUMNS", "CONFIRM_ROUNDS"]

#: tuning.csv: one row per (optimizer, schedule, factor) trained on the tuning seeds.
TUNING_COLUMNS = ["optimizer", "schedule", "factor", "lr", "metric", "mean", "sd", "n_seeds", "diverged",
                  "collapsed", "eligible", "stage", "selected", "on_edge"]
#: How many confirmation rounds at most (each trains the factors :func:`candidates` names).
CONFIRM_ROUNDS = 4


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
    """tuning.csv from the tuning models of ``summary`` (stages "tune..."), one row per (optimizer, schedule,
    factor): the mean and sd of the metric over the tuning seeds that trained it, ``diverged`` (non-finite loss)
    and ``collapsed`` (that, or a final validation accuracy below 2x chance: :func:`bench.results.collapsed`)
    model counts. ``eligible``: trained on every tuning seed (>= 3) with no collapse. ``selected``: the eligible
    factor with the highest mean (ties: the smaller factor); ``on_edge`` when it is the smallest or largest factor
    tried for its configuration. Reads validation metrics only."""
    import pandas as pd
    t = matrix.tuning
    s = summary[summary["stage"].astype(str).str.startswith("tune")]
    s = s.assign(_collapsed=collapsed(s, matrix.widths[-1]).to_numpy())
    rows = []
    for (opt, name, f), g in s.groupby(["optimizer", "name", "lr_factor"], sort=False):
        vals = g[t.metric].astype(float)
        div = g["diverged"].map(lambda v: str(v).strip().lower() in ("true", "1")).astype(bool)
        n_col = int(g["_collapsed"].sum())
        rows.append(dict(optimizer=opt, schedule=name, factor=float(f), lr=float(g["peak_lr"].iloc[0]), metric=t.metric,
                         mean=float(vals.mean()), sd=float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                         n_seeds=int(g["seed"].nunique()), diverged=int(div.sum()), collapsed=n_col,
                         eligible=bool(set(t.seeds) <= set(g["seed"].astype(int)) and n_col == 0
                                       and np.isfinite(vals).all()),
                         stage=str(g["stage"].iloc[0]), selected=False, on_edge=False))
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS)
    if table.empty:
        return table
    order = {p: i for i, p in enumerate(matrix.points)}
    table["_o"] = [order.get((o, n), len(order)) for o, n in zip(table["optimizer"], table["schedule"])]
    table = table.sort_values(["_o", "factor"], kind="stable").drop(columns="_o").reset_index(drop=True)
    for _, g in table.groupby(["optimizer", "schedule"], sort=False):
        ok = g[g["eligible"]]
        if ok.empty:
            continue
        best = ok["mean"].max()
        i = ok[ok["mean"] == best]["factor"].idxmin()
        table.loc[i, "selected"] = True
        table.loc[i, "on_edge"] = bool(table.loc[i, "factor"] in (g["factor"].min(), g["factor"].max()))
    return table


def _screen_view(table: "pd.DataFrame") -> "pd.DataFrame":
    """The screening picture for the edge rule: the best non-collapsed factor counts as selected."""
    view = table.assign(selected=False, on_edge=False)
    for _, g in view.groupby(["optimizer", "schedule"], sort=False):
        ok = g[(g["collapsed"] == 0) & np.isfinite(g["mean"])]
        if ok.empty:
            continue
        i = ok[ok["mean"] == ok["mean"].max()]["factor"].idxmin()
        view.loc[i, "selected"] = True
        view.loc[i, "on_edge"] = bool(view.loc[i, "factor"] in (g["factor"].min(), g["factor"].max()))
    return view


def candidates(table: "pd.DataFrame", matrix: "Matrix") -> list[tuple[str, str, float]]:
    """Factors to train on the remaining tuning seeds, per configuration (only factors with no collapse so far
    and not yet on every tuning seed). With no eligible factor yet: the best by mean so far and (with
    ``confirm_neighbours``) its neighbours among the factors tried. Else: the selected factor's unconfirmed
    neighbours and any unconfirmed factor whose mean so far beats the selected one's. Empty when each
    selection is a confirmed local optimum."""
    t = matrix.tuning
    out = []
    for (opt, name), g in table.groupby(["optimizer", "schedule"], sort=False):
        g = g.sort_values("factor").reset_index(drop=True)
        alive = (g["collapsed"] == 0) & np.isfinite(g["mean"])
        pending = alive & ~g["eligible"]
        sel = g.index[g["selected"]]
        if len(sel):
            i = int(sel[0])
            want = {j for j in (i - 1, i + 1) if 0 <= j < len(g)} if t.confirm_neighbours else set()
            want |= set(g.index[g["mean"] > g.loc[i, "mean"]])
        else:
            if not alive.any():
                continue
            i = int(g.index[alive & (g["mean"] == g.loc[alive, "mean"].max())][0])
            want = {i} | ({j for j in (i - 1, i + 1) if 0 <= j < len(g)} if t.confirm_neighbours else set())
        out += [(opt, name, float(g.loc[j, "factor"])) for j in sorted(want) if pending[j]]
    return out


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
    """The stage after ``stages`` (trained; ``summary`` holds their models), or None when the run is done:
    1. the grid on the screening seeds; 2. edge extensions there; 3. confirmations on the other tuning seeds;
    4. the selected factors on the evaluation seeds."""
    t = matrix.tuning
    if t is None:
        return None if stages else Stage("main", tuple((o, s, 1.0) for o, s in matrix.points), matrix.seeds)
    if not stages:
        return Stage("tune", tuple((o, s, f) for o, s in matrix.points for f in t.lr_factors), t.screen)
    if stages[-1].name == "eval":
        return None
    table = select(summary, matrix)
    rounds = sum(st.name.startswith("tune+") for st in stages)
    confirmed = sum(st.name.startswith("tune-confirm") for st in stages)
    ext = _extensions(_screen_view(table), matrix) if rounds < t.extend and not confirmed else []
    if ext:
        return Stage(f"tune+{rounds + 1}", tuple(ext), t.screen)
    todo = candidates(table, matrix) if t.confirm and confirmed < CONFIRM_ROUNDS else []
    if todo:
        return Stage("tune-confirm" + (f"-{confirmed + 1}" if confirmed else ""), tuple(todo), t.confirm)
    chosen = table[table["selected"]]
    by_point = {(r.optimizer, r.schedule): float(r.factor) for r in chosen.itertuples()}
    points = tuple((o, s, by_point[(o, s)]) for o, s in matrix.points if (o, s) in by_point)
    return Stage("eval", points, matrix.seeds, files={"tuning.csv": table},
                 meta={"tuning": _selection_meta(table, matrix)})
