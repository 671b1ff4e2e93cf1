"""lrcore.integrations.keras.LrcoreSchedule: values, model.fit, .keras save/load, bad input."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

import lrcore  # noqa: E402
from lrcore.compat import torch as T  # noqa: E402
from lrcore.integrations.keras import DEFAULT_STEPS, LrcoreSchedule  # noqa: E402

S = lrcore.Warmup(lrcore.Cosine(lr=0.1, decay_steps=20), steps=5)


class Rates(keras.callbacks.Callback):
    """The learning rate each optimizer step uses, read before the step."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_train_batch_begin(self, batch, logs=None):
        self.lrs.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def tiny_model(lr):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="mse")
    return model


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_values_and_hold_past_the_end():
    lr = LrcoreSchedule(S, steps=30)
    want = lrcore.evaluate(S, 30).astype(np.float32)
    got = np.array([float(lr(t)) for t in range(40)], np.float32)
    assert np.array_equal(got[:30], want)
    assert np.all(got[30:] == want[-1])  # held past the table
    assert float(lr(-3)) == want[0]
    assert float(lr(np.int64(2 ** 40))) == want[-1]  # no int32 wrap-around
    assert LrcoreSchedule(S).steps == DEFAULT_STEPS


def test_fit_uses_the_schedule_then_save_and_load(tmp_path):
    n_steps = 24  # 3 epochs x 8 batches
    lr = LrcoreSchedule(S, steps=n_steps)
    model = tiny_model(lr)
    x, y = data()
    cb = Rates()
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[cb], verbose=0)
    assert np.array_equal(np.array(cb.lrs, np.float32), lrcore.evaluate(S, n_steps).astype(np.float32))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    got = loaded.optimizer.learning_rate  # the value at the restored step count
    sched = loaded.optimizer._learning_rate
    assert isinstance(sched, LrcoreSchedule) and sched.schedule == S and sched.steps == n_steps
    assert int(loaded.optimizer.iterations) == n_steps
    assert float(got) == np.float32(lrcore.evaluate(S, n_steps)[-1])
    # training continues from the saved step, on the held last value
    cb2 = Rates()
    loaded.fit(x, y, batch_size=4, epochs=1, callbacks=[cb2], verbose=0)
    assert cb2.lrs == [float(np.float32(lrcore.evaluate(S, n_steps)[-1]))] * 8


def test_config_round_trip_and_serialize():
    lr = LrcoreSchedule(T.OneCycleLR(max_lr=0.1, total_steps=50), steps=50, name="one")
    cfg = lr.get_config()
    assert cfg == {"schedule": "OneCycle(max_lr=0.1, total_steps=50)", "steps": 50, "name": "one"}
    back = LrcoreSchedule.from_config(cfg)
    assert back.schedule == lr.schedule and np.array_equal(back.table, lr.table)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr))
    assert isinstance(again, LrcoreSchedule) and again.schedule == lr.schedule
    assert keras.saving.get_registered_name(LrcoreSchedule) == "lrcore>LrcoreSchedule"
    assert LrcoreSchedule("Cosine(lr=0.1, decay_steps=10)", steps=10).schedule == lrcore.Cosine(lr=0.1, decay_steps=10)


def test_bad_input():
    with pytest.raises(TypeError, match="schedule must be an lrcore schedule"):
        LrcoreSchedule(0.1)
    with pytest.raises(ValueError, match="steps \\(the table length\\) must be an integer"):
        LrcoreSchedule(S, steps=0)
    with pytest.raises(ValueError, match="steps \\(the table length\\) must be an integer"):
        LrcoreSchedule(S, steps=10.0)
    with pytest.raises(TypeError, match="name must be a string"):
        LrcoreSchedule(S, steps=10, name=3)
    with pytest.raises(ValueError, match="config must be a dict with a 'schedule'"):
        LrcoreSchedule.from_config({"steps": 3})
    with pytest.raises(TypeError, match="cannot serialize.*expression string"):
        LrcoreSchedule(lrcore.Lambda(lambda t: 0.5, lr=0.1), steps=10).get_config()
