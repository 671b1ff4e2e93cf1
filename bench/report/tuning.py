"""A tuned run's learning-rate tuning, read from its files: the grid, the selection (checked again), the LR range
test against the tuned peaks, the robustness band, the expected best after k random grid picks, the cost.

Reads ``tuning.csv``, ``find_lr/find_lr.csv``, the tuning models of ``summary.csv`` and ``meta.json``'s stages
(:class:`bench.report.stats.Run`); one function per report section. Rules: docs/BENCH.md, "bench/report/tuning.py".
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .stats import Run

__all__ = ["BAND", "grid", "audit", "range_test", "band", "expected_max", "expected_max_table", "cost"]

#: The robustness band: learning rates whose tuning metric is within this of the configuration's best (0.5 pp).
BAND = 0.005


def _bool(v) -> bool:
    return str(v).strip().lower() in ("true", "1")


def grid(run: Run) -> pd.DataFrame | None:
    """tuning.csv with ``selected`` / ``on_edge`` as booleans and ``base`` (the factor is one of the matrix's
    ``lr_factors``, not an edge extension); None for a run without it."""
    t = run.tuning
    if t is None or t.empty or not {"optimizer", "schedule", "factor", "lr", "mean", "selected"} <= set(t.columns):
        return None
    t = t.copy()
    t["optimizer"], t["schedule"] = t["optimizer"].astype(str), t["schedule"].astype(str)
    for c in ("selected", "on_edge"):
        t[c] = t[c].map(_bool) if c in t else False
    t["diverged"] = t["diverged"].astype(int) if "diverged" in t else 0
    if "collapsed" in t:  # a collapse counts as diverged everywhere (runs since the collapse veto)
        t["diverged"] = t["collapsed"].astype(int)
    base = [float(f) for f in run.tuning_spec.get("lr_factors") or []]
    t["base"] = [any(math.isclose(float(f), b, rel_tol=1e-9) for b in base) for f in t["factor"]] if base else True
    return t


def audit(run: Run) -> dict:
    """The selection checked from the run's rows, without the runner's code.

    ``recomputed``: per (optimizer, schedule) the factor whose tuning models (summary.csv rows of stage
    "tune...") have the highest mean of the tuning metric among factors trained on every tuning seed with no
    collapsed model (ties: the smaller factor); ``mismatches``: configurations where tuning.csv selected another factor; ``eval_mismatches``:
    evaluation models not at their configuration's selected factor; ``shared_seeds``: seeds that are both tuning
    and evaluation seeds (must be none); ``on_edge`` / ``unselected``: configurations selected on the edge of what
    they tried (untuned) / with no factor left (every factor diverged); ``diverged_points``: grid points with a
    diverged tuning model."""
    t = grid(run)
    ts = run.tuning_summary
    metric = str(run.tuning_spec.get("metric") or "final_val_acc")
    out = dict(metric=metric, models=len(ts), recomputed={}, mismatches=[], eval_mismatches=[], shared_seeds=[],
               tuning_seeds=sorted({int(x) for x in ts["seed"]}) if len(ts) else [],
               eval_seeds=sorted({int(x) for x in run.summary["seed"]}), on_edge=[], unselected=[],
               diverged_points=0, coin_flips=[])
    out["shared_seeds"] = sorted(set(out["tuning_seeds"]) & set(out["eval_seeds"]))
    if t is None or ts.empty or metric not in ts or "lr_factor" not in ts:
        return out
    div = ts["diverged"].map(_bool)  # load_run's collapse rule
    seeds = run.tuning_spec.get("tuning_seeds") or out["tuning_seeds"]
    for (opt, name), g in ts.assign(_div=div).groupby(["optimizer", "name"], sort=False):
        per = g.groupby("lr_factor").agg(mean=(metric, "mean"), div=("_div", "sum"), n=("seed", "nunique"))
        ok = per[(per["div"] == 0) & np.isfinite(per["mean"]) & (per["n"] >= len(seeds))]
        out["recomputed"][(opt, name)] = float(ok.index[ok["mean"] == ok["mean"].max()].min()) if len(ok) else None
    chosen = {(r.optimizer, r.schedule): float(r.factor) for r in t[t["selected"]].itertuples()}
    for key, f in out["recomputed"].items():
        if f is None and key not in chosen:
            out["unselected"].append(key)
        elif f is None or key not in chosen or not math.isclose(f, chosen[key], rel_tol=1e-9):
            out["mismatches"].append((key, chosen.get(key), f))
    if "lr_factor" in run.summary:
        for (opt, name), g in run.summary.groupby(["optimizer", "name"], sort=False):
            f = chosen.get((opt, name))
            if f is not None and not np.allclose(g["lr_factor"].astype(float), f, rtol=1e-9):
                out["eval_mismatches"].append((opt, name))
    out["on_edge"] = [(r.optimizer, r.schedule) for r in t[t["selected"] & t["on_edge"]].itertuples()]
    out["coin_flips"] = _coin_flips(t, len(seeds))
    out["diverged_points"] = int((t["diverged"] > 0).sum())
    return out


def _coin_flips(t: pd.DataFrame, n_seeds: int) -> list[tuple[str, str]]:
    """Configurations whose selected factor's mean is within one standard deviation (over the tuning seeds) of a
    neighbouring factor's trained on as many seeds with no collapse: there the pick is within seed noise."""
    out = []
    for (opt, name), g in t.groupby(["optimizer", "schedule"], sort=False):
        g = g.sort_values("factor").reset_index(drop=True)
        sel = g.index[g["selected"]]
        if not len(sel) or not np.isfinite(g.loc[sel[0], "sd"]):
            continue
        i = int(sel[0])
        for j in (i - 1, i + 1):
            if 0 <= j < len(g) and g.loc[j, "diverged"] == 0 and g.loc[j, "n_seeds"] >= n_seeds and \
                    abs(g.loc[i, "mean"] - g.loc[j, "mean"]) <= g.loc[i, "sd"]:
                out.append((opt, name))
                break
    return out


def range_test(run: Run) -> list[dict]:
    """Per optimizer with a find_lr suggestion and selected learning rates: ``suggested`` (find_lr.csv),
    ``ratios`` (selected lr / suggested, one per schedule), their geometric mean ``typical`` and range
    (``low``, ``high``), ``inside`` (the suggestion lies between the smallest and the largest selected lr) and
    ``edge`` (the schedules selected on their grid's edge)."""
    t, f = grid(run), run.find_lr
    if t is None or f is None or not {"optimizer", "suggested"} <= set(f.columns):
        return []
    sugg = {str(o): float(v) for o, v in zip(f["optimizer"], f["suggested"])}
    out = []
    for opt, g in t[t["selected"]].groupby("optimizer", sort=False):
        s = sugg.get(opt)
        if s is None or not (np.isfinite(s) and s > 0):
            continue
        lrs = g["lr"].astype(float).to_numpy()
        r = lrs / s
        out.append(dict(optimizer=opt, suggested=s, schedules=list(g["schedule"]), lrs=list(lrs), ratios=list(r),
                        typical=float(np.exp(np.log(r).mean())), low=float(r.min()), high=float(r.max()),
                        inside=bool(lrs.min() <= s <= lrs.max()), edge=list(g[g["on_edge"]]["schedule"])))
    return out


def band(run: Run, width: float = BAND) -> pd.DataFrame:
    """Per (optimizer, schedule): the learning rates tried whose mean tuning metric is within ``width`` of the
    configuration's best (diverged points never count): ``low`` .. ``high``, ``decades = log10(high / low)``,
    ``points`` in the band of ``tried``; ``open_low`` / ``open_high`` when the band reaches the smallest /
    largest lr tried (the band may go on beyond the grid); ``untuned`` when the selection is on the edge."""
    t = grid(run)
    cols = ["optimizer", "schedule", "best", "best_lr", "low", "high", "decades", "points", "tried", "open_low",
            "open_high", "untuned"]
    if t is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for (opt, name), g in t.groupby(["optimizer", "schedule"], sort=False):
        g = g.sort_values("lr")
        ok = g[(g["diverged"] == 0) & np.isfinite(g["mean"].astype(float))]
        if ok.empty:
            continue
        best = float(ok["mean"].max())
        inb = ok[ok["mean"] >= best - width - 1e-12]
        lo, hi = float(inb["lr"].min()), float(inb["lr"].max())
        sel = g[g["selected"]]
        rows.append(dict(optimizer=opt, schedule=name, best=best,
                         best_lr=float(sel["lr"].iloc[0]) if len(sel) else math.nan, low=lo, high=hi,
                         decades=math.log10(hi / lo), points=len(inb), tried=len(g),
                         open_low=lo <= float(g["lr"].min()), open_high=hi >= float(g["lr"].max()),
                         untuned=bool(sel["on_edge"].any()) if len(sel) else True))
    return pd.DataFrame(rows, columns=cols)


def expected_max(values, k: int) -> float:
    """Expected maximum of ``k`` picks with replacement from ``values`` (Dodge et al. 2019, "Show Your Work"):
    with ``v(1) <= ... <= v(N)`` sorted, ``E = sum_i v(i) [(i/N)^k - ((i-1)/N)^k]``."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    if n == 0 or k < 1:
        return math.nan
    i = np.arange(1, n + 1)
    return float(np.sum(v * ((i / n) ** k - ((i - 1) / n) ** k)))


def expected_max_table(run: Run) -> pd.DataFrame:
    """Per (optimizer, schedule): ``N`` base-grid points and ``E1`` .. ``EN``, the expected best tuning metric after
    k random picks from the base grid (``lr_factors`` only: every configuration gets the same N; the edge
    extensions were tried only where the optimum sat on the edge and would give those configurations more
    draws). A diverged point counts with its recorded metric (the frozen weights' accuracy: a real outcome of
    that pick); a non-finite one counts as 0."""
    t = grid(run)
    if t is None:
        return pd.DataFrame()
    rows = []
    for (opt, name), g in t[t["base"]].groupby(["optimizer", "schedule"], sort=False):
        v = np.array(g["mean"], dtype=np.float64)
        v[~np.isfinite(v)] = 0.0
        rows.append({"optimizer": opt, "schedule": name, "N": len(v),
                     **{f"E{k}": expected_max(v, k) for k in range(1, len(v) + 1)}})
    return pd.DataFrame(rows)


def cost(run: Run) -> pd.DataFrame:
    """Per stage (meta.json's ``stages``, in order): ``configurations`` (grid points), ``seeds``, ``models`` and
    ``model_epochs`` (summary.csv rows of that stage, times the run's epochs: a batched stack computes a frozen
    model's epochs anyway), ``wall_s`` (throughput.csv, the
    stage's chunks; NaN without it) and ``tuning`` (a tuning stage)."""
    stages = run.meta.get("stages") or []
    rows_all = pd.concat([run.tuning_summary, run.summary], ignore_index=True)
    tp = run.throughput
    out = []
    for st in stages:
        name = str(st.get("name"))
        rows = rows_all[rows_all["stage"].astype(str) == name] if "stage" in rows_all else rows_all.iloc[:0]
        chunks = st.get("chunks") or []
        wall = math.nan
        if tp is not None and {"chunk", "wall_s"} <= set(tp.columns) and chunks:
            w = tp[tp["chunk"].isin(chunks)]["wall_s"].astype(float)
            wall = float(w.sum()) if len(w) == len(chunks) else math.nan
        out.append(dict(stage=name, configurations=len(st.get("points") or []), seeds=len(st.get("seeds") or []),
                        models=len(rows), model_epochs=len(rows) * run.epochs,
                        wall_s=wall, tuning=name.startswith("tune")))
    return pd.DataFrame(out, columns=["stage", "configurations", "seeds", "models", "model_epochs", "wall_s", "tuning"])
