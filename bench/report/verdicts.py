"""verdicts.csv: every comparison a report states, with its paired test and Holm's correction per family.

One row per comparison (``VERDICT_COLUMNS``). Families: each schedule vs the baseline (final weights; and at the
early-stopping checkpoint), each schedule-free optimizer vs its rival chosen on the tuning seeds (and, marked as
hindsight, vs its family's best on the evaluation seeds), and every configuration vs the best of its optimizer
and of the run (the tie sets). :func:`recompute` rebuilds the file from summary.csv and tuning.csv alone.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..results import collapsed
from . import families as F
from . import stats as RS

__all__ = ["VERDICT_COLUMNS", "TESTS", "MIN_SEEDS", "holm", "paired_p", "verdict_of", "verdicts", "tie_sets",
           "rank_intervals", "FAMILY_BASELINE", "FAMILY_BASELINE_BEST", "FAMILY_SF", "FAMILY_SF_HINDSIGHT",
           "FAMILY_TIES_OVERALL", "ties_family"]

VERDICT_COLUMNS = ["family", "optimizer", "schedule", "versus", "metric", "n", "mean_diff_pp", "ci_low_pp",
                   "ci_high_pp", "test", "p", "p_adjusted", "verdict"]
TESTS = ("t", "sign-flip", "wilcoxon")
#: No win or loss rests on fewer paired seeds than this.
MIN_SEEDS = 3
FAMILY_BASELINE = "schedule vs baseline"
FAMILY_BASELINE_BEST = "schedule vs baseline (early-stopping checkpoint)"
FAMILY_SF = "schedule-free vs rival (chosen on tuning seeds)"
FAMILY_SF_HINDSIGHT = "schedule-free vs family best (hindsight)"
FAMILY_TIES_OVERALL = "tie with best: overall"


def ties_family(optimizer: str) -> str:
    """The family of the comparisons with the best configuration of ``optimizer``."""
    return f"tie with best: {optimizer}"


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values: with p sorted ascending, ``p_adj(i) = max_{j<=i} min(1, (m - j) p(j))``
    (j from 0), in the input order; NaN entries stay NaN and do not count in ``m``."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def paired_p(d, test: str = "t") -> float:
    """Two-sided p of the paired differences ``d`` having mean 0: ``t`` (one-sample Student t), ``sign-flip``
    (exact permutation of the signs, :func:`bench.report.stats.sign_flip_p`) or ``wilcoxon`` (exact signed rank,
    zeros dropped). NaN with fewer than 2 values; 1 when every difference is 0."""
    from scipy import stats as ss
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    if test == "sign-flip":
        return RS.sign_flip_p(d)
    if test == "wilcoxon":
        return float(ss.wilcoxon(d[d != 0], method="exact" if (d != 0).sum() <= 50 else "approx").pvalue)
    if np.std(d, ddof=1) == 0:  # every difference equal and non-zero: no spread, no t statistic
        return math.nan
    return float(ss.ttest_1samp(d, 0.0).pvalue)


def verdict_of(n: int, mean: float, low: float, high: float, p_adjusted: float, alpha: float = RS.ALPHA) -> str:
    """``too few seeds`` below :data:`MIN_SEEDS` or with a zero-width interval; else ``win`` / ``loss`` when
    ``p_adjusted < alpha`` (by the sign of the mean difference), else ``tie``."""
    if n < MIN_SEEDS or not (np.isfinite(low) and np.isfinite(high)) or high - low <= 0:
        return "too few seeds"
    if np.isfinite(p_adjusted) and p_adjusted < alpha:
        return "win" if mean > 0 else "loss"
    return "tie"


def _row(family: str, optimizer: str, schedule: str, versus: str, metric: str, d, test: str) -> dict:
    d = np.asarray(d, dtype=np.float64)
    mean, low, high = RS.mean_interval(d)
    return dict(family=family, optimizer=optimizer, schedule=schedule, versus=versus, metric=metric, n=len(d),
                mean_diff_pp=100 * mean, ci_low_pp=100 * low, ci_high_pp=100 * high, test=test,
                p=paired_p(d, test), p_adjusted=math.nan, verdict="")


def _by_seed(s: pd.DataFrame, optimizer: str, schedule: str, metric: str) -> pd.Series:
    g = s[(s["optimizer"] == optimizer) & (s["name"] == schedule)]
    return g.set_index("seed")[metric].astype(float)


def _diff(s: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], metric: str) -> np.ndarray:
    """``metric`` of configuration a minus that of b, per seed both have with finite values (seed order)."""
    x, y = _by_seed(s, *a, metric), _by_seed(s, *b, metric)
    seeds = sorted(set(x.index) & set(y.index))
    d = np.array([x[k] - y[k] for k in seeds], dtype=np.float64)
    return d[np.isfinite(d)]


def _baseline_rows(run: RS.Run, test: str) -> list[dict]:
    s, base = run.summary, run.baseline
    if base not in set(s["name"]):
        return []
    rows = []
    for family, metric in ((FAMILY_BASELINE, "test_acc"), (FAMILY_BASELINE_BEST, "test_acc_best")):
        if metric not in s:
            continue
        for opt in run.optimizers:
            if F.is_schedule_free(opt):
                continue
            for name in run.schedules:
                if name == base or not ((s["optimizer"] == opt) & (s["name"] == name)).any():
                    continue
                d = _diff(s, (opt, name), (opt, base), metric)
                if len(d):
                    rows.append(_row(family, opt, name, f"{opt}/{base}", metric, d, test))
    return rows


def _schedule_free_rows(run: RS.Run, test: str, table: pd.DataFrame) -> list[dict]:
    """Each twin vs its rival picked on the tuning seeds (:func:`bench.report.stats.schedule_free`), and vs the
    family's best mean test accuracy on the evaluation seeds (hindsight: an upper bound for the rival)."""
    s = run.summary
    rows = []
    for c in RS.schedule_free(run, table):
        twin = (c["twin"]["optimizer"], c["twin"]["schedule"])
        if c["best"] is not None:
            rival = (c["best"]["optimizer"], c["best"]["schedule"])
            family = FAMILY_SF if c.get("picked_on") == "tuning" else FAMILY_SF_HINDSIGHT
            rows.append(_row(family, *twin, "/".join(rival), "test_acc", _diff(s, twin, rival, "test_acc"), test))
        fam = c["family"]
        cands = table[table["optimizer"].isin(fam.members)]
        best = _best(cands, s)
        if best is not None and c.get("picked_on") == "tuning":
            rows.append(_row(FAMILY_SF_HINDSIGHT, *twin, "/".join(best), "test_acc", _diff(s, twin, best, "test_acc"),
                             test))
    return rows


def _best(table: pd.DataFrame, s: pd.DataFrame) -> tuple[str, str] | None:
    """The configuration with the highest mean test accuracy among those that never collapsed."""
    ok = [(o, n) for o, n in zip(table["optimizer"], table["schedule"]) if not _ever_collapsed(s, o, n)]
    means = {k: float(_by_seed(s, *k, "test_acc").mean()) for k in ok}
    means = {k: v for k, v in means.items() if np.isfinite(v)}
    return max(means, key=means.get) if means else None  # max keeps the first of equal means: run order


def _ever_collapsed(s: pd.DataFrame, optimizer: str, schedule: str) -> bool:
    g = s[(s["optimizer"] == optimizer) & (s["name"] == schedule)]
    return bool(collapsed(g).any())


def _tie_rows(run: RS.Run, test: str, table: pd.DataFrame) -> list[dict]:
    """Every configuration minus the best of its optimizer, and minus the best of the whole run."""
    s = run.summary
    rows = []
    groups = [(ties_family(o), table[table["optimizer"] == o]) for o in run.optimizers
              if not F.is_schedule_free(o)] + [(FAMILY_TIES_OVERALL, table)]
    for family, g in groups:
        best = _best(g, s)
        if best is None:
            continue
        for o, n in zip(g["optimizer"], g["schedule"]):
            if (o, n) != best:
                rows.append(_row(family, o, n, "/".join(best), "test_acc", _diff(s, (o, n), best, "test_acc"), test))
    return rows


def verdicts(run: RS.Run, test: str = "t", table: pd.DataFrame | None = None) -> pd.DataFrame:
    """verdicts.csv of ``run``: the rows of every family, ``p_adjusted`` by :func:`holm` within each family,
    ``verdict`` by :func:`verdict_of`. Differences are in percentage points of test accuracy, this minus versus;
    the interval is the unadjusted 95% paired Student-t interval."""
    table = RS.config_table(run) if table is None else table
    rows = _baseline_rows(run, test) + _schedule_free_rows(run, test, table) + _tie_rows(run, test, table)
    df = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    for _, idx in df.groupby("family", sort=False).groups.items():
        df.loc[idx, "p_adjusted"] = holm(df.loc[idx, "p"].to_numpy())
    df["verdict"] = [verdict_of(r.n, r.mean_diff_pp, r.ci_low_pp, r.ci_high_pp, r.p_adjusted) for r in df.itertuples()]
    return df


def tie_sets(v: pd.DataFrame) -> dict[str, dict]:
    """family scope ("overall" or an optimizer) -> {"best": "opt/schedule", "tied": [...], "worse": [...],
    "undecided": [...]} from verdicts.csv's tie families: tied = the best and every configuration not
    significantly worse after Holm's correction (verdict not ``loss``); undecided = those of the tied with too few
    seeds to tell (they cannot be shown worse, so they stay in the tie set)."""
    out = {}
    for family, g in v[v["family"].str.startswith("tie with best: ")].groupby("family", sort=False):
        scope = family[len("tie with best: "):]
        names = [f"{o}/{n}" for o, n in zip(g["optimizer"], g["schedule"])]
        out[scope] = {"best": str(g["versus"].iloc[0]),
                      "tied": [g["versus"].iloc[0]] + [k for k, r in zip(names, g["verdict"]) if r != "loss"],
                      "worse": [k for k, r in zip(names, g["verdict"]) if r == "loss"],
                      "undecided": [k for k, r in zip(names, g["verdict"]) if r == "too few seeds"]}
    return out


def rank_intervals(run: RS.Run, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per configuration: its rank by mean test accuracy (1 + how many have a higher mean) within its optimizer and
    overall, with a 95% bootstrap interval: the seeds resampled with replacement (the same draw for every
    configuration, as they are paired), ranks recomputed in each resample, the 2.5 and 97.5 percentiles taken.
    As in :func:`bench.report.stats.ranking`, a configuration whose every seed diverged is not ranked: it counts
    below every other, and its own ranks are reported all the same (the report shows "n/a")."""
    s = run.summary
    wide = s.pivot_table(index="seed", columns=["optimizer", "name"], values="test_acc", aggfunc="first")
    wide = wide.astype(float)
    keys = list(wide.columns)
    x = wide.to_numpy()
    gone = s.groupby(["optimizer", "name"])["diverged"].all().reindex(keys).fillna(False).to_numpy(dtype=bool)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_resamples, len(x)))
    with warnings.catch_warnings():  # a configuration with no finite value in a resample: its mean is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(x[idx], axis=1)  # (resamples, configurations)
        point = np.nanmean(x, axis=0)
    means = np.where(np.isfinite(means) & ~gone, means, -np.inf)
    point = np.where(np.isfinite(point) & ~gone, point, -np.inf)
    opts = np.array([k[0] for k in keys])

    def ranks(m: np.ndarray, cols: np.ndarray) -> np.ndarray:  # 1 + how many are strictly better
        sub = m[..., cols]
        return 1 + (sub[..., None, :] > sub[..., :, None]).sum(axis=-1)

    rows = {k: dict(optimizer=k[0], schedule=k[1], test_acc=point[i]) for i, k in enumerate(keys)}
    for scope, cols in [("overall", np.arange(len(keys)))] + [(o, np.flatnonzero(opts == o)) for o in dict.fromkeys(opts)]:
        r_point, r_boot = ranks(point, cols), ranks(means, cols)
        lo, hi = np.percentile(r_boot, [2.5, 97.5], axis=0)
        prefix = "rank" if scope == "overall" else "rank_in_optimizer"
        for j, c in enumerate(cols):
            rows[keys[c]].update({prefix: int(r_point[j]), f"{prefix}_low": int(math.floor(lo[j])),
                                  f"{prefix}_high": int(math.ceil(hi[j]))})
    out = pd.DataFrame(list(rows.values()))
    return out.sort_values("rank", kind="stable").reset_index(drop=True)
