"""bf16 against fp32: the same matrix trained in both precisions on the same seeds (the same initial weights and
batches), paired by seed.

``compare(bf16_run, fp32_run)`` writes into the bf16 run's folder ``precision.csv`` (per optimizer x schedule and
pooled: the mean paired difference bf16 - fp32 of test accuracy and final validation loss, its 95% t and
bootstrap intervals, the sign-flip p; :mod:`bench.report.crossframework`'s pairing and columns) and
``precision_verdicts.csv`` (every verdict of the report in each precision -- each schedule against the
baseline per optimizer, and each schedule-free comparison -- and whether they agree); the bf16 run's report
shows both (``lrbench cross-check BF16_RUN FP32_RUN`` runs it). The two runs must differ in precision only.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..results import atomic_write
from . import crossframework as CF
from . import stats as RS

__all__ = ["compare", "verdicts", "verdict_line", "SIDES", "VERDICT_COLUMNS"]

SIDES = "bf16 - fp32"
VERDICT_COLUMNS = ["kind", "optimizer", "subject", "fp32", "bf16", "same"]
#: meta.json keys that must agree for a paired comparison of precisions (besides the matrix's configurations)
SAME = ("framework", "trainer")


def _verdict(stats: dict) -> str:
    if stats["n"] < 2:
        return "no test"
    if not stats["significant"]:
        return "ties with"
    return "wins against" if stats["mean_diff"] > 0 else "loses against"


def verdicts(run: RS.Run) -> pd.DataFrame:
    """The report's verdicts of a run: per optimizer each schedule against the baseline (paired t interval of
    test accuracy: wins against / ties with / loses against) and each schedule-free comparison (beats /
    matches / loses to its family's best scheduled configuration). Columns: kind, optimizer, subject, verdict."""
    rows = []
    paired = RS.paired_table(run)
    for r in paired.to_dict("records"):
        rows.append(dict(kind="schedule vs baseline", optimizer=r["optimizer"],
                         subject=f"{r['schedule']} vs {r['baseline']}", verdict=_verdict(r)))
    for c in RS.schedule_free(run):
        rows.append(dict(kind="schedule-free", optimizer=c["twin"]["optimizer"],
                         subject=f"{c['twin']['schedule']} vs the best scheduled {c['family'].name} configuration",
                         verdict=c["verdict"]))
    return pd.DataFrame(rows, columns=["kind", "optimizer", "subject", "verdict"])


def _check(bf16: RS.Run, fp32: RS.Run):
    if bf16.precision != "bf16" or fp32.precision != "fp32":
        raise ValueError(f"precision check: give a bf16 run and an fp32 run, got {bf16.precision} "
                         f"({bf16.path.name}) and {fp32.precision} ({fp32.path.name})")
    for key in SAME:
        if bf16.meta.get(key) != fp32.meta.get(key):
            raise ValueError(f"precision check: the runs differ in {key} ({bf16.meta.get(key)} vs "
                             f"{fp32.meta.get(key)}): "
                             "a paired comparison of precisions needs runs that differ in precision only")
    mb, mf = dict(bf16.matrix), dict(fp32.matrix)
    for m in (mb, mf):
        for k in ("precision", "source", "name", "description"):
            m.pop(k, None)
    if mb != mf:
        diff = sorted(k for k in set(mb) | set(mf) if mb.get(k) != mf.get(k))
        raise ValueError(f"precision check: the two runs' matrices differ in {diff}: train the same matrix in both "
                         "precisions (lrbench run --matrix M --precision bf16 / fp32)")


def compare(bf16_run, fp32_run, out_csv=None, *, write: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paired table, verdict table) of a bf16 run against an fp32 run of the same matrix (module docstring),
    written unless ``write`` is False: the paired table to ``out_csv`` (default ``<bf16 run>/precision.csv``),
    the verdicts beside it (``<stem>_verdicts.csv``)."""
    b, f = RS.load_run(CF.run_dir(bf16_run)), RS.load_run(CF.run_dir(fp32_run))
    _check(b, f)
    paired = CF.paired_rows(b.summary, f.summary, ("bf16", "fp32"))
    vb, vf = verdicts(b), verdicts(f)
    both = vf.merge(vb, on=["kind", "optimizer", "subject"], how="outer", suffixes=("_fp32", "_bf16"))
    table = pd.DataFrame({"kind": both["kind"], "optimizer": both["optimizer"], "subject": both["subject"],
                          "fp32": both["verdict_fp32"].fillna("absent"), "bf16": both["verdict_bf16"].fillna("absent")})
    table["same"] = table["fp32"] == table["bf16"]
    if write:
        out = Path(out_csv) if out_csv is not None else b.path / "precision.csv"
        atomic_write(out, lambda p: paired.to_csv(p, index=False))
        atomic_write(out.with_name(out.stem + "_verdicts.csv"), lambda p: table[VERDICT_COLUMNS].to_csv(p, index=False))
    return paired, table[VERDICT_COLUMNS]


def verdict_line(paired: pd.DataFrame, table: pd.DataFrame) -> str:
    """One sentence: does bf16 change any verdict, and what it does to test accuracy pooled over every pair."""
    n = len(table)
    same = table["same"].astype(str).str.lower().isin(("true", "1"))
    changed = table[~same]
    if n == 0:
        head = "No verdict to compare (the runs have no baseline and no schedule-free optimizer)."
    elif changed.empty:
        head = f"bf16 changes no verdict: all {n} verdicts of the report are the same in fp32 and bf16."
    else:
        head = (f"bf16 changes {len(changed)} of {n} verdicts: " + "; ".join(
            f"{r.optimizer} {r.subject}: {r.fp32} in fp32, {r.bf16} in bf16" for r in changed.itertuples()) + ".")
    pooled = paired[(paired["config"] == "all") & (paired["metric"] == "test_acc")]
    if len(pooled):
        head += f" Pooled over every pair: {CF.describe(pooled.iloc[0], SIDES)}."
    sig = paired[(paired["config"] != "all") & (paired["metric"] == "test_acc")]
    if len(sig):
        k = sum(CF.is_significant(r) for _, r in sig.iterrows())
        head += (f" Per configuration, {k} of {len(sig)} differ significantly on test accuracy "
                 "(95% paired t interval; with this many configurations a few are expected by chance).")
    return head
