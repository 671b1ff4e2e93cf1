"""The Keras trainer (real Keras 3 / TensorFlow on slices of the real Fashion-MNIST)."""
import math
import types

import numpy as np
import pytest

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import lrcore  # noqa: E402
from bench.train.keras import (KERAS_OPTIMIZERS, keras_learning_rate, native_schedule, plateau_to_keras,  # noqa: E402
                                 train_keras, _build_model)
from bench.train.batched import HISTORY_COLUMNS, SUMMARY_COLUMNS, TrainConfig, steps_per_epoch, train_chunk  # noqa: E402
from bench.train.config import TrainSpec  # noqa: E402

B = 128
WARM = "keras.CosineDecay(initial_learning_rate=0.0, decay_steps=total - 10, warmup_target=peak, warmup_steps=10)"
EXPO = "keras.ExponentialDecay(initial_learning_rate=peak, decay_steps=steps_per_epoch, decay_rate=0.5)"


@pytest.fixture(scope="module")
def data():
    try:
        from bench.train.data import load_fashion_mnist
        d = load_fashion_mnist()
    except (FileNotFoundError, ValueError) as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    return types.SimpleNamespace(x_train=d.x_train[:1024], y_train=d.y_train[:1024], x_val=d.x_val[:512],
                                 y_val=d.y_val[:512], x_test=d.x_test[:512], y_test=d.y_test[:512])


def _spe(data):
    return steps_per_epoch(len(data.x_train), B)


def test_schema_throughput_and_lr_table(data):
    cfgs = [TrainConfig("warm", "adam", 1e-3, WARM, seed=0), TrainConfig("expo", "momentum", 0.01, EXPO, seed=1)]
    seen = []
    r = train_keras(cfgs, data, TrainSpec(epochs=2, batch_size=B), progress=lambda e, rows: seen.append((e, rows)))
    t = train_chunk(cfgs[:1], data, TrainSpec(epochs=2, batch_size=B))
    assert list(r.history.columns) == HISTORY_COLUMNS == list(t.history.columns)
    assert list(r.summary.columns) == SUMMARY_COLUMNS == list(t.summary.columns)
    assert set(r.throughput) == set(t.throughput)
    assert len(r.history) == 4 and list(r.summary["model"]) == [0, 1]
    assert [(e, rows[0]["model"]) for e, rows in seen] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert r.history["momentum"].isna().all() and r.history["trained"].all() and not r.summary["diverged"].any()
    assert (r.history["epoch_time_s"] > 0).all() and r.throughput["flop_per_s"] > 0
    spe = _spe(data)
    total = 2 * spe
    for m, c in enumerate(cfgs):
        table = lrcore.evaluate(c.parse(total, spe), total).astype(np.float32)
        h = r.history[r.history["model"] == m].sort_values("epoch")
        np.testing.assert_array_equal(h["lr"].to_numpy(), table[[spe - 1, 2 * spe - 1]].astype(np.float64))
        assert np.isfinite(h[["train_loss", "val_loss", "val_acc"]].to_numpy()).all()
    s = r.summary.iloc[0]
    assert 0.5 < s["test_acc"] <= 1 and 0.5 < s["test_acc_best"] <= 1 and s["best_val_epoch"] in (0, 1)


class LrTrace(keras.callbacks.Callback):
    """optimizer.learning_rate before every step, one list per fit."""

    def __init__(self):
        super().__init__()
        self.runs = []

    def on_train_begin(self, logs=None):
        self.runs.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self.runs[-1].append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_native_schedules_match_lrcore_per_step(data):
    cfgs = [TrainConfig("warm", "adam", 1e-3, "keras-native:" + WARM), TrainConfig("warm", "adam", 1e-3, WARM),
            TrainConfig("expo", "sgd", 0.05, "keras-native:" + EXPO),
            TrainConfig("fixed", "adam", 1e-3, "keras-native:Constant(lr=peak)")]
    spe = _spe(data)
    total = 2 * spe
    lr0 = keras_learning_rate(cfgs[0], total, spe)
    assert isinstance(lr0, keras.optimizers.schedules.CosineDecay) and lr0.warmup_steps == 10
    assert lr0.decay_steps == total - 10 and lr0.warmup_target == 1e-3
    assert keras_learning_rate(cfgs[3], total, spe) == 1e-3
    trace = LrTrace()
    r = train_keras(cfgs, data, TrainSpec(epochs=2, batch_size=B), callbacks=[trace])
    for c, got in zip(cfgs, trace.runs):
        ref = lrcore.evaluate(c.parse(total, spe), total)
        assert len(got) == total
        assert np.all(np.abs(np.array(got) - ref) <= 2e-6 * np.abs(ref) + 1e-6 * np.abs(ref).max()), c.name
    # the lr recorded inside the compiled step agrees too
    h = r.history
    np.testing.assert_allclose(h[h.model == 0]["lr"], h[h.model == 1]["lr"], rtol=2e-6, atol=1e-6 * 1e-3)


def test_native_schedule_text_rules():
    s = native_schedule("keras-native:keras.ExponentialDecay(initial_learning_rate=peak * 2, decay_steps=10, "
                        "decay_rate=0.5)", peak=0.1)
    assert isinstance(s, keras.optimizers.schedules.ExponentialDecay) and s.initial_learning_rate == 0.2
    with pytest.raises(ValueError, match="keras.X"):
        native_schedule("Cosine(lr=0.1, decay_steps=10)")
    with pytest.raises(ValueError):
        native_schedule("keras.CosineDecay(initial_learning_rate=0.1, decay_steps=0)")
    with pytest.raises(ValueError, match="momentum"):
        keras_learning_rate(TrainConfig("oc", "sgd", 0.1, "OneCycle(max_lr=peak, total_steps=total)"), 100, 10)
    assert plateau_to_keras({"patience": 0, "factor": 0.5}) == dict(factor=0.5, patience=1, cooldown=0, min_lr=0.0,
                                                                   min_delta=1e-4)
    assert plateau_to_keras({"threshold": 0.01, "threshold_mode": "abs"})["min_delta"] == 0.01
    assert set(KERAS_OPTIMIZERS) == {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"}


def test_keras_classic_matrix_schedules():
    from bench.matrix.spec import load_matrix
    mx = load_matrix("keras-classic")  # the project's validation, as `lrbench run --matrix keras-classic`
    assert mx.framework == "keras" and mx.n_configs == 6 * 3
    m = mx.to_dict()
    assert m["framework"] == "keras" and set(m["peak_lr"]) == {"adam"} and m["seeds"] == [0, 1, 2]
    assert m["baseline"] in m["schedules"] and m["contender"] in m["schedules"]
    spe = steps_per_epoch(50_000, m["batch_size"])
    total = m["epochs"] * spe
    from reference.keras_oracle import keras_lrs
    steps = np.array([0, 50, 99, 100, 101, spe, total // 2, total - 1])
    for name, text in m["schedules"].items():
        c = TrainConfig(name, "adam", m["peak_lr"]["adam"], text)
        lr = keras_learning_rate(c, total, spe)
        ref = lrcore.evaluate(c.parse(total, spe), steps)
        if text.startswith("keras-native:"):
            got = np.full(len(steps), lr) if isinstance(lr, float) else keras_lrs(lr, steps)
            assert np.all(np.abs(got - ref) <= 2e-6 * np.abs(ref) + 1e-6 * 1e-3), name
    cos = TrainConfig("c", "adam", 1e-3, m["schedules"]["cosine_warmup"]).parse(total, spe)
    v = lrcore.evaluate(cos, np.array([0, 100, total - 1]))
    assert v[0] == 0 and v[1] == pytest.approx(1e-3) and v[2] < 1e-8


def test_same_seed_same_result_different_seed_differs(data):
    w0 = [w.copy() for w in _build_model((784, 16, 10), "relu", 0.0, 3)[0].get_weights()]
    w1 = _build_model((784, 16, 10), "relu", 0.0, 3)[0].get_weights()
    w2 = _build_model((784, 16, 10), "relu", 0.0, 4)[0].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    assert not np.array_equal(w0[0], w2[0])
    cfgs = [TrainConfig("c", "adam", 1e-3, seed=0), TrainConfig("c", "adam", 1e-3, seed=0),
            TrainConfig("c", "adam", 1e-3, seed=1)]
    r = train_keras(cfgs, data, TrainSpec(epochs=1, batch_size=B, widths=(784, 64, 10)))
    cols = ["train_loss", "val_loss", "val_acc", "lr"]
    h = r.history.set_index("model")
    np.testing.assert_array_equal(h.loc[0, cols].to_numpy(float), h.loc[1, cols].to_numpy(float))
    assert h.loc[0, "train_loss"] != h.loc[2, "train_loss"]
    s = r.summary.set_index("model")
    assert s.loc[0, "test_acc"] == s.loc[1, "test_acc"]


def test_divergence_is_reported_and_others_complete(data):
    cfgs = [TrainConfig("huge", "sgd", 1e6, seed=0), TrainConfig("ok", "sgd", 0.05, seed=0)]
    r = train_keras(cfgs, data, TrainSpec(epochs=2, batch_size=B, widths=(784, 64, 10)))
    s = r.summary.set_index("model")
    assert s.loc[0, "diverged"] and s.loc[0, "diverged_epoch"] == 0 and s.loc[0, "epochs_trained"] == 1
    assert not s.loc[1, "diverged"] and s.loc[1, "epochs_trained"] == 2 and s.loc[1, "test_acc"] > 0.5
    h = r.history
    bad = h[h.model == 0].sort_values("epoch")
    assert bad["diverged"].all() and bad["train_loss"].isna().all() and list(bad["trained"]) == [True, False]
    assert np.isfinite(h[h.model == 1]["train_loss"]).all()


def test_plateau_reduces_lr(data):
    # an absolute threshold of 10 makes every epoch after the first a bad one: torch patience 0 -> Keras 1
    cfg = TrainConfig("p", "adam", 1e-3, "plateau")
    r = train_keras([cfg], data, TrainSpec(epochs=3, batch_size=B, widths=(784, 32, 10),
                                           plateau=dict(factor=0.5, patience=0, threshold=10.0, threshold_mode="abs")))
    lrs = r.history.sort_values("epoch")["lr"].to_numpy()
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 5e-4], rtol=1e-6)


def test_early_stopping_restores_best(data):
    cfg = TrainConfig("c", "adam", 1e-3)
    r = train_keras([cfg], data, TrainSpec(epochs=4, batch_size=B, widths=(784, 32, 10),
                                           early_stopping=dict(patience=1, min_delta=10.0)))
    s = r.summary.iloc[0]
    h = r.history.sort_values("epoch")
    assert s["stopped_epoch"] == 1 and s["epochs_trained"] == 2 and not s["diverged"]
    assert list(h["trained"]) == [True, True, False, False] and list(h["stopped"]) == [False, True, True, True]
    # the final score is of the restored epoch-0 weights, not of epoch 1's
    assert s["final_val_loss"] == pytest.approx(h["val_loss"].iloc[0], rel=1e-5)
    assert s["final_val_loss"] != pytest.approx(h["val_loss"].iloc[1], rel=1e-5)
    assert math.isfinite(s["test_acc"])


KERAS_MATRIX = """
name = "kc-tiny"
framework = "keras"
epochs = 2
seeds = [0, 1]
batch_size = 128
baseline = "fixed"
contender = "warm"
[model]
widths = [784, 32, 10]
[peak_lr]
adam = 0.002
[schedules]
fixed = "Constant(lr=peak)"
fixed_native = "keras-native:Constant(lr=peak)"
warm = "keras.CosineDecay(initial_learning_rate=0.0, decay_steps=total - 5, warmup_target=peak, warmup_steps=5)"
warm_native = "keras-native:keras.CosineDecay(initial_learning_rate=0.0, decay_steps=total - 5, warmup_target=peak, warmup_steps=5)"
"""


def test_runner_trains_a_keras_matrix_and_its_torch_half(tmp_path):
    """`lrbench run` of a Keras matrix: trainer keras, the results schema and the report; then the same
    matrix with the PyTorch trainer runs its lrcore half (the cross-framework counterpart)."""
    import json

    import pandas as pd

    from bench.train.data import load_fashion_mnist
    from bench.matrix.spec import load_matrix
    from bench.cli import write_run_report
    from bench.matrix.runner import EXTRA_SUMMARY, run_matrix
    d = load_fashion_mnist("cpu").head(1024, 512, 512)
    src = tmp_path / "kc-tiny.toml"
    src.write_text(KERAS_MATRIX)
    m = load_matrix(src)
    run = run_matrix(m, results_dir=tmp_path, run_id="k", data=d, progress=False)
    write_run_report(run, tmp_path)  # what lrbench run does after the run
    meta = json.loads((run / "meta.json").read_text())
    assert meta["trainer"] == "keras" and meta["status"] == "complete" and meta["n_configs"] == 8
    summ = pd.read_csv(run / "summary.csv")
    assert list(summ.columns) == SUMMARY_COLUMNS + EXTRA_SUMMARY and (summ["trainer"] == "keras").all()
    assert summ["test_acc"].between(0.5, 1).all()
    # the real Keras fixed rate and lrcore's constant give the same training in Keras
    s = summ.set_index(["name", "seed"])
    assert np.allclose(s.loc["fixed", "test_acc"], s.loc["fixed_native", "test_acc"])
    assert "fixed_native" in (run / "report.md").read_text() and (run / "report.html").is_file()
    half = run_matrix(m, results_dir=tmp_path, run_id="t", data=d, progress=False, trainer="batched")
    meta = json.loads((half / "meta.json").read_text())
    assert meta["trainer"] == "batched" and meta["matrix"]["name"] == "kc-tiny-torch"
    assert sorted(meta["matrix"]["schedules"]) == ["fixed", "warm"] and meta["n_configs"] == 4
