"""``lrbench verdict-changes OLD NEW`` (bench/report/verdict_changes.py): two runs' verdicts.csv joined row by
row. Known edits to a committed run's file are found, exactly; on two committed runs the counts agree with a
plain count of the two files; a folder without the file fails in one line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.report import verdict_changes as VC
from lrbench_process import lrbench

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "results" / "runs"
OLD = RUNS / "default-tuned-cpu"


def edited_copy(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A copy of OLD's verdicts.csv with four known edits: one verdict flipped, one rival changed, one row
    dropped, one row added."""
    v = pd.read_csv(OLD / "verdicts.csv")
    flip = v.index[(v["family"] == "schedule vs baseline") & (v["verdict"] == "win")][0]
    v.loc[flip, "verdict"] = "tie"
    rival = v.index[v["family"] == "schedule-free vs rival (chosen on tuning seeds)"][0]
    v.loc[rival, "versus"] = "sgd/constant"
    dropped = v.index[v["family"] == "tie with best: overall"][0]
    added = v.loc[[dropped]].assign(metric="test_acc_best")
    v = pd.concat([v.drop(index=dropped), added], ignore_index=True)
    new = tmp_path / "edited"
    new.mkdir()
    v.to_csv(new / "verdicts.csv", index=False)
    return new, pd.read_csv(OLD / "verdicts.csv").loc[[flip, rival, dropped]]


def test_known_edits_are_found_exactly(tmp_path):
    new, edited = edited_copy(tmp_path)
    flip, rival, dropped = edited.itertuples()
    c = VC.verdict_changes(VC.read_verdicts(OLD), VC.read_verdicts(new))
    old_rows = len(pd.read_csv(OLD / "verdicts.csv"))
    assert len(c) == old_rows + 1  # the added row's key is new; the dropped one stays as "only in old"
    changed = c[c["change"] != "unchanged"].set_index(VC.KEY)["change"].to_dict()
    assert changed == {(flip.family, flip.optimizer, flip.schedule, flip.metric): "win -> tie",
                       (dropped.family, dropped.optimizer, dropped.schedule, dropped.metric): "only in old",
                       (dropped.family, dropped.optimizer, dropped.schedule, "test_acc_best"): "only in new"}
    moved = c[c["versus_changed"]]
    assert len(moved) == 1 and moved.iloc[0]["optimizer"] == rival.optimizer
    assert (moved.iloc[0]["versus_old"], moved.iloc[0]["versus_new"]) == (rival.versus, "sgd/constant")
    t = VC.transitions(c)
    assert t["count"].sum() == len(c)
    assert t.query("family == @flip.family and old == 'win' and new == 'tie'")["count"].tolist() == [1]


def test_cli_counts_two_committed_runs_and_writes_the_table(tmp_path):
    old, new = RUNS / "precision-fp32-xeon", RUNS / "precision-bf16-xeon"
    r = lrbench("verdict-changes", old, new, "--out", tmp_path / "changes.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (pd.read_csv(p / "verdicts.csv").set_index(VC.KEY)["verdict"] for p in (old, new))
    shared = a.index.intersection(b.index)
    expected = int((a[shared] != b[shared]).sum()) + len(a.index.difference(b.index)) + len(b.index.difference(a.index))
    total = len(a.index.union(b.index))
    assert f"{expected} of {total} comparisons changed" in r.stdout, r.stdout
    assert expected > 0  # the two runs differ (bf16 turns some early-stopping wins into ties)
    written = pd.read_csv(tmp_path / "changes.csv")
    assert len(written) == total and (written["change"] != "unchanged").sum() == expected
    assert "win -> tie" in r.stdout


def test_a_folder_without_verdicts_fails_in_one_line(tmp_path):
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    (empty / "meta.json").write_text("{}")
    r = lrbench("verdict-changes", OLD, empty)
    assert r.returncode == 1
    assert "no verdicts.csv" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_duplicate_keys_are_refused(tmp_path):
    shutil.copytree(OLD, tmp_path / "dup", ignore=shutil.ignore_patterns("parts", "plots", "*.parquet"))
    v = pd.read_csv(tmp_path / "dup" / "verdicts.csv")
    pd.concat([v, v.iloc[:1]]).to_csv(tmp_path / "dup" / "verdicts.csv", index=False)
    with pytest.raises(ValueError, match="share a key"):
        VC.read_verdicts(tmp_path / "dup")
