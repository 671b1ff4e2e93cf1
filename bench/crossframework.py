"""Cross-framework check: the same schedule and optimizer trained with PyTorch and with Keras, paired by seed.

``compare(torch_run, keras_run)`` pairs the configurations of a PyTorch run and a Keras run that have the
same schedule name, optimizer and seed (``summary.csv`` of each run folder), and for every
(schedule, optimizer) present in both and every metric (``test_acc``, ``final_val_loss``) gives:

* ``n_pairs``: seeds with a finite value in both runs;
* ``mean_diff``: mean over seeds of (PyTorch - Keras) (the report's "PyTorch minus Keras");
* ``ci_low``, ``ci_high``: a 95% percentile bootstrap interval of that mean (numpy ``default_rng(seed)``,
  10,000 resamples of the paired differences);
* ``p_value``: exact two-sided sign-flip permutation test over seeds: under "no framework difference" each
  paired difference is as likely to have either sign, so p is the fraction of the ``2**n`` sign
  assignments whose mean is at least as far from 0 as the observed one. With ``n`` pairs the smallest
  possible p is ``2 / 2**n`` (0.25 with 3 seeds, 0.0625 with 5): at least 6 seeds are needed before
  any difference can reach p < 0.05;
* ``significant``: ``p_value < alpha`` (default 0.05).

When more than one (schedule, optimizer) is paired, a row ``config = "all"`` per metric pools every pair
(all schedules and seeds; its p-value can reach 0.05 with 3 seeds of 2+ schedules): "do the two frameworks
differ at all on this matrix?".

What a difference means: the Keras trainer uses Keras's initialisers (Glorot-uniform, zero bias; PyTorch:
Kaiming-uniform(a=sqrt 5)) and Keras's optimizer formulas (epsilon placement in Adam and RMSprop, SGD
momentum's velocity) with PyTorch's hyper-parameter values, on the same batches in the same order and the
same learning-rate values (``bench.keras_trainer``): a significant difference is a framework difference
of that kind, not a schedule that means something else.

The table is written as ``crossframework.csv`` (columns :data:`COLUMNS`) into the Keras run's folder,
where the report picks it up. ``lrbench cross-check TORCH_RUN KERAS_RUN`` is :func:`crossframework_cmd`.

Configurations named the same in both runs are assumed to mean the same schedule: a Keras matrix's
lrcore texts (``keras.CosineDecay(...)``) run unchanged in PyTorch; its ``keras-native:`` variants
(Keras's own objects) have no PyTorch counterpart and pair only if a PyTorch run has a schedule of the
same name.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "METRICS", "compare", "paired_stats", "sign_flip_p", "bootstrap_ci", "verdict",
           "torch_counterpart", "crossframework_cmd"]

COLUMNS = ["config", "metric", "n_pairs", "mean_diff", "ci_low", "ci_high", "p_value", "significant"]
METRICS = ("test_acc", "final_val_loss")
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


def paired_stats(diffs, *, alpha: float = 0.05, seed: int = 0) -> dict:
    d = np.asarray([x for x in diffs if math.isfinite(x)], np.float64)
    lo, hi = bootstrap_ci(d, seed=seed)
    p = sign_flip_p(d)
    return dict(n_pairs=int(len(d)), mean_diff=float(d.mean()) if len(d) else math.nan, ci_low=lo, ci_high=hi,
                p_value=p, significant=bool(len(d) > 0 and p < alpha))


def _run_dir(run) -> Path:
    p = Path(run)
    if (p / "summary.csv").is_file():
        return p
    try:
        from .runner import resolve_run
        return resolve_run(run)
    except ImportError:  # pragma: no cover
        raise FileNotFoundError(f"no run folder {run!r} (no summary.csv there)") from None


def _summary(run) -> pd.DataFrame:
    d = _run_dir(run)
    path = d / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{d}: no summary.csv (is the run finished?)")
    return pd.read_csv(path)


def compare(torch_run_dir, keras_run_dir, out_csv=None, *, metrics=METRICS, alpha: float = 0.05,
            seed: int = 0, write: bool = True) -> pd.DataFrame:
    """Paired PyTorch - Keras differences per (schedule name, optimizer) over seeds (module docstring).

    Writes the table to ``out_csv`` (default ``<keras run>/crossframework.csv``) unless ``write`` is
    False. Raises ``ValueError`` when the two runs share no (schedule, optimizer, seed)."""
    t, k = _summary(torch_run_dir), _summary(keras_run_dir)
    pairs = t.merge(k, on=KEYS, suffixes=("_torch", "_keras"))
    if pairs.empty:
        raise ValueError(f"cross-check: no configuration (schedule name, optimizer, seed) is in both runs; "
                         f"PyTorch run has {sorted(set(t['name']))}, Keras run has {sorted(set(k['name']))}")
    rows = []
    for (name, opt), g in pairs.groupby(["name", "optimizer"], sort=False):
        for metric in metrics:
            diffs = (g[f"{metric}_torch"].astype(float) - g[f"{metric}_keras"].astype(float)).to_numpy()
            rows.append(dict(config=f"{name} / {opt}", metric=metric, **paired_stats(diffs, alpha=alpha, seed=seed)))
    if pairs.groupby(["name", "optimizer"]).ngroups > 1:
        for metric in metrics:
            diffs = (pairs[f"{metric}_torch"].astype(float) - pairs[f"{metric}_keras"].astype(float)).to_numpy()
            rows.append(dict(config="all", metric=metric, **paired_stats(diffs, alpha=alpha, seed=seed)))
    df = pd.DataFrame(rows, columns=COLUMNS)
    if write:
        out = Path(out_csv) if out_csv is not None else _run_dir(keras_run_dir) / "crossframework.csv"
        tmp = out.with_name(out.name + ".tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(out)
    return df


def torch_counterpart(matrix):
    """The PyTorch half of a cross-framework check: a Keras matrix (``bench.matrix.Matrix``) without its
    ``keras-native:`` schedules, ``framework = "torch"``, named ``<name>-torch``; the lrcore texts (also
    ``keras.X(...)`` ones) mean the same schedule in both frameworks, so its runs pair with the Keras run's
    by schedule name. Baseline / contender are kept when they survive, else dropped."""
    keep = {n: t for n, t in matrix.schedules.items() if not t.strip().startswith("keras-native:")}
    if not keep:
        raise ValueError(f"matrix {matrix.name}: every schedule is keras-native; nothing runs in PyTorch")
    return matrix.replace(framework="torch", schedules=keep, name=f"{matrix.name}-torch",
                          baseline=matrix.baseline if matrix.baseline in keep else None,
                          contender=matrix.contender if matrix.contender in keep else None)


def verdict(df: pd.DataFrame, metric: str = "test_acc") -> str:
    """One sentence: do the frameworks differ on ``metric``?"""
    sub = df[(df["metric"] == metric) & (df["config"] != "all")]
    pooled = df[(df["metric"] == metric) & (df["config"] == "all")]
    tail = ""
    if not pooled.empty:
        r = pooled.iloc[0]
        tail = (f" Pooled over all {int(r.n_pairs)} pairs: PyTorch - Keras = {r.mean_diff:+.4f} "
                f"(95% CI {r.ci_low:+.4f} to {r.ci_high:+.4f}, p={r.p_value:.3g}, "
                f"{'significant' if r.significant else 'not significant'}).")
    if sub.empty:
        return f"No configuration was trained in both frameworks ({metric})."
    sig = sub[sub["significant"].astype(bool)]
    n_min = int(sub["n_pairs"].min())
    floor = 2 / 2 ** n_min if n_min else math.nan
    if sig.empty:
        return (f"PyTorch and Keras do not differ significantly on {metric} in any of the {len(sub)} configurations "
                f"compared (paired over {n_min}+ seeds; with {n_min} seeds the smallest attainable p is {floor:.3g})." + tail)
    items = ", ".join(f"{r.config} ({r.mean_diff:+.4f}, p={r.p_value:.3g})" for r in sig.itertuples())
    return f"PyTorch - Keras {metric} differs significantly in {len(sig)} of {len(sub)} configurations: {items}." + tail


try:
    import click
except ImportError:  # pragma: no cover
    click = None

if click is not None:
    @click.command("cross-check")
    @click.argument("torch_run")
    @click.argument("keras_run")
    @click.option("--out", "out_csv", default=None, type=click.Path(dir_okay=False),
                  help="CSV path (default: crossframework.csv in the Keras run's folder)")
    @click.option("--alpha", default=0.05, show_default=True, type=float, help="significance level")
    def crossframework_cmd(torch_run, keras_run, out_csv, alpha):
        """Compare a PyTorch run and a Keras run of the same schedules (paired over seeds)."""
        try:
            df = compare(torch_run, keras_run, out_csv, alpha=alpha)
        except (FileNotFoundError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        except Exception as e:  # RunError from resolve_run
            if type(e).__name__ == "RunError":
                raise click.ClickException(str(e)) from None
            raise
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            click.echo(df.to_string(index=False))
        click.echo(verdict(df))
        click.echo(f"wrote {Path(out_csv) if out_csv else _run_dir(keras_run) / 'crossframework.csv'}")
else:  # pragma: no cover
    crossframework_cmd = None
