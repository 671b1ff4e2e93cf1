"""Tuned matrices (bench/matrix/tuning.py): the [tuning] table's rules, selection from validation metrics
only, edge extensions, and a real tuned run on a slice of Fashion-MNIST whose selection is recomputed from
its tuning models, whose evaluation seeds are fresh, and which resumes between and inside stages."""
import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

import bench.matrix.runner as runner
from bench.matrix.runner import run_matrix
from bench.matrix.spec import MatrixError, load_matrix
from bench.matrix.tuning import Stage, next_stage, outward, select
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
tuning_seeds = [7]
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
    ("lr_factors = [1.0]\ntuning_seeds = [7]", "lr_factors must be a list of >= 2 positive numbers"),
    ("lr_factors = [1.0, 0.1]\ntuning_seeds = [7]", "distinct and in increasing order"),
    ("lr_factors = [0.1, -1.0]\ntuning_seeds = [7]", "lr_factors must be a list of >= 2 positive"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [0, 7]", r"tuning_seeds \[0\] are also evaluation seeds"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = 2", "tuning_seeds must be a list"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7]\nmetric = 'test_acc'", "selection never reads a test metric"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7]\nmetric = 'loss'", "metric must be one of final_val_acc"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7]\nextend = -1", "extend must be an integer >= 0"),
    ("lr_factors = [0.1, 1.0]\ntuning_seeds = [7]\nseed = 3", r"\[tuning\] unknown key\(s\) \['seed'\]"),
])
def test_bad_tuning_tables_name_the_rule(tmp_path, table, match):
    text = TUNED.replace("lr_factors = [0.1, 1.0, 10.0]\ntuning_seeds = [7]\nextend = 1", table)
    with pytest.raises(MatrixError, match=match):
        load_matrix(write(tmp_path, text))


def test_evaluation_seeds_that_meet_the_tuning_seeds_are_refused(matrix):
    with pytest.raises(MatrixError, match="also evaluation seeds"):
        matrix.replace(seeds=[6, 7])
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


def test_select_reads_validation_only_and_skips_diverged_factors(matrix):
    rows = []
    for f, accs in ((0.1, (0.70, 0.72)), (1.0, (0.80, 0.78)), (10.0, (0.90, 0.10))):
        rows += [("sgd", "constant", f, s, a, a < 0.2) for s, a in zip((7, 8), accs)]
    t = select(fake_summary(rows), matrix)
    sel = t[t["selected"]]
    assert len(sel) == 1 and sel["factor"].iloc[0] == 1.0  # 10x has a diverged seed: not eligible
    assert not bool(sel["on_edge"].iloc[0])
    r = t[t["factor"] == 1.0].iloc[0]
    assert r["mean"] == pytest.approx(0.79) and r["sd"] == pytest.approx(np.std([0.8, 0.78], ddof=1))
    assert r["lr"] == pytest.approx(0.1) and r["n_seeds"] == 2 and r["metric"] == "final_val_acc"
    # test accuracy runs against validation here (test_acc = 1 - val): read, it would pick factor 0.1
    assert "test_acc" not in t.columns and sel["factor"].iloc[0] != 0.1


def test_ties_pick_the_smaller_factor_and_edges_are_marked(matrix):
    rows = [("adam", "cosine", f, 7, a, False) for f, a in ((0.1, 0.5), (1.0, 0.8), (10.0, 0.8))]
    rows += [("adam", "constant", f, 7, a, False) for f, a in ((0.1, 0.5), (1.0, 0.7), (10.0, 0.9))]
    t = select(fake_summary(rows), matrix).set_index(["schedule", "factor"])
    assert bool(t.loc[("cosine", 1.0), "selected"]) and not bool(t.loc[("cosine", 1.0), "on_edge"])
    assert bool(t.loc[("constant", 10.0), "selected"]) and bool(t.loc[("constant", 10.0), "on_edge"])


def test_stages_extend_an_edge_once_then_evaluate(matrix):
    assert next_stage(matrix.replace(tuning=None), [], None).name == "main"
    tune = next_stage(matrix, [], None)
    assert tune.name == "tune" and tune.seeds == (7,) and len(tune.points) == 2 * 2 * 3
    rows = []
    for opt, name in matrix.points:
        best = 10.0 if (opt, name) == ("adam", "constant") else 1.0
        rows += [(opt, name, f, 7, 0.9 if f == best else 0.6, False) for f in (0.1, 1.0, 10.0)]
    ext = next_stage(matrix, [tune], fake_summary(rows))
    assert ext.name == "tune+1" and ext.points == (("adam", "constant", 100.0),)
    # the optimum moves outward again: extend = 1 is spent, so it is evaluated there and flagged on the edge
    rows.append(("adam", "constant", 100.0, 7, 0.95, False, "tune+1"))
    ev = next_stage(matrix, [tune, ext], fake_summary(rows))
    assert ev.name == "eval" and ev.seeds == matrix.seeds
    assert dict(((o, s), f) for o, s, f in ev.points)[("adam", "constant")] == 100.0
    assert ev.meta["tuning"]["on_edge"] == ["adam + constant"]
    assert "tuning.csv" in ev.files and next_stage(matrix, [tune, ext, ev], fake_summary(rows)) is None
    assert Stage.from_dict(ev.to_dict()) == ev


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
    assert len(tune) == int(tuning["n_seeds"].sum()) and set(tune["seed"]) == {7}
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
    real, calls = runner._train, []

    def interrupt(*a, **k):
        calls.append(1)
        if len(calls) == stop_at + 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "_train", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_matrix(matrix, results_dir=tmp_path, run_id="r", device="cpu", data=data, progress=False, chunk_size=4)
    monkeypatch.setattr(runner, "_train", real)
    assert json.loads((tmp_path / "runs" / "r" / "meta.json").read_text())["status"] == "interrupted"
    run_matrix(resume="r", results_dir=tmp_path, data=data, progress=False)
    a = pd.read_csv(tmp_path / "runs" / "r" / "tuning.csv")
    b = pd.read_csv(tuned_run / "tuning.csv")
    assert a[a["selected"]]["factor"].tolist() == b[b["selected"]]["factor"].tolist()
    assert np.allclose(a["mean"], b["mean"], atol=5e-3)
    meta = json.loads((tmp_path / "runs" / "r" / "meta.json").read_text())
    assert meta["status"] == "complete" and [s["name"] for s in meta["stages"]][-1] == "eval"
    assert math.isfinite(pd.read_csv(tmp_path / "runs" / "r" / "summary.csv")["test_acc"].mean())
