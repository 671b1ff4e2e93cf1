"""The report of a tuned run, on a real one: trained by the runner on a Fashion-MNIST slice (tests/data/report_run.py
``make_tuned_run``, the session fixture ``tuned_report_run``), with its LR range test and step_cost.csv. Every
number is checked against the run's files: the evaluation models only in the verdicts, each configuration at its
selected peak, the sensitivity figure, the range test's ratios, the selection check, the robustness band, the
expected best after k picks, the cost, the time to target from the measured step cost, the sign-flip rule, the
schedule-free pick on the tuning seeds, the page's order, and the refusals (mixed precisions, no evaluation)."""
from __future__ import annotations

import html as H
import importlib.util
import itertools
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.report import plots as RP
from bench.report import stats as RS
from bench.report import tuning as RT
from bench.report.render import ReportError, build_report, write_report

_spec = importlib.util.spec_from_file_location("report_run", Path(__file__).parent / "data" / "report_run.py")
rr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rr)


@pytest.fixture(scope="module")
def run_dir(tuned_report_run, tmp_path_factory):
    """A copy of the session's tuned run (tests here write reports into it)."""
    dst = tmp_path_factory.mktemp("tuned") / "runs" / tuned_report_run.name
    shutil.copytree(tuned_report_run, dst)
    return dst


@pytest.fixture(scope="module")
def run(run_dir):
    return RS.load_run(run_dir)


@pytest.fixture(scope="module")
def page(run_dir):
    html_path, md_path = write_report(run_dir, run_dir.parent.parent)
    return html_path.read_text(), md_path.read_text()


@pytest.fixture(scope="module")
def files(run_dir):
    return dict(summary=pd.read_csv(run_dir / "summary.csv"), history=pd.read_parquet(run_dir / "epochs.parquet"),
                tuning=pd.read_csv(run_dir / "tuning.csv"), find_lr=pd.read_csv(run_dir / "find_lr" / "find_lr.csv"),
                step_cost=pd.read_csv(run_dir / "step_cost.csv"), meta=json.loads((run_dir / "meta.json").read_text()))


@pytest.fixture
def figures(monkeypatch):
    made = []
    render = RP.png
    monkeypatch.setattr(RP, "png", lambda fig: (made.append(fig), render(fig))[1])
    return made


def _variant(src: Path, dst: Path, *, summary=None, history=None, tuning=None, meta=None) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report.*", "plots"))
    for name, edit, read, write in (("summary.csv", summary, pd.read_csv, lambda d, p: d.to_csv(p, index=False)),
                                    ("tuning.csv", tuning, pd.read_csv, lambda d, p: d.to_csv(p, index=False)),
                                    ("epochs.parquet", history, pd.read_parquet,
                                     lambda d, p: d.to_parquet(p, index=False))):
        if edit:
            write(edit(read(dst / name)), dst / name)
    if meta:
        m = json.loads((dst / "meta.json").read_text())
        meta(m)
        (dst / "meta.json").write_text(json.dumps(m))
    return dst


def _sentences(html: str, list_id: str) -> list[str]:
    m = re.search(rf'<ul id="{list_id}">(.*?)</ul>', html, re.S)
    assert m, f"no list {list_id}"
    return [H.unescape(x) for x in re.findall(r"<li>(.*?)</li>", m.group(1), re.S)]


def _table(html: str, table_id: str) -> list[list[str]]:
    m = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert m, f"no table {table_id}"
    return [[H.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)]


def _selected(files) -> pd.DataFrame:
    t = files["tuning"]
    return t[t["selected"].astype(str) == "True"].set_index(["optimizer", "schedule"])


# ------------------------------------------------------------------------------------------ the split

def test_load_run_answers_from_the_evaluation_models(run, files):
    s = files["summary"]
    ev, tune = s[s["stage"] == "eval"], s[s["stage"].str.startswith("tune")]
    assert len(tune) and len(ev) and len(s) == len(ev) + len(tune)
    assert sorted(run.summary["model"]) == sorted(ev["model"]) and sorted(run.tuning_summary["model"]) == sorted(
        tune["model"])
    assert set(run.history["model"]) == set(ev["model"]) and set(run.tuning_history["model"]) == set(tune["model"])
    assert run.seeds == [0, 1, 2] and run.tuned and run.tuning is not None and run.find_lr is not None
    # every configuration of the table at its selected peak, over the evaluation seeds only
    table = RS.config_table(run)
    sel = _selected(files)
    assert len(table) == len(sel) and (table["seeds"] == 3).all()
    for r in table.itertuples():
        assert r.peak_lr == pytest.approx(sel.loc[(r.optimizer, r.schedule), "lr"])
        assert r.test_acc == pytest.approx(ev[(ev["optimizer"] == r.optimizer) & (ev["name"] == r.schedule)][
            "test_acc"].mean())
    # the verdicts pair evaluation seeds only
    paired = RS.paired_table(run)
    assert set(paired["n"]) == {3}


def test_an_untuned_run_loads_as_before(tmp_path):
    """A run without the stage column (before stages) is all evaluation ("main"), nothing tuned."""
    d = rr.make_run(tmp_path, rr.small_data(), "untuned", schedules={"constant": rr.SCHEDULES["constant"]},
                    peaks={"sgd": 0.1}, seeds=[0])
    run = RS.load_run(d)
    assert not run.tuned and run.tuning_summary.empty and set(run.summary["stage"]) == {"main"}
    assert run.tuning is None and run.step_cost is None and RS.step_costs(run) == {}


def test_mixed_precisions_are_refused(run_dir, tmp_path):
    def one_bf16(df):
        df["precision"] = df["precision"].astype(object)
        df.loc[df.index[-1], "precision"] = "bf16"
        return df
    d = _variant(run_dir, tmp_path / "mixed", summary=one_bf16)
    with pytest.raises(ReportError, match=r"precisions bf16, fp32 in one run.*never pooled"):
        RS.load_run(d)


def test_a_run_with_tuning_models_only_is_refused(run_dir, tmp_path):
    def tune_only(df):
        return df[df["stage"].astype(str).str.startswith("tune")]
    d = _variant(run_dir, tmp_path / "tuning-only", summary=tune_only, history=tune_only)
    with pytest.raises(ReportError, match="tuning models only.*evaluation stage"):
        RS.load_run(d)


# ------------------------------------------------------------------------------------------ time to target

def test_time_to_target_is_epochs_times_the_measured_step_cost(run, files):
    cost = files["step_cost"].set_index("optimizer")["model_step_s"]
    spe = math.ceil(files["meta"]["data"]["n_train"] / files["meta"]["matrix"]["batch_size"])
    assert run.steps_per_epoch == spe
    ttt = RS.time_to_target(run).set_index("model")
    h = files["history"]
    reached = 0
    for m, g in h[h["stage"] == "eval"].sort_values("epoch").groupby("model"):
        hit = np.flatnonzero((g["val_acc"].to_numpy() >= run.target) & ~g["diverged"].to_numpy())
        opt = g["optimizer"].iloc[0]
        if len(hit):
            reached += 1
            assert ttt.loc[m, "epochs_to_target"] == hit[0] + 1
            assert ttt.loc[m, "time_to_target_s"] == pytest.approx((hit[0] + 1) * spe * cost[opt])
        else:
            assert math.isinf(ttt.loc[m, "time_to_target_s"]) and math.isnan(ttt.loc[m, "epochs_to_target"])
    assert reached > 0
    # never a chunk's share: doubling every model_time_s changes nothing
    assert RS.time_to_target(RS.Run(**{**run.__dict__, "history": run.history.assign(
        model_time_s=2 * run.history["model_time_s"])}))["time_to_target_s"].equals(ttt.reset_index()[
            "time_to_target_s"])


def test_step_cost_file(files, run):
    sc, meta = files["step_cost"], files["meta"]
    eval_chunks = meta["stages"][-1]["chunks"]
    assert list(sc["optimizer"]) == list(meta["peak_lr"])  # one row per optimizer of the run
    assert (sc["n_models"] == max(len(meta["chunks"][k]) for k in eval_chunks)).all()
    assert (sc["seed_groups"] == len(meta["seeds"])).all() and (sc["finite_models"] == sc["n_models"]).all()
    assert np.allclose(sc["model_step_s"], sc["step_s"] / sc["n_models"])
    assert ((sc["step_s_min"] <= sc["step_s"]) & (sc["step_s"] <= sc["step_s_max"])).all()
    assert (sc["device"] == "cpu").all() and sc["device_name"].notna().all() and (sc["rounds"] == 2).all()
    assert set(RS.step_costs(run)) == set(sc["optimizer"])


def test_cli_report_measures_the_step_cost_again(run_dir, tmp_path, monkeypatch):
    from bench.cli import report_cmd
    from bench.speed import step_cost as SC
    d = _variant(run_dir, tmp_path / "remeasure")
    (d / "step_cost.csv").unlink()
    html = build_report(d, tmp_path)[0]
    assert "No step_cost.csv in the run folder: times are given in epochs only" in html
    assert "time to target" not in _table(html, "configurations")[0]
    real = SC.measure
    monkeypatch.setattr(SC, "measure", lambda run_dir, **kw: real(run_dir, rounds=1, steps=1, warmup=1, **kw))
    r = CliRunner().invoke(report_cmd, [str(d), "--results", str(tmp_path), "--measure-step-cost"])
    assert r.exit_code == 0, r.output
    assert (d / "step_cost.csv").is_file() and "report.html" in r.output
    assert "time to target" in _table((d / "report.html").read_text(), "configurations")[0]


# ------------------------------------------------------------------------------------------ tuning sections

def test_lr_curves_draw_each_configuration_at_its_selected_peak(run, files, figures):
    RP.lr_curves(run)
    sel = _selected(files)
    fig = figures[-1]
    drawn = 0
    for ax, opt in zip(fig.axes, run.optimizers):
        for line in ax.get_lines():
            name = line.get_label().split(" (")[0]
            if (opt, name) in sel.index:
                assert np.nanmax(line.get_ydata()) == pytest.approx(sel.loc[(opt, name), "lr"], rel=1e-6)
                drawn += 1
    assert drawn == len(sel)


def test_sensitivity_figure(run, files, figures):
    RP.sensitivity(run)
    fig = figures[-1]
    t = files["tuning"]
    sugg = files["find_lr"].set_index("optimizer")["suggested"]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    from bench.report.answer import label
    words = lambda n: label(n).removeprefix("a ")  # noqa: E731 - plain words on the first screen
    assert [ax.get_title() for ax in axes] == [label(o) for o in dict.fromkeys(t["optimizer"])]
    for ax, opt in zip(axes, dict.fromkeys(t["optimizer"])):
        g = t[t["optimizer"] == opt]
        assert ax.get_xscale() == "log"
        lines = ax.get_lines()
        # one line per schedule through every lr it tried, in %
        for name, h in g.groupby("schedule"):
            ln = [x for x in lines if x.get_label() == words(name)]
            assert len(ln) == 1
            assert np.allclose(ln[0].get_xdata(), np.sort(h["lr"].to_numpy()))
        # the selected point ringed at its lr, a red square when on the edge
        rings = [x for x in lines if x.get_markersize() == 11]
        sel = g[g["selected"].astype(str) == "True"]
        assert sorted(float(x.get_xdata()[0]) for x in rings) == pytest.approx(sorted(sel["lr"]))
        assert sum(x.get_marker() == "s" for x in rings) == int((sel["on_edge"].astype(str) == "True").sum())
        # the range test's suggestion as a vertical line
        vlines = [x for x in lines if x.get_linestyle() == "--" and len(set(x.get_xdata())) == 1]
        assert [float(x.get_xdata()[0]) for x in vlines] == pytest.approx([sugg[opt]])


def test_range_test_words(run, files, page):
    html = page[0]
    lines = _sentences(html, "range-test")
    sugg = files["find_lr"].set_index("optimizer")["suggested"]
    sel = _selected(files).reset_index()
    assert [x.split(":")[0] for x in lines] == list(dict.fromkeys(sel["optimizer"]))
    n_near = 0
    for line, (opt, g) in zip(lines, sel.groupby("optimizer", sort=False)):
        ratios = g["lr"].to_numpy() / sugg[opt]
        assert f"{opt}: the LR range test suggests {sugg[opt]:.3g}; " in line
        assert f"{ratios.min():.2g}x" in line and f"{ratios.max():.2g}x" in line
        near = int((np.abs(np.log10(ratios)) <= 0.5).sum())
        n_near += near
        assert f"within a factor of 3.16 of it: {near} of {len(g)}" in line
        edge = g[g["on_edge"].astype(str) == "True"]["schedule"].tolist()
        assert ("untuned (selected on the grid's edge): " + ", ".join(edge) in line) == bool(edge)
    assert f"In {n_near} of {len(sel)} configurations the tuned peak is within a factor of 3.16" in H.unescape(html)


def test_selection_check_seeds_and_untuned(run, files, page, run_dir, tmp_path):
    html = H.unescape(page[0])
    n_tune = int(files["summary"]["stage"].str.startswith("tune").sum())
    assert (f"Selection check: recomputed from the {n_tune} tuning models' final_val_acc alone (summary.csv), the "
            f"selected factor agrees with tuning.csv for all {len(_selected(files))} configurations.") in html
    assert "Tuning seeds [7, 8, 9] and evaluation seeds [0, 1, 2] are disjoint." in html
    edge = _selected(files)
    edge = edge[edge["on_edge"].astype(str) == "True"]
    if len(edge):
        assert "Untuned: " in html and all(f"{o} + {n}" in html for o, n in edge.index)
    # a tuning.csv whose selection the tuning models do not support, seeds shared, an untuned configuration
    first = _selected(files).index[0]

    def tamper(t):  # select another factor of that configuration, on its edge
        g = (t["optimizer"] == first[0]) & (t["schedule"] == first[1])
        was = float(t.loc[g & t["selected"].astype(bool), "factor"].iloc[0])
        other = t.loc[g, "factor"].min() if t.loc[g, "factor"].min() != was else t.loc[g, "factor"].max()
        t.loc[g, "selected"] = t.loc[g, "factor"] == other
        t.loc[g, "on_edge"] = t.loc[g, "selected"]
        return t

    def share(s):
        s.loc[s["stage"].str.startswith("tune") & (s["optimizer"] == first[0]) & (s["seed"] == 7), "seed"] = 0
        return s
    d = _variant(run_dir, tmp_path / "tampered", tuning=tamper, summary=share)
    a = RT.audit(RS.load_run(d))
    assert [m[0] for m in a["mismatches"]] == [first] and a["shared_seeds"] == [0] and first in a["on_edge"]
    html = H.unescape(build_report(d, tmp_path)[0])
    assert f"Selection check FAILED: recomputed from the {n_tune} tuning models' final_val_acc, {first[0]} + " \
           f"{first[1]}: tuning.csv" in html
    assert "SHARE [0]: the verdicts are judged on seeds the learning rate was chosen on." in html
    assert f"Untuned: " in html and f"{first[0]} + {first[1]}" in html


def test_heatmap_stars_the_untuned(run, run_dir, tmp_path, figures):
    first = _selected_keys(run)[0]

    def edge(t):
        t.loc[(t["optimizer"] == first[0]) & (t["schedule"] == first[1]) & t["selected"], "on_edge"] = True
        return t
    d = _variant(run_dir, tmp_path / "edge", tuning=edge)
    untuned = RT.audit(RS.load_run(d))["on_edge"]
    assert first in untuned
    build_report(d, tmp_path)
    heat = figures[0]
    texts = [x.get_text() for x in heat.axes[0].texts if x.get_text().endswith("*")]
    assert len(texts) == len(untuned) and "untuned" in heat.axes[0].get_title()
    t = RS.config_table(RS.load_run(d)).set_index(["optimizer", "schedule"])["test_acc"]
    assert f"{100 * t[first]:.1f}*" in texts


def _selected_keys(run) -> list[tuple[str, str]]:
    t = RT.grid(run)
    return list(zip(t[t["selected"]]["optimizer"], t[t["selected"]]["schedule"]))


def test_band_expected_max_and_cost(run, files, page):
    t = files["tuning"]
    band = RT.band(run).set_index(["optimizer", "schedule"])
    for (opt, name), g in t.groupby(["optimizer", "schedule"]):
        ok = g[g["diverged"] == 0]
        inb = ok[ok["mean"] >= ok["mean"].max() - 0.005]
        r = band.loc[(opt, name)]
        assert (r["low"], r["high"]) == pytest.approx((inb["lr"].min(), inb["lr"].max()))
        assert r["points"] == len(inb) and r["tried"] == len(g)
        assert r["decades"] == pytest.approx(math.log10(inb["lr"].max() / inb["lr"].min()))
    em = RT.expected_max_table(run).set_index(["optimizer", "schedule"])
    base = t[t["factor"].isin([0.1, 1.0, 10.0])]
    for (opt, name), g in base.groupby(["optimizer", "schedule"]):
        v = g["mean"].to_numpy()
        assert em.loc[(opt, name), "N"] == 3
        for k in (1, 2, 3):  # brute force: every ordered k-tuple of picks is equally likely
            brute = np.mean([max(c) for c in itertools.product(v, repeat=k)])
            assert em.loc[(opt, name), f"E{k}"] == pytest.approx(brute)
        assert em.loc[(opt, name), "E1"] == pytest.approx(v.mean())
    cost = RT.cost(run).set_index("stage")
    s = files["summary"]
    assert list(cost.index) == [st["name"] for st in files["meta"]["stages"]]
    tp = pd.read_csv(run.path / "throughput.csv").set_index("chunk")["wall_s"]
    for st in files["meta"]["stages"]:
        r = cost.loc[st["name"]]
        assert r["models"] == (s["stage"] == st["name"]).sum() == len(st["points"]) * len(st["seeds"])
        assert r["model_epochs"] == r["models"] * files["meta"]["epochs"]
        assert r["wall_s"] == pytest.approx(tp[st["chunks"]].sum())
    html = page[0]
    for tid in ("tuning-band", "expected-max", "tuning-cost", "tuning-grid"):
        i = html.index(f'<table id="{tid}">')
        assert html.rfind("<details>", 0, i) > html.rfind("</details>", 0, i), tid
    rows = _table(html, "expected-max")
    assert rows[0] == ["optimizer", "schedule", "N", "k=1", "k=2", "k=3"]
    tune_me = int(cost[cost["tuning"]]["model_epochs"].sum())
    assert f"Cost: tuning trained {int(cost[cost['tuning']]['models'].sum())} models ({tune_me:,} model-epochs" in html


def test_expected_max_formula():
    assert RT.expected_max([0.5], 3) == 0.5
    assert RT.expected_max([0.2, 0.8], 1) == pytest.approx(0.5)
    assert RT.expected_max([0.2, 0.8], 2) == pytest.approx(0.2 * 0.25 + 0.8 * 0.75)
    assert RT.expected_max([0.3, 0.1, 0.2], 50) == pytest.approx(0.3, abs=1e-8)
    assert math.isnan(RT.expected_max([], 2))


# ------------------------------------------------------------------------------------------ statistics in words

def test_sign_flip_p_printed_only_where_it_can_reach_005(run, page, run_dir, tmp_path):
    assert [RS.sign_flip_floor(n) for n in (3, 5, 6)] == [0.25, 0.0625, 0.03125]
    assert not RS.sign_flip_can_decide(5) and RS.sign_flip_can_decide(6)
    assert RS.sign_flip_note(5) == ("With 5 seeds the sign-flip test cannot go below p = 0.0625; its p-values are "
                                    "not shown, and verdicts rest on the paired t interval.")
    html = H.unescape(page[0])
    assert all("sign-flip p" not in x for x in _sentences(page[0], "headline"))
    assert html.count(RS.sign_flip_note(3)) >= 1
    assert all(r[7] == "n/a (>= 0.25)" for r in _table(page[0], "paired")[1:])

    def six_seeds(df):  # the evaluation rows again as seeds 10..12: 6 paired seeds
        ev = df[df["stage"] == "eval"]
        return pd.concat([df, ev.assign(seed=ev["seed"] + 10, model=ev["model"] + 10_000)], ignore_index=True)
    d = _variant(run_dir, tmp_path / "six", summary=six_seeds, history=six_seeds)
    six = RS.load_run(d)
    paired = RS.paired_table(six)
    assert set(paired["n"]) == {6}
    for opt, line in RS.headline(six, paired).items():
        r = paired[(paired["optimizer"] == opt) & (paired["schedule"] == "warmup_cosine")].iloc[0]
        assert f"sign-flip p = {r['p_value']:.3g}, 6 seeds" in line
    html6 = H.unescape(build_report(d, tmp_path)[0])
    assert "cannot go below p =" not in html6.split("<h2>Learning-rate tuning")[0]


def test_schedule_free_best_is_picked_on_the_tuning_seeds(run, files, page):
    (c,) = RS.schedule_free(run)
    sel = _selected(files).reset_index()
    fam = sel[sel["optimizer"].isin(["sgd", "momentum", "nesterov"])]
    pick = fam.loc[fam["mean"].idxmax()]
    assert (c["best"]["optimizer"], c["best"]["schedule"]) == (pick["optimizer"], pick["schedule"])
    assert c["picked_on"] == "tuning" and c["candidates"] == len(fam)
    ev = run.summary[run.summary["optimizer"] == "sgd"].groupby("name")["test_acc"].mean()
    assert c["best"]["eval_rank"] == 1 + int((ev > ev[pick["schedule"]]).sum())
    line = _sentences(page[0], "schedulefree")[0]
    assert (f" its rival, the SGD-like configuration sgd + {pick['schedule']} (chosen on the tuning seeds: the "
            f"highest final_val_acc at its selected "
            f"learning rate ({100 * pick['mean']:.2f}%) of {len(fam)}; rank {c['best']['eval_rank']} of {len(fam)} "
            "on the evaluation seeds)") in line
    cost = files["step_cost"].set_index("optimizer")["model_step_s"]
    spe = run.steps_per_epoch
    for side in (c["twin"], c["best"]):
        if side["reached"]:
            secs = side["epochs_to_target"] * spe * cost[side["optimizer"]]
            assert f"{side['epochs_to_target']:g} epoch" in line and f"= {secs:.3g} s" in line
    html = H.unescape(page[0])
    assert "picked on the tuning seeds" in html and "selection bias favours it" not in html
    assert _table(page[0], "schedule-free")[1][1] == f"rival chosen on tuning seeds (of {len(fam)})"
    assert "Schedule-free vs its rival chosen on the tuning seeds" in html and "the best scheduled" not in html


# ------------------------------------------------------------------------------------------ the page

def test_first_screen_order_and_markdown(page, run_dir):
    html, md = page
    order = [html.index('<p id="answer"'), html.index('<ul id="ties">'),
             html.index('<img alt="test accuracy heatmap'), html.index('<img alt="LR sensitivity'),
             html.index('<ul id="headline">'), html.index('<ul id="schedulefree">'), html.index("<table")]
    assert order == sorted(order)
    assert html.index("<h2>Learning-rate tuning</h2>") < html.index("<h2>Do you need a schedule?</h2>")
    assert "Every configuration runs at its own tuned peak learning rate" in html.split('<ul id="headline">')[0]
    m = [md.index("](plots/heatmap.png)"), md.index("](plots/sensitivity.png)"), md.index("\n- sgd: "),
         md.index("\n- schedule-free SGD"), md.index("## Learning-rate tuning"), md.index("\n|")]
    assert m == sorted(m)
    for name in ("sensitivity.png", "heatmap.png", "lr.png"):
        assert (run_dir / "plots" / name).stat().st_size > 1000
    assert [r[0] for r in _table(html, "step-cost")[1:]] == ["sgd", "adam", "sgd_schedulefree"]
