"""The report's first screen in plain words, generated from verdicts.csv: the one-sentence answer, the tie sets,
and how many verdicts hold at both checkpoints.

No column names or internal terms here (no "final_val_acc", "contender", "factor"): names are spelled out by
:func:`label`; every number comes from a row of verdicts.csv (:mod:`bench.report.verdicts`).
"""
from __future__ import annotations

import pandas as pd

from . import families as F
from . import verdicts as V

__all__ = ["label", "answer", "tie_lines", "checkpoint_line", "hindsight_lines"]

_SCHEDULES = {"constant": "a constant LR", "step": "step decay", "exponential": "exponential decay",
              "cosine": "cosine", "warmup_cosine": "warmup + cosine", "onecycle": "one-cycle",
              "cyclic_triangular2": "cyclic (triangular2)", "cosine_restarts": "cosine with restarts",
              "wsd": "warmup-stable-decay", "inverse_sqrt": "inverse square root", "polynomial": "polynomial decay",
              "plateau": "reduce-on-plateau", "warmup_constant": "warmup + constant", "linear": "linear decay"}
_OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD + momentum", "nesterov": "Nesterov SGD", "rmsprop": "RMSprop",
               "adam": "Adam", "adamw": "AdamW", "sgd_schedulefree": "schedule-free SGD",
               "adamw_schedulefree": "schedule-free AdamW"}


def label(name: str) -> str:
    """A schedule, an optimizer or ``optimizer/schedule`` in words: ``adam/warmup_cosine`` -> "Adam with warmup +
    cosine"; unknown names with their underscores as spaces."""
    if "/" in name:
        o, s = name.split("/", 1)
        return f"{label(o)} with {label(s)}" if not F.is_schedule_free(o) else label(o)
    return _SCHEDULES.get(name) or _OPTIMIZERS.get(name) or name.replace("_", " ")


def _pp(x: float) -> str:
    return f"{x:+.2f} pp"


def _contender_clause(v: pd.DataFrame, contender: str, baseline: str, n_seeds: int) -> str:
    rows = v[(v["family"] == V.FAMILY_BASELINE) & (v["schedule"] == contender)]
    if rows.empty:
        return ""
    c = rows["verdict"].value_counts()
    n_fam = int((v["family"] == V.FAMILY_BASELINE).sum())
    what, base = label(contender).capitalize(), label(baseline)
    if c.get("too few seeds", 0) == len(rows):
        return (f"Too few seeds ({n_seeds}) to say whether {label(contender)} beats {base}: a verdict needs "
                f"{V.MIN_SEEDS} or more")
    text = f"{what} beats {base} for {c.get('win', 0)} of {len(rows)} optimizers"
    if c.get("loss", 0):
        text += f", loses for {c['loss']}"
    if c.get("tie", 0):
        text += f", ties for {c['tie']}"
    if c.get("too few seeds", 0):
        text += f", has too few seeds for {c['too few seeds']}"
    text += f" (Holm-corrected across {n_fam} schedule-vs-{baseline} comparisons, {n_seeds} seeds)"
    wins = v[(v["family"] == V.FAMILY_BASELINE) & (v["verdict"] == "win")]
    losses = v[(v["family"] == V.FAMILY_BASELINE) & (v["verdict"] == "loss")]
    return text + f"; over all schedules, {len(wins)} of {n_fam} beat {base} and {len(losses)} lose{'s' if len(losses) == 1 else ''}"


def _tie_clause(v: pd.DataFrame, means: dict[str, float]) -> str:
    ties = V.tie_sets(v).get("overall")
    if not ties:
        return ""
    tied = [means[k] for k in ties["tied"] if k in means]
    lo, hi = 100 * min(tied), 100 * max(tied)
    best, n_tied, n_undecided = ties["best"], len(ties["tied"]), len(ties["undecided"])
    if n_undecided and n_undecided == n_tied - 1:
        return (f"the highest mean is {label(best)} ({100 * means[best]:.2f}%), but too few seeds to tell it apart "
                f"from {'any' if not ties['worse'] else n_undecided} of the other configurations")
    if n_tied == 1:
        return (f"{label(best)} is best at {100 * means[best]:.2f}% test accuracy, every other configuration "
                "significantly worse after Holm's correction")
    text = (f"{n_tied} configurations tie for best at {lo:.2f}-{hi:.2f}% test accuracy (highest mean: {label(best)}, "
            f"{100 * means[best]:.2f}%; tie = not significantly worse after Holm's correction")
    return text + (f"; {n_undecided} of them with too few seeds to tell)" if n_undecided else ")")


def _schedule_free_clause(v: pd.DataFrame) -> str:
    words = {"win": "beats", "loss": "loses to", "tie": "ties with", "too few seeds": "has too few seeds against"}
    parts = []
    for r in v[v["family"] == V.FAMILY_SF].itertuples():
        parts.append(f"{label(r.optimizer)} {words[r.verdict]} its rival chosen on the tuning seeds "
                     f"({label(r.versus)}, {_pp(r.mean_diff_pp)})")
    return "; ".join(parts)


def answer(v: pd.DataFrame, contender: str, baseline: str, n_seeds: int, means: dict[str, float]) -> str:
    """The one-sentence answer: the contender against the baseline (wins per optimizer, Holm-corrected), the
    overall tie set with its range, and each schedule-free optimizer against its rival. ``means``:
    ``optimizer/schedule`` -> mean test accuracy."""
    clauses = [c for c in (_contender_clause(v, contender, baseline, n_seeds), _tie_clause(v, means),
                           _schedule_free_clause(v)) if c]
    return "; ".join(clauses) + "." if clauses else "No comparison could be made in this run."


def tie_lines(v: pd.DataFrame, ranks: pd.DataFrame, means: dict[str, float]) -> list[str]:
    """One line per optimizer (and one overall): the best configuration with its bootstrap rank interval, the
    others that tie with it, and how many are significantly worse."""
    ranks = ranks.set_index(["optimizer", "schedule"])
    out = []
    for scope, t in V.tie_sets(v).items():
        o, s = t["best"].split("/", 1)
        col = "rank" if scope == "overall" else "rank_in_optimizer"
        lo, hi = int(ranks.loc[(o, s), f"{col}_low"]), int(ranks.loc[(o, s), f"{col}_high"])
        others = [k for k in t["tied"] if k != t["best"]]
        name = (lambda k: label(k.split("/", 1)[1])) if scope != "overall" else label
        head = "Overall" if scope == "overall" else label(scope)
        line = (f"{head}: highest mean {name(t['best'])} ({100 * means[t['best']]:.2f}%, rank {lo}-{hi} in 95% of "
                f"seed resamples); ")
        line += (f"tied with it: {', '.join(name(k) for k in others)}" if others and len(others) <= 12 else
                 f"tied with it: {len(others)} others" if others else "no other configuration ties with it")
        if t["undecided"]:
            line += f" ({len(t['undecided'])} of them with too few seeds to tell)"
        if t["worse"]:
            line += f"; significantly worse: {len(t['worse'])}"
        out.append(line + ".")
    return out


def checkpoint_line(v: pd.DataFrame) -> str:
    """How many schedule-vs-baseline verdicts are the same on the final weights and at the early-stopping
    checkpoint."""
    a = v[v["family"] == V.FAMILY_BASELINE].set_index(["optimizer", "schedule"])["verdict"]
    b = v[v["family"] == V.FAMILY_BASELINE_BEST].set_index(["optimizer", "schedule"])["verdict"]
    both = a.index.intersection(b.index)
    if not len(both):
        return ""
    same = int((a[both] == b[both]).sum())
    decided = int(((a[both] == b[both]) & a[both].isin(["win", "loss"])).sum())
    return (f"Final weights vs the early-stopping checkpoint (the epoch of best validation accuracy): {same} of "
            f"{len(both)} schedule-vs-baseline verdicts are the same under both ({decided} of them wins or losses); "
            f"{len(both) - same} change.")


def hindsight_lines(v: pd.DataFrame) -> list[str]:
    """Each schedule-free optimizer against its family's best mean on the evaluation seeds: chosen with hindsight
    on the seeds it is judged on, so an upper bound on what the rival chosen on the tuning seeds could do."""
    words = {"win": "beats", "loss": "loses to", "tie": "ties with", "too few seeds": "has too few seeds against"}
    return [f"Upper bound (hindsight): {label(r.optimizer)} {words[r.verdict]} its family's best on the evaluation "
            f"seeds, {label(r.versus)}: {_pp(r.mean_diff_pp)} [{r.ci_low_pp:+.2f}, {r.ci_high_pp:+.2f}], Holm-adjusted "
            f"p = {r.p_adjusted:.3g}, {r.n} seeds." for r in v[v["family"] == V.FAMILY_SF_HINDSIGHT].itertuples()]
