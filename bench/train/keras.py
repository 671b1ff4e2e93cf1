"""The Keras path: the benchmark's MLP configurations trained with ``model.fit`` (Keras 3, TensorFlow backend).

``train_keras(configs, data, spec)`` returns the same ``ChunkResult`` columns as the batched trainer,
on the same batches and learning rates, so runs of both frameworks pair by seed. What is matched with
PyTorch and what is Keras's own: docs/BENCH.md, "bench/train/keras.py".
"""
from __future__ import annotations

import ast
import math
import os
import time
from typing import Callable, Sequence

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import lrcore  # noqa: E402

from .batched import batch_permutation  # noqa: E402
from .config import NATIVE_PREFIX, PLATEAU_DEFAULTS, ChunkResult, TrainConfig, TrainSpec, steps_per_epoch  # noqa: E402
from .model import forward_flops, step_flops  # noqa: E402
from .record import ModelRecords, chunk_result  # noqa: E402

__all__ = ["train_keras", "train_one_keras", "keras_optimizer", "keras_learning_rate", "native_schedule",
           "KERAS_OPTIMIZERS", "NATIVE_PREFIX", "plateau_to_keras", "matmul_flop_rate_tf"]

#: Our optimizer names -> (Keras optimizer class name, keyword arguments besides learning_rate): the
#: PyTorch trainer's hyper-parameter values (torch.optim defaults) under Keras's names.
KERAS_OPTIMIZERS = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {"rho": 0.99, "epsilon": 1e-8, "momentum": 0.0}),
    "adam": ("Adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
    "adamw": ("AdamW", {"weight_decay": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
}

_DETERMINISM = False


def _keras():
    """``import keras`` (TensorFlow backend) with TensorFlow's start-up chatter silenced."""
    from reference.keras_oracle import import_keras
    return import_keras()


def _tf():
    _keras()
    import tensorflow as tf
    global _DETERMINISM
    if not _DETERMINISM:
        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # pragma: no cover - very old TensorFlow
            pass
        _DETERMINISM = True
    return tf


def _strip_native(text: str) -> tuple[bool, str]:
    t = text.strip()
    if t.startswith(NATIVE_PREFIX):
        return True, t[len(NATIVE_PREFIX):].strip()
    return False, t


def _names(config: TrainConfig, total: int, spe: int) -> dict:
    return dict(peak=float(config.peak_lr), total=int(total), steps_per_epoch=int(spe), epochs=int(total) // int(spe))


def lrcore_schedule(config: TrainConfig, total: int, spe: int):
    """The lrcore schedule of a config (the lrcore equivalent of a ``keras-native:`` one; None for plateau)."""
    if config.reactive:
        return None
    return lrcore.parse(_strip_native(config.schedule)[1], **_names(config, total, spe))


def native_schedule(text: str, **names):
    """The real Keras object for the text after ``keras-native:``: ``keras.X(...)`` ->
    ``keras.optimizers.schedules.X(...)`` with the same arguments (placeholders ``names`` substituted,
    arithmetic allowed, parsed with ``ast``, nothing runs); ``Constant(lr=...)`` -> the float ``lr``
    (Keras's fixed learning rate). The text is also parsed by ``lrcore.parse`` (validation)."""
    from lrcore.textform import _dotted, _eval  # the same safe evaluator as lrcore.parse
    keras = _keras()
    _, text = _strip_native(text)
    lrcore.parse(text, **names)  # raises ValueError/TypeError naming the problem
    node = ast.parse(text, mode="eval").body
    if not isinstance(node, ast.Call):
        raise ValueError(f"native_schedule: expected keras.X(...) or Constant(lr=...), got {text!r}")
    name = _dotted(node.func, text)
    args = [_eval(a, names, text) for a in node.args]
    kwargs = {k.arg: _eval(k.value, names, text) for k in node.keywords}
    if name == "Constant":
        lr = (args + [kwargs.get("lr")])[0]
        if set(kwargs) - {"lr"} or len(args) > 1:
            raise ValueError(f"native_schedule: a native Constant takes only lr (Keras's fixed rate), got {text!r}")
        return float(lr)
    prefix, _, cls = name.partition(".")
    if prefix != "keras" or not hasattr(keras.optimizers.schedules, cls):
        raise ValueError(f"native_schedule: after {NATIVE_PREFIX} give keras.X(...) with X a class of "
                         f"keras.optimizers.schedules (or Constant(lr=...)), got {name!r}")
    return getattr(keras.optimizers.schedules, cls)(*args, **kwargs)


def keras_learning_rate(config: TrainConfig, total: int, spe: int):
    """What the Keras optimizer gets as ``learning_rate`` for a config: a float (plateau, native
    Constant), the real Keras schedule (``keras-native:``) or an ``LrcoreSchedule`` table of ``total`` steps."""
    if config.reactive:
        return float(config.peak_lr)
    names = _names(config, total, spe)
    native, text = _strip_native(config.schedule)
    sched = lrcore.parse(text, **names)
    if sched.momentum is not None:
        raise ValueError(f"train_keras: config {config.name!r} ({config.schedule}) cycles momentum; Keras optimizers "
                         "take momentum/beta_1 as fixed numbers (give the schedule cycle_momentum=False)")
    if native:
        return native_schedule(text, **names)
    from lrcore.integrations.keras import LrcoreSchedule
    return LrcoreSchedule(sched, steps=int(total))


def keras_optimizer(name: str, learning_rate):
    """The Keras optimizer for one of our optimizer names (:data:`KERAS_OPTIMIZERS`)."""
    keras = _keras()
    if name not in KERAS_OPTIMIZERS:
        raise ValueError(f"keras_optimizer: optimizer must be one of {sorted(KERAS_OPTIMIZERS)}, got {name!r}")
    cls, kw = KERAS_OPTIMIZERS[name]
    return getattr(keras.optimizers, cls)(learning_rate=learning_rate, **kw)


def plateau_to_keras(plateau_kwargs: dict | None) -> dict:
    """PyTorch ``ReduceLROnPlateau`` keyword arguments (``TrainSpec.plateau_kwargs()``) ->
    ``keras.callbacks.ReduceLROnPlateau`` ones (docs/BENCH.md gives the mapping)."""
    kw = {**PLATEAU_DEFAULTS, **(plateau_kwargs or {})}
    unknown = set(kw) - {"factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps"}
    if unknown:
        raise ValueError(f"train_keras: unknown plateau keyword(s) {sorted(unknown)}")
    out = dict(factor=float(kw["factor"]), patience=int(kw["patience"]) + 1, cooldown=int(kw.get("cooldown", 0)),
               min_lr=float(kw.get("min_lr", 0.0)))
    if kw.get("threshold_mode", "rel") == "abs" and "threshold" in kw:
        out["min_delta"] = float(kw["threshold"])
    else:
        out["min_delta"] = 1e-4
    return out


def _build_model(widths, activation: str, dropout: float, seed: int):
    keras = _keras()
    tf = _tf()
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))

    class _Tracker:  # plain holder: the variables the compiled step writes, read back per epoch
        pass

    tr = _Tracker()
    tr.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
    tr.halted = tf.Variable(False, trainable=False)
    tr.lr = tf.Variable(math.nan, dtype=tf.float32, trainable=False)
    tr.steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    class KerasMLP(keras.Sequential):
        """keras.Sequential whose train step freezes the model at a non-finite batch loss."""

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                logits = self(x, training=True)
                loss = self._ce(y, logits)
            grads = tape.gradient(loss, self.trainable_variables)
            ok = tf.logical_and(tf.math.is_finite(loss), tf.logical_not(tr.halted))
            lr = tf.cast(self.optimizer.learning_rate, tf.float32)  # the value this update uses

            def update():
                self.optimizer.apply(grads, self.trainable_variables)
                tr.loss_sum.assign_add(tf.cast(loss, tf.float64))
                tr.lr.assign(lr)
                tr.steps.assign_add(1)
                return tf.constant(True)

            def freeze():
                tr.halted.assign(True)
                return tf.constant(False)

            tf.cond(ok, update, freeze)
            return {"loss": loss}

    layers = [keras.Input((int(widths[0]),))]
    for k, w in enumerate(widths[1:]):
        hidden = k < len(widths) - 2
        layers.append(keras.layers.Dense(int(w), activation=activation if hidden else None))
        if hidden and dropout > 0:
            layers.append(keras.layers.Dropout(float(dropout)))
    model = KerasMLP(layers)
    model._ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, tr


def _epoch_dataset(tf, x, y, seed: int, epochs: int, batch_size: int):
    n = int(x.shape[0])
    perms = np.stack([batch_permutation(seed, e, n).numpy() for e in range(epochs)])
    ds = tf.data.Dataset.from_tensor_slices(perms).flat_map(
        lambda p: tf.data.Dataset.from_tensor_slices(p).batch(batch_size))
    return ds.map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx))).prefetch(2)


def _compiled(config: TrainConfig, spec: TrainSpec, arrays: dict, spe: int, jit_compile: bool):
    """The config's compiled model (its tracker of the compiled step's variables) and its optimizer, built."""
    keras = _keras()
    lr = keras_learning_rate(config, spec.epochs * spe, spe)
    model, tr = _build_model(spec.widths, spec.activation, spec.dropout, config.seed)
    opt = keras_optimizer(config.optimizer, lr)
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile)
    opt.build(model.trainable_variables)
    # builds the compiled metrics (our train step does not touch them; fit reads their result) and traces
    # the test step; no weights change
    model.evaluate(arrays["x_val"][:8], arrays["y_val"][:8], verbose=0)
    return model, tr


def _callbacks(config: TrainConfig, spec: TrainSpec):
    """Keras's own ReduceLROnPlateau ("plateau") and EarlyStopping (when on): (callbacks, the EarlyStopping)."""
    keras = _keras()
    cbs, es = [], None
    if config.reactive:
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min",
                                                     **plateau_to_keras(spec.plateau_kwargs())))
    es_kw = spec.early_stopping_kwargs()
    if es_kw is not None:
        es = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", **es_kw)
        cbs.append(es)
    return cbs, es


def _recorder(rec: ModelRecords, tr, es, spec: TrainSpec, spe: int, n_val: int, n_train: int, progress, state):
    """The callback that writes ``rec`` after each epoch from the compiled step's variables and fit's logs."""
    keras = _keras()
    B = int(spec.batch_size)
    flops_full = step_flops(spec.widths, B, 1, input_grad=False)
    flops_last = step_flops(spec.widths, n_train - (spe - 1) * B, 1, input_grad=False)

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            tr.loss_sum.assign(0.0)
            tr.steps.assign(0)
            state["t0"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            dt = time.perf_counter() - state["t0"]
            logs = logs or {}
            val_loss, val_acc = float(logs.get("val_loss", math.nan)), float(logs.get("val_accuracy", math.nan))
            steps = int(tr.steps.numpy())
            state["flops"] += steps * flops_full + (flops_last - flops_full if steps == spe else 0) + \
                forward_flops(spec.widths, n_val)  # the epoch's validation pass
            if rec.diverged_epoch[0] < 0 and (bool(tr.halted.numpy()) or not math.isfinite(val_loss)):
                rec.diverged_epoch[0] = epoch
                self.model.stop_training = True
            diverged = rec.diverged_epoch[0] >= 0
            if not diverged:
                if rec.improve(epoch, [val_acc], [True])[0]:
                    state["best_weights"] = self.model.get_weights()
                if es is not None and self.model.stop_training and rec.stopped_epoch[0] < 0:
                    rec.stopped_epoch[0] = epoch
            row = rec.add_epoch(epoch, train_loss=[float(tr.loss_sum.numpy()) / spe if not diverged else math.nan],
                                val_loss=[val_loss], val_acc=[val_acc], lr=[tr.lr.numpy()], momentum=[math.nan],
                                epoch_time_s=dt, trained=[True], stopped=[rec.stopped_epoch[0] >= 0])
            if progress is not None:
                progress(epoch, row)

    return Recorder()


def train_one_keras(config: TrainConfig, arrays: dict, spec: TrainSpec, *, progress: Callable | None = None,
                    model_index: int = 0, callbacks: Sequence = (), jit_compile: bool = False):
    """Train one configuration with ``model.fit`` as ``spec`` says; returns (history rows, summary row, flops).
    ``arrays``: dict of tf tensors / numpy arrays x_train, y_train, x_val, y_val, x_test, y_test."""
    tf = _tf()
    N, B, eb = int(arrays["x_train"].shape[0]), int(spec.batch_size), spec.eval_batch_size
    spe = steps_per_epoch(N, B)
    model, tr = _compiled(config, spec, arrays, spe, jit_compile)
    cbs, es = _callbacks(config, spec)
    cbs.extend(callbacks)
    rec, state = ModelRecords([config], [model_index]), dict(best_weights=None, flops=0, t0=0.0)
    cbs.append(_recorder(rec, tr, es, spec, spe, len(arrays["x_val"]), N, progress, state))
    ds = _epoch_dataset(tf, arrays["x_train"], arrays["y_train"], config.seed, spec.epochs, B)
    model.fit(ds, epochs=spec.epochs, steps_per_epoch=spe, validation_data=(arrays["x_val"], arrays["y_val"]),
              validation_batch_size=eb, callbacks=cbs, verbose=0, shuffle=False)
    for epoch in range(len(rec.rows), spec.epochs):  # after divergence / early stopping
        rec.add_idle_epoch(epoch)

    def score(x, y):
        loss, acc = model.evaluate(x, y, batch_size=eb, verbose=0)
        return float(loss), float(acc)

    test_loss, test_acc = score(arrays["x_test"], arrays["y_test"])  # after EarlyStopping's restore
    final_val_loss, final_val_acc = score(arrays["x_val"], arrays["y_val"])
    test_acc_best = math.nan
    if state["best_weights"] is not None:
        model.set_weights(state["best_weights"])
        test_acc_best = score(arrays["x_test"], arrays["y_test"])[1]
    summary = rec.summary(final_val_loss=[final_val_loss], final_val_acc=[final_val_acc], test_loss=[test_loss],
                          test_acc=[test_acc], test_acc_best=[test_acc_best])
    return rec.rows, summary[0], state["flops"]


def _arrays(data) -> dict:
    tf = _tf()
    out = {}
    for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        v = getattr(data, k)
        v = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        out[k] = tf.constant(v.astype(np.float32) if k.startswith("x") else v.astype(np.int64))
    return out


def train_keras(configs: Sequence[TrainConfig], data, spec: TrainSpec, *, device=None,
                progress: Callable | None = None, callbacks: Sequence = (), jit_compile: bool = False) -> ChunkResult:
    """Train every config with Keras ``model.fit`` as ``spec`` says, one after the other (see the module
    docstring); the result has ``train_chunk``'s columns and throughput keys. ``progress(epoch, rows)`` is called
    after each epoch of each model with that model's row (a list of one dict). ``callbacks``: extra Keras
    callbacks given to every ``fit`` (they run before the recorder). ``device`` is ignored (TensorFlow
    places ops itself; the result says "cpu" or TensorFlow's GPU). Keras trains in float32 only."""
    configs = list(configs)
    if not configs:
        raise ValueError("train_keras: no configs")
    _keras()  # TensorFlow's start-up chatter silenced before anything imports it
    N, B = len(data.x_train), int(spec.batch_size)
    spe = steps_per_epoch(N, B)
    for c in configs:  # fail before any training: bad text, cycling momentum, unknown Keras class
        keras_learning_rate(c, spec.epochs * spe, spe)
    tf = _tf()
    arrays = _arrays(data)
    rows, summaries, flops = [], [], 0
    t0 = time.perf_counter()
    for m, c in enumerate(configs):
        r, s, f = train_one_keras(c, arrays, spec, progress=progress, model_index=m, callbacks=callbacks,
                                  jit_compile=jit_compile)
        rows.extend(r)
        summaries.append(s)
        flops += f
    # train_s: model.fit validates inside its epochs, so the training steps alone are not timed apart
    return chunk_result(rows, summaries, wall_s=time.perf_counter() - t0, train_s=None, precision="fp32",
                        epochs=spec.epochs, steps=spec.epochs * spe, batch_size=B, n_train=N, flops=flops,
                        device="cuda:0" if tf.config.list_logical_devices("GPU") else "cpu")


# ------------------------------------------------------------------------------------------ throughput

def matmul_flop_rate_tf(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of one float32 ``n x n`` TensorFlow matmul (``2 n^3`` FLOPs), best of ``repeats``."""
    tf = _tf()
    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    (a @ b).numpy()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        (a @ b).numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best
