"""The numbers of the comparison report: a run folder's tables and the paired statistics over seeds.

``load_run`` reads a run folder (a tuned run's evaluation models as ``summary`` / ``history``, its tuning
models apart); ``config_table``, ``ranking``, ``paired_table``, ``headline``, ``performance_profile`` and
``schedule_free`` (twin vs the best scheduled configuration of its family) compute what the report shows.
Every rule (intervals, pairing, roughness, epochs and time to target): docs/BENCH.md, "bench/report/stats.py".
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import collapsed
from . import families as F

__all__ = ["Run", "ReportError", "load_run", "t_quantile", "mean_interval", "bootstrap_interval",
           "sign_flip_p", "sign_flip_floor", "sign_flip_can_decide", "sign_flip_note", "paired_stats",
           "step_costs", "time_to_target", "config_table", "ranking", "paired_table", "roughness",
           "roughness_window", "roughness_table", "headline", "performance_profile", "schedule_free",
           "schedule_free_sentence", "N_BOOTSTRAP", "ALPHA"]

N_BOOTSTRAP = 10_000
ALPHA = 0.05
# two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30
_T975 = [12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272]


class ReportError(ValueError):
    """A run folder the report cannot read (missing or malformed file), with the path and the rule."""


@dataclasses.dataclass
class Run:
    """A run folder's contents. ``summary`` / ``history`` (summary.csv / epochs.parquet): the evaluation models
    (stage "eval", or "main" in an untuned run); ``tuning_summary`` / ``tuning_history``: a tuned run's tuning
    models (stages "tune", "tune+1", ...); ``tuning`` (tuning.csv), ``find_lr`` (find_lr/find_lr.csv) and
    ``step_cost`` (step_cost.csv): None when the run has no such file."""
    path: Path
    meta: dict
    history: pd.DataFrame
    summary: pd.DataFrame
    throughput: pd.DataFrame | None
    tuning_summary: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    tuning_history: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    tuning: pd.DataFrame | None = None
    find_lr: pd.DataFrame | None = None
    step_cost: pd.DataFrame | None = None

    @property
    def tuned(self) -> bool:
        """Whether the run tuned each configuration's learning rate (a ``[tuning]`` matrix)."""
        return self.tuning is not None or len(self.tuning_summary) > 0

    @property
    def tuning_spec(self) -> dict:
        """The run's ``[tuning]`` table (lr_factors, tuning_seeds, metric, extend) and, once selected, meta.json's
        ``tuning`` entry (selected, on_edge, models, ...); {} for an untuned run."""
        return {**(self.matrix.get("tuning") or {}), **(self.meta.get("tuning") or {})}

    @property
    def steps_per_epoch(self) -> int:
        """``ceil(n_train / batch_size)``: the optimizer steps of one epoch."""
        bs = int(self.matrix.get("batch_size") or (self.throughput["batch_size"].iloc[0] if self.throughput is not None
                                                    and "batch_size" in self.throughput else 128))
        return max(1, -(-(self.n_train or 0) // bs))

    @property
    def matrix(self) -> dict:
        return self.meta.get("matrix") or {}

    @property
    def baseline(self) -> str:
        return str(self.matrix.get("baseline") or "constant")

    @property
    def contender(self) -> str:
        return str(self.matrix.get("contender") or "warmup_cosine")

    @property
    def target(self) -> float:
        v = self.matrix.get("target_val_acc")
        return 0.85 if v is None else float(v)

    @property
    def optimizers(self) -> list[str]:
        return list(dict.fromkeys(self.summary["optimizer"]))

    @property
    def schedules(self) -> list[str]:
        return list(dict.fromkeys(self.summary["name"]))

    @property
    def seeds(self) -> list[int]:
        return sorted(set(int(s) for s in self.summary["seed"]))

    @property
    def epochs(self) -> int:
        return int(self.meta.get("epochs") or self.matrix.get("epochs") or (self.history["epoch"].max() + 1))

    @property
    def precision(self) -> str:
        """The training precision ("fp32" | "bf16"); runs that predate the field trained in fp32."""
        return str(self.meta.get("precision") or self.matrix.get("precision") or "fp32")

    @property
    def n_train(self) -> int | None:
        n = (self.meta.get("data") or {}).get("n_train")
        if n is None and self.throughput is not None and "n_train" in self.throughput:
            n = int(self.throughput["n_train"].iloc[0])
        return None if n is None else int(n)


_SUMMARY_NEEDED = ["model", "name", "optimizer", "seed", "diverged", "best_val_acc", "best_val_epoch",
                   "test_acc", "epochs_trained"]
_HISTORY_NEEDED = ["model", "name", "optimizer", "seed", "epoch", "val_loss", "val_acc", "lr"]


def load_run(run_dir: Path) -> Run:
    """Read a run folder; :class:`ReportError` names a missing file or column."""
    run_dir = Path(run_dir)
    need = {"meta.json": run_dir / "meta.json", "epochs.parquet": run_dir / "epochs.parquet",
            "summary.csv": run_dir / "summary.csv"}
    missing = [n for n, p in need.items() if not p.is_file()]
    if missing:
        raise ReportError(f"run folder {run_dir}: missing {', '.join(missing)} (a run writes them when it finishes)")
    try:
        meta = json.loads(need["meta.json"].read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{need['meta.json']}: not valid JSON ({e})") from None
    try:
        history = pd.read_parquet(need["epochs.parquet"])
    except Exception as e:  # noqa: BLE001 - pyarrow's errors: truncated or not parquet
        raise ReportError(f"{need['epochs.parquet']}: unreadable ({type(e).__name__}: {e}); a run rewrites it "
                          f"from its checked parts when it finishes (lrbench run --resume)") from None
    try:
        summary = pd.read_csv(need["summary.csv"], keep_default_na=False, na_values=["", "nan", "NaN"])
    except (ValueError, OSError) as e:
        raise ReportError(f"{need['summary.csv']}: unreadable ({type(e).__name__}: {e})") from None
    for frame, cols, name in ((summary, _SUMMARY_NEEDED, "summary.csv"), (history, _HISTORY_NEEDED, "epochs.parquet")):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise ReportError(f"{run_dir / name}: missing column(s) {', '.join(lacking)}")
    if summary.empty:
        raise ReportError(f"{need['summary.csv']}: no configurations")
    for frame in (summary, history):
        frame["name"] = frame["name"].astype(str)
        frame["optimizer"] = frame["optimizer"].astype(str)
        frame["stage"] = frame["stage"].astype(str) if "stage" in frame else "main"  # runs before stages: "main"
    _one_precision(run_dir, summary, history)
    # a collapse (non-finite loss, or final validation accuracy below 2x chance) counts as diverged everywhere
    n_classes = int(((meta.get("matrix") or {}).get("model") or {}).get("widths", [10])[-1])
    summary["nonfinite"] = summary["diverged"].map(lambda v: str(v).strip().lower() in ("true", "1"))
    summary["diverged"] = collapsed(summary, n_classes)
    for frame, name in ((summary, "summary.csv"), (history, "epochs.parquet")):  # never pooled (DESIGN.md)
        found = set(frame["precision"].fillna("fp32").astype(str)) if "precision" in frame else {"fp32"}
        want = str(meta.get("precision") or (meta.get("matrix") or {}).get("precision") or "fp32")
        if found != {want}:
            raise ReportError(f"{run_dir / name}: rows of precision {sorted(found)} in a run of precision {want!r}; "
                              "runs of different precision are never pooled (compare them with lrbench cross-check)")
    if "model_time_s" not in history:  # older runs: the whole epoch time
        history["model_time_s"] = history.get("epoch_time_s", np.nan)
    tp_path = run_dir / "throughput.csv"
    throughput = pd.read_csv(tp_path) if tp_path.is_file() else None
    tune_s, tune_h = summary["stage"].str.startswith("tune"), history["stage"].str.startswith("tune")
    if tune_s.all():
        raise ReportError(f"{need['summary.csv']}: a tuned run with tuning models only (stages "
                          f"{', '.join(dict.fromkeys(summary['stage']))}): the report answers from the evaluation "
                          "stage; finish the run first (lrbench run --resume <run-id>)")
    return Run(run_dir, meta, history[~tune_h].reset_index(drop=True), summary[~tune_s].reset_index(drop=True),
               throughput, tuning_summary=summary[tune_s].reset_index(drop=True),
               tuning_history=history[tune_h].reset_index(drop=True),
               tuning=_optional_csv(run_dir / "tuning.csv"), find_lr=_optional_csv(run_dir / "find_lr" / "find_lr.csv"),
               step_cost=_optional_csv(run_dir / "step_cost.csv"))


def _one_precision(run_dir: Path, summary: pd.DataFrame, history: pd.DataFrame) -> None:
    """Refuse a run whose rows were trained in more than one precision: runs of different precision are never
    pooled (DESIGN.md), and neither are the models inside one run."""
    for frame, name in ((summary, "summary.csv"), (history, "epochs.parquet")):
        if "precision" in frame:
            found = sorted(set(frame["precision"].astype(str)))
            if len(found) > 1:
                raise ReportError(f"{run_dir / name}: rows of precisions {', '.join(found)} in one run; runs (and "
                                  "models) of different precision are never pooled: report each precision's run "
                                  "on its own")


def _optional_csv(path: Path) -> pd.DataFrame | None:
    """A CSV the run may or may not have; a malformed one is a :class:`ReportError` naming it."""
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------- statistics

def t_quantile(df: int) -> float:
    """t(0.975, df): the table for df <= 30, the Cornish-Fisher expansion beyond (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    if df <= 30:
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_interval(x) -> tuple[float, float, float]:
    """(mean, low, high): Student-t 95% interval of the mean; low = high = NaN for fewer than 2 values."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, math.nan, math.nan
    h = t_quantile(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return m, m - h, m + h


def bootstrap_interval(d, n_resamples: int = N_BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of ``d`` (resampling its entries with replacement)."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def sign_flip_p(d, seed: int = 0) -> float:
    """Two-sided paired permutation p-value: share of sign vectors s with ``|mean(s*d)| >= |mean(d)|``."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n == 0:
        return math.nan
    obs = abs(d.mean())
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(100_000, n))
    stat = np.abs((signs * d).mean(axis=1))
    return float(np.mean(stat >= obs - 1e-12 * max(1.0, obs)))


def sign_flip_floor(n: int) -> float:
    """The smallest p the exact two-sided sign-flip test can give with ``n`` paired values: ``2 / 2**n`` (the
    two sign vectors all + and all -); 1 for none."""
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0 ** n)


def sign_flip_can_decide(n: int) -> bool:
    """Whether the sign-flip p of ``n`` pairs can reach :data:`ALPHA` at all (``n >= 6``); a p that cannot is not
    printed as evidence."""
    return sign_flip_floor(n) <= ALPHA


def sign_flip_note(n: int, unit: str = "seeds") -> str:
    """The one sentence printed instead of sign-flip p-values that cannot reach :data:`ALPHA` with ``n`` pairs."""
    return (f"With {n} {unit} the sign-flip test cannot go below p = {sign_flip_floor(n):.3g}; its p-values are not "
            f"shown, and verdicts rest on the paired t interval.")


# --------------------------------------------------------------------------------------------- per model

def step_costs(run: Run) -> dict[str, float]:
    """optimizer -> seconds per model-step measured side by side (step_cost.csv's ``model_step_s``: one step of
    a stack of the run's chunk size, every model with that optimizer, divided by the models); {} without the file."""
    sc = run.step_cost
    if sc is None or not {"optimizer", "model_step_s"} <= set(sc.columns):
        return {}
    return {str(o): float(v) for o, v in zip(sc["optimizer"], sc["model_step_s"]) if np.isfinite(float(v)) and v > 0}


def time_to_target(run: Run) -> pd.DataFrame:
    """Per model: ``epochs_to_target`` (1-based; NaN when never reached or diverged first) and
    ``time_to_target_s = epochs_to_target * steps_per_epoch * model_step_s[optimizer]`` (:func:`step_costs`;
    ``inf`` when never reached, NaN when the run has no measured step cost). A chunk's wall time never enters:
    its share per model depends on what else the chunk held."""
    cost, spe = step_costs(run), run.steps_per_epoch
    h = run.history.sort_values(["model", "epoch"])
    rows = []
    for (m, opt), g in h.groupby(["model", "optimizer"], sort=True):
        ok = (g["val_acc"].to_numpy() >= run.target) & np.isfinite(g["val_loss"].to_numpy())
        if "diverged" in g:
            ok &= ~g["diverged"].astype(bool).to_numpy()
        e = int(g["epoch"].iloc[int(np.argmax(ok))]) + 1 if ok.any() else math.nan
        t = math.inf if not ok.any() else (e * spe * cost[opt] if opt in cost else math.nan)
        rows.append(dict(model=m, epochs_to_target=e, time_to_target_s=t, reached=bool(ok.any()), epochs_run=len(g)))
    return pd.DataFrame(rows, columns=["model", "epochs_to_target", "time_to_target_s", "reached", "epochs_run"])


def per_model(run: Run) -> pd.DataFrame:
    """summary.csv joined with the epochs and time to target."""
    return run.summary.merge(time_to_target(run), on="model", how="left")


def config_table(run: Run) -> pd.DataFrame:
    """One row per (optimizer, schedule), in run order (see the module docstring for each column)."""
    s = per_model(run)
    rows = []
    for (opt, name), g in s.groupby(["optimizer", "name"], sort=False):
        mean, lo, hi = mean_interval(g["test_acc"])
        lo, hi = max(lo, 0.0) if np.isfinite(lo) else lo, min(hi, 1.0) if np.isfinite(hi) else hi
        hit = g["reached"].fillna(False).astype(bool)
        n_hit = int(hit.sum())
        rows.append(dict(optimizer=opt, schedule=name, seeds=len(g), peak_lr=float(g["peak_lr"].iloc[0]),
                         test_acc=mean, ci_low=lo, ci_high=hi,
                         best_val_acc=float(g["best_val_acc"].mean()),
                         best_epoch=float((g["best_val_epoch"][g["best_val_epoch"] >= 0] + 1).median())
                         if (g["best_val_epoch"] >= 0).any() else math.nan,
                         epochs_to_target=float(g["epochs_to_target"][hit].median()) if n_hit else math.nan,
                         time_to_target_s=float(g["time_to_target_s"][hit].median()) if n_hit else math.inf,
                         reached=n_hit, diverged=int(g["diverged"].sum())))
    return pd.DataFrame(rows)


def ranking(table: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer, schedules by mean test accuracy: rank = 1 + how many ranked schedules have a higher mean
    (equal means share a rank; NaN accuracies last). Configurations whose every seed diverged get rank NaN
    (``ranked`` False) and come after the ranked ones."""
    out = []
    for opt, g in table.groupby("optimizer", sort=False):
        ranked = g["diverged"] < g["seeds"]
        g = g.assign(ranked=ranked).sort_values(["ranked", "test_acc"], ascending=[False, False],
                                                na_position="last").reset_index(drop=True)
        n = int(ranked.sum())
        acc = g["test_acc"].astype(float).fillna(-np.inf).to_numpy()[:n]
        rank = np.r_[1 + (acc[None, :] > acc[:, None]).sum(axis=1), np.full(len(g) - n, np.nan)]
        out.append(pd.DataFrame(dict(optimizer=opt, rank=rank, schedule=g["schedule"], test_acc=g["test_acc"],
                                     diverged=g["diverged"], seeds=g["seeds"], ranked=g["ranked"])))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _paired(s: pd.DataFrame, opt: str, a: str, b: str, col: str) -> tuple[np.ndarray, list[int]]:
    """``col`` of schedule ``a`` minus that of ``b``, same optimizer, per seed present (and finite) in both."""
    x = s[(s["optimizer"] == opt) & (s["name"] == a)].set_index("seed")[col]
    y = s[(s["optimizer"] == opt) & (s["name"] == b)].set_index("seed")[col]
    seeds = sorted(set(x.index) & set(y.index))
    d = np.array([x[k] - y[k] for k in seeds], dtype=np.float64)
    keep = np.isfinite(d)
    return d[keep], [k for k, ok in zip(seeds, keep) if ok]


def paired_table(run: Run) -> pd.DataFrame:
    """Each schedule vs the baseline, per optimizer, on test accuracy (empty when there is no baseline)."""
    s = run.summary
    base = run.baseline
    rows = []
    if base not in set(s["name"]):
        return pd.DataFrame()
    for opt in run.optimizers:
        for name in run.schedules:
            if name == base:
                continue
            d, seeds = _paired(s, opt, name, base, "test_acc")
            if len(d) == 0:
                continue
            rows.append(dict(optimizer=opt, schedule=name, baseline=base, **paired_stats(d)))
    return pd.DataFrame(rows)


def paired_stats(d) -> dict:
    """The paired statistics of differences ``d`` (one per seed): ``n``, ``mean_diff``, the bootstrap interval
    (``ci_low``, ``ci_high``), the Student-t interval (``t_low``, ``t_high``; NaN below 2 seeds), the sign-flip
    ``p_value``, ``significant`` (the t interval excludes 0) and how many seeds are better / worse
    (``wins``, ``losses``). The rule of :func:`paired_table`, for any two configurations paired by seed."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        return dict(n=0, mean_diff=math.nan, ci_low=math.nan, ci_high=math.nan, t_low=math.nan, t_high=math.nan,
                    p_value=math.nan, significant=False, wins=0, losses=0)
    lo, hi = bootstrap_interval(d)
    _, t_lo, t_hi = mean_interval(d)
    return dict(n=len(d), mean_diff=float(d.mean()), ci_low=lo, ci_high=hi, t_low=t_lo, t_high=t_hi,
                p_value=sign_flip_p(d), significant=bool(len(d) >= 2 and (t_lo > 0 or t_hi < 0)),
                wins=int((d > 0).sum()), losses=int((d < 0).sum()))


def roughness_window(epochs: int) -> int:
    """How many of an ``epochs``-epoch curve's last changes :func:`roughness` uses: the last 20%, at least 3
    (all ``epochs - 1`` when fewer)."""
    return max(0, min(epochs - 1, max(3, math.ceil(0.2 * epochs))))


def roughness(curve) -> float:
    """Standard deviation (ddof 0) of the epoch-to-epoch changes over the last :func:`roughness_window` of
    them (NaN with fewer than 2 changes or non-finite losses); a steady trend scores 0."""
    v = np.asarray(curve, dtype=np.float64)
    k = roughness_window(len(v))
    if k < 2:
        return math.nan
    d = np.diff(v)[-k:]
    return float(np.std(d)) if np.all(np.isfinite(d)) else math.nan


def roughness_table(run: Run) -> pd.DataFrame:
    """Per model: ``roughness`` of its validation-loss curve (trained epochs only)."""
    rows = []
    for (m, name, opt, seed), g in run.history.sort_values("epoch").groupby(["model", "name", "optimizer", "seed"]):
        if "trained" in g:
            g = g[g["trained"].astype(bool)]
        rows.append(dict(model=m, name=name, optimizer=opt, seed=int(seed), roughness=roughness(g["val_loss"])))
    return pd.DataFrame(rows, columns=["model", "name", "optimizer", "seed", "roughness"])


def _pct(x: float) -> str:
    return f"{100 * x:+.2f} pp"


_VERDICT_WORDS = {"win": "wins against", "loss": "loses against", "tie": "ties with",
                  "too few seeds": "has too few seeds for a verdict against"}


def headline(run: Run, paired: pd.DataFrame | None = None, verdicts: pd.DataFrame | None = None) -> dict[str, str]:
    """optimizer -> one sentence: contender vs baseline (test accuracy) and the end-of-training smoothness.
    Schedule-free optimizers have no sentence here (they run a warmup-only schedule: :func:`schedule_free`).
    With ``verdicts`` (verdicts.csv), the verdict and its Holm-adjusted p are that file's row; else the
    unadjusted 95% paired t interval decides."""
    paired = paired_table(run) if paired is None else paired
    rows = {}
    if verdicts is not None and len(verdicts):
        v = verdicts[(verdicts["family"] == "schedule vs baseline") & (verdicts["schedule"] == run.contender)]
        rows = {r.optimizer: r for r in v.itertuples()}
    names = set(run.summary["name"])
    base, cont = run.baseline, run.contender
    out = {}
    rough = roughness_table(run)
    for opt in run.optimizers:
        if F.is_schedule_free(opt):  # no baseline or contender schedule: see schedule_free
            continue
        if base not in names or cont not in names:
            absent = [f"{k} schedule {v!r}" for k, v in (("baseline", base), ("contender", cont)) if v not in names]
            out[opt] = f"{opt}: no comparison: this run has no {' and no '.join(absent)}."
            continue
        row = paired[(paired["optimizer"] == opt) & (paired["schedule"] == cont)] if len(paired) else paired
        if row is None or len(row) == 0:
            out[opt] = f"{opt}: no comparison: {cont} and {base} share no seed with finite accuracies."
            continue
        r = row.iloc[0]
        n = int(r["n"])
        holm = ""
        if opt in rows:
            verdict = _VERDICT_WORDS[rows[opt].verdict]
            if np.isfinite(rows[opt].p_adjusted):
                holm = (f", Holm-adjusted p = {rows[opt].p_adjusted:.3g} ({rows[opt].test} test, over the run's "
                        f"{int((verdicts['family'] == 'schedule vs baseline').sum())} schedule-vs-baseline comparisons)")
        elif not r["significant"]:
            verdict = "ties with"
        else:
            verdict = "wins against" if r["mean_diff"] > 0 else "loses against"
        if n >= 2:  # a sign-flip p that cannot reach ALPHA with n seeds is no evidence: not printed
            flip = (f", sign-flip p = {r['p_value']:.3g}" if sign_flip_can_decide(n) else "") + holm
            stat = (f"mean paired difference {_pct(r['mean_diff'])}, 95% paired t interval "
                    f"[{_pct(r['t_low'])}, {_pct(r['t_high'])}], bootstrap [{_pct(r['ci_low'])}, "
                    f"{_pct(r['ci_high'])}]{flip}, {n} seeds")
        else:
            stat = f"difference {_pct(r['mean_diff'])} on 1 seed: no interval, no test"
        sentence = f"{opt}: {cont} {verdict} {base} on test accuracy ({stat})"
        a = rough[(rough["optimizer"] == opt) & (rough["name"] == cont)].set_index("seed")["roughness"]
        b = rough[(rough["optimizer"] == opt) & (rough["name"] == base)].set_index("seed")["roughness"]
        seeds = [k for k in sorted(set(a.index) & set(b.index)) if np.isfinite(a[k]) and np.isfinite(b[k])]
        if not seeds:
            sentence += "; smoothness not measurable (fewer than 3 epochs or a diverged curve)."
        else:
            ra, rb = float(np.mean([a[k] for k in seeds])), float(np.mean([b[k] for k in seeds]))
            smoother = sum(a[k] < b[k] for k in seeds)
            word = "smoother" if ra < rb else ("not smoother" if ra > rb else "as smooth")
            sentence += (f"; its validation loss is {word} over the last 20% of training (standard deviation of "
                         f"the epoch-to-epoch change {ra:.3g} vs {rb:.3g}; smoother in {smoother}/{len(seeds)} "
                         "seeds).")
        out[opt] = sentence
    return out


def performance_profile(run: Run, metric: str = "time") -> tuple[pd.DataFrame, int, int]:
    """(ratios, kept, total): ratio to the best schedule per (optimizer, seed) workload.

    ``metric="time"``: epochs to target (``inf`` when not reached). A workload is one optimizer, so its cost per
    step is the same for every schedule and the ratio of times equals the ratio of epochs: the measured step
    cost cancels, and a chunk's wall time never enters. ``metric="error"``: test error ``1 - test_acc`` (NaN
    counted as ``inf``). ``ratios`` has one column per schedule, one row per kept workload; ``kept`` / ``total``
    count the workloads. Schedule-free optimizers are left out: each runs only its warmup-only schedule, which
    would be the best of its own workloads by default.
    """
    s = per_model(run)
    s = s[~s["optimizer"].map(F.is_schedule_free)]
    names = [n for n in run.schedules if n in set(s["name"])]
    if metric == "time":
        s["value"] = s["epochs_to_target"].astype(float).fillna(math.inf)
    else:
        s["value"] = (1.0 - s["test_acc"]).where(s["test_acc"].notna(), math.inf)
    wide = s.pivot_table(index=["optimizer", "seed"], columns="name", values="value", aggfunc="first")
    wide = wide.reindex(columns=names).astype(float).fillna(math.inf)
    best = wide.min(axis=1)
    keep = np.isfinite(best) & (best > 0)
    ratios = wide[keep].div(best[keep], axis=0)
    return ratios, int(keep.sum()), len(wide)


# ------------------------------------------------------------------------------- do you need a schedule?

def _points(x: float) -> str:
    return f"{100 * x:+.2f}"


def _sf_config(table: pd.DataFrame, opt: str, schedule: str) -> dict:
    r = table[(table["optimizer"] == opt) & (table["schedule"] == schedule)].iloc[0]
    return dict(optimizer=opt, schedule=schedule, seeds=int(r["seeds"]), test_acc=float(r["test_acc"]),
                epochs_to_target=float(r["epochs_to_target"]), time_to_target_s=float(r["time_to_target_s"]),
                reached=int(r["reached"]), diverged=int(r["diverged"]))


def schedule_free(run: Run, table: pd.DataFrame | None = None) -> list[dict]:
    """One comparison per schedule-free configuration of a family's twin in the run (family order).

    Each: ``family`` (:class:`bench.report.families.Family`), ``twin`` and ``best`` (dicts: optimizer, schedule, seeds, test_acc,
    epochs_to_target, time_to_target_s, reached, diverged; ``best`` None when the family has no scheduled
    configuration that kept a seed from diverging), ``candidates`` (how many scheduled configurations the best
    was picked from), ``stats`` (:func:`paired_stats` of twin minus best test accuracy over
    the seeds both have with finite accuracies) and ``verdict``: "beats" / "loses to" (the 95% paired t interval
    excludes 0), "matches" (it contains 0), "no verdict" (one paired seed), "no comparison" (none).
    The best scheduled configuration (:func:`_pick_best`): in a tuned run, the one whose selected learning rate
    has the highest tuning metric on the tuning seeds (chosen before the evaluation seeds are looked at;
    ``picked_on`` "tuning"); in an untuned run, the highest mean test accuracy among the family's scheduled
    configurations not diverged in every seed (the ranking rule of :func:`ranking`; ``picked_on`` "hindsight").
    ``eval_rank``: the best's rank by mean test accuracy among the candidates on the evaluation seeds."""
    table = config_table(run) if table is None else table
    s = run.summary
    out = []
    for fam in F.FAMILIES:
        twins = table[table["optimizer"] == fam.twin]
        if twins.empty:
            continue
        cands = table[table["optimizer"].isin(fam.members)]
        best, picked_on, n_cands = _pick_best(run, cands)
        rank = None
        if best is not None:
            acc = cands["test_acc"].astype(float).fillna(-math.inf)
            rank = 1 + int((acc > best["test_acc"]).sum())
            best = {**best, "eval_rank": rank}
        for sched in dict.fromkeys(twins["schedule"]):
            twin = _sf_config(table, fam.twin, sched)
            d = np.array([])
            if best is not None:
                x = s[(s["optimizer"] == fam.twin) & (s["name"] == sched)].set_index("seed")["test_acc"]
                y = s[(s["optimizer"] == best["optimizer"]) & (s["name"] == best["schedule"])].set_index("seed")[
                    "test_acc"]
                seeds = sorted(set(x.index) & set(y.index))
                d = np.array([float(x[k]) - float(y[k]) for k in seeds], dtype=np.float64)
                d = d[np.isfinite(d)]
            st = paired_stats(d)
            if st["n"] == 0:
                verdict = "no comparison"
            elif st["n"] < 2:
                verdict = "no verdict"
            elif st["significant"]:
                verdict = "beats" if st["mean_diff"] > 0 else "loses to"
            else:
                verdict = "matches"
            out.append(dict(family=fam, twin=twin, best=best, candidates=n_cands, stats=st, verdict=verdict,
                            picked_on=picked_on))
    return out


def _pick_best(run: Run, cands: pd.DataFrame) -> tuple[dict | None, str, int]:
    """(the family's best scheduled configuration or None, "tuning" | "hindsight", candidates).

    Tuned run: among the candidates with a selected factor in tuning.csv, the highest ``mean`` of the tuning
    metric at that factor (the tuning seeds only; ties: the first in run order), with ``tuning_metric`` and
    ``tuning_mean`` added. Untuned run: the highest mean test accuracy among candidates not diverged in every
    seed (this is hindsight: chosen on the seeds it is then judged on)."""
    t = run.tuning
    if run.tuned and t is not None and {"optimizer", "schedule", "selected", "mean"} <= set(t.columns):
        sel = t[t["selected"].map(lambda v: str(v).strip().lower() in ("true", "1"))]
        sel = sel.set_index(["optimizer", "schedule"])["mean"].astype(float)
        keys = [(o, n) for o, n in zip(cands["optimizer"], cands["schedule"]) if (o, n) in sel.index
                and np.isfinite(sel[(o, n)])]
        if not keys:
            return None, "tuning", 0
        o, n = max(keys, key=lambda k: sel[k])  # max keeps the first of equal values: run order
        metric = str(run.tuning_spec.get("metric") or (t["metric"].iloc[0] if "metric" in t else "metric"))
        return ({**_sf_config(cands, o, n), "tuning_metric": metric, "tuning_mean": float(sel[(o, n)])},
                "tuning", len(keys))
    ranked = cands[(cands["diverged"] < cands["seeds"]) & np.isfinite(cands["test_acc"].astype(float))]
    if ranked.empty:
        return None, "hindsight", len(cands)
    b = ranked.loc[ranked["test_acc"].astype(float).idxmax()]
    return _sf_config(cands, b["optimizer"], b["schedule"]), "hindsight", len(cands)


def _time_text(c: dict) -> str:
    """Epochs to the target (median over the seeds that reached it), with seconds when the run's step cost was
    measured (epochs x steps per epoch x the optimizer's cost per model-step), or "never"."""
    if c["reached"] == 0:
        return "never" + (f" (0/{c['seeds']} seeds)" if c["seeds"] > 1 else "")
    e = c["epochs_to_target"]
    text = f"{e:g} epoch{'s' if e != 1 else ''}"
    if math.isfinite(c["time_to_target_s"]):
        text += f" = {c['time_to_target_s']:.3g} s"
    return text + (f" ({c['reached']}/{c['seeds']} seeds)" if c["reached"] < c["seeds"] else "")


def schedule_free_sentence(c: dict, target: float) -> str:
    """The comparison in words and numbers (twin minus best, percentage points of test accuracy)."""
    fam, twin, best, st = c["family"], c["twin"], c["best"], c["stats"]
    who = f"{fam.twin_label} ({twin['optimizer']} + {twin['schedule']})"
    div = (f" {fam.twin_label} diverged in {twin['diverged']} of {twin['seeds']} seeds (its accuracy there is "
           "that of the weights frozen at divergence)." if twin["diverged"] else "")
    if best is None:
        return (f"{who}: no comparison: this run has no scheduled {fam.name} configuration "
                f"({', '.join(fam.members)}) that " + ("was selected in tuning." if c.get("picked_on") == "tuning"
                                                       else "kept a seed from diverging.") + div)
    if c.get("picked_on") == "tuning":
        how = (f"chosen on the tuning seeds: the highest {best['tuning_metric']} at its selected learning rate "
               f"({100 * best['tuning_mean']:.2f}%) of {c['candidates']}; rank {best['eval_rank']} of "
               f"{c['candidates']} on the evaluation seeds")
    else:
        how = f"best of {c['candidates']}"
    other = (f"its rival, the {fam.name} configuration {best['optimizer']} + {best['schedule']} ({how})"
             if c.get("picked_on") == "tuning" else
             f"the best scheduled {fam.name} configuration ({best['optimizer']} + {best['schedule']}, {how})")
    tt = (f"; time to {100 * target:g}% validation accuracy: {_time_text(twin)} vs {_time_text(best)}.")
    if c["verdict"] == "no comparison":
        return f"{who}: no comparison with {other}: no seed where both have a finite test accuracy.{div}"
    if c["verdict"] == "no verdict":
        return (f"{who} vs {other}: {_points(st['mean_diff'])} points of test accuracy on 1 seed: no interval, no "
                f"verdict{tt}{div}")
    return (f"{who} {c['verdict']} {other}: {_points(st['mean_diff'])} points of test accuracy (twin minus best), 95% "
            f"paired t interval [{_points(st['t_low'])}, {_points(st['t_high'])}], {st['n']} seeds{tt}{div}")
