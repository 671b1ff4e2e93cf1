"""bench.report on real run folders: trained here on a Fashion-MNIST subset (tests/data/report_run.py), with the
batched and the sequential trainer; statistics checked against direct computations from the run's files."""
from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench import report_stats as RS
from bench.commands_report import report_cmd
from bench.report import ReportError, write_report

_spec = importlib.util.spec_from_file_location("report_run", Path(__file__).parent / "data" / "report_run.py")
rr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rr)
REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    res = tmp_path_factory.mktemp("results")
    data = rr.small_data()
    batched = rr.make_run(res, data, "20261122-000000-tiny")
    sequential = rr.make_run(res, data, "20261122-000001-tiny-sequential", trainer="sequential")
    rr.write_speed_table(res, [batched, sequential])
    for name in ("conformance.csv", "speed/evaluate_cpu.csv"):  # the repository's committed tables
        if (REPO_RESULTS / name).is_file():
            (res / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_RESULTS / name, res / name)
    return res


@pytest.fixture(scope="module")
def run_dir(results):
    return results / "runs" / "20261122-000000-tiny"


@pytest.fixture(scope="module")
def run(run_dir):
    return RS.load_run(run_dir)


@pytest.fixture(scope="module")
def written(run_dir, results):
    return write_report(run_dir, results)


def _variant(src: Path, dst: Path, *, summary=None, history=None, meta=None) -> Path:
    """A copy of a run folder with its tables / meta edited by the given functions."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report.*", "plots"))
    if summary:
        summary(pd.read_csv(dst / "summary.csv")).to_csv(dst / "summary.csv", index=False)
    if history:
        history(pd.read_parquet(dst / "epochs.parquet")).to_parquet(dst / "epochs.parquet", index=False)
    if meta:
        m = json.loads((dst / "meta.json").read_text())
        meta(m)
        (dst / "meta.json").write_text(json.dumps(m))
    return dst


def _table(html: str, table_id: str) -> list[list[str]]:
    m = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert m, f"no table {table_id}"
    return [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)]


# ------------------------------------------------------------------------------------------ the report

def test_report_files_sections_and_images(written, run_dir):
    html_path, md_path = written
    html = html_path.read_text()
    md = md_path.read_text()
    for tid in ("configurations", "ranking", "paired", "throughput", "conformance", "evaluator-speed", "environment"):
        assert f'<table id="{tid}">' in html
    imgs = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html)
    assert [a for a, _ in imgs] == ["learning-rate curves of every schedule", "validation loss curves",
                                    "validation accuracy curves", "test accuracy heatmap, schedule x optimizer",
                                    "performance profiles", "throughput of batched vs sequential"]
    for _, b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html  # offline, no code
    for heading in ("## Summary", "### Configurations", "### Ranking per optimizer", "### Paired comparison with "
                    "constant", "### Conformance of lrcore", "### Evaluator speed (CPU)", "### Environment"):
        assert heading in md
    for name in ("lr.png", "val_loss.png", "val_acc.png", "heatmap.png", "profile.png", "throughput.png"):
        assert f"](plots/{name})" in md and (run_dir / "plots" / name).stat().st_size > 1000


def test_config_table_matches_summary(run, written):
    table = RS.config_table(run)
    s = run.summary
    assert len(table) == 8 and set(table["seeds"]) == {2}
    for r in table.itertuples():
        accs = s[(s["optimizer"] == r.optimizer) & (s["name"] == r.schedule)]["test_acc"].to_numpy()
        assert r.test_acc == pytest.approx(accs.mean())
        half = 12.706205 * accs.std(ddof=1) / math.sqrt(2)
        assert r.ci_low == pytest.approx(max(0.0, accs.mean() - half))
        assert r.ci_high == pytest.approx(min(1.0, accs.mean() + half))
        assert r.diverged == int(s[(s["optimizer"] == r.optimizer) & (s["name"] == r.schedule)]["diverged"].sum())
    hot = table[(table["optimizer"] == "sgd") & (table["schedule"] == "hot")].iloc[0]
    assert hot.diverged == 2 and hot.reached == 0 and math.isinf(hot.time_to_target_s)  # lr 300 blows up
    rows = _table(written[0].read_text(), "configurations")
    assert rows[0][:4] == ["optimizer", "schedule", "seeds", "test acc %"]
    assert ["sgd", "hot", "2"] == rows[1 + 3][:3] and rows[1 + 3][9] == "2/2"
    rank = RS.ranking(table)
    for opt, g in rank.groupby("optimizer"):
        assert list(g["rank"]) == list(range(1, 5))
        assert g["test_acc"].is_monotonic_decreasing


def test_time_to_target_from_history(run):
    ttt = RS.time_to_target(run).set_index("model")
    h = run.history
    reached = 0
    for m, g in h.sort_values("epoch").groupby("model"):
        clock = np.cumsum(g["model_time_s"].to_numpy())
        hit = np.flatnonzero((g["val_acc"].to_numpy() >= rr.TARGET) & ~g["diverged"].to_numpy())
        if len(hit):
            reached += 1
            assert ttt.loc[m, "time_to_target_s"] == pytest.approx(clock[hit[0]])
            assert ttt.loc[m, "epochs_to_target"] == hit[0] + 1
        else:
            assert math.isinf(ttt.loc[m, "time_to_target_s"])
    assert 0 < reached < len(ttt)  # the fixture's target splits the models


def test_paired_table_and_headline(run, written):
    paired = RS.paired_table(run)
    s = run.summary.set_index(["optimizer", "name", "seed"])["test_acc"]
    assert len(paired) == 2 * 3 and set(paired["baseline"]) == {"constant"}
    for r in paired.itertuples():
        d = np.array([s[(r.optimizer, r.schedule, k)] - s[(r.optimizer, "constant", k)] for k in rr.SEEDS])
        assert r.mean_diff == pytest.approx(d.mean())
        flips = [abs(a * d[0] + b * d[1]) >= abs(d.sum()) - 1e-12 for a in (1, -1) for b in (1, -1)]
        assert r.p_value == pytest.approx(np.mean(flips))
        half = 12.706 * d.std(ddof=1) / np.sqrt(2)  # paired t interval, t(0.975, 1) = 12.706
        assert (r.t_low, r.t_high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-3)
        assert r.significant == (r.t_low > 0 or r.t_high < 0)
        assert r.ci_low <= r.mean_diff + 1e-12 and r.mean_diff <= r.ci_high + 1e-12
    sentences = RS.headline(run, paired)
    assert list(sentences) == ["sgd", "adam"]
    for opt, text in sentences.items():
        r = paired[(paired["optimizer"] == opt) & (paired["schedule"] == "warmup_cosine")].iloc[0]
        verdict = "ties with" if not r.significant else ("wins against" if r.mean_diff > 0 else "loses against")
        assert text.startswith(f"{opt}: warmup_cosine {verdict} constant on test accuracy")
        assert "95% paired t interval" in text and "sign-flip p = " in text
        rough = RS.roughness_table(run)
        a = rough[(rough["optimizer"] == opt) & (rough["name"] == "warmup_cosine")]["roughness"].mean()
        b = rough[(rough["optimizer"] == opt) & (rough["name"] == "constant")]["roughness"].mean()
        assert f"change {a:.3g} vs {b:.3g}" in text
        assert ("is smoother" in text) == (a < b)
    html = written[0].read_text()
    assert all(t.replace("'", "&#x27;") in html for t in sentences.values())


def test_statistics_primitives():
    assert RS.sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    assert RS.sign_flip_p([0.0, 0.0]) == 1.0
    assert RS.sign_flip_p([0.01] * 6) == pytest.approx(2 / 64)
    assert RS.sign_flip_p([1.0, -1.0, 2.0, 0.5]) == pytest.approx(8 / 16)  # |sum| >= 2.5 in 8 of 16
    lo, hi = RS.bootstrap_interval([0.1, 0.2, 0.3, 0.4])
    assert 0.1 <= lo < 0.25 < hi <= 0.4 and (lo, hi) == RS.bootstrap_interval([0.1, 0.2, 0.3, 0.4])
    assert all(math.isnan(v) for v in RS.bootstrap_interval([0.3]))
    assert RS.t_quantile(1) == pytest.approx(12.7062, abs=1e-4)
    assert RS.t_quantile(40) == pytest.approx(2.0211, abs=1e-4)
    assert RS.t_quantile(200) == pytest.approx(1.9719, abs=1e-4)
    m, lo, hi = RS.mean_interval([0.8, 0.9, np.nan])
    assert m == pytest.approx(0.85) and hi - m == pytest.approx(12.706205 * np.std([0.8, 0.9], ddof=1) / math.sqrt(2))
    assert RS.roughness([1.0, 0.5, 0.4, 0.35, 0.33]) == pytest.approx(math.sqrt((0.05 ** 2 + 0.02 ** 2) / 2))
    assert RS.roughness(np.r_[np.linspace(2, 1, 11), 0.9]) == pytest.approx(0.1)  # last 2 of 11 changes
    assert math.isnan(RS.roughness([1.0])) and math.isnan(RS.roughness([1.0, np.nan, 0.5]))


def test_performance_profile(run):
    ratios, kept, total = RS.performance_profile(run, "error")
    assert total == 4 and kept == 4 and list(ratios.columns) == run.schedules
    assert np.allclose(ratios.min(axis=1), 1.0) and (ratios.to_numpy() >= 1).all()
    s = run.summary.set_index(["optimizer", "seed", "name"])["test_acc"]
    errs = {n: 1 - s[("adam", 1, n)] for n in run.schedules}
    assert ratios.loc[("adam", 1), "hot"] == pytest.approx(errs["hot"] / min(errs.values()))
    t_ratios, t_kept, _ = RS.performance_profile(run, "time")
    assert 0 < t_kept <= 4 and np.isinf(t_ratios["hot"]).all()


# ------------------------------------------------------------------------------------------ variants

def test_sequential_run_and_trainer_speed(results):
    html_path, _ = write_report(results / "runs" / "20261122-000001-tiny-sequential", results)
    html = html_path.read_text()
    env = dict((r[0], r[1]) for r in _table(html, "environment")[1:])
    assert env["trainer"] == "sequential"
    speed = _table(html, "throughput")
    assert speed[0][:2] == ["trainer", "device"] and {r[0] for r in speed[1:]} == {"batched", "sequential"}


def test_single_seed(run_dir, tmp_path, results):
    d = _variant(run_dir, tmp_path / "one-seed", summary=lambda s: s[s["seed"] == 0],
                 history=lambda h: h[h["seed"] == 0], meta=lambda m: m.update(seeds=[0]))
    html = write_report(d, results)[0].read_text()
    assert "One seed: accuracies have no interval" in html
    rows = _table(html, "configurations")
    assert all(r[4] == "n/a (1 seed)" for r in rows[1:])
    assert "difference" in html and "on 1 seed: no interval, no test" in html


def test_no_baseline_skips_paired_section(run_dir, tmp_path, results):
    d = _variant(run_dir, tmp_path / "no-constant", summary=lambda s: s[s["name"] != "constant"],
                 history=lambda h: h[h["name"] != "constant"])
    html = write_report(d, results)[0].read_text()
    assert '<table id="paired">' not in html
    assert "No paired comparison: the baseline schedule &#x27;constant&#x27; is not in this run" in html
    assert "sgd: no comparison: this run has no baseline schedule &#x27;constant&#x27;." in html


def test_matrix_names_baseline_contender_target(run_dir, tmp_path, results):
    def meta(m):
        m["matrix"].update(baseline="plateau", contender="constant", target_val_acc=0.5)
    d = _variant(run_dir, tmp_path / "other-baseline", meta=meta)
    run = RS.load_run(d)
    assert (run.baseline, run.contender, run.target) == ("plateau", "constant", 0.5)
    html = write_report(d, results)[0].read_text()
    assert "Paired comparison with plateau" in html and "sgd: constant ties with plateau" in html
    del_keys = _variant(run_dir, tmp_path / "defaults", meta=lambda m: [m["matrix"].pop(k) for k in
                                                                         ("baseline", "contender", "target_val_acc")])
    r2 = RS.load_run(del_keys)
    assert (r2.baseline, r2.contender, r2.target) == ("constant", "warmup_cosine", 0.85)


def test_keras_run_with_crossframework_table(run_dir, tmp_path, results, run):
    """A run labelled as the Keras trainer's, with a crossframework.csv in the Keras helper's columns."""
    d = _variant(run_dir, tmp_path / "keras", summary=lambda s: s.assign(trainer="keras"),
                 history=lambda h: h.assign(trainer="keras"), meta=lambda m: m.update(trainer="keras",
                                                                                        framework="keras"))
    p = RS.paired_table(run)
    pd.DataFrame(dict(config=p["schedule"] + "/" + p["optimizer"], metric="test_acc", mean_diff=p["mean_diff"],
                      ci_low=p["ci_low"], ci_high=p["ci_high"], p_value=p["p_value"],
                      significant=p["significant"])).to_csv(d / "crossframework.csv", index=False)
    html = write_report(d, results)[0].read_text()
    rows = _table(html, "crossframework")
    assert rows[0] == ["config", "metric", "mean_diff", "ci_low", "ci_high", "p_value", "significant"]
    assert len(rows) == 1 + len(p) and rows[1][0] == "warmup_cosine/sgd" and rows[1][6] == "no"
    assert "trainer keras" in html


def test_html_escapes_matrix_strings(run_dir, tmp_path, results):
    evil = "<script>alert(1)</script>"

    def rename(df):
        return df.assign(name=df["name"].replace("warmup_cosine", evil))

    def meta(m):
        m["matrix"]["schedules"] = {evil if k == "warmup_cosine" else k: v for k, v in m["matrix"]["schedules"].items()}
        m["matrix"]["contender"] = evil
        m["command"] = 'lrbench run "<img src=x onerror=alert(2)>"'
    d = _variant(run_dir, tmp_path / "evil", summary=rename, history=rename, meta=meta)
    html_path, md_path = write_report(d, results)
    html, md = html_path.read_text(), md_path.read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<script" not in md.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_report_with_nan_losses(run):
    """The diverged models (sgd "hot") have NaN losses: no crash, NaN roughness, flagged in the table."""
    h = run.history
    assert h[(h["optimizer"] == "sgd") & (h["name"] == "hot")]["diverged"].all()
    rough = RS.roughness_table(run)
    assert rough[(rough["optimizer"] == "sgd") & (rough["name"] == "hot")]["roughness"].isna().all()


# ------------------------------------------------------------------------------------------ command line

def test_cli_report(results, tmp_path):
    r = CliRunner().invoke(report_cmd, ["20261122-00000", "--results", str(results)])
    assert r.exit_code == 2 and "matches several runs: 20261122-000000-tiny, 20261122-000001" in r.output
    r = CliRunner().invoke(report_cmd, ["20261122-000001", "--results", str(results)])  # a unique prefix
    assert r.exit_code == 0, r.output
    assert "20261122-000001-tiny-sequential/report.html" in r.output and "report.md" in r.output
    r = CliRunner().invoke(report_cmd, ["nope", "--results", str(results)])
    assert r.exit_code == 2 and "no run 'nope'" in r.output
    assert "20261122-000000-tiny, 20261122-000001-tiny-sequential" in r.output
    broken = _variant(results / "runs" / "20261122-000000-tiny", tmp_path / "broken")
    (broken / "summary.csv").unlink()
    r = CliRunner().invoke(report_cmd, [str(broken), "--results", str(results)])
    assert r.exit_code == 1 and "missing summary.csv" in r.output and "Traceback" not in r.output
    with pytest.raises(ReportError, match="missing summary.csv"):
        write_report(broken, results)
