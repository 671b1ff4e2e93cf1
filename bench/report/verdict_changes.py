"""Which verdicts changed between two runs: their verdicts.csv files joined row by row.

A row is one comparison, keyed by ``(family, optimizer, schedule, metric)`` (unique within a verdicts.csv). Its
``change`` is ``"<old> -> <new>"`` when the verdict differs, ``unchanged`` when it does not, and ``only in old``
/ ``only in new`` when one run lacks the comparison. ``versus`` is compared too: a schedule-free optimizer's rival
or a family's best may be another configuration in the new run, and that is reported beside the verdict.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .verdicts import VERDICT_COLUMNS

__all__ = ["KEY", "read_verdicts", "verdict_changes", "transitions"]

KEY = ["family", "optimizer", "schedule", "metric"]
_COMPARED = ["versus", "n", "mean_diff_pp", "p_adjusted", "verdict"]


def read_verdicts(run_dir: Path | str) -> pd.DataFrame:
    """``<run_dir>/verdicts.csv``, checked: every column of ``VERDICT_COLUMNS``, and ``KEY`` unique."""
    path = Path(run_dir) / "verdicts.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no verdicts.csv (lrbench report {Path(run_dir).name} writes it)")
    v = pd.read_csv(path)
    missing = [c for c in VERDICT_COLUMNS if c not in v.columns]
    if missing:
        raise ValueError(f"{path}: not a verdicts.csv, columns {missing} are missing")
    dup = v[v.duplicated(KEY, keep=False)]
    if len(dup):
        raise ValueError(f"{path}: {len(dup)} rows share a key {KEY}, e.g. {dup.iloc[0][KEY].tolist()}")
    return v


def verdict_changes(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison in either run: ``KEY``, then ``<column>_old`` and ``<column>_new`` for ``versus, n,
    mean_diff_pp, p_adjusted, verdict``, then ``change`` and ``versus_changed``; sorted by family, changed rows
    first."""
    both = pd.merge(old[KEY + _COMPARED], new[KEY + _COMPARED], on=KEY, how="outer", suffixes=("_old", "_new"),
                    indicator=True)
    change = both["verdict_old"].astype(str) + " -> " + both["verdict_new"].astype(str)
    change = change.where(both["verdict_old"] != both["verdict_new"], "unchanged")
    change = change.where(both["_merge"] != "left_only", "only in old")
    both["change"] = change.where(both["_merge"] != "right_only", "only in new")
    both["versus_changed"] = (both["_merge"] == "both") & (both["versus_old"] != both["versus_new"])
    both["_unchanged"] = both["change"] == "unchanged"
    both = both.sort_values(["family", "_unchanged", "optimizer", "schedule", "metric"], kind="stable")
    return both.drop(columns=["_merge", "_unchanged"]).reset_index(drop=True)


def transitions(changes: pd.DataFrame) -> pd.DataFrame:
    """Per family, how many comparisons went from each old verdict to each new one (``-`` where a run lacks the
    comparison): columns ``family, old, new, count``."""
    t = changes.assign(old=changes["verdict_old"].fillna("-"), new=changes["verdict_new"].fillna("-"))
    return t.groupby(["family", "old", "new"]).size().rename("count").reset_index()
