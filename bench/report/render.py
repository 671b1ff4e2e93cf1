"""The comparison report of a run: ``report.html`` (self-contained, opens offline) and ``report.md``.

``write_report(run_dir, results_dir=None) -> (html_path, md_path)``; ``build_report`` gives the page,
the Markdown and the figures without writing. Sections, table ids and the page's safety rules:
docs/BENCH.md, "bench/report/render.py".
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import atomic_write, run_lock
from . import answer as RA
from . import families as F
from . import plots as RP
from . import stats as RS
from . import tuning as RT
from . import verdicts as RV
from .page import Table, frame_table, num, pct, read_csv, to_html, to_markdown
from .stats import ReportError
from .tuning_section import tuning_intro, tuning_section

__all__ = ["write_report", "write_verdicts", "answer_line", "build_report", "ReportError"]

#: Shown under a trainer speed table with CUDA rows (the same caveat ``lrbench train-speed`` prints).
CUDA_SEQUENTIAL_NOTE = ("On CUDA the sequential baseline calls loss.item() every step (a host sync per step, as a "
                        "plain training loop logs its loss), while the batched trainer syncs once per epoch: part "
                        "of the 'x sequential' ratio there is that sync, not batching.")


# ------------------------------------------------------------------------------------------------ tables

def _config_table(table: pd.DataFrame, single_seed: bool, target: float, run: RS.Run) -> Table:
    timed = bool(RS.step_costs(run))
    rows = []
    for r in table.itertuples():
        ci = "n/a (1 seed)" if r.seeds < 2 else f"[{pct(r.ci_low)}, {pct(r.ci_high)}]"
        ett = "never" if not r.reached else num(r.epochs_to_target, "g")
        ttt = "never" if not r.reached else num(r.time_to_target_s, ".3g") + " s"
        rows.append([r.optimizer, r.schedule, num(r.peak_lr, ".3g"), r.seeds, pct(r.test_acc), ci,
                     pct(r.best_val_acc), num(r.best_epoch, ".0f"), ett] + ([ttt] if timed else [])
                    + [f"{r.reached}/{r.seeds}", f"{r.diverged}/{r.seeds}"])
    note = ("Test accuracy of the final weights, in %. 95% interval: Student t over seeds, clipped to [0, 100]"
            + (" (one seed: no interval)." if single_seed else ".")
            + (" Peak lr: each configuration's selected peak learning rate (tuned on the tuning seeds)."
               if run.tuned else " Peak lr: the matrix's peak learning rate.")
            + f" Epoch of best: median over seeds, 1-based. Epochs to target: median over the seeds that reached "
            f"{target:.1%} validation accuracy, 1-based. " + _time_rule(run))
    return Table("configurations", "Configurations",
                 ["optimizer", "schedule", "peak lr", "seeds", "test acc %", "95% interval", "best val acc %",
                  "epoch of best", "epochs to target"] + (["time to target"] if timed else [])
                 + ["reached target", "diverged"], rows, note)


def _time_rule(run: RS.Run) -> str:
    """How the report turns epochs into seconds (or why it does not)."""
    cost = RS.step_costs(run)
    if not cost:
        return ("No step_cost.csv in the run folder: times are given in epochs only (a chunk's wall time shared by "
                "its models depends on what else the chunk held; lrbench report RUN --measure-step-cost measures "
                "each optimizer's cost per step).")
    sc = run.step_cost
    return (f"Time to target = epochs x {run.steps_per_epoch} steps per epoch x the optimizer's measured cost per "
            f"model-step (step_cost.csv: stacks of {int(sc['n_models'].iloc[0])} models, one optimizer each, timed "
            f"side by side on {sc['device_name'].iloc[0]}); validation passes are not counted.")


def _ranking_table(rank: pd.DataFrame, intervals: pd.DataFrame | None = None) -> Table:
    """``intervals``: :func:`bench.report.verdicts.rank_intervals` (each rank's 95% bootstrap interval)."""
    iv = {} if intervals is None else {
        (r.optimizer, r.schedule): f"{r.rank_in_optimizer_low}-{r.rank_in_optimizer_high}"
        for r in intervals.itertuples()}
    rows = [[r.optimizer, num(r.rank, ".0f", "not ranked"),
             iv.get((r.optimizer, r.schedule), "n/a") if r.ranked else "n/a", r.schedule,
             pct(r.test_acc), f"{r.diverged}/{r.seeds}"] for r in rank.itertuples()]
    note = ("Schedules ranked by mean test accuracy within each optimizer (1 = best); the rank's 95% interval "
            "resamples the seeds (2,000 bootstrap draws, one draw for all configurations, as they are paired).")
    if not rank["ranked"].all():
        note += (" Not ranked (listed last): configurations whose every seed diverged; their accuracy is that of "
                 "the weights frozen at divergence. Configurations with some diverged seeds are ranked on the mean "
                 "over all their seeds, diverged ones included.")
    return Table("ranking", "Ranking per optimizer", ["optimizer", "rank", "rank 95% interval", "schedule",
                                                       "test acc %", "diverged"], rows, note)


def _p_cell(p, n) -> str:
    """A sign-flip p, or why it is not shown: with ``n`` pairs it cannot go below 2/2^n, which over 0.05 is no
    evidence either way (:func:`bench.report.stats.sign_flip_can_decide`)."""
    n = int(n)
    if n < 2 or not RS.sign_flip_can_decide(n):
        return f"n/a (>= {RS.sign_flip_floor(n):.3g})" if n >= 1 else "n/a"
    return num(p, ".3g")


def _paired_table(paired: pd.DataFrame, base: str, v: pd.DataFrame) -> Table:
    """``v``: verdicts.csv, whose schedule-vs-baseline rows give each comparison's Holm-corrected verdict."""
    held = v[v["family"] == RV.FAMILY_BASELINE].set_index(["optimizer", "schedule"])["verdict"]
    rows = []
    for r in paired.itertuples():
        ci = "n/a" if r.n < 2 else f"[{num(100 * r.ci_low, '+.2f')}, {num(100 * r.ci_high, '+.2f')}]"
        ti = "n/a" if r.n < 2 else f"[{num(100 * r.t_low, '+.2f')}, {num(100 * r.t_high, '+.2f')}]"
        rows.append([r.optimizer, r.schedule, r.baseline, r.n, num(100 * r.mean_diff, "+.2f"), ti, ci,
                     _p_cell(r.p_value, r.n), held.get((r.optimizer, r.schedule), "n/a"), f"{r.wins}/{r.losses}"])
    note = (f"Paired by optimizer and seed: difference of test accuracy (percentage points) of each schedule minus "
            f"{base!r}, with its unadjusted 95% paired t interval. Verdict: verdicts.csv's, the paired t-test with "
            f"Holm's correction across all these comparisons (win / loss when the adjusted p < 0.05; an interval "
            f"that excludes 0 may still be a tie after the correction). Also shown: the percentile bootstrap interval ({RS.N_BOOTSTRAP:,} resamples) and the "
            f"two-sided exact sign-flip permutation p (distribution-free), only where it can reach 0.05: it cannot go "
            f"below 2/2^seeds" + (f" ({RS.sign_flip_note(int(paired['n'].max()))})" if len(paired) and not
                                   RS.sign_flip_can_decide(int(paired["n"].max())) else "."))
    return Table("paired", f"Paired comparison with {base}", ["optimizer", "schedule", "baseline", "seeds",
                                                               "mean diff (pp)", "95% t interval (pp)",
                                                               "95% bootstrap interval (pp)",
                                                               "p", "verdict (Holm)", "better/worse seeds"], rows,
                 note)


def _schedule_free_table(comparisons: list[dict], target: float, timed: bool = True) -> Table:
    """Two rows per comparison: the family's best scheduled configuration, then its schedule-free twin with the
    paired difference (twin minus best), its interval and the verdict. ``timed``: the run has a measured step
    cost (else the time column is left out: epochs only)."""
    def cells(c: dict | None):
        if c is None:
            return ["none", "", "n/a", "", "", "", ""][:7 if timed else 6]
        ett = "never" if not c["reached"] else num(c["epochs_to_target"], "g")
        ttt = "never" if not c["reached"] else num(c["time_to_target_s"], ".3g") + " s"
        return [f"{c['optimizer']} + {c['schedule']}", c["seeds"], pct(c["test_acc"]), ett] + (
            [ttt] if timed else []) + [f"{c['reached']}/{c['seeds']}", f"{c['diverged']}/{c['seeds']}"]

    rows = []
    for c in comparisons:
        fam, st = c["family"], c["stats"]
        best, twin = cells(c["best"]), cells(c["twin"])
        if st["n"] >= 1:
            diff = num(100 * st["mean_diff"], "+.2f")
            ci = ("n/a (1 seed)" if st["n"] < 2 else
                  f"[{num(100 * st['t_low'], '+.2f')}, {num(100 * st['t_high'], '+.2f')}]")
        else:
            diff = ci = "n/a"
        role = (f"rival chosen on tuning seeds (of {c['candidates']})" if c.get("picked_on") == "tuning" else
                f"best scheduled (of {c['candidates']})")
        rows.append([fam.name, role, *best[:3], "", "", "", *best[3:]])
        rows.append([fam.name, fam.twin_label, *twin[:3], diff, ci, c["verdict"], *twin[3:]])
    tuned = any(c.get("picked_on") == "tuning" for c in comparisons)
    note = (f"Twin minus {'rival' if tuned else 'best'}: paired by seed, test accuracy in percentage points, with the "
            f"unadjusted 95% paired t interval. Verdict: from verdicts.csv, the paired t-test with Holm's correction "
            f"within the schedule-free comparisons: beats / loses to when the adjusted p < 0.05, matches otherwise (no "
            f"significant difference, not proof of equality; an interval that excludes 0 can still match after the "
            f"correction). Epochs to "
            f"{target:.1%} validation accuracy: medians over the seeds that reached it, as in the configurations "
            "table" + ("; seconds = epochs x steps per epoch x each optimizer's measured cost per model-step "
                       "(step_cost.csv)." if timed else "; no step_cost.csv: no seconds."))
    return Table("schedule-free", "Schedule-free vs its rival chosen on the tuning seeds" if tuned else
                 "Schedule-free vs the best scheduled configuration of its family",
                 ["family", "role", "configuration", "seeds", "test acc %", "twin - best (pp)", "95% t interval (pp)",
                  "verdict", "epochs to target"] + (["time to target"] if timed else [])
                 + ["reached target", "diverged"], rows, note)


def _family_notes(run: RS.Run, comparisons: list[dict]) -> list[str]:
    """What the schedule-free section compares, and what it cannot (families without their twin, rmsprop)."""
    opts = set(run.optimizers)
    fams = "; ".join(f"{f.name}: {', '.join(f.members)}, twin {f.twin}" for f in F.FAMILIES)
    lines = [f"Families (bench/report/families.py): {fams}. {', '.join(F.NO_TWIN)} has no schedule-free twin"
             + (" and is not compared here." if opts & set(F.NO_TWIN) else ".")]
    if not comparisons:
        lines.insert(0, "This run has no schedule-free optimizer (" + ", ".join(f.twin for f in F.FAMILIES)
                     + "): nothing to compare. A matrix that names them runs each on a warmup-only schedule, on the "
                       "same seeds as every other configuration.")
        return lines
    missing = [f for f in F.FAMILIES if f.twin not in opts and opts & set(f.members)]
    if missing:
        lines.append("Not compared: " + "; ".join(f"{f.name} (no {f.twin} in this run)" for f in missing) + ".")
    other = [o for o in run.optimizers if F.is_schedule_free(o) and F.family_of(o) is None]
    if other:
        lines.append(f"Schedule-free optimizers outside every family (not compared): {', '.join(other)}.")
    if any(c["stats"]["n"] == 1 for c in comparisons):
        lines.append("One seed: the difference has no interval and no verdict.")
    lines.append(F.TUNED_SELECTION_NOTE if any(c.get("picked_on") == "tuning" for c in comparisons)
                 else F.SELECTION_NOTE)
    return lines


def _conformance(results: Path) -> Table | None:
    df = read_csv(results / "conformance.csv")
    if df is None or df.empty:
        return None
    if not {"framework", "verdict"} <= set(df.columns):
        return frame_table(df, "conformance", "Conformance (results/conformance.csv)")
    rows = []
    for fw, g in df.groupby("framework", sort=False):
        bad = g[g["verdict"].astype(str) != "pass"]
        cases = int(g["cases"].sum()) if "cases" in g else len(g)
        worst = (f"{num(g['max_err'].max(), '.2g')} ({g['err_measure'].iloc[0]}, limit {g['limit'].iloc[0]})"
                 if {"max_err", "err_measure", "limit"} <= set(g.columns) else "")
        rows.append([fw, len(g), cases, len(g) - len(bad), ", ".join(f"{s} ({v})" for s, v in
                                                                      zip(bad.get("schedule", []), bad["verdict"]))
                     or "none", worst])
    return Table("conformance", "Conformance of lrcore with PyTorch, Keras, transformers, timm and optax",
                 ["framework", "constructors", "cases", "pass", "not passing", "largest error"], rows,
                 "From results/conformance.csv (lrbench conformance).")


def _evaluator_speed(results: Path) -> list[Table]:
    out = []
    for dev in ("cpu", "gpu"):
        df = read_csv(results / "speed" / f"evaluate_{dev}.csv")
        if df is None or df.empty:
            continue
        cols = [c for c in ("case", "method", "values_per_second", "speedup_vs_numpy", "max_rel_err", "machine")
                if c in df.columns] or list(df.columns)
        out.append(frame_table(df[cols], f"evaluator-speed{'' if dev == 'cpu' else '-gpu'}",
                                f"Evaluator speed ({dev.upper()})",
                                f"From results/speed/evaluate_{dev}.csv (lrbench speed).",
                                {"values_per_second": lambda v: num(v, ".3g"),
                                 "speedup_vs_numpy": lambda v: "" if pd.isna(v) else num(v, ".3g") + "x",
                                 "max_rel_err": lambda v: num(v, ".1e", "")}))
    return out


_TRAINER_ORDER = {"batched": 0, "sequential": 1, "keras": 2}


def _throughput_rows(run: RS.Run, results: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(bars for the plot, the speed tables joined) -- every trainer_*.csv row (by device, then batched,
    sequential, Keras, others), then this run per trainer; each labelled with its trainer and device."""
    bars = []
    speed = []
    for p in sorted((results / "speed").glob("trainer_*.csv")):
        df = read_csv(p)
        if df is None or not {"trainer", "model_epochs_per_s"} <= set(df.columns):
            continue
        df = df.copy()
        df.insert(0, "file", p.name)
        speed.append(df)
    joined = None
    if speed:
        joined = pd.concat(speed, ignore_index=True)
        joined["trainer"] = joined["trainer"].astype(str)
        key = pd.DataFrame({"d": joined["device"].astype(str) if "device" in joined else "",
                            "t": joined["trainer"].map(lambda t: _TRAINER_ORDER.get(t, len(_TRAINER_ORDER)))})
        joined = joined.loc[key.sort_values(["d", "t"], kind="stable").index].reset_index(drop=True)
        for r in joined.to_dict("records"):
            dev = r.get("device") if isinstance(r.get("device"), str) and r.get("device") else "device ?"
            models = f", {int(r['n_models'])} models" if pd.notna(r.get("n_models")) else ""
            prec = f" {r['precision']}" if isinstance(r.get("precision"), str) else ""
            bars.append(dict(trainer=r["trainer"], label=f"{r['trainer']}{prec} ({dev}{models})",
                             model_epochs_per_s=pd.to_numeric(r["model_epochs_per_s"], errors="coerce"),
                             source="speed table"))
    tp = run.throughput
    if tp is not None and {"trainer", "wall_s", "n_models", "epochs"} <= set(tp.columns) and len(tp):
        for tr, g in tp.groupby("trainer", sort=False):
            me = float((g["n_models"] * g["epochs"]).sum())
            wall = float(g["wall_s"].sum())
            dev = g["device"].iloc[0] if "device" in g else run.meta.get("device", "?")
            bars.append(dict(trainer=str(tr), label=f"this run: {tr} {run.precision} ({dev}, "
                                                    f"{int(g['n_models'].max())} models/chunk)",
                             model_epochs_per_s=me / wall if wall > 0 else math.nan, source="this run"))
    bars_df = pd.DataFrame(bars, columns=["trainer", "label", "model_epochs_per_s", "source"])
    v = bars_df["model_epochs_per_s"].astype(float)
    return bars_df[np.isfinite(v) & (v > 0)].reset_index(drop=True), joined


def _crossframework(cross: pd.DataFrame) -> list:
    """The PyTorch vs Keras section: the verdict in words per metric (pooled, then per configuration) and the
    table, accuracy in percentage points; a crossframework.csv without the t interval is shown as it is."""
    from . import crossframework as CF
    if not {"config", "metric", "n_pairs", "mean_diff", "t_low", "t_high"} <= set(cross.columns):
        return [frame_table(cross, "crossframework", "PyTorch vs Keras",
                             "From crossframework.csv in the run folder: PyTorch minus Keras, paired by "
                             "configuration.",
                             {"significant": lambda v: "yes" if str(v).strip().lower() in ("true", "1", "yes")
                              else "no"}),
                "No verdict: this crossframework.csv has no paired t interval (t_low, t_high; written by an older "
                "lrbench cross-check, whose 'significant' is a sign-flip p < 0.05 that 5 or fewer seeds can never "
                "reach). Rerun lrbench cross-check TORCH_RUN KERAS_RUN to get it."]
    items: list = []
    for metric in dict.fromkeys(cross["metric"].astype(str)):
        items.append(("list", f"crossframework-{metric.replace('_', '-')}",
                      [CF.verdict_lead(cross, metric)] + CF.verdict_lines(cross, metric)))
    def interval(lo, hi, scale, fmt):
        ok = np.isfinite(lo) and np.isfinite(hi)
        return f"[{num(scale * lo, fmt)}, {num(scale * hi, fmt)}]" if ok else "n/a"

    rows = []
    for r in cross.to_dict("records"):
        acc = str(r["metric"]).endswith("acc")
        scale, fmt = (100.0, "+.2f") if acc else (1.0, "+.4f")
        rows.append([r["config"], CF.METRIC_NAMES.get(r["metric"], r["metric"]) + (" (pp)" if acc else ""),
                     int(r["n_pairs"]), num(scale * r["mean_diff"], fmt),
                     interval(r["t_low"], r["t_high"], scale, fmt),
                     interval(r.get("ci_low", math.nan), r.get("ci_high", math.nan), scale, fmt),
                     _p_cell(r.get("p_value", math.nan), r["n_pairs"]), "yes" if CF.is_significant(r) else "no"])
    items.append(Table("crossframework", "PyTorch vs Keras",
                       ["configuration", "metric", "pairs", "PyTorch - Keras", "95% t interval",
                        "95% bootstrap interval", "sign-flip p", "significant"], rows,
                       "From crossframework.csv in the run folder (lrbench cross-check): PyTorch minus Keras, paired "
                       "by configuration and seed; test accuracy in percentage points, loss in its own units. "
                       "Significant when the 95% paired t interval excludes 0, as in the paired comparison above; the "
                       "sign-flip p (distribution-free) cannot go below 2/2^pairs and is shown only where that is "
                       "at most 0.05. 'all' pools every pair."))
    return items


def _precision(run_dir: Path) -> list:
    """The bf16 vs fp32 section (``precision.csv`` and ``precision_verdicts.csv`` of ``lrbench cross-check``):
    the sentence on verdicts first (also in the summary), then the verdict table and the paired table."""
    from . import crossframework as CF
    from . import precision as PR
    paired, table = read_csv(run_dir / "precision.csv"), read_csv(run_dir / "precision_verdicts.csv")
    if paired is None or table is None or paired.empty:
        return []
    items: list = [PR.verdict_line(paired, table),
                   "The same matrix trained in bf16 (this run) and in fp32 on the same seeds: the same initial weights "
                   "and batches, so each seed pairs a bf16 model with its fp32 twin (lrbench cross-check)."]
    items.append(("list", "precision-test-acc", CF.verdict_lines(paired, "test_acc", PR.SIDES)[:1]))
    items.append(("details", f"The report's {len(table)} verdicts in each precision",
                  [frame_table(table, "precision-verdicts", "Verdicts in fp32 and in bf16 (precision_verdicts.csv)",
                                "Each schedule against the baseline per optimizer (95% paired t interval of test "
                                "accuracy) and each schedule-free comparison, as the report of each run states "
                                "them.")]))
    rows = []
    for r in paired.to_dict("records"):
        acc = str(r["metric"]).endswith("acc")
        scale, fmt = (100.0, "+.2f") if acc else (1.0, "+.4f")
        ok = np.isfinite(r["t_low"]) and np.isfinite(r["t_high"])
        rows.append([r["config"], CF.METRIC_NAMES.get(r["metric"], r["metric"]) + (" (pp)" if acc else ""),
                     int(r["n_pairs"]), num(scale * r["mean_diff"], fmt),
                     f"[{num(scale * r['t_low'], fmt)}, {num(scale * r['t_high'], fmt)}]" if ok else "n/a",
                     "yes" if CF.is_significant(r) else "no"])
    items.append(("details", f"bf16 - fp32 per configuration ({len(paired)} rows)",
                  [Table("precision", "bf16 - fp32, paired by seed (precision.csv)",
                         ["configuration", "metric", "pairs", "bf16 - fp32", "95% t interval", "significant"], rows,
                         "Test accuracy in percentage points, loss in its own units; 'all' pools every pair.")]))
    return items


def _roofline_text(r) -> str:
    """meta.json's throughput.roofline in words (bench.speed.roofline), or n/a."""
    if not isinstance(r, dict) or not r.get("roofline_s"):
        return "n/a"
    return (f"{r.get('precision', '')}, first chunk of {r.get('n_models', '?')} models: a step takes "
            f"{1e3 * r['step_s']:.1f} ms, {r['step_over_roofline']:.2f}x its roofline of "
            f"{1e3 * r['roofline_s']:.1f} ms (its matmuls timed alone {1e3 * r['matmul_s']:.1f} ms + the optimizer's "
            f"{r['optimizer_bytes'] / 1e6:.0f} MB "
            f"at the copy bandwidth {r['copy_bandwidth'] / 1e9:.1f} GB/s, {1e3 * r['optimizer_s']:.1f} ms)")


def _environment(run: RS.Run) -> Table:
    m, mx = run.meta, run.matrix
    versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
    data = m.get("data") or {}
    tp = m.get("throughput") or {}
    commit = str(m.get("git_commit") or "unknown") + (" (uncommitted changes)" if m.get("git_dirty") else "")
    model = mx.get("model") or {}
    pairs = [
        ("run id", m.get("run_id", run.path.name)), ("status", m.get("status", "")), ("command", m.get("command", "")),
        ("matrix", f"{mx.get('name', '')} ({mx.get('source', '')})"), ("framework", m.get("framework", "")),
        ("trainer", m.get("trainer", "")), ("precision", run.precision),
        ("device", f"{m.get('device', '')} ({m.get('device_name', '')})"),
        ("threads", m.get("n_threads", "")), ("git commit", commit),
        ("started / finished (UTC)", f"{m.get('started_utc', '')} / {m.get('finished_utc', '')}"),
        ("epochs, seeds, batch size", f"{run.epochs}, {run.seeds}, {mx.get('batch_size', '')}"),
        ("model", f"widths {model.get('widths', '')}, {model.get('activation', '')}, dropout "
                  f"{model.get('dropout', '')}"),
        ("peak learning rates", ", ".join(
            f"{k} {num(v, '.4g')}" + (" (LR range test)" if (mx.get("peak_lr") or {}).get(k) == "find" else "")
            for k, v in (m.get("peak_lr") or mx.get("peak_lr") or {}).items())),
        ("data", f"{data.get('n_train', '?')} train / {data.get('n_val', '?')} validation / {data.get('n_test', '?')} "
                 f"test, split seed {data.get('split_seed', '?')}, from {data.get('dir', '?')}"),
        ("throughput", f"{num(tp.get('model_epochs_per_s'))} model-epochs/s, {num(tp.get('samples_per_s'))} "
                       f"samples/s, {num(tp.get('flop_per_s'))} FLOP/s, wall {num(tp.get('wall_s'))} s"
         if tp else "n/a"),
        ("step against its roofline", _roofline_text(tp.get("roofline"))),
        ("versions", versions),
    ]
    return Table("environment", "Environment", ["item", "value"], [[k, str(v)] for k, v in pairs])


def _step_cost_table(run: RS.Run) -> Table | None:
    """step_cost.csv: each optimizer's cost per step, measured side by side on the run's chunk shape."""
    sc = run.step_cost
    if sc is None or sc.empty:
        return None
    cols = [c for c in ("optimizer", "n_models", "seed_groups", "batch_size", "model_step_s", "step_s", "step_s_min",
                        "step_s_max", "rounds", "steps_per_round", "device", "device_name", "n_threads",
                        "measured_utc") if c in sc.columns]
    note = ("Each optimizer's cost per training step (forward, backward, update), measured after training on "
            "stacks of the run's chunk size, one optimizer per stack, round-robin and interleaved; median over the "
            "rounds. model_step_s = step_s / models: the seconds behind every time to target in this report.")
    dev = str(sc["device_name"].iloc[0]) if "device_name" in sc else ""
    run_dev = str(run.meta.get("device_name", ""))
    if dev and run_dev and dev != run_dev:
        note += f" Measured on {dev}; the run trained on {run_dev}."
    return frame_table(sc[cols], "step-cost", "Cost per step (step_cost.csv)", note,
                        {c: (lambda v: num(v, ".3g")) for c in ("model_step_s", "step_s", "step_s_min", "step_s_max")})


# ------------------------------------------------------------------------------------------------ report

@dataclasses.dataclass
class _Page:
    """What every section reads: the run, its tables computed once, and the figures drawn so far."""
    run: RS.Run
    run_dir: Path
    results: Path
    table: pd.DataFrame
    paired: pd.DataFrame
    verdicts: pd.DataFrame
    comparisons: list
    plots: dict = dataclasses.field(default_factory=dict)

    def fig(self, name: str, make, alt: str):
        self.plots[name] = make()
        return ("img", name, alt)

    @property
    def free(self) -> list[str]:
        return [o for o in self.run.optimizers if F.is_schedule_free(o)]

    @functools.cached_property
    def ranks(self) -> pd.DataFrame:
        """:func:`bench.report.verdicts.rank_intervals` of the run, computed once for the page."""
        return RV.rank_intervals(self.run)

    @property
    def means(self) -> dict[str, float]:
        return {f"{o}/{n}": float(a) for o, n, a in zip(self.table["optimizer"], self.table["schedule"],
                                                        self.table["test_acc"])}


def _with_verdicts(comparisons: list[dict], v: pd.DataFrame) -> list[dict]:
    """Each schedule-free comparison's verdict taken from verdicts.csv (Holm within its family)."""
    words = {"win": "beats", "loss": "loses to", "tie": "matches", "too few seeds": "has too few seeds against"}
    rows = v[v["family"].isin([RV.FAMILY_SF, RV.FAMILY_SF_HINDSIGHT])]
    out = []
    for c in comparisons:
        r = rows[(rows["optimizer"] == c["twin"]["optimizer"]) & (rows["schedule"] == c["twin"]["schedule"])]
        if c["best"] is not None and len(r) and c["stats"]["n"] >= 2:
            c = {**c, "verdict": words[r["verdict"].iloc[0]]}
        out.append(c)
    return out


def build_report(run_dir: Path, results_dir: Path | None = None) -> tuple[str, str, dict[str, bytes]]:
    """(html, markdown, {plot file name: PNG bytes}) of a run folder; nothing is written. One function per
    section, in page order."""
    page, html_text, md = _build(run_dir, results_dir)
    return html_text, md, page.plots


def _build(run_dir: Path, results_dir: Path | None) -> tuple[_Page, str, str]:
    run = RS.load_run(run_dir)
    table = RS.config_table(run)
    v = RV.verdicts(run, table=table)
    page = _Page(run, Path(run_dir), Path(results_dir) if results_dir is not None else Path(run_dir).parent.parent,
                 table, RS.paired_table(run), v, _with_verdicts(RS.schedule_free(run, table), v))
    sections = [(title, items) for title, make in _SECTIONS if (items := make(page))]
    run_id = str(run.meta.get("run_id", page.run_dir.name))
    return page, to_html(run_id, sections, page.plots), to_markdown(run_id, sections)


def _answer_section(p: _Page) -> list:
    """The first screen: the answer in one sentence, the tie sets, the honest heatmap, the LR sensitivity."""
    run, v = p.run, p.verdicts
    items: list = [("lead", "answer", RA.answer(v, run.contender, run.baseline, len(run.seeds), p.means))]
    ties = RA.tie_lines(v, p.ranks, p.means) if len(v) else []
    if ties:
        items += ["Ties with the best (each configuration against the highest mean, paired by seed, Holm-corrected "
                  "within each list; the rank interval resamples the seeds):", ("list", "ties", ties)]
    collapsed = {(o, n) for (o, n), g in run.summary.groupby(["optimizer", "name"]) if g["diverged"].any()}
    sets = RV.tie_sets(v)  # each scheduled cell against its optimizer's best; a schedule-free one (its optimizer's
    # only configuration) against the best overall
    tied = {tuple(k.split("/", 1)) for scope, t in sets.items() if scope != "overall" for k in t["tied"]}
    tied |= {(o, n) for o, n in (k.split("/", 1) for k in sets.get("overall", {}).get("tied", []))
             if F.is_schedule_free(o)}
    untuned = set(RT.audit(run)["on_edge"]) if run.tuned else set()
    items.append(p.fig("heatmap.png", lambda: RP.heatmap(p.table, untuned, collapsed=collapsed, tied=tied),
                       "test accuracy heatmap, schedule x optimizer" + (", schedule-free rows below" if p.free else "")))
    if RT.grid(run) is not None:  # a tuned run: does the range test find the tuned learning rate?
        items.append(p.fig("sensitivity.png", lambda: RP.sensitivity(run),
                           "LR sensitivity: validation accuracy vs peak learning rate, per optimizer"))
    n_div = int(run.summary["diverged"].sum())
    if n_div:
        items.append(f"{n_div} of {len(run.summary)} models collapsed (a non-finite training loss, or a final "
                     "validation accuracy below twice chance); they count as diverged everywhere in this report.")
    return items


def _verdicts_section(p: _Page) -> list:
    """The run in one paragraph, then each verdict in words with its numbers (detail for the answer above)."""
    run = p.run
    k = RS.roughness_window(run.epochs)
    items: list = [_run_paragraph(p), ("list", "headline", list(RS.headline(run, p.paired, p.verdicts).values()))]
    if p.comparisons:
        items += ["Do you need a schedule? Each schedule-free optimizer against " + (
                      "its rival: the configuration of its family chosen on the tuning seeds" if run.tuned else
                      "the best scheduled configuration of its family") + " (details below):",
                  ("list", "schedulefree", [RS.schedule_free_sentence(c, run.target) for c in p.comparisons]
                   + (RA.hindsight_lines(p.verdicts) if run.tuned else []))]
    line = RA.checkpoint_line(p.verdicts)
    if line:
        items.append(line)
    items.append(f"Wins / ties / losses: verdicts.csv, one row per comparison, the paired {_test_name(p)} with "
                 "Holm's correction within each family of comparisons (win or loss when the adjusted p < 0.05; "
                 f"never on fewer than {RV.MIN_SEEDS} seeds or a zero-width interval: 'too few seeds'); intervals "
                 "are unadjusted 95% paired t intervals. Smoothness: the standard deviation of the epoch-to-epoch "
                 "changes of the validation loss over the last 20% of training, at least 3 changes (here the last "
                 f"{k} of {run.epochs - 1}), mean over seeds; lower is smoother.")
    if len(run.seeds) < 2:
        items.append("One seed: accuracies have no interval and the paired comparison has no test.")
    elif not RS.sign_flip_can_decide(len(run.seeds)):
        items.append(RS.sign_flip_note(len(run.seeds)))
    prec = _precision(p.run_dir)
    if prec:
        items.append(prec[0])
    return items


def _test_name(p: _Page) -> str:
    tests = set(p.verdicts["test"]) if len(p.verdicts) else {"t"}
    return {"t": "t-test", "sign-flip": "sign-flip test", "wilcoxon": "Wilcoxon signed-rank test"}.get(
        next(iter(tests)), "test")


def _run_paragraph(p: _Page) -> str:
    run = p.run
    scheduled = run.summary[~run.summary["optimizer"].map(F.is_schedule_free)]
    n_opt, n_sched = scheduled["optimizer"].nunique(), scheduled["name"].nunique()
    run_id = str(run.meta.get("run_id", p.run_dir.name))
    intro = (f"Run {run_id}: {n_opt} optimizers x {n_sched} schedules"
             + (f" + {len(p.free)} schedule-free optimizer(s) ({', '.join(p.free)}) on their warmup-only schedule"
                if p.free else "")
             + f" x {len(run.seeds)} seed(s), {run.epochs} epochs, trainer {run.meta.get('trainer', '?')} in "
             f"{run.precision} on {run.meta.get('device', '?')}. Baseline: {run.baseline}; contender: {run.contender}; "
             f"target validation accuracy: {run.target:.1%}.")
    found = [k for k, v in (run.matrix.get("peak_lr") or {}).items() if v == "find"]
    if found:
        peaks = run.meta.get("peak_lr") or {}
        intro += " Peak learning rates from the LR range test (lrbench find-lr): " + ", ".join(
            f"{k} {num(peaks.get(k), '.3g')}" for k in found) + "."
    return intro + (" " + tuning_intro(run) if run.tuned else "")


def _tuning_items(p: _Page) -> list:
    return tuning_section(p.run) if p.run.tuned else []


def _schedule_free_section(p: _Page) -> list:
    items: list = _family_notes(p.run, p.comparisons)
    if p.comparisons:
        items.append(_schedule_free_table(p.comparisons, p.run.target, bool(RS.step_costs(p.run))))
    return items


def _figures_section(p: _Page) -> list:
    run, run_dir = p.run, p.run_dir
    figures = [p.fig("lr.png", lambda: RP.lr_curves(run), "learning-rate curves of every schedule"),
               p.fig("val_loss.png", lambda: RP.curves(run, "val_loss"), "validation loss curves"),
               p.fig("val_acc.png", lambda: RP.curves(run, "val_acc"), "validation accuracy curves"),
               p.fig("profile.png", lambda: RP.profile(run), "performance profiles"),
               "Performance profiles (AlgoPerf style): each (optimizer, seed) pair is a workload; a schedule's "
               "ratio on it is its epochs to the target (or its test error) over the best schedule's (one optimizer "
               "per workload: at its measured cost per step, the ratio of times is the same); the curve "
               "gives the share of workloads where that ratio is at most tau. Higher and further left is better; "
               "a schedule that never reaches the target stays at 0 on the left panel."
               + (" Schedule-free optimizers are left out (each runs only its warmup-only schedule)." if p.free else "")]
    range_png = run_dir / "find_lr" / "find_lr.png"
    if range_png.is_file():  # peak_lr = "find": the range test that chose this run's peaks
        figures.append(p.fig("find_lr.png", range_png.read_bytes, "LR range test, its suggestions drawn in the "
                             "sensitivity figure" if run.tuned else "LR range test that chose the peak learning rates"))
        found_table = read_csv(run_dir / "find_lr" / "find_lr.csv")
        if found_table is not None and not found_table.empty:
            figures.append(frame_table(found_table, "find-lr", "LR range test suggestions (find_lr/find_lr.csv)"))
    return figures


def _results_section(p: _Page) -> list:
    single = len(p.run.seeds) < 2
    return [("details", f"Every configuration ({len(p.table)}): peak learning rate, test accuracy, epochs (and time) "
                        "to target, divergence; and the ranking per optimizer",
             [_config_table(p.table, single, p.run.target, p.run),
              _ranking_table(RS.ranking(p.table), p.ranks if not single else None)])]


def _paired_section(p: _Page) -> list:
    run, paired = p.run, p.paired
    if run.baseline not in run.schedules:
        return [f"No paired comparison: the baseline schedule {run.baseline!r} is not in this run (schedules: "
                f"{', '.join(run.schedules)})."]
    if paired.empty:
        return ["No paired comparison: no other schedule shares a seed and an optimizer with the baseline."]
    return [("details", f"Each schedule minus {run.baseline}, per optimizer ({len(paired)} comparisons)",
             [_paired_table(paired, run.baseline, p.verdicts)]),
            ("details", f"verdicts.csv: every comparison the report states ({len(p.verdicts)} rows)",
             [_verdicts_table(p.verdicts)])]


def _verdicts_table(v: pd.DataFrame) -> Table:
    return frame_table(v, "verdicts", "Verdicts (verdicts.csv)",
                        "One row per comparison: mean paired difference of test accuracy (this minus versus, "
                        "percentage points) over the seeds both share, its unadjusted 95% t interval, the test's "
                        "two-sided p and Holm's adjustment within the family.",
                        {c: (lambda x: num(x, ".3g")) for c in ("p", "p_adjusted")}
                        | {c: (lambda x: num(x, "+.2f")) for c in ("mean_diff_pp", "ci_low_pp", "ci_high_pp")})


def _crossframework_section(p: _Page) -> list:
    cross = read_csv(p.run_dir / "crossframework.csv")
    return _crossframework(cross) if cross is not None and not cross.empty else []


def _precision_section(p: _Page) -> list:
    return _precision(p.run_dir)


def _throughput_section(p: _Page) -> list:
    run = p.run
    bars, speed = _throughput_rows(run, p.results)
    items: list = []
    if len(bars):
        items.append(p.fig("throughput.png", lambda: RP.throughput(bars), RP.throughput_title(bars)))
    if speed is not None:
        cols = [c for c in ("trainer", "precision", "device", "device_name", "n_models", "epochs", "model_epochs_per_s",
                            "samples_per_s", "speedup_vs_sequential", "speedup_vs_fp32", "step_over_roofline", "file")
                if c in speed.columns]
        cuda_rows = "device" in speed.columns and speed["device"].astype(str).str.startswith("cuda").any()
        items.append(frame_table(speed[cols], "throughput", "Trainer speed (results/speed/trainer_*.csv)",
                                  CUDA_SEQUENTIAL_NOTE if cuda_rows else ""))
    elif run.throughput is not None:
        cols = [c for c in ("chunk", "trainer", "device", "n_models", "epochs", "wall_s", "samples_per_s",
                            "model_epochs_per_s", "flop_per_s") if c in run.throughput.columns]
        items.append(frame_table(run.throughput[cols], "throughput", "This run's chunks (throughput.csv)",
                                  "No trainer speed table in results/speed/ (the batched vs sequential "
                                  "comparison): only this run is shown."))
    step_cost = _step_cost_table(run)
    return items + ([step_cost] if step_cost is not None else [])


def _conformance_section(p: _Page) -> list:
    conf = _conformance(p.results)
    return [conf] if conf is not None else []


#: The page's sections in order: (heading, function of the page -> items; no items, no section).
_SECTIONS = [("Summary", _answer_section), ("Verdicts", _verdicts_section), ("Learning-rate tuning", _tuning_items),
             ("Do you need a schedule?", _schedule_free_section), ("Figures", _figures_section),
             ("Results", _results_section), ("Paired comparison", _paired_section),
             ("PyTorch vs Keras", _crossframework_section), ("bf16 vs fp32", _precision_section),
             ("Throughput", _throughput_section), ("Conformance", _conformance_section),
             ("Evaluator speed", lambda p: _evaluator_speed(p.results)),
             ("Environment", lambda p: [_environment(p.run)])]


def _write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(data))


def answer_line(run_dir: Path) -> str:
    """The report's first line (:func:`bench.report.answer.answer`) from a run folder and its verdicts.csv."""
    run = RS.load_run(run_dir)
    v = pd.read_csv(Path(run_dir) / "verdicts.csv", keep_default_na=False, na_values=["", "nan", "NaN"])
    means = {f"{o}/{n}": float(a) for (o, n), a in run.summary.groupby(["optimizer", "name"])["test_acc"].mean().items()}
    return RA.answer(v, run.contender, run.baseline, len(run.seeds), means)


def write_verdicts(run_dir: Path, lock: bool = True) -> Path:
    """``verdicts.csv`` of a run folder (:func:`bench.report.verdicts.verdicts`), holding its lock unless the caller
    does."""
    run_dir = Path(run_dir)
    with (run_lock(run_dir) if lock else contextlib.nullcontext()):
        v = RV.verdicts(RS.load_run(run_dir))
        atomic_write(run_dir / "verdicts.csv", lambda p: v.to_csv(p, index=False))
    return run_dir / "verdicts.csv"


def write_report(run_dir: Path, results_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``report.html``, ``report.md`` and ``plots/*.png`` into the run folder, holding its lock
    (:class:`bench.results.RunLocked` while another process writes the run); returns (html, md)."""
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        built, page, md = _build(run_dir, results_dir)
        plots = built.plots
        atomic_write(run_dir / "verdicts.csv", lambda p: built.verdicts.to_csv(p, index=False))
        (run_dir / "plots").mkdir(exist_ok=True)
        for name, data in plots.items():
            _write(run_dir / "plots" / name, data)
        _write(run_dir / "report.html", page.encode("utf-8"))
        _write(run_dir / "report.md", md.encode("utf-8"))
    return run_dir / "report.html", run_dir / "report.md"
