"""Tuned matrices (bench/matrix/tuning.py): the [tuning] table's rules, selection from validation metrics
only, edge extensions, and a real tuned run on a slice of Fashion-MNIST whose selection is recomputed from
its tuning models, whose evaluation seeds are fresh, and which resumes between and inside stages."""
import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from bench.train import registry
from bench.matrix.runner import run_matrix
from bench.matrix.spec import MatrixError, load_matrix
from bench.matrix.tuning import Stage, candidates, next_stage, outward, select
from bench.train.data import load_fashion_mnist

TUNED = """
name = "tinytune"
epochs = 2
seeds = [0, 1]
batch_size = 100
[model]
widths = [784, 32, 10]
[tuning]
lr_factors = [0.1, 1.0, 10.0]
tuning_seeds = [7, 8, 9]
extend = 1
[peak_lr]
sgd = 0.1
adam = 0.002
[schedules]
constant = "Constant(lr=peak)"
cosine = "Cosine(lr=peak, decay_steps=total)"
"""


def write(tmp_path, text, name="m.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return load_matrix(write(tmp_path_factory.mktemp("m"), TUNED))


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist("cpu").head(3000, 1000, 1000)


@pytest.fixture(scope="module")
def tuned_run(matrix, data, tmp_path_factory):
    res = tmp_path_factory.mktemp("res")
    return run_matrix(matrix, results_dir=res, run_id="tuned", device="cpu", data=data, progress=False)


# ------------------------------------------------------------------------------------------ the table


@pytest.mark.parametrize("table, match", [
    ("lr_factors = [1.0]\ntuning_seeds = [7, 8, 9]", "lr_factors must be a list of >= 2 positive numbers"),
    ("lr_factors = [1.0, 0.1]\ntuning_seeds = [7, 8, 9]", "distinct and in increasing order"),
    ("lr_factors = [0.1, -1.0]\ntuning_seeds = [7, 8, 9]", "lr_factors must be a list of >= 2 positive"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [0, 7, 8]", r"tuning_seeds \[0\] are also evaluation seeds"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = 2", "tuning_seeds must be a list"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nmetric = 'test_acc'", "selection never reads a test metric"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nmetric = 'loss'", "metric must be one of final_val_acc"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nextend = -1", "extend must be an integer >= 0"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nseed = 3", r"\[tuning\] unknown key\(s\) \['seed'\]"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8]", r"tuning_seeds needs at least 3 seeds.*got \[7, 8\]"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nscreen_seeds = 4", "screen_seeds must be an integer from 1 to"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nscreen_seeds = 0", "screen_seeds must be an integer from 1 to"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7, 8, 9]\nconfirm_neighbours = 1", "confirm_neighbours must be true"),
])
def test_bad_tuning_tables_name_the_rule(tmp_path, table, match):
    text = TUNED.replace("lr_factors = [0.1, 1.0, 10.0]\ntuning_seeds = [7, 8, 9]\nextend = 1", table)
    with pytest.raises(MatrixError, match=match):
        load_matrix(write(tmp_path, text))


def test_evaluation_seeds_that_meet_the_tuning_seeds_are_refused(matrix):
    with pytest.raises(MatrixError, match="also evaluation seeds"):
        matrix.replace(seeds=[6, 7])
    assert matrix.tuning.screen == (7,) and matrix.tuning.confirm == (8, 9)
    assert matrix.replace(tuning=None).tuning is None  # --no-tuning


def test_early_stopping_selects_at_the_restore_point(tmp_path):
    m = load_matrix(write(tmp_path, TUNED.replace("batch_size = 100", "batch_size = 100\nearly_stopping = 3")))
    assert m.tuning.metric == "best_val_acc"


def test_outward_keeps_the_grid_step():
    assert outward([0.1, 0.316, 1.0, 3.16, 10.0], up=True) == 31.6
    assert outward([0.1, 0.316, 1.0, 3.16, 10.0], up=False) == 0.0316
    assert outward([0.5, 1.0, 2.0], up=True) == 4.0 and outward([0.5, 1.0, 2.0], up=False) == 0.25


# -------------------------------------------------------------------------------------------- selection

def fake_summary(rows):
    """Tuning models: (optimizer, schedule, factor, seed, final_val_acc, diverged[, stage])."""
    out = []
    for i, r in enumerate(rows):
        opt, name, f, seed, acc, div = r[:6]
        out.append(dict(model=i, optimizer=opt, name=name, lr_factor=f, peak_lr=0.1 * f, seed=seed,
                        final_val_acc=acc, best_val_acc=acc + 0.01, test_acc=1.0 - acc, diverged=div,
                        stage=r[6] if len(r) > 6 else "tune"))
    return pd.DataFrame(out)


def test_select_reads_validation_only_and_vetoes_collapsed_factors(matrix):
    rows = []
    for f, accs in ((0.1, (0.70, 0.72, 0.71)), (1.0, (0.80, 0.78, 0.79)), (10.0, (0.90, 0.91, 0.15))):
        rows += [("sgd", "constant", f, s, a, False) for s, a in zip((7, 8, 9), accs)]
    t = select(fake_summary(rows), matrix)
    sel = t[t["selected"]]
    # 10x: a finite loss but 15% validation accuracy on seed 9 (below 2x chance): a collapse, not eligible
    assert len(sel) == 1 and sel["factor"].iloc[0] == 1.0
    r10 = t[t["factor"] == 10.0].iloc[0]
    assert r10["collapsed"] == 1 and r10["diverged"] == 0 and not r10["eligible"]
    assert not bool(sel["on_edge"].iloc[0])
    r = t[t["factor"] == 1.0].iloc[0]
    assert r["mean"] == pytest.approx(0.79) and r["sd"] == pytest.approx(np.std([0.8, 0.78, 0.79], ddof=1))
    assert r["lr"] == pytest.approx(0.1) and r["n_seeds"] == 3 and r["metric"] == "final_val_acc" and r["eligible"]
    # test accuracy runs against validation here (test_acc = 1 - val): read, it would pick factor 0.1
    assert "test_acc" not in t.columns and sel["factor"].iloc[0] != 0.1


def test_a_factor_on_fewer_than_every_tuning_seed_is_never_selected(matrix):
    rows = [("sgd", "constant", 10.0, 7, 0.95, False)]  # the best on its one seed, never confirmed
    rows += [("sgd", "constant", f, s, 0.8, False) for f in (0.1, 1.0) for s in (7, 8, 9)]
    t = select(fake_summary(rows), matrix).set_index("factor")
    assert not t.loc[10.0, "eligible"] and t.loc[10.0, "n_seeds"] == 1
    assert bool(t.loc[0.1, "selected"])  # tie at 0.8: the smaller factor


def test_ties_pick_the_smaller_factor_and_edges_are_marked(matrix):
    rows = [("adam", "cosine", f, s, a, False) for f, a in ((0.1, 0.5), (1.0, 0.8), (10.0, 0.8)) for s in (7, 8, 9)]
    rows += [("adam", "constant", f, s, a, False) for f, a in ((0.1, 0.5), (1.0, 0.7), (10.0, 0.9)) for s in (7, 8, 9)]
    t = select(fake_summary(rows), matrix).set_index(["schedule", "factor"])
    assert bool(t.loc[("cosine", 1.0), "selected"]) and not bool(t.loc[("cosine", 1.0), "on_edge"])
    assert bool(t.loc[("constant", 10.0), "selected"]) and bool(t.loc[("constant", 10.0), "on_edge"])


def screen(accs: dict, seed: int = 7, stage: str = "tune", point=("sgd", "constant")) -> list:
    return [(*point, f, seed, a, not math.isfinite(a), stage) for f, a in accs.items()]


def test_candidates_are_the_leader_and_its_neighbours_then_a_confirmed_local_optimum(matrix):
    rows = screen({0.1: 0.70, 1.0: 0.85, 10.0: 0.80})
    t = select(fake_summary(rows), matrix)
    assert t["selected"].sum() == 0  # nothing is on every tuning seed yet
    assert candidates(t, matrix) == [("sgd", "constant", 0.1), ("sgd", "constant", 1.0), ("sgd", "constant", 10.0)]
    # confirmed: 1.0 holds; its neighbours are confirmed too: done
    rows += [("sgd", "constant", f, s, a, False, "tune-confirm") for f, a in ((0.1, 0.7), (1.0, 0.85), (10.0, 0.8))
             for s in (8, 9)]
    t = select(fake_summary(rows), matrix)
    assert t.set_index("factor").loc[1.0, "selected"] and candidates(t, matrix) == []


def test_a_collapse_on_a_confirmation_seed_moves_the_selection_and_confirms_its_neighbour(matrix):
    grid = {0.01: 0.60, 0.1: 0.70, 1.0: 0.85, 10.0: float("nan")}
    rows = screen(grid)
    rows += [("sgd", "constant", 0.1, s, 0.72, False, "tune-confirm") for s in (8, 9)]
    rows += [("sgd", "constant", 1.0, 8, 0.86, False, "tune-confirm"), ("sgd", "constant", 1.0, 9, 0.11, False,
                                                                       "tune-confirm")]
    t = select(fake_summary(rows), matrix).set_index("factor")
    assert t.loc[1.0, "collapsed"] == 1 and not t.loc[1.0, "eligible"]  # stuck at chance on seed 9
    assert t.loc[0.1, "selected"] and t.loc[10.0, "diverged"] == 1
    # 0.1 is selected now; its neighbour 0.01 has only its screening seed: confirm it (10x is dead, 1.0 vetoed)
    assert candidates(t.reset_index(), matrix) == [("sgd", "constant", 0.01)]


def test_stages_extend_an_edge_then_confirm_then_evaluate(matrix):
    assert next_stage(matrix.replace(tuning=None), [], None).name == "main"
    tune = next_stage(matrix, [], None)
    assert tune.name == "tune" and tune.seeds == (7,) and len(tune.points) == 2 * 2 * 3
    rows = []
    for opt, name in matrix.points:
        best = 10.0 if (opt, name) == ("adam", "constant") else 1.0
        rows += screen({f: 0.9 if f == best else 0.6 for f in (0.1, 1.0, 10.0)}, point=(opt, name))
    ext = next_stage(matrix, [tune], fake_summary(rows))
    assert ext.name == "tune+1" and ext.points == (("adam", "constant", 100.0),) and ext.seeds == (7,)
    # the optimum moves outward again: extend = 1 is spent; confirm the leaders and their neighbours
    rows.append(("adam", "constant", 100.0, 7, 0.95, False, "tune+1"))
    conf = next_stage(matrix, [tune, ext], fake_summary(rows))
    assert conf.name == "tune-confirm" and conf.seeds == (8, 9)
    assert ("adam", "constant", 100.0) in conf.points and ("adam", "constant", 10.0) in conf.points
    assert ("adam", "constant", 0.1) not in conf.points and len(conf.points) == 3 * 3 + 2
    for o, n, f in conf.points:
        a = next(r[4] for r in rows if r[:3] == (o, n, f))
        rows += [(o, n, f, s, a, False, "tune-confirm") for s in (8, 9)]
    ev = next_stage(matrix, [tune, ext, conf], fake_summary(rows))
    assert ev.name == "eval" and ev.seeds == matrix.seeds
    assert dict(((o, s), f) for o, s, f in ev.points)[("adam", "constant")] == 100.0
    assert ev.meta["tuning"]["on_edge"] == ["adam + constant"]
    assert "tuning.csv" in ev.files and next_stage(matrix, [tune, ext, conf, ev], fake_summary(rows)) is None
    assert Stage.from_dict(ev.to_dict()) == ev


def test_every_seed_screened_means_no_confirmation_stage(tmp_path):
    m = load_matrix(write(tmp_path, TUNED.replace("extend = 1", "extend = 0\nscreen_seeds = 3")))
    tune = next_stage(m, [], None)
    assert tune.seeds == (7, 8, 9)
    rows = [(o, n, f, s, 0.8 + 0.01 * f, False) for o, n in m.points for f in (0.1, 1.0, 10.0) for s in (7, 8, 9)]
    assert next_stage(m, [tune], fake_summary(rows)).name == "eval"


# ---------------------------------------------------------------------------------------- a real run

def test_tuned_run_selection_is_recomputed_from_its_tuning_models(tuned_run, matrix):
    meta = json.loads((tuned_run / "meta.json").read_text())
    summary = pd.read_csv(tuned_run / "summary.csv")
    names = [s["name"] for s in meta["stages"]]
    assert names[0] == "tune" and names[-1] == "eval" and meta["status"] == "complete"
    tuning = pd.read_csv(tuned_run / "tuning.csv")
    again = select(summary, matrix)
    pd.testing.assert_frame_equal(tuning.reset_index(drop=True), again.reset_index(drop=True), check_dtype=False)
    # every tuning model is in the table, with its factor, lr and seed
    tune = summary[summary["stage"].str.startswith("tune")]
    assert len(tune) == int(tuning["n_seeds"].sum()) and set(tune["seed"]) == {7, 8, 9}
    # every selection rests on all three tuning seeds, none collapsed, and is the best eligible mean
    sel = tuning[tuning["selected"]]
    assert len(sel) and (sel["n_seeds"] == 3).all() and (sel["collapsed"] == 0).all() and sel["eligible"].all()
    for r in sel.itertuples():
        same = tuning[(tuning["optimizer"] == r.optimizer) & (tuning["schedule"] == r.schedule) & tuning["eligible"]]
        assert r.mean == same["mean"].max()
    assert np.allclose(tune["peak_lr"], tune["lr_factor"] * tune["optimizer"].map(matrix.peak_lr))
    # evaluation: fresh seeds, each configuration at its selected factor, nothing else
    ev = summary[summary["stage"] == "eval"]
    assert set(ev["seed"]) == set(matrix.seeds) and not set(ev["seed"]) & set(tune["seed"])
    chosen = tuning[tuning["selected"]].set_index(["optimizer", "schedule"])["factor"]
    got = ev.groupby(["optimizer", "name"])["lr_factor"].agg(["min", "max"])
    for (opt, name), f in chosen.items():
        assert got.loc[(opt, name), "min"] == got.loc[(opt, name), "max"] == f
    assert len(ev) == matrix.n_configs
    assert meta["tuning"]["metric"] == "final_val_acc" and meta["tuning"]["models"] == len(tune)
    # no selected factor on an edge that could still have been extended
    for r in tuning[tuning["selected"] & tuning["on_edge"]].itertuples():
        tried = tuning[(tuning["optimizer"] == r.optimizer) & (tuning["schedule"] == r.schedule)]["factor"]
        assert sum(f not in matrix.tuning.lr_factors for f in tried) == matrix.tuning.extend
    assert (tuned_run / "find_lr" / "find_lr.csv").is_file()  # the range test's suggestions, for the report


@pytest.mark.parametrize("stop_at", [1, 3])
def test_interrupted_tuned_run_resumes_to_the_same_answer(tuned_run, matrix, data, tmp_path, monkeypatch, stop_at):
    """Interrupted in the tuning stage (chunk 1) or after it (chunk 3: the selection made, evaluation
    started): --resume plans the same stages and selects the same factors."""
    real, calls = registry.train, []

    def interrupt(*a, **k):
        calls.append(1)
        if len(calls) == stop_at + 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(registry, "train", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_matrix(matrix, results_dir=tmp_path, run_id="r", device="cpu", data=data, progress=False, chunk_size=4)
    monkeypatch.setattr(registry, "train", real)
    assert json.loads((tmp_path / "runs" / "r" / "meta.json").read_text())["status"] == "interrupted"
    run_matrix(resume="r", results_dir=tmp_path, data=data, progress=False)
    a = pd.read_csv(tmp_path / "runs" / "r" / "tuning.csv")
    b = pd.read_csv(tuned_run / "tuning.csv")
    assert a[a["selected"]]["factor"].tolist() == b[b["selected"]]["factor"].tolist()
    assert np.allclose(a["mean"], b["mean"], atol=5e-3)
    meta = json.loads((tmp_path / "runs" / "r" / "meta.json").read_text())
    assert meta["status"] == "complete" and [s["name"] for s in meta["stages"]][-1] == "eval"
    assert math.isfinite(pd.read_csv(tmp_path / "runs" / "r" / "summary.csv")["test_acc"].mean())
