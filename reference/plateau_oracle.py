"""The real ReduceLROnPlateau and EarlyStopping of PyTorch and Keras, driven one epoch at a time.

``torch_plateau_lrs`` / ``keras_plateau_lrs``: the learning rate after each epoch's metric, for one
model. ``keras_early_stopping``: Keras's EarlyStopping on a stand-in model whose weights are the index
of the epoch that produced them, so the weights it would restore name their epoch.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def torch_plateau_lrs(metrics, lr: float, **kwargs) -> np.ndarray:
    """``torch.optim.lr_scheduler.ReduceLROnPlateau(SGD(lr), **kwargs)``: ``param_groups[0]["lr"]``
    after ``step(m)`` for each m in ``metrics`` (float64)."""
    import torch
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    out = np.empty(len(metrics))
    for i, m in enumerate(metrics):
        sched.step(float(m))
        out[i] = opt.param_groups[0]["lr"]
    return out


class _StandIn:
    """The parts of a Keras model the callbacks touch: an optimizer, stop_training, and weights that
    record the epoch they come from."""

    def __init__(self, lr: float = 0.1):
        import keras
        self.optimizer = keras.optimizers.SGD(learning_rate=lr)
        self.stop_training = False
        self.epoch = -1
        self.restored = None

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.restored = weights[0]


def keras_plateau_lrs(metrics, lr: float, monitor: str = "val_loss", **kwargs) -> np.ndarray:
    """``keras.callbacks.ReduceLROnPlateau(**kwargs)``: the optimizer's learning_rate after
    ``on_epoch_end(epoch, {monitor: m})`` for each m (the float32 variable, as float64)."""
    import keras
    cb = keras.callbacks.ReduceLROnPlateau(monitor=monitor, **kwargs)
    model = _StandIn(lr)
    cb.set_model(model)
    cb.on_train_begin()
    out = np.empty(len(metrics))
    for i, m in enumerate(metrics):
        cb.on_epoch_end(i, logs={monitor: float(m)})
        out[i] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    return out


def keras_early_stopping(metrics, monitor: str = "val_loss", **kwargs) -> dict:
    """``keras.callbacks.EarlyStopping(**kwargs)`` fed ``metrics`` until it stops training, then
    ``on_train_end``. Returns stopped (bool), stopped_epoch, epochs run, best (None if unset),
    best_epoch, and restored (the epoch whose weights it put back, None if none)."""
    import keras
    cb = keras.callbacks.EarlyStopping(monitor=monitor, **kwargs)
    model = _StandIn()
    cb.set_model(model)
    cb.on_train_begin()
    epochs = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, m in enumerate(metrics):
            model.epoch = i
            cb.on_epoch_end(i, logs={monitor: float(m)})
            epochs += 1
            if model.stop_training:
                break
        cb.on_train_end()
    return {"stopped": bool(model.stop_training), "stopped_epoch": int(cb.stopped_epoch), "epochs": epochs,
            "best": None if cb.best is None else float(cb.best), "best_epoch": int(cb.best_epoch),
            "restored": model.restored}
