"""Matrix files: the built-ins load, configurations come in a documented order, bad files fail clearly."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lrcore
from bench.matrix.spec import MatrixError, builtin_names, from_dict, load_matrix, parse_seeds

GOOD = """
name = "tiny"
epochs = 2
seeds = [0, 1]
[peak_lr]
sgd = 0.1
adam = 0.001
[schedules]
constant = "Constant(lr=peak)"
cosine = "Warmup(Cosine(lr=peak, decay_steps=total - steps_per_epoch), steps=steps_per_epoch)"
plateau = "plateau"
"""


def write(tmp_path, text, name="m.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_builtins_load_and_have_the_issue_sets():
    assert {"quick", "default", "full"} <= set(builtin_names())
    d = load_matrix("default")
    assert (d.epochs, d.seeds, d.n_configs) == (20, tuple(range(10)), 740)
    # the fair answer (issue 25): >= 5 factors spanning >= 100x; a robust one (issue 32): >= 3 tuning seeds,
    # disjoint from >= 10 evaluation seeds
    t = d.tuning
    assert len(t.lr_factors) >= 5 and max(t.lr_factors) / min(t.lr_factors) >= 100 - 1e-9
    assert len(t.seeds) >= 3 and not set(t.seeds) & set(d.seeds) and len(d.seeds) >= 10 and 20 <= d.epochs <= 30
    assert t.confirm_neighbours and len(load_matrix("quick").seeds) >= 3
    assert "test" not in t.metric and t.extend >= 1
    assert set(d.peak_lr) == {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "sgd_schedulefree",
                              "adamw_schedulefree"}
    assert d.schedule_free == {"warmup_constant": "Warmup(Constant(lr=peak), steps=total // 20)"}
    assert set(d.schedules) == {"constant", "step", "exponential", "cosine", "warmup_cosine", "onecycle",
                                "cyclic_triangular2", "cosine_restarts", "wsd", "inverse_sqrt", "polynomial",
                                "plateau"}
    assert (d.baseline, d.contender) == ("constant", "warmup_cosine")
    q = load_matrix("quick")
    assert q.n_configs <= 114 and q.epochs <= 3 and len(q.tuning.lr_factors) == 3


def test_configs_order_and_placeholders(tmp_path):
    m = load_matrix(write(tmp_path, GOOD))
    cs = m.configs()
    assert [(c.optimizer, c.name, c.seed) for c in cs[:4]] == [("sgd", "constant", 0), ("sgd", "constant", 1),
                                                              ("sgd", "cosine", 0), ("sgd", "cosine", 1)]
    assert len(cs) == m.n_configs == 12
    c = cs[2]
    spe = m.steps_per_epoch
    s = c.parse(2 * spe, spe)
    lr = lrcore.evaluate(s, 2 * spe)
    assert lr[0] == 0.0 and lr[spe] == pytest.approx(0.1) and lr.max() <= 0.1 + 1e-12
    assert cs[-1].reactive and cs[-1].peak_lr == 0.001


def test_replace_and_round_trip(tmp_path):
    m = load_matrix(write(tmp_path, GOOD))
    r = m.replace(epochs=5, seeds=[3])
    assert (r.epochs, r.seeds, r.n_configs) == (5, (3,), 6)
    assert from_dict(m.to_dict(), source=m.source) == m


@pytest.mark.parametrize("change, words", [
    ("epochs = 0", ["epochs", ">= 1"]),
    ("colour = 1", ["unknown key", "colour"]),
    ("seeds = [1, 1]", ["seeds", "distinct"]),
    ("[peak_lr]\nlion = 0.1", ["unknown optimizer", "lion"]),
    ("[peak_lr]\nrmsprop = -1", ["rmsprop", "positive"]),
    ("[schedules]\nbad = \"Cosine(lr=peak)\"", ["'bad'", "decay_steps"]),
    ("[schedules]\nneg = \"Linear(start=peak, end=-peak, steps=total)\"", ["'neg'", ">= 0"]),
    ("[schedules]\nsyntax = \"Cosine(lr=\"", ["'syntax'", "not valid"]),
    ("[schedules]\nnative = \"keras-native:keras.CosineDecay(initial_learning_rate=peak, decay_steps=total)\"",
     ["native", "framework"]),
    ("baseline = \"nope\"", ["baseline", "nope"]),
    ("[model]\nwidths = [100, 10]", ["widths", "784"]),
    ("[model]\nactivation = \"swish\"", ["activation"]),
    ("[plateau]\nfactor = 2.0", ["[plateau]", "factor"]),
    ("[plateau]\npatients = 2", ["[plateau]", "patients"]),
])
def test_bad_matrix_files_name_the_key_and_rule(tmp_path, change, words):
    key, _, value = change.partition("\n")
    if key.startswith("["):  # a line added to (or a new) table
        text = GOOD.replace(key, change, 1) if key in GOOD else GOOD + "\n" + change + "\n"
    else:  # a top-level line replaced or added before the tables
        name = key.split("=")[0].strip()
        lines = [ln for ln in GOOD.splitlines() if not ln.startswith(name + " =")]
        text = key + "\n" + "\n".join(lines) + "\n"
    with pytest.raises(MatrixError) as e:
        load_matrix(write(tmp_path, text))
    msg = str(e.value)
    assert "m.toml" in msg
    for w in words:
        assert w in msg, msg


def test_unknown_matrix_lists_builtins():
    with pytest.raises(MatrixError, match="quick"):
        load_matrix("no-such-matrix")


def test_parse_seeds():
    assert parse_seeds(3) == [0, 1, 2]
    assert parse_seeds("4") == [0, 1, 2, 3]
    assert parse_seeds("0,5") == [0, 5]
    for bad in (0, [], "a,b", [-1]):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def test_cli_reports_a_bad_matrix_without_traceback(tmp_path):
    p = write(tmp_path, GOOD.replace("sgd = 0.1", "sgd = \"fast\""))
    r = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--matrix", str(p), "--results",
                        str(tmp_path / "res")], capture_output=True, text=True)
    assert r.returncode == 1
    assert "sgd must be a positive number" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "res").exists()


SF = GOOD.replace("adam = 0.001\n", "adam = 0.001\nadamw_schedulefree = 0.0025\n")


def test_schedule_free_optimizers_take_only_warmup_only_schedules(tmp_path):
    m = load_matrix(write(tmp_path, SF))  # no [schedule_free] table: the default warmup-then-constant one
    cs = m.configs()
    sf = [c for c in cs if c.optimizer == "adamw_schedulefree"]
    assert [(c.name, c.seed) for c in sf] == [("warmup_constant", 0), ("warmup_constant", 1)]
    assert len(cs) == m.n_configs == 12 + 2
    lr = lrcore.evaluate(sf[0].parse(10 * m.steps_per_epoch), 10 * m.steps_per_epoch)
    assert lr[0] == 0 and lr[-1] == pytest.approx(0.0025) and (np.diff(lr) >= 0).all()
    own = load_matrix(write(tmp_path, SF + '[schedule_free]\nshort_warmup = "Warmup(Constant(lr=peak), steps=10)"\n'))
    assert [c.name for c in own.configs() if c.optimizer == "adamw_schedulefree"] == ["short_warmup"] * 2
    assert own.replace(epochs=3).schedule_free == own.schedule_free  # round trip


@pytest.mark.parametrize("extra,match", [
    ('[schedule_free]\nconstant = "Constant(lr=peak)"\n', "also in \\[schedules\\]"),
    ('[schedule_free]\nrop = "plateau"\n', "plateau is a decay"),
    ('[schedule_free]\nbad = "Warmup(Constant(lr=peak), steps=-3)"\n', "bad"),
])
def test_schedule_free_errors(tmp_path, extra, match):
    with pytest.raises(MatrixError, match=match):
        load_matrix(write(tmp_path, SF + extra))


def test_schedule_free_table_needs_a_schedule_free_optimizer(tmp_path):
    with pytest.raises(MatrixError, match="names no schedule-free optimizer"):
        load_matrix(write(tmp_path, GOOD + '[schedule_free]\nw = "Constant(lr=peak)"\n'))
    with pytest.raises(MatrixError, match="PyTorch trainers only"):
        load_matrix(write(tmp_path, SF.replace('name = ', 'framework = "keras"\nname = ')))
