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

from bench.report import crossframework as CF
from bench.report import plots as RP
from bench.report import stats as RS
from bench.cli import report_cmd
from bench.report.render import ReportError, _throughput_rows, build_report, write_report

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


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report draws, in order (each still rendered to PNG as usual)."""
    made = []
    render = RP.png

    def keep(fig):
        made.append(fig)
        return render(fig)
    monkeypatch.setattr(RP, "png", keep)
    return made


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


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
    assert [a for a, _ in imgs] == ["test accuracy heatmap, schedule x optimizer",  # first: the picture
                                    "learning-rate curves of every schedule", "validation loss curves",
                                    "validation accuracy curves", "performance profiles",
                                    "Training throughput: batched vs sequential"]
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
    html = written[0].read_text()
    rows = _table(html, "configurations")
    # no step_cost.csv in this run: epochs to target only, no seconds column
    assert rows[0] == ["optimizer", "schedule", "peak lr", "seeds", "test acc %", "95% interval", "best val acc %",
                       "epoch of best", "epochs to target", "reached target", "diverged"]
    assert ["sgd", "hot", "0.1", "2"] == rows[1 + 3][:4] and rows[1 + 3][10] == "2/2" and rows[1 + 3][8] == "never"
    per = RS.time_to_target(run).merge(s, on="model")
    for r, cells in zip(table.itertuples(), rows[1:]):
        g = per[(per["optimizer"] == r.optimizer) & (per["name"] == r.schedule)]
        hit = g[g["epochs_to_target"].notna()]
        assert r.reached == len(hit) and cells[2] == f"{rr.PEAKS[r.optimizer]:.3g}"
        if len(hit):
            assert r.epochs_to_target == hit["epochs_to_target"].median()
            assert cells[8] == f"{hit['epochs_to_target'].median():g}"
            assert math.isnan(r.time_to_target_s)  # no measured step cost: no seconds
        else:
            assert math.isnan(r.epochs_to_target) and cells[8] == "never" and math.isinf(r.time_to_target_s)
    assert "No step_cost.csv in the run folder: times are given in epochs only" in html


def test_ranking_leaves_out_configurations_whose_every_seed_diverged(run, written):
    table = RS.config_table(run)
    rank = RS.ranking(table)
    for opt, g in rank.groupby("optimizer", sort=False):
        ranked = g[g["ranked"]]
        acc = ranked["test_acc"].to_numpy()  # 1 + how many have a higher mean: equal means share a rank
        assert list(ranked["rank"]) == [1 + int((acc > a).sum()) for a in acc]
        assert ranked["test_acc"].is_monotonic_decreasing
        assert (g.index[g["ranked"]].max() < g.index[~g["ranked"]].min()) if (~g["ranked"]).any() else True
        assert g[~g["ranked"]]["rank"].isna().all() and (g[~g["ranked"]]["diverged"] == g[~g["ranked"]]["seeds"]).all()
    sgd = rank[rank["optimizer"] == "sgd"]
    assert list(sgd["schedule"])[-1] == "hot" and not sgd["ranked"].iloc[-1] and sgd["ranked"].iloc[:-1].all()
    # adam at lr x 3000 keeps a finite loss but may sit below twice chance: a collapse counts as diverged
    adam_hot = run.summary[(run.summary["optimizer"] == "adam") & (run.summary["name"] == "hot")]
    alive = bool((~adam_hot["nonfinite"] & (adam_hot["final_val_acc"] >= 0.2)).any())
    assert rank[(rank["optimizer"] == "adam") & (rank["schedule"] == "hot")]["ranked"].iloc[0] == alive
    assert rank[(rank["optimizer"] == "adam") & (rank["schedule"] != "hot")]["ranked"].all()
    html = written[0].read_text()
    rows = _table(html, "ranking")
    assert rows[0] == ["optimizer", "rank", "rank 95% interval", "schedule", "test acc %", "diverged"]
    hot = [r for r in rows[1:] if r[0] == "sgd" and r[3] == "hot"][0]
    assert hot[1] == "not ranked" and hot[2] == "n/a" and hot[5] == "2/2"
    for r in rows[1:]:
        if r[1] != "not ranked":  # each ranked configuration's interval brackets its rank
            lo, hi = map(int, r[2].split("-"))
            assert lo <= int(r[1]) <= hi
    assert "Not ranked (listed last): configurations whose every seed diverged" in html


def test_time_to_target_from_history(run, run_dir, tmp_path):
    """Epochs to target from the history; seconds only as epochs x steps per epoch x the optimizer's measured cost
    per model-step (step_cost.csv), never the chunk's wall time shared by its models."""
    ttt = RS.time_to_target(run).set_index("model")
    h = run.history
    reached = 0
    for m, g in h.sort_values("epoch").groupby("model"):
        hit = np.flatnonzero((g["val_acc"].to_numpy() >= rr.TARGET) & ~g["diverged"].to_numpy())
        if len(hit):
            reached += 1
            assert ttt.loc[m, "epochs_to_target"] == hit[0] + 1 and math.isnan(ttt.loc[m, "time_to_target_s"])
        else:
            assert math.isinf(ttt.loc[m, "time_to_target_s"]) and math.isnan(ttt.loc[m, "epochs_to_target"])
    assert 0 < reached < len(ttt)  # the fixture's target splits the models
    d = _variant(run_dir, tmp_path / "costed")
    pd.DataFrame(dict(optimizer=["sgd", "adam"], n_models=16, model_step_s=[0.002, 0.003],
                      device_name="x")).to_csv(d / "step_cost.csv", index=False)
    costed = RS.load_run(d)
    spe = math.ceil(2000 / rr.BATCH)
    assert costed.steps_per_epoch == spe
    t2 = RS.time_to_target(costed).merge(costed.summary[["model", "optimizer"]], on="model").set_index("model")
    for m, r in t2.iterrows():
        want = r["epochs_to_target"] * spe * {"sgd": 0.002, "adam": 0.003}[r["optimizer"]]
        assert (r["time_to_target_s"] == pytest.approx(want)) if r["reached"] else math.isinf(r["time_to_target_s"])
    html = build_report(d, tmp_path)[0]
    assert _table(html, "configurations")[0][9] == "time to target"
    assert (f"Time to target = epochs x {spe} steps per epoch x the optimizer&#x27;s measured cost per "
            "model-step") in html


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
    v = pd.read_csv(written[0].parent / "verdicts.csv")
    sentences = RS.headline(run, paired, v)
    assert list(sentences) == ["sgd", "adam"]
    for opt, text in sentences.items():
        r = v[(v["family"] == "schedule vs baseline") & (v["optimizer"] == opt) & (v["schedule"] == "warmup_cosine")]
        assert r["verdict"].iloc[0] == "too few seeds"  # 2 seeds: never a win or a loss
        assert text.startswith(f"{opt}: warmup_cosine has too few seeds for a verdict against constant on test "
                               "accuracy")
        assert "95% paired t interval" in text and "sign-flip p" not in text  # 2 seeds: p >= 0.5, no evidence
        rough = RS.roughness_table(run)
        a = rough[(rough["optimizer"] == opt) & (rough["name"] == "warmup_cosine")]["roughness"].mean()
        b = rough[(rough["optimizer"] == opt) & (rough["name"] == "constant")]["roughness"].mean()
        assert f"standard deviation of the epoch-to-epoch change {a:.3g} vs {b:.3g}" in text
        assert ("is smoother" in text) == (a < b)
    html = written[0].read_text()
    assert all(t.replace("'", "&#x27;") in html for t in sentences.values())
    assert RS.sign_flip_note(2) in html and all(r[7] == "n/a (&gt;= 0.5)" for r in _table(html, "paired")[1:])


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
    # standard deviation of the last max(3, ceil(0.2 E)) epoch-to-epoch changes (all E - 1 when fewer)
    assert [RS.roughness_window(e) for e in (1, 2, 3, 4, 5, 10, 15, 16, 40)] == [0, 1, 2, 3, 3, 3, 3, 4, 8]
    assert RS.roughness([1.0, 0.5, 0.4, 0.35, 0.33]) == pytest.approx(np.std([-0.1, -0.05, -0.02]))
    assert RS.roughness(np.linspace(2, 1, 30)) == pytest.approx(0.0, abs=1e-12)  # a steady trend is smooth
    wobble = np.linspace(2, 1, 30) + 0.01 * (-1) ** np.arange(30)  # the same trend with a +-0.01 zigzag
    assert RS.roughness(wobble) == pytest.approx(0.02, rel=1e-9)  # changes -1/29 +- 0.02: SD 0.02
    assert RS.roughness(np.r_[np.ones(16), 0.5]) == pytest.approx(np.std([0, 0, 0, -0.5]))  # last 4 of 16
    assert math.isnan(RS.roughness([1.0, 0.5])) and math.isnan(RS.roughness([1.0]))  # fewer than 2 changes
    assert math.isnan(RS.roughness([1.0, np.nan, 0.5, 0.4]))


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
    assert all(r[5] == "n/a (1 seed)" for r in rows[1:])
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
    # 2 seeds: no verdict (verdicts.csv: "too few seeds")
    assert "Paired comparison with plateau" in html and "sgd: constant has too few seeds for a verdict against plateau" in html
    del_keys = _variant(run_dir, tmp_path / "defaults", meta=lambda m: [m["matrix"].pop(k) for k in
                                                                         ("baseline", "contender", "target_val_acc")])
    r2 = RS.load_run(del_keys)
    assert (r2.baseline, r2.contender, r2.target) == ("constant", "warmup_cosine", 0.85)


def test_keras_run_with_crossframework_table(run_dir, tmp_path, results, run):
    """A run labelled as the Keras trainer's, with a crossframework.csv written by bench.report.crossframework from
    paired differences chosen so that the verdicts are known: the table in pp and the verdict in words."""
    d = _variant(run_dir, tmp_path / "keras", summary=lambda s: s.assign(trainer="keras"),
                 history=lambda h: h.assign(trainer="keras"), meta=lambda m: m.update(trainer="keras",
                                                                                        framework="keras"))
    diffs = {("a / adam", "test_acc"): [-0.0025, -0.0030, -0.0021],  # consistent: t interval excludes 0
             ("a / adam", "final_val_loss"): [0.01, -0.02, 0.005],
             ("b / adam", "test_acc"): [0.004, -0.006, 0.001],  # mixed signs: not significant
             ("b / adam", "final_val_loss"): [0.001, 0.002, -0.004]}
    rows = [dict(config=c, metric=m, **CF.paired_stats(v)) for (c, m), v in diffs.items()]
    for m in CF.METRICS:
        rows.append(dict(config="all", metric=m, **CF.paired_stats(
            [x for (c, mm), v in diffs.items() if mm == m for x in v])))
    cross = pd.DataFrame(rows, columns=CF.COLUMNS)
    pooled_p = float(cross[(cross["config"] == "all") & (cross["metric"] == "test_acc")]["p_value"].iloc[0])
    cross.to_csv(d / "crossframework.csv", index=False)
    html = write_report(d, results)[0].read_text()
    table = _table(html, "crossframework")
    assert table[0] == ["configuration", "metric", "pairs", "PyTorch - Keras", "95% t interval",
                        "95% bootstrap interval", "sign-flip p", "significant"]
    a_acc = table[1]
    m, lo, hi = RS.mean_interval(diffs[("a / adam", "test_acc")])
    assert a_acc[:4] == ["a / adam", "test accuracy (pp)", "3", f"{100 * m:+.2f}"]
    assert a_acc[4] == f"[{100 * lo:+.2f}, {100 * hi:+.2f}]" and hi < 0 and a_acc[7] == "yes"
    assert a_acc[6] == "n/a (&gt;= 0.25)"  # 3 pairs: the sign-flip p cannot reach 0.05, not shown; the t interval decides
    assert table[5][0] == "all" and table[5][2] == "6" and table[5][6] == f"{pooled_p:.3g}"  # 6 pairs: shown
    assert table[2][1] == "final validation loss" and table[2][7] == "no"
    assert table[3][0] == "b / adam" and table[3][7] == "no"
    sentence = (f"a / adam (3 pairs): PyTorch - Keras test accuracy: {100 * m:+.2f} pp, 95% t-interval "
                f"[{100 * lo:+.2f}, {100 * hi:+.2f}]: significant.")
    assert sentence in html
    assert "b / adam (3 pairs): PyTorch - Keras test accuracy: " in html
    assert "PyTorch and Keras differ significantly on test accuracy in 1 of 2 configurations (a / adam)" in html
    assert ("PyTorch and Keras do not differ significantly on final validation loss in any of the 2 configurations"
            in html)
    assert re.search(r"All 6 pairs pooled: PyTorch - Keras test accuracy: -?\d\.\d\d pp, 95% t-interval", html)
    assert "trainer keras" in html
    # a crossframework.csv from before the t interval: shown as it is, with no verdict
    cross.drop(columns=["t_low", "t_high"]).to_csv(d / "crossframework.csv", index=False)
    html = write_report(d, results)[0].read_text()
    assert _table(html, "crossframework")[0][:3] == ["config", "metric", "n_pairs"]
    assert "No verdict: this crossframework.csv has no paired t interval" in html


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


# ------------------------------------------------------------------------------------------ figures

def test_figures_dpi_styles_heatmap_percent(run_dir, results, figures):
    """Every schedule keeps one line style / marker in every figure; the heatmap's colour bar is in percent."""
    _, _, plots = build_report(run_dir, results)
    heat, lr, val_loss, val_acc, profile, tput = figures  # in the order of the page: the heatmap first
    for name, fig in zip(("lr.png", "val_loss.png", "heatmap.png"), (lr, val_loss, heat)):
        w, h = _png_size(plots[name])
        assert (w, h) == pytest.approx(tuple(fig.get_size_inches() * RP.DPI), abs=2) and RP.DPI >= 110
    for fig in (lr, val_loss, val_acc):
        for ax in fig.axes:
            looks = [(ln.get_linestyle(), ln.get_marker()) for ln in ax.get_lines()]
            assert len(set(looks)) == len(looks) >= 3, looks
    assert [ln.get_linestyle() for ln in val_loss.axes[0].get_lines()][:2] == ["-", "--"]
    hax, cbar = heat.axes
    assert "%" in cbar.get_ylabel()
    table = RS.config_table(RS.load_run(run_dir))
    assert hax.images[0].get_array().max() == pytest.approx(100 * table["test_acc"].max())
    lo, hi = cbar.get_ylim()
    assert 10 <= lo < hi <= 100  # in percent, like the cells


def test_profile_axis(run_dir, tmp_path, results, figures, monkeypatch):
    """Linear tau axis while every finite ratio is below 10; log with labelled minor ticks beyond."""
    run = RS.load_run(run_dir)
    RP.profile(run)
    for ax in figures[-1].axes:
        if ax.axison:
            assert ax.get_xscale() == "linear" and ax.get_xlim()[0] < 1.0 + 1e-9
            labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
            assert len(labels) >= 3, labels
    # ratios past 10 (epochs to target cannot get there in 4 epochs): the profile's own ratios, scaled
    real = RS.performance_profile

    def wide(r, metric="time"):
        ratios, kept, total = real(r, metric)
        return ratios.where(ratios <= 1, ratios * 40), kept, total
    monkeypatch.setattr(RS, "performance_profile", wide)
    ratios, kept, _ = RS.performance_profile(run, "time")
    assert kept and np.nanmax(ratios.to_numpy()[np.isfinite(ratios.to_numpy())]) >= 10
    RP.profile(run)
    ax = figures[-1].axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    ax.figure.canvas.draw()
    minor = [t.get_text() for t in ax.xaxis.get_minorticklabels()
             if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert len(minor) >= 2, minor  # e.g. 2, 3, 5, 20, ...
    assert all(float(x) > 0 for x in minor)


def test_time_profile_is_epochs_to_target(run):
    """The time panel compares schedules of one optimizer: the ratio of epochs to target (a measured cost per step,
    the same for every schedule of an optimizer, cancels)."""
    ratios, kept, total = RS.performance_profile(run, "time")
    e = RS.time_to_target(run).merge(run.summary, on="model")
    for (opt, seed), row in ratios.iterrows():
        g = e[(e["optimizer"] == opt) & (e["seed"] == seed)].set_index("name")["epochs_to_target"].fillna(math.inf)
        for name in ratios.columns:
            assert row[name] == pytest.approx(g[name] / g.min())


def test_throughput_all_trainers_linear(run_dir, tmp_path, results, figures):
    """batched, sequential (trainer_cpu.csv) and Keras (trainer_keras_cpu.csv) rows together, each with its
    device, on a linear axis from 0, titled by the trainers shown."""
    res = tmp_path / "results"
    shutil.copytree(results / "speed", res / "speed")
    pd.DataFrame([dict(trainer="keras", device="cpu", device_name="x", n_models=6, epochs=4,
                       model_epochs_per_s=0.3, samples_per_s=15000.0)]).to_csv(res / "speed" / "trainer_keras_cpu.csv",
                                                                             index=False)
    page, md, plots = build_report(run_dir, res)
    fig = figures[-1]
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:3] == ["batched (cpu, 16 models)", "sequential (cpu, 16 models)", "keras (cpu, 6 models)"]
    assert labels[3].startswith("this run: batched fp32 (cpu, ")  # the run's precision named
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    widths = [b.get_width() for b in ax.patches]
    speed = pd.read_csv(res / "speed" / "trainer_cpu.csv")
    assert widths[:3] == pytest.approx(list(speed["model_epochs_per_s"]) + [0.3])
    assert ax.get_xlim()[1] > max(widths)
    assert ax.get_title().startswith("Training throughput: batched vs sequential vs Keras")
    assert 'alt="Training throughput: batched vs sequential vs Keras"' in page
    assert {r[0] for r in _table(page, "throughput")[1:]} == {"batched", "sequential", "keras"}
    only_keras = tmp_path / "keras-only"
    (only_keras / "speed").mkdir(parents=True)
    shutil.copy(res / "speed" / "trainer_keras_cpu.csv", only_keras / "speed")
    bars, _ = _throughput_rows(RS.load_run(run_dir), only_keras)
    assert RP.throughput_title(bars) == "Training throughput: Keras vs batched"  # the run itself is batched


def test_unevaluable_schedule_text_falls_back():
    assert RP._schedule_values("Cosine(lr=peak, decay_steps=10**100)", 0.1, 100, 10, 10) is None
    assert RP._schedule_values("Cosine(lr=peak, decay_step=10)", 0.1, 100, 10, 10) is None
    v = RP._schedule_values("Cosine(lr=peak, decay_steps=total)", 0.1, 100, 10, 10)
    assert len(v) == 100 and v[0] == pytest.approx(0.1)


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


def test_truncated_epochs_parquet_is_a_clear_error(results, tmp_path):
    """A 7-byte epochs.parquet (a crash mid-write without atomic rename): a ReportError naming the file."""
    broken = _variant(results / "runs" / "20261122-000000-tiny", tmp_path / "trunc")
    (broken / "epochs.parquet").write_bytes((broken / "epochs.parquet").read_bytes()[:7])
    r = CliRunner().invoke(report_cmd, [str(broken), "--results", str(results)])
    assert r.exit_code == 1 and "epochs.parquet: unreadable" in r.output and "Traceback" not in r.output
    with pytest.raises(ReportError, match="epochs.parquet: unreadable"):
        write_report(broken, results)
