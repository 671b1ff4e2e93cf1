"""The report's "Do you need a schedule?" and its first screen, on real run folders trained here on a Fashion-MNIST
subset (tests/data/report_run.py) with both schedule-free optimizers (sgd_schedulefree, adamw_schedulefree) on
a warmup-only schedule beside scheduled sgd / adam: the numbers checked against direct computations from the
run's files, the verdict against its interval, the page's order (a picture before any table, the long tables
collapsible), and the cases without twins, with one seed and with a twin that diverged."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import families as F
from bench.report import plots as RP
from bench.report import stats as RS
from bench.report.render import build_report, write_report

_spec = importlib.util.spec_from_file_location("report_run", Path(__file__).parent / "data" / "report_run.py")
rr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rr)

SCHEDULES = {"constant": rr.SCHEDULES["constant"], "warmup_cosine": rr.SCHEDULES["warmup_cosine"]}
PEAKS = {"sgd": 0.1, "adam": 0.002, "rmsprop": 0.001}
TWINS = {"sgd_schedulefree": 1.0, "adamw_schedulefree": 0.0025}
SEEDS = [0, 1, 2]
TWIN_NAME = rr.TWIN_SCHEDULE[0]


@pytest.fixture(scope="module")
def data():
    return rr.small_data()


@pytest.fixture(scope="module")
def results(tmp_path_factory, data):
    """sgd, adam, rmsprop x (constant, warmup_cosine) + both twins on warmup_constant, 3 seeds: 24 models."""
    res = tmp_path_factory.mktemp("results")
    rr.make_run(res, data, "20261202-000000-sf", schedules=SCHEDULES, peaks=PEAKS, twins=TWINS, seeds=SEEDS)
    return res


@pytest.fixture(scope="module")
def run_dir(results):
    return results / "runs" / "20261202-000000-sf"


@pytest.fixture(scope="module")
def run(run_dir):
    return RS.load_run(run_dir)


@pytest.fixture(scope="module")
def page(run_dir, results):
    html_path, md_path = write_report(run_dir, results)
    return html_path.read_text(), md_path.read_text()


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


def _sentences(html: str, list_id: str) -> list[str]:
    m = re.search(rf'<ul id="{list_id}">(.*?)</ul>', html, re.S)
    assert m, f"no list {list_id}"
    return re.findall(r"<li>(.*?)</li>", m.group(1), re.S)


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


# ------------------------------------------------------------------------------------------ the numbers

def test_families_table():
    sgd, adam = F.FAMILIES
    assert (sgd.name, sgd.members, sgd.twin) == ("SGD-like", ("sgd", "momentum", "nesterov"), "sgd_schedulefree")
    assert (adam.name, adam.members, adam.twin) == ("Adam-like", ("adam", "adamw"), "adamw_schedulefree")
    assert F.NO_TWIN == ("rmsprop",) and F.family_of("rmsprop") is None
    assert F.is_schedule_free("adamw_schedulefree") and not F.is_schedule_free("adamw")
    assert F.family_of("nesterov") is sgd and F.family_of("adamw_schedulefree") is adam
    assert F.order_optimizers(["adam", "sgd", "rmsprop", "adamw", "momentum"]) == ["adam", "adamw", "sgd",
                                                                                   "momentum", "rmsprop"]


def test_schedule_free_comparison_from_the_files(run):
    """Best scheduled configuration, paired difference, t interval, verdict and time to target, each computed
    here from summary.csv / epochs.parquet."""
    s = run.summary
    assert set(s[s["optimizer"].isin(TWINS)]["name"]) == {TWIN_NAME}  # the twins ran their schedule only
    comps = RS.schedule_free(run)
    assert [c["family"].name for c in comps] == ["SGD-like", "Adam-like"]
    ttt = RS.time_to_target(run).merge(s, on="model")
    for c, members in zip(comps, (["sgd"], ["adam"])):
        fam = c["family"]
        assert c["twin"]["optimizer"] == fam.twin and c["twin"]["schedule"] == TWIN_NAME
        means = s[s["optimizer"].isin(members)].groupby(["optimizer", "name"])["test_acc"].mean()
        best = means.idxmax()
        assert (c["best"]["optimizer"], c["best"]["schedule"]) == best and c["candidates"] == len(means) == 2
        twin = s[(s["optimizer"] == fam.twin)].set_index("seed")["test_acc"]
        ref = s[(s["optimizer"] == best[0]) & (s["name"] == best[1])].set_index("seed")["test_acc"]
        d = np.array([twin[k] - ref[k] for k in SEEDS])
        st = c["stats"]
        assert st["n"] == 3 and st["mean_diff"] == pytest.approx(d.mean())
        half = 4.302653 * d.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
        assert (st["t_low"], st["t_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
        expected = "beats" if st["t_low"] > 0 else "loses to" if st["t_high"] < 0 else "matches"
        assert c["verdict"] == expected
        for who, (opt, name) in (("twin", (fam.twin, TWIN_NAME)), ("best", best)):
            g = ttt[(ttt["optimizer"] == opt) & (ttt["name"] == name)]
            hit = g[g["epochs_to_target"].notna()]
            assert c[who]["reached"] == len(hit)
            if len(hit):  # epochs only: this run has no measured step cost, so no seconds
                assert c[who]["epochs_to_target"] == hit["epochs_to_target"].median()
                assert math.isnan(c[who]["time_to_target_s"])
            else:
                assert math.isinf(c[who]["time_to_target_s"])
        assert c["picked_on"] == "hindsight"  # an untuned run: the best is chosen on these same seeds


def test_section_words_and_numbers(run, page):
    html, md = page
    comps = RS.schedule_free(run)
    lines = _sentences(html, "schedulefree")
    assert len(lines) == 2
    for c, line in zip(comps, lines):
        st, best, fam = c["stats"], c["best"], c["family"]
        assert line.startswith(f"{fam.twin_label} ({fam.twin} + {TWIN_NAME}) {c['verdict']} the best scheduled "
                               f"{fam.name} configuration ({best['optimizer']} + {best['schedule']}, best of 2): "
                               f"{_pp(st['mean_diff'])} points of test accuracy")
        assert f"95% paired t interval [{_pp(st['t_low'])}, {_pp(st['t_high'])}], 3 seeds" in line
        assert f"time to {100 * rr.TARGET:g}% validation accuracy: " in line
        for side in (c["twin"], best):  # epochs (no step cost measured: no seconds), or never
            assert (f"{side['epochs_to_target']:g} epoch" in line) if side["reached"] else ("never" in line)
        assert " s vs " not in line and not re.search(r"epochs? = ", line)
    assert lines[0] == html_escape(RS.schedule_free_sentence(comps[0], run.target))
    assert "selection bias favours it" in html and "rmsprop has no schedule-free twin and is not compared" in html
    rows = _table(html, "schedule-free")
    assert rows[0] == ["family", "role", "configuration", "seeds", "test acc %", "twin - best (pp)",
                       "95% t interval (pp)", "verdict", "epochs to target", "reached target", "diverged"]
    assert len(rows) == 1 + 2 * 2
    for c, best_row, twin_row in zip(comps, rows[1::2], rows[2::2]):
        st = c["stats"]
        assert best_row[:3] == [c["family"].name, "best scheduled (of 2)",
                                f"{c['best']['optimizer']} + {c['best']['schedule']}"]
        assert twin_row[:3] == [c["family"].name, c["family"].twin_label, f"{c['family'].twin} + {TWIN_NAME}"]
        assert twin_row[4] == f"{100 * c['twin']['test_acc']:.2f}" and best_row[4] == f"{100 * c['best']['test_acc']:.2f}"
        assert twin_row[5:8] == [_pp(st["mean_diff"]), f"[{_pp(st['t_low'])}, {_pp(st['t_high'])}]", c["verdict"]]
    assert "## Do you need a schedule?" in md and "### Schedule-free vs the best scheduled configuration" in md
    # the headline (contender vs baseline) is about scheduled optimizers only
    assert [li.split(":")[0] for li in _sentences(html, "headline")] == ["sgd", "adam", "rmsprop"]
    assert "sgd_schedulefree: no comparison" not in html
    assert "3 optimizers x 2 schedules + 2 schedule-free optimizer(s) (sgd_schedulefree, adamw_schedulefree)" in html


def html_escape(text: str) -> str:
    import html
    return html.escape(text)


# ------------------------------------------------------------------------------------------ the first screen

def test_picture_before_any_table_and_long_tables_collapsed(page):
    html, md = page
    first_img, first_table = html.index("<img"), html.index("<table")
    assert first_img < first_table
    assert html.index('<p id="answer"') < first_img < html.index('<ul id="headline">') < html.index('<ul id="schedulefree">')
    assert 'alt="test accuracy heatmap, schedule x optimizer, schedule-free rows below"' in html[first_img:first_img + 200]
    # every figure of the Figures section comes before the long per-configuration tables
    assert html.rindex('<img alt="performance profiles"') < html.index('<table id="configurations">')
    for tid in ("configurations", "ranking", "paired"):
        i = html.index(f'<table id="{tid}">')
        opened, closed = html.rfind("<details>", 0, i), html.rfind("</details>", 0, i)
        assert opened > closed, f"table {tid} is not inside <details>"
        assert re.match(r"<details>\n<summary>[^<]+</summary>", html[opened:])
    # the Markdown keeps the order: heatmap, then the schedule-free table, then the collapsed tables
    heat, sf_table = md.index("](plots/heatmap.png)"), md.index("| family | role |")
    assert md.index("**") < heat < md.index("- schedule-free SGD (") < sf_table < md.index(
        "<details><summary>Every configuration")  # the answer first, then the heatmap, then the words
    assert heat < min(m.start() for m in re.finditer(r"^\|", md, re.M))


# ------------------------------------------------------------------------------------------ the heatmap

def test_heatmap_twin_rows(run, run_dir, results, monkeypatch):
    table = RS.config_table(run)
    cols, rows, a, spans = RP.heatmap_layout(table)
    assert cols == ["sgd", "adam", "rmsprop"] and rows == ["constant", "warmup_cosine"]  # no twin columns or rows
    assert a.shape == (2, 3) and np.isfinite(a).all()  # no NaN cells among the scheduled configurations
    t = table.set_index(["optimizer", "schedule"])["test_acc"]
    words = "warmup + constant"  # plain words on the first screen (TWIN_NAME spelled out)
    assert [(label, span) for label, _, span in spans] == [(f"schedule-free SGD ({words})", [0]),
                                                           (f"schedule-free AdamW ({words})", [1])]
    assert [v for _, v, _ in spans] == pytest.approx([100 * t[("sgd_schedulefree", TWIN_NAME)],
                                                      100 * t[("adamw_schedulefree", TWIN_NAME)]])
    made = []
    render = RP.png
    monkeypatch.setattr(RP, "png", lambda fig: (made.append(fig), render(fig))[1])
    RP.heatmap(table)
    ax = made[0].axes[0]
    labels = [x.get_text() for x in ax.get_yticklabels()]
    assert labels == ["constant LR", "warmup + cosine", f"schedule-free SGD ({words})",
                      f"schedule-free AdamW ({words})"]
    assert [x.get_fontstyle() for x in ax.get_yticklabels()] == ["normal"] * 2 + ["italic"] * 2
    assert len(ax.patches) == 2 and len(ax.get_lines()) == 1  # two twin cells, one separating line
    texts = [x.get_text() for x in ax.texts]
    assert f"{spans[0][1]:.1f}" in texts and f"{spans[1][1]:.1f}" in texts and "n/a" not in texts
    # a family of several optimizers: the twin's cell spans all of them
    more = pd.concat([table, table[table["optimizer"] == "sgd"].assign(optimizer="momentum")], ignore_index=True)
    cols, _, _, spans = RP.heatmap_layout(more)
    assert cols == ["sgd", "momentum", "adam", "rmsprop"] and spans[0][2] == [0, 1] and spans[1][2] == [2]


# ------------------------------------------------------------------------------------------ other runs

def test_run_without_schedule_free_rows(run_dir, tmp_path, results):
    def drop(df):
        return df[~df["optimizer"].isin(TWINS)]
    d = _variant(run_dir, tmp_path / "no-twins", summary=drop, history=drop)
    html, md, _ = build_report(d, results)
    assert "This run has no schedule-free optimizer (sgd_schedulefree, adamw_schedulefree): nothing to compare." in html
    assert '<table id="schedule-free">' not in html and '<ul id="schedulefree">' not in html
    assert "## Do you need a schedule?" in md and html.index("<img") < html.index("<table")
    assert 'alt="test accuracy heatmap, schedule x optimizer"' in html


def test_single_seed(run_dir, tmp_path, results):
    d = _variant(run_dir, tmp_path / "one-seed", summary=lambda s: s[s["seed"] == 0],
                 history=lambda h: h[h["seed"] == 0], meta=lambda m: m.update(seeds=[0]))
    run = RS.load_run(d)
    comps = RS.schedule_free(run)
    assert [c["verdict"] for c in comps] == ["no verdict", "no verdict"]
    html = build_report(d, results)[0]
    for line in _sentences(html, "schedulefree"):
        assert " vs the best scheduled " in line and "points of test accuracy on 1 seed: no interval, no verdict" in line
    assert "One seed: the difference has no interval and no verdict." in html
    assert all(r[6] == "n/a (1 seed)" for r in _table(html, "schedule-free")[2::2])


def test_twin_that_diverged(results, data):
    """sgd_schedulefree at a peak of 10,000 really diverges: the section says so, and still pairs the seeds."""
    d = rr.make_run(results, data, "20261202-000001-sf-hot", schedules={"constant": SCHEDULES["constant"]},
                    peaks={"sgd": 0.1}, twins={"sgd_schedulefree": 1e4}, seeds=[0, 1])
    run = RS.load_run(d)
    s = run.summary
    assert s[s["optimizer"] == "sgd_schedulefree"]["diverged"].all()
    (c,) = RS.schedule_free(run)
    line = RS.schedule_free_sentence(c, run.target)
    assert "schedule-free SGD diverged in 2 of 2 seeds (its accuracy there is that of the weights frozen" in line
    st = c["stats"]
    if st["n"] >= 2:  # frozen weights still have a test accuracy: the comparison stands, the verdict follows it
        assert c["verdict"] == ("beats" if st["t_low"] > 0 else "loses to" if st["t_high"] < 0 else "matches")
    else:
        assert c["verdict"] == "no comparison" and "no seed where both have a finite test accuracy" in line
    html, md, _ = build_report(d, results)
    assert _table(html, "schedule-free")[2][-1] == "2/2" and "never" in _table(html, "schedule-free")[2]


def test_matrix_run_end_to_end(data, tmp_path):
    """A matrix file with a [schedule_free] table, run by the real runner and reported as ``lrbench run`` does:
    the twins are found by their optimizer names whatever their schedule is called, and the page opens with
    the answer."""
    import textwrap

    from bench.cli import write_run_report
    from bench.matrix.runner import run_matrix
    from bench.matrix.spec import load_matrix
    src = tmp_path / "sf.toml"
    src.write_text(textwrap.dedent("""
        name = "sf"
        epochs = 2
        seeds = [0, 1]
        batch_size = 128
        target_val_acc = 0.7
        [model]
        widths = [784, 32, 10]
        [peak_lr]
        momentum = 0.01
        adamw = 0.001
        sgd_schedulefree = 1.0
        adamw_schedulefree = 0.0025
        [schedules]
        constant = "Constant(lr=peak)"
        warmup_cosine = "Warmup(Cosine(lr=peak, decay_steps=total - total // 20), steps=total // 20)"
        [schedule_free]
        just_warmup = "Warmup(Constant(lr=peak), steps=total // 20)"
    """))
    run_dir = run_matrix(load_matrix(src), results_dir=tmp_path, run_id="sf", device="cpu", data=data,
                         progress=False)
    write_run_report(run_dir, tmp_path)
    run = RS.load_run(run_dir)
    s = run.summary
    assert set(s[s["optimizer"].isin(TWINS)]["name"]) == {"just_warmup"}
    comps = RS.schedule_free(run)
    assert [(c["family"].name, c["best"]["optimizer"], c["twin"]["schedule"]) for c in comps] == [
        ("SGD-like", "momentum", "just_warmup"), ("Adam-like", "adamw", "just_warmup")]
    html = (run_dir / "report.html").read_text()
    lines = _sentences(html, "schedulefree")
    assert [line.split(" (")[0] for line in lines] == ["schedule-free SGD", "schedule-free AdamW"]
    v = pd.read_csv(run_dir / "verdicts.csv")  # the sentences say what verdicts.csv says
    words = {"win": "beats", "loss": "loses to", "tie": "matches", "too few seeds": "has too few seeds against"}
    sf = v[v["family"].str.startswith("schedule-free vs")].drop_duplicates("optimizer").set_index("optimizer")["verdict"]
    assert all(f" {words[sf[c['twin']['optimizer']]]} the best scheduled " in line for c, line in zip(comps, lines))
    assert html.index("<img") < html.index('<ul id="schedulefree">') < html.index("<table")
    rows = _table(html, "schedule-free")
    assert [r[2] for r in rows[1:]] == [f"{c[k]['optimizer']} + {c[k]['schedule']}" for c in comps
                                        for k in ("best", "twin")]
