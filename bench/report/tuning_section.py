"""A tuned run's "Learning-rate tuning" section in words and tables: how the learning rates were chosen, the
range test against them, the selection checked again, the robustness band, the expected best, the cost, the grid.

The numbers come from :mod:`bench.report.tuning`; the page writers from :mod:`bench.report.page`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import stats as RS
from . import tuning as RT
from .page import Table, num, pct

__all__ = ["tuning_intro", "tuning_section"]


def _lr(v) -> str:
    return num(v, ".3g")


def tuning_intro(run: RS.Run) -> str:
    """One sentence: how the tuned learning rates were chosen, and on which seeds the verdicts are judged."""
    spec, a = run.tuning_spec, RT.audit(run)
    factors = ", ".join(f"{f:g}" for f in spec.get("lr_factors") or [])
    return (f"Every configuration runs at its own tuned peak learning rate: the optimizer's peak_lr x [{factors}]"
            + (f" (and up to {spec['extend']} factor(s) further out where the best sat on the grid's edge)"
               if spec.get("extend") else "")
            + (f" screened on tuning seed(s) {a['tuning_seeds'][:int(spec['screen_seeds'])]}, the leading factor"
               + (" and its neighbours" if spec.get("confirm_neighbours", True) else "")
               + f" trained on tuning seeds {a['tuning_seeds'][int(spec['screen_seeds']):]} too"
               if spec.get("screen_seeds") and int(spec["screen_seeds"]) < len(a["tuning_seeds"])
               else f" on tuning seeds {a['tuning_seeds']}")
            + f"; selected: the highest mean {a['metric']} (validation only)"
            + (" among factors trained on every tuning seed with no collapse" if len(a["tuning_seeds"]) >= 3 else "")
            + f"; every verdict below is judged on the evaluation seeds {a['eval_seeds']}.")


def _range_test_lines(run: RS.Run) -> list[str]:
    """Per optimizer: the LR range test's suggestion against the tuned peaks, as ratios tuned / suggested."""
    lines = []
    for r in RT.range_test(run):
        where = ("inside the range of the tuned peaks" if r["inside"] else
                 "the suggestion is below every tuned peak" if r["suggested"] < min(r["lrs"]) else
                 "the suggestion is above every tuned peak")
        n = len(r["ratios"])
        near = sum(abs(math.log10(x)) <= 0.5 for x in r["ratios"])
        if math.isclose(min(r["lrs"]), max(r["lrs"]), rel_tol=1e-9):
            peaks = (f"the tuned peak of {'its schedule' if n == 1 else f'all {n} schedules'} is "
                     f"{_lr(r['lrs'][0])}, {r['low']:.2g}x the suggestion")
        else:
            peaks = (f"the tuned peaks of its {n} schedules are {_lr(min(r['lrs']))} to {_lr(max(r['lrs']))}, "
                     f"{r['low']:.2g}x to {r['high']:.2g}x the suggestion (geometric mean {r['typical']:.2g}x)")
        text = (f"{r['optimizer']}: the LR range test suggests {_lr(r['suggested'])}; {peaks}, {where}; within a "
                f"factor of 3.16 of it: {near} of {n}")
        if r["edge"]:
            text += f"; untuned (selected on the grid's edge): {', '.join(r['edge'])}"
        lines.append(text + ".")
    return lines


def _audit_lines(run: RS.Run) -> list[str]:
    """The selection checked again from the tuning models, the seeds, the untuned and the diverged points."""
    a = RT.audit(run)
    n_cfg = len(a["recomputed"])
    lines = []
    if a["mismatches"]:
        lines.append(f"Selection check FAILED: recomputed from the {a['models']} tuning models' {a['metric']}, "
                     + "; ".join(f"{o} + {n}: tuning.csv {f1}, recomputed {f2}" for (o, n), f1, f2 in a["mismatches"])
                     + ".")
    else:
        lines.append(f"Selection check: recomputed from the {a['models']} tuning models' {a['metric']} alone "
                     f"(summary.csv), the selected factor agrees with tuning.csv for all {n_cfg} configurations.")
    if a["eval_mismatches"]:
        lines.append("Evaluation models NOT at their selected factor: "
                     + ", ".join(f"{o} + {n}" for o, n in a["eval_mismatches"]) + ".")
    lines.append(f"Tuning seeds {a['tuning_seeds']} and evaluation seeds {a['eval_seeds']} "
                 + ("are disjoint." if not a["shared_seeds"] else f"SHARE {a['shared_seeds']}: the verdicts are "
                                                                  "judged on seeds the learning rate was chosen on."))
    if a["on_edge"]:
        lines.append(f"Untuned: {len(a['on_edge'])} configuration(s) selected on the edge of every factor they tried "
                     f"(extensions spent), so their best learning rate may lie beyond it: "
                     + ", ".join(f"{o} + {n}" for o, n in a["on_edge"]) + " (starred in the heatmap, red squares "
                     "in the sensitivity figure).")
    else:
        lines.append("No configuration's selected learning rate sits on the edge of the factors it tried.")
    if a["unselected"]:
        lines.append("No factor selected (every tuning model diverged): "
                     + ", ".join(f"{o} + {n}" for o, n in a["unselected"]) + ".")
    if a["diverged_points"]:
        lines.append(f"{a['diverged_points']} grid point(s) collapsed in tuning (a non-finite loss, or a final "
                     "validation accuracy below twice chance, on some tuning seed; crosses in the sensitivity "
                     "figure); a collapsed point is never selected.")
    if a["coin_flips"]:
        lines.append(f"Within seed noise: {len(a['coin_flips'])} of {n_cfg} selections are within one standard "
                     "deviation (over the tuning seeds) of a neighbouring learning rate trained on as many seeds: "
                     "there the pick between the two is within seed noise.")
    if len(a["tuning_seeds"]) < 3:
        lines.append(f"Selected on {len(a['tuning_seeds'])} tuning seed(s) only: a learning rate next to a collapse "
                     "can survive one seed (runs since the collapse veto select on 3 or more).")
    return lines


def _cost_line(cost: pd.DataFrame) -> str:
    """Tuning vs evaluation in models, model-epochs and wall time."""
    if cost.empty:
        return "Cost: meta.json lists no stages."
    tune, ev = cost[cost["tuning"]], cost[~cost["tuning"]]
    tm, em = int(tune["model_epochs"].sum()), int(ev["model_epochs"].sum())
    text = (f"Cost: tuning trained {int(tune['models'].sum())} models ({tm:,} model-epochs, {len(tune)} stage(s)), "
            f"evaluation {int(ev['models'].sum())} models ({em:,} model-epochs): tuning is "
            f"{tm / max(1, tm + em):.0%} of the run's model-epochs")
    if np.isfinite(cost["wall_s"]).all():
        tw, ew = float(tune["wall_s"].sum()), float(ev["wall_s"].sum())
        text += f"; wall time {tw / 3600:.2f} h tuning, {ew / 3600:.2f} h evaluation (throughput.csv)"
    return text + "."


def _band_table(band: pd.DataFrame) -> Table:
    rows = [[r.optimizer, r.schedule, pct(r.best), _lr(r.best_lr),
             ("<= " if r.open_low else "") + _lr(r.low), (">= " if r.open_high else "") + _lr(r.high),
             num(r.decades, ".2f"), f"{r.points}/{r.tried}", "untuned (edge)" if r.untuned else ""]
            for r in band.itertuples()]
    return Table("tuning-band", f"Learning-rate band within {100 * RT.BAND:g} pp of the best (robustness)",
                 ["optimizer", "schedule", "best (tuning) %", "selected lr", "band low", "band high", "decades",
                  "points in band", "note"], rows,
                 f"The learning rates tried whose mean tuning metric is within {100 * RT.BAND:g} percentage points of "
                 "the configuration's best (diverged points excluded); decades = log10(high / low): wider is more "
                 "robust to a mis-set learning rate. <= / >=: the band reaches the smallest / largest lr tried and "
                 "may go on beyond it. With one tuning seed a 0.5 pp band is close to seed noise.")


def _expected_max_table(em: pd.DataFrame, metric: str) -> Table:
    ks = [c for c in em.columns if c.startswith("E")]
    rows = [[r["optimizer"], r["schedule"], int(r["N"])] + [pct(r[k]) if k in r and pd.notna(r[k]) else ""
                                                             for k in ks] for _, r in em.iterrows()]
    return Table("expected-max", f"Expected best {metric} after k random grid picks (%)",
                 ["optimizer", "schedule", "N"] + [f"k={k[1:]}" for k in ks], rows,
                 "E[max of k picks with replacement] from the N base-grid values sorted v(1) <= ... <= v(N): "
                 "E = sum_i v(i) [(i/N)^k - ((i-1)/N)^k] (Dodge et al. 2019, \"Show Your Work\"). Base grid only "
                 "(the matrix's lr_factors): every configuration has the same N; edge extensions are left out. A "
                 "diverged point counts with its recorded metric (frozen weights), a missing one as 0. k=1 is the "
                 "grid's mean; k=N is close to, but below, the best point.")


def _cost_table(cost: pd.DataFrame) -> Table:
    rows = [[r.stage, r.configurations, r.seeds, r.models, f"{r.model_epochs:,}",
             num(r.wall_s, ".4g") if np.isfinite(r.wall_s) else "n/a"] for r in cost.itertuples()]
    return Table("tuning-cost", "Cost per stage", ["stage", "configurations", "seeds", "models", "model-epochs",
                                                   "wall time (s)"], rows,
                 "From meta.json's stages, summary.csv's rows per stage and throughput.csv's chunk wall times. "
                 "Model-epochs count a diverged (frozen) model's epochs too: the batched stack computes them.")


def _grid_table(grid: pd.DataFrame) -> Table:
    rows = [[r.optimizer, r.schedule, num(r.factor, "g"), _lr(r.lr), pct(r.mean), pct(r.sd) if pd.notna(r.sd)
             else "n/a", int(r.n_seeds) if "n_seeds" in grid else "", int(r.diverged), str(r.stage),
             ("yes" if r.selected else "") + (" (edge)" if r.selected and r.on_edge else ""),
             "" if r.base else "extension"] for r in grid.itertuples()]
    return Table("tuning-grid", "Tuning grid (tuning.csv)",
                 ["optimizer", "schedule", "factor", "lr", "mean %", "sd %", "tuning seeds", "collapsed", "stage",
                  "selected", "grid"], rows,
                 "Every (optimizer, schedule, factor) trained on the tuning seeds: mean and sd of the tuning metric "
                 "over them. Selected: the highest mean among factors trained on every tuning seed with no "
                 "collapsed model (ties: the smaller factor); edge: the smallest or largest factor that "
                 "configuration tried.")


def tuning_section(run: RS.Run) -> list:
    """A tuned run's learning rates in words (range test vs tuned peaks, the selection check, the untuned, the cost),
    then its tables collapsed: the robustness band, the expected best after k picks, the cost, the grid."""
    grid = RT.grid(run)
    if grid is None:
        return ["This tuned run has no tuning.csv: its selection cannot be shown (the runner writes it when the "
                "tuning stages end)."]
    items: list = []
    lines = _range_test_lines(run)
    if lines:
        ratios = [x for r in RT.range_test(run) for x in r["ratios"]]
        near = sum(abs(math.log10(x)) <= 0.5 for x in ratios)
        items.append(f"Does the LR range test (find_lr/find_lr.csv, 'suggested') find the tuned learning rate? In "
                     f"{near} of {len(ratios)} configurations the tuned peak is within a factor of 3.16 (half a "
                     "decade, one grid step) of its optimizer's suggestion:")
        items.append(("list", "range-test", lines))
    else:
        items.append("No LR range test in this run (find_lr/find_lr.csv): the sensitivity figure has no suggestion.")
    items += _audit_lines(run)
    cost = RT.cost(run)
    items.append(_cost_line(cost))
    metric = str(run.tuning_spec.get("metric") or "final_val_acc")
    band, em = RT.band(run), RT.expected_max_table(run)
    items.append(("details", "Tuning tables: the learning-rate band within 0.5 pp of each best, the expected best "
                             "after k random grid picks, the cost per stage, the whole grid",
                  [_band_table(band), _expected_max_table(em, metric), _cost_table(cost), _grid_table(grid)]))
    return items
