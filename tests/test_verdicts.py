"""verdicts.csv (bench/report/verdicts.py): Holm's adjustment against its step-down definition, the paired tests
against scipy, the rules for 'too few seeds', every committed run's file recomputed from its summary.csv alone,
and the report's sentences agreeing with the file."""
from __future__ import annotations

import html as H
import itertools
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss

from bench.report import answer as RA
from bench.report import stats as RS
from bench.report import verdicts as V
from bench.report.render import build_report, write_report

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(p.parent for p in (ROOT / "results" / "runs").glob("*/verdicts.csv"))


# ------------------------------------------------------------------------------------------- Holm


def holm_by_definition(p: list[float], alpha: float) -> set[int]:
    """Holm's procedure as stated: sort ascending, reject while p(k) <= alpha / (m - k), stop at the first failure."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out = set()
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        out.add(i)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=30), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_adjusted_p_rejects_exactly_what_the_step_down_procedure_rejects(p, alpha):
    adj = V.holm(p)
    assert np.all(adj >= np.asarray(p) - 1e-15) and np.all(adj <= 1.0)
    assert {i for i, a in enumerate(adj) if a <= alpha} == holm_by_definition(p, alpha)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in the raw order


def test_holm_by_hand_and_missing_values():
    assert V.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = V.holm([0.02, math.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


# ------------------------------------------------------------------------------------------ tests


def test_paired_p_agrees_with_scipy_on_fresh_random_differences():
    rng = np.random.default_rng()
    for n in (3, 5, 10):
        x, y = rng.normal(0.89, 0.003, n), rng.normal(0.888, 0.003, n)
        d = x - y
        assert V.paired_p(d, "t") == pytest.approx(ss.ttest_rel(x, y).pvalue, rel=1e-10)
        assert V.paired_p(d, "wilcoxon") == pytest.approx(ss.wilcoxon(x, y, method="exact").pvalue, rel=1e-10)
        signs = np.array(list(itertools.product([1, -1], repeat=n)))
        exact = np.mean(np.abs((signs * d).mean(axis=1)) >= abs(d.mean()) - 1e-12)
        assert V.paired_p(d, "sign-flip") == pytest.approx(exact)
    with pytest.raises(ValueError, match="test must be one of t, sign-flip, wilcoxon, got 'z'"):
        V.paired_p([0.1, 0.2], "z")


@pytest.mark.parametrize("n, low, high, p, want", [
    (2, 0.5, 1.5, 0.001, "too few seeds"),         # fewer than 3 seeds: never a win
    (5, 1.22, 1.22, 0.0, "too few seeds"),         # zero-width interval (every seed the same difference)
    (5, math.nan, math.nan, math.nan, "too few seeds"),
    (10, 0.2, 0.9, 0.01, "win"), (10, -0.9, -0.2, 0.01, "loss"), (10, 0.2, 0.9, 0.06, "tie"),
])
def test_verdict_rules(n, low, high, p, want):
    assert V.verdict_of(n, (low + high) / 2 if np.isfinite(low) else 0.0, low, high, p) == want


# ------------------------------------------------------------------------- recomputed from summary.csv


def recompute_baseline_family(run_dir: Path, metric: str) -> pd.DataFrame:
    """The schedule-vs-baseline rows from summary.csv with scipy and :func:`holm_by_definition` only."""
    s = pd.read_csv(run_dir / "summary.csv")
    meta = json.loads((run_dir / "meta.json").read_text())
    if "stage" in s:
        s = s[~s["stage"].astype(str).str.startswith("tune")]
    base = (meta.get("matrix") or {}).get("baseline") or "constant"
    rows = []
    for opt in dict.fromkeys(s["optimizer"]):
        if str(opt).endswith("_schedulefree"):
            continue
        b = s[(s["optimizer"] == opt) & (s["name"] == base)].set_index("seed")[metric]
        for name in dict.fromkeys(s["name"]):
            a = s[(s["optimizer"] == opt) & (s["name"] == name)].set_index("seed")[metric]
            seeds = sorted(set(a.index) & set(b.index))
            if name == base or not seeds:
                continue
            x, y = a[seeds].to_numpy(float), b[seeds].to_numpy(float)
            d = x - y
            p = (math.nan if len(d) < 2 else 1.0 if np.all(d == 0) else  # identical: no evidence of a difference
                 ss.ttest_rel(x, y).pvalue if np.std(d) > 0 else math.nan)
            rows.append(dict(optimizer=opt, schedule=name, n=len(d), mean_diff_pp=100 * d.mean(), p=p,
                             sd=np.std(d, ddof=1) if len(d) > 1 else math.nan))
    df = pd.DataFrame(rows)
    ok = [i for i, p in enumerate(df["p"]) if np.isfinite(p)]
    ps = [df["p"].iloc[i] for i in ok]
    rejected = {ok[i] for i in holm_by_definition(ps, 0.05)} if ps else set()
    df["verdict"] = ["too few seeds" if r.n < 3 or not (r.sd > 0) else
                     ("win" if r.mean_diff_pp > 0 else "loss") if i in rejected else "tie"
                     for i, r in enumerate(df.itertuples())]
    return df


@pytest.mark.skipif(not COMMITTED, reason="no committed run has a verdicts.csv")
@pytest.mark.parametrize("run_dir", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_verdicts_recompute_from_summary_csv(run_dir):
    v = pd.read_csv(run_dir / "verdicts.csv")
    assert list(v.columns) == V.VERDICT_COLUMNS
    again = V.verdicts(RS.load_run(run_dir))
    pd.testing.assert_frame_equal(v, again, check_dtype=False, rtol=1e-9)
    for family, metric in ((V.FAMILY_BASELINE, "test_acc"), (V.FAMILY_BASELINE_BEST, "test_acc_best")):
        got = v[v["family"] == family].reset_index(drop=True)
        if got.empty:
            continue
        want = recompute_baseline_family(run_dir, metric)
        assert list(zip(got["optimizer"], got["schedule"])) == list(zip(want["optimizer"], want["schedule"]))
        assert (got["n"].to_numpy() == want["n"].to_numpy()).all()
        assert np.allclose(got["mean_diff_pp"], want["mean_diff_pp"], rtol=1e-9)
        assert np.allclose(got["p"], want["p"], rtol=1e-8, equal_nan=True)
        assert list(got["verdict"]) == list(want["verdict"])
        assert set(got["test"]) == {"t"} and (got["versus"] == got["optimizer"] + "/" + (
            json.loads((run_dir / "meta.json").read_text())["matrix"].get("baseline") or "constant")).all()


# ------------------------------------------------------------------------------ a real tuned run


@pytest.fixture(scope="module")
def tuned(tuned_report_run, tmp_path_factory):
    res = tmp_path_factory.mktemp("verdicts")
    run_dir = res / "runs" / tuned_report_run.name
    shutil.copytree(tuned_report_run, run_dir)
    write_report(run_dir, res)
    return run_dir


def test_the_report_writes_verdicts_and_says_what_they_say(tuned):
    v = pd.read_csv(tuned / "verdicts.csv", keep_default_na=False, na_values=["", "nan"])
    run = RS.load_run(tuned)
    assert set(v["family"]) >= {V.FAMILY_BASELINE, V.FAMILY_BASELINE_BEST, V.FAMILY_SF, V.FAMILY_SF_HINDSIGHT,
                                V.FAMILY_TIES_OVERALL}
    assert set(v["verdict"]) <= {"win", "loss", "tie", "too few seeds"}
    for _, g in v.groupby("family"):  # Holm within each family, nothing pooled across them
        assert np.allclose(g["p_adjusted"], V.holm(g["p"].to_numpy()), equal_nan=True)
    page = H.unescape((tuned / "report.html").read_text())
    words = {"win": "wins against", "loss": "loses against", "tie": "ties with",
             "too few seeds": "has too few seeds for a verdict against"}
    for r in v[(v["family"] == V.FAMILY_BASELINE) & (v["schedule"] == run.contender)].itertuples():
        assert f"{r.optimizer}: {run.contender} {words[r.verdict]} {run.baseline} on test accuracy" in page
    first = page.split("<h2>Verdicts</h2>")[0]
    answer = re.search(r'<p id="answer" class="lead">(.*?)</p>', first).group(1)
    wins = int((v[(v["family"] == V.FAMILY_BASELINE) & (v["schedule"] == run.contender)]["verdict"] == "win").sum())
    n_opt = int(((v["family"] == V.FAMILY_BASELINE) & (v["schedule"] == run.contender)).sum())
    assert f"Warmup + cosine beats a constant LR for {wins} of {n_opt} optimizers" in answer
    assert "final_val_acc" not in first and "contender" not in first and "factor" not in first
    assert first.index('id="answer"') < first.index('id="ties"') < first.index("heatmap")
    ties = V.tie_sets(v)["overall"]
    assert f"{len(ties['tied'])} configurations tie for best" in answer


def test_two_seeds_never_declare_a_win(tuned, tmp_path):
    """The quick matrix's old failure: 2 seeds with the same difference gave a zero-width 'win'."""
    d = tmp_path / "runs" / "two"
    shutil.copytree(tuned, d)
    s = pd.read_csv(d / "summary.csv")
    s = s[s["stage"].str.startswith("tune") | s["seed"].isin(sorted(set(s.loc[s["stage"] == "eval", "seed"]))[:2])]
    s.to_csv(d / "summary.csv", index=False)
    v = V.verdicts(RS.load_run(d))
    assert (v["verdict"] == "too few seeds").all() and (v["n"] <= 2).all()
    page = H.unescape(build_report(d, tmp_path)[0])
    assert " wins against " not in page and "Too few seeds (2) to say whether warmup + cosine beats" in page
    # the tie set: nothing can be shown worse than the best on 2 seeds, so every configuration stays in it
    ties = V.tie_sets(v)["overall"]
    assert len(ties["tied"]) == len(v[v["family"] == V.FAMILY_TIES_OVERALL]) + 1 and not ties["worse"]
    answer = re.search(r'<p id="answer" class="lead">(.*?)</p>', page).group(1)
    assert "but too few seeds to tell it apart from any of the other configurations" in answer
    assert "tie for best" not in answer and " is best at " not in answer


def test_tie_sets_keep_what_cannot_be_shown_worse():
    """A tie set is the best and every configuration whose verdict against it is not a loss: ties, and those
    with too few seeds to tell (listed again as undecided); losses are the significantly worse."""
    v = pd.DataFrame({"family": [V.FAMILY_TIES_OVERALL] * 4, "optimizer": ["sgd", "adam", "adamw", "rmsprop"],
                      "schedule": ["cosine", "step", "wsd", "constant"], "versus": ["sgd/wsd"] * 4,
                      "verdict": ["tie", "loss", "too few seeds", "loss"]})
    t = V.tie_sets(v)["overall"]
    assert t == {"best": "sgd/wsd", "tied": ["sgd/wsd", "sgd/cosine", "adamw/wsd"],
                 "worse": ["adam/step", "rmsprop/constant"], "undecided": ["adamw/wsd"]}
    means = {"sgd/wsd": 0.9, "sgd/cosine": 0.89, "adamw/wsd": 0.88, "adam/step": 0.8, "rmsprop/constant": 0.7}
    line = RA._tie_clause(v, means)
    assert line.startswith("3 configurations tie for best at 88.00-90.00% test accuracy")
    assert "1 of them with too few seeds to tell" in line
    only = RA._tie_clause(v.assign(verdict="loss"), means)
    assert only.startswith("SGD with warmup-stable-decay is best at 90.00%") and "significantly worse" in only


def test_rank_intervals_contain_the_observed_rank(tuned):
    r = V.rank_intervals(RS.load_run(tuned), n_resamples=500)
    assert (r["rank_low"] <= r["rank"]).all() and (r["rank"] <= r["rank_high"]).all()
    assert (r["rank_in_optimizer_low"] <= r["rank_in_optimizer"]).all()
    assert sorted(r["rank"]) == list(r["rank"])


def test_plain_labels():
    assert RA.label("adam/warmup_cosine") == "Adam with warmup + cosine"
    assert RA.label("sgd_schedulefree/warmup_constant") == "schedule-free SGD"
    assert RA.label("my_schedule") == "my schedule"
