"""Cross-framework check: the same schedule and optimizer trained with PyTorch and with Keras, paired by seed.

``compare(torch_run, keras_run)`` pairs the two runs' ``summary.csv`` by (schedule name, optimizer, seed)
and gives per metric the mean difference, its paired t interval, a bootstrap interval and a sign-flip
p-value; ``verdict`` says it in words. Columns and their meaning: docs/BENCH.md, "bench/report/crossframework.py".
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import atomic_write, find_run, run_lock
from .stats import mean_interval

__all__ = ["COLUMNS", "METRICS", "METRIC_NAMES", "compare", "paired_rows", "run_precision", "paired_stats",
           "sign_flip_p", "bootstrap_ci",
           "is_significant", "describe", "verdict_lines", "verdict_lead", "verdict", "run_dir"]

COLUMNS = ["config", "metric", "n_pairs", "mean_diff", "t_low", "t_high", "ci_low", "ci_high", "p_value",
           "significant"]
METRICS = ("test_acc", "final_val_loss")
METRIC_NAMES = {"test_acc": "test accuracy", "final_val_loss": "final validation loss"}
KEYS = ["name", "optimizer", "seed"]


def sign_flip_p(diffs) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean of paired differences (1.0 for none)."""
    d = np.asarray(diffs, np.float64)
    n = len(d)
    if n == 0:
        return math.nan
    if n > 20:  # 2**20 assignments; beyond that a seeded Monte Carlo sample of them
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(200_000, n))
    else:
        signs = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    obs = abs(d.mean())
    means = np.abs(signs @ d) / n
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    return float(np.mean(means >= obs - tol))


def bootstrap_ci(diffs, *, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (seeded, reproducible)."""
    d = np.asarray(diffs, np.float64)
    if len(d) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    a = (1.0 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _check_alpha(alpha) -> None:
    if alpha != 0.05:
        raise ValueError(f"cross-check: alpha must be 0.05 (significance is the 95% paired t interval), got {alpha}")


def paired_stats(diffs, *, alpha: float = 0.05, seed: int = 0) -> dict:
    """The columns of one row (module docstring) for the paired differences ``diffs`` (non-finite ones dropped)."""
    _check_alpha(alpha)
    d = np.asarray([x for x in diffs if math.isfinite(x)], np.float64)
    lo, hi = bootstrap_ci(d, seed=seed)
    p = sign_flip_p(d)
    _, t_lo, t_hi = mean_interval(d)
    return dict(n_pairs=int(len(d)), mean_diff=float(d.mean()) if len(d) else math.nan, t_low=t_lo, t_high=t_hi,
                ci_low=lo, ci_high=hi, p_value=p, significant=bool(len(d) >= 2 and (t_lo > 0 or t_hi < 0)))


def run_dir(run, results_dir=None) -> Path:
    """A folder with a summary.csv, else a run id or folder as :func:`bench.results.find_run` finds it
    (raises :class:`bench.results.RunNotFound`)."""
    p = Path(run)
    if (p / "summary.csv").is_file():
        return p
    return find_run(run, results_dir)


def _summary(run) -> pd.DataFrame:
    d = run_dir(run)
    path = d / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{d}: no summary.csv (is the run finished?)")
    s = pd.read_csv(path)
    if "stage" in s:  # a tuned run: its evaluation models only (each configuration at its selected peak)
        s = s[~s["stage"].astype(str).str.startswith("tune")]
    return s


def run_precision(run) -> str:
    """A run's training precision from its meta.json ("fp32" for runs that predate the field)."""
    import json
    meta = json.loads((run_dir(run) / "meta.json").read_text()) if (run_dir(run) / "meta.json").is_file() else {}
    return str(meta.get("precision") or (meta.get("matrix") or {}).get("precision") or "fp32")


def paired_rows(a: pd.DataFrame, b: pd.DataFrame, labels=("a", "b"), *, metrics=METRICS, alpha: float = 0.05,
                seed: int = 0) -> pd.DataFrame:
    """The table of :data:`COLUMNS` for two summaries paired by (schedule name, optimizer, seed): per
    configuration and metric the statistics of ``a - b``, then ``all`` pooled (when there are several
    configurations). ``labels`` name the sides in the error message."""
    _check_alpha(alpha)
    pairs = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    if pairs.empty:
        raise ValueError(f"cross-check: no configuration (schedule name, optimizer, seed) is in both runs; the "
                         f"{labels[0]} run has {sorted(set(a['name']))}, the {labels[1]} run has {sorted(set(b['name']))}")
    rows = []
    for (name, opt), g in pairs.groupby(["name", "optimizer"], sort=False):
        for metric in metrics:
            diffs = (g[f"{metric}_a"].astype(float) - g[f"{metric}_b"].astype(float)).to_numpy()
            rows.append(dict(config=f"{name} / {opt}", metric=metric, **paired_stats(diffs, alpha=alpha, seed=seed)))
    if pairs.groupby(["name", "optimizer"]).ngroups > 1:
        for metric in metrics:
            diffs = (pairs[f"{metric}_a"].astype(float) - pairs[f"{metric}_b"].astype(float)).to_numpy()
            rows.append(dict(config="all", metric=metric, **paired_stats(diffs, alpha=alpha, seed=seed)))
    return pd.DataFrame(rows, columns=COLUMNS)


def compare(torch_run_dir, keras_run_dir, out_csv=None, *, metrics=METRICS, alpha: float = 0.05,
            seed: int = 0, write: bool = True) -> pd.DataFrame:
    """Paired PyTorch - Keras differences per (schedule name, optimizer) over seeds (module docstring).

    Writes the table to ``out_csv`` (default ``<keras run>/crossframework.csv``) unless ``write`` is
    False. Raises ``ValueError`` when the two runs share no (schedule, optimizer, seed), or when they trained
    in different precisions (never pooled: :mod:`bench.report.precision` compares precisions)."""
    _check_alpha(alpha)
    pt, pk = run_precision(torch_run_dir), run_precision(keras_run_dir)
    if pt != pk:
        raise ValueError(f"cross-check: the PyTorch run trained in {pt}, the Keras run in {pk}: runs of different "
                         "precision are never pooled; compare frameworks in one precision")
    df = paired_rows(_summary(torch_run_dir), _summary(keras_run_dir), ("PyTorch", "Keras"), metrics=metrics,
                     alpha=alpha, seed=seed)
    if write:
        if out_csv is not None:
            atomic_write(out_csv, lambda p: df.to_csv(p, index=False))
        else:
            keras = run_dir(keras_run_dir)
            with run_lock(keras):  # into the Keras run's folder: one writer at a time
                atomic_write(keras / "crossframework.csv", lambda p: df.to_csv(p, index=False))
    return df


def is_significant(r) -> bool:
    """Whether a row's paired t interval (``t_low``, ``t_high``) excludes 0 (False when it is NaN)."""
    return bool(np.isfinite(r["t_low"]) and np.isfinite(r["t_high"]) and (r["t_low"] > 0 or r["t_high"] < 0))


def describe(r, sides: str = "PyTorch - Keras") -> str:
    """One row (a dict or Series with metric, n_pairs, mean_diff, t_low, t_high) in words, e.g. "PyTorch - Keras
    test accuracy: -0.26 pp, 95% t-interval [-0.36, -0.14]: significant"; accuracy in percentage points."""
    metric = str(r["metric"])
    scale, fmt, unit = (100.0, "+.2f", " pp") if metric.endswith("acc") else (1.0, "+.4f", "")
    head = f"{sides} {METRIC_NAMES.get(metric, metric)}: {format(scale * r['mean_diff'], fmt)}{unit}"
    if int(r["n_pairs"]) < 2 or not (np.isfinite(r["t_low"]) and np.isfinite(r["t_high"])):
        return f"{head} on {int(r['n_pairs'])} pair(s): no interval, no test"
    return (f"{head}, 95% t-interval [{format(scale * r['t_low'], fmt)}, {format(scale * r['t_high'], fmt)}]: "
            f"{'significant' if is_significant(r) else 'not significant'}")


def verdict_lines(df: pd.DataFrame, metric: str = "test_acc", sides: str = "PyTorch - Keras") -> list[str]:
    """For ``metric``: the pooled row (when there is one), then each configuration, each as :func:`describe`."""
    sub = df[df["metric"] == metric]
    out = [f"All {int(r['n_pairs'])} pairs pooled: {describe(r, sides)}."
           for _, r in sub[sub["config"] == "all"].iterrows()]
    out += [f"{r['config']} ({int(r['n_pairs'])} pairs): {describe(r, sides)}."
            for _, r in sub[sub["config"] != "all"].iterrows()]
    return out


def verdict_lead(df: pd.DataFrame, metric: str = "test_acc") -> str:
    """One sentence: in how many configurations the frameworks differ significantly on ``metric``."""
    sub = df[(df["metric"] == metric) & (df["config"] != "all")]
    name = METRIC_NAMES.get(metric, metric)
    if sub.empty:
        return f"No configuration was trained in both frameworks ({name})."
    sig = [r["config"] for _, r in sub.iterrows() if is_significant(r)]
    pooled = df[(df["metric"] == metric) & (df["config"] == "all")]
    if not sig:
        lead = f"PyTorch and Keras do not differ significantly on {name} in any of the {len(sub)} configurations"
    else:
        lead = (f"PyTorch and Keras differ significantly on {name} in {len(sig)} of {len(sub)} configurations "
                f"({', '.join(sig)})")
    if len(pooled):
        r = pooled.iloc[0]
        joint = {(False, False): ", nor", (False, True): ", but they do", (True, False): ", but not",
                 (True, True): ", and"}[(bool(sig), is_significant(r))]
        lead += f"{joint} over all {int(r['n_pairs'])} pairs pooled"
    return lead + " (95% paired t interval over seeds)."


def verdict(df: pd.DataFrame, metric: str = "test_acc") -> str:
    """Do the frameworks differ on ``metric``? :func:`verdict_lead`, then :func:`verdict_lines`."""
    return " ".join([verdict_lead(df, metric)] + verdict_lines(df, metric))
