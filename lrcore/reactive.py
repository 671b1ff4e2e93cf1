"""Reactive control over many models at once: ``Plateau`` (ReduceLROnPlateau) and ``EarlyStopping``.

Their decisions depend on the metrics seen, so they are stateful controllers, not schedules: numpy
arrays of shape (M,) hold each model's state, one ``step(metrics)`` call per epoch updates all of them,
and an ``active`` mask freezes the models it leaves out (finished, or not evaluated this epoch).
``state_dict()`` holds lists and plain values (``json.dumps`` writes it; inf/NaN as Python's json
spells them); ``load_state_dict`` restores it exactly.

>>> import numpy as np
>>> from lrcore.reactive import Plateau, EarlyStopping
>>> p = Plateau(2, 0.1, patience=1, semantics="torch")
>>> for loss in ([1.0, 1.0], [1.0, 0.5], [1.0, 0.4]):
...     lr = p.step(np.array(loss))
>>> lr.tolist()
[0.010000000000000002, 0.1]
>>> es = EarlyStopping(2, patience=1)
>>> for loss in ([1.0, 1.0], [2.0, 0.5], [3.0, 0.4]):
...     stop = es.step(np.array(loss))
>>> stop.tolist(), es.best_epoch.tolist()
([True, False], [0, 2])

``Plateau(semantics="torch")`` is ``torch.optim.lr_scheduler.ReduceLROnPlateau`` and
``semantics="keras"`` is ``keras.callbacks.ReduceLROnPlateau``, step for step (the tests drive the real
ones with random metric sequences). The two differ in more than defaults:

===================  =====================================  =======================================
                     torch                                  keras
===================  =====================================  =======================================
improvement          ``a < best * (1 - threshold)`` (rel,   ``a + min_delta < best`` (abs only),
                     default) or ``a < best - threshold``   compared in float32
                     (abs), in float64
first epoch          ``best`` starts at +-inf               ``best`` starts unset: the first metric
                                                            is always an improvement (even NaN, which
                                                            then blocks every later improvement)
patience             reduces after ``patience + 1`` bad     reduces after ``patience`` bad epochs
                     epochs (``num_bad > patience``)        (``wait >= patience``)
cooldown             bad epochs in cooldown are counted,    the counter is decremented *before* the
                     then zeroed while the counter is       improvement test; epochs in cooldown add
                     decremented                            no wait
lr update            ``max(lr * factor, min_lr)``, skipped  ``max(lr * factor, min_lr)`` if
                     when it changes lr by ``<= eps``;      ``lr > min_lr``; lr is a float32 variable
                     cooldown restarts even when skipped    (rounded); when lr is already at min_lr,
                                                            cooldown does not restart and wait is not
                                                            reset, so it retries every epoch
===================  =====================================  =======================================

``mode`` is ``"min"`` or ``"max"`` (Keras's ``"auto"`` guesses from the metric's name, which a
controller of arrays does not have). Keras's ``min_delta`` is accepted as the name of ``threshold``.
Every numeric parameter (lr, factor, patience, threshold, cooldown, min_lr, eps) is a scalar or an
array of shape (M,), so one controller runs a whole hyper-parameter sweep.

``EarlyStopping`` is ``keras.callbacks.EarlyStopping`` (PyTorch has none): wait counts every monitored
epoch and is reset by an improvement that also beats ``baseline``; training stops when
``wait >= patience`` at an epoch > 0; epochs before ``start_from_epoch`` are ignored. ``best_epoch`` is
the epoch of the best value, whose weights Keras restores with ``restore_best_weights`` (at the end of
training, stopped early or not); the trainer restores them itself, snapshotting weights whenever
``improved`` is set after a step.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["Plateau", "EarlyStopping"]

SEMANTICS = ("torch", "keras")


def _count(owner: str, M) -> int:
    if isinstance(M, bool) or not isinstance(M, numbers.Integral) or M < 1:
        raise ValueError(f"{owner}: M (the number of models) must be a positive integer, got {M!r}")
    return int(M)


def _per_model(owner: str, name: str, value, M: int, *, integer=False, lo=0.0, lo_open=False, hi=None,
               hi_open=True) -> np.ndarray:
    """A scalar or an (M,) array, checked finite and in range, returned as an (M,) array."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be {kind} or an array of shape ({M},), got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception:  # pragma: no cover - exotic objects
        arr = np.asarray(value, dtype=object)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{owner}: {name} must be {kind} or an array of shape ({M},), got {value!r}")
    if arr.ndim not in (0, 1) or (arr.ndim == 1 and arr.shape != (M,)):
        raise ValueError(f"{owner}: {name} must be a scalar or an array of shape ({M},), got shape {arr.shape}")
    if integer:
        if np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"{owner}: {name} must be an integer (or an integer array), got {value!r}")
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    bad = (arr <= lo) if lo_open else (arr < lo)
    if hi is not None:
        bad |= (arr >= hi) if hi_open else (arr > hi)
    if np.any(bad):
        rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and {'<' if hi_open else '<='} {hi:g}" if hi is not None else "")
        got = arr if arr.ndim == 0 else arr[bad][0]
        raise ValueError(f"{owner}: {name} must be {rng}, got {got!r}")
    return np.broadcast_to(arr, (M,)).copy()


def _mode(owner: str, mode) -> str:
    if mode not in ("min", "max"):
        hint = " (Keras's 'auto' guesses from the metric name; say 'min' for a loss, 'max' for an accuracy)" \
            if mode == "auto" else ""
        raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}{hint}")
    return mode


def _metrics(owner: str, metrics, M: int) -> np.ndarray:
    arr = np.asarray(metrics)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{owner}: metrics must be a numeric array of shape ({M},), got {arr.dtype}")
    if arr.shape != (M,) and not (arr.ndim == 0 and M == 1):
        raise ValueError(f"{owner}: metrics must have shape ({M},), got {arr.shape}")
    return np.broadcast_to(arr.astype(np.float64), (M,))


def _active(owner: str, active, M: int) -> np.ndarray:
    if active is None:
        return np.ones(M, bool)
    arr = np.asarray(active)
    if arr.dtype != bool or arr.shape != (M,):
        raise ValueError(f"{owner}: active must be a boolean array of shape ({M},), got {arr.dtype} {arr.shape}")
    return arr


def _f32_less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``keras.ops.less`` on Python floats: both sides are converted to float32 first."""
    with np.errstate(over="ignore", invalid="ignore"):
        return a.astype(np.float32) < b.astype(np.float32)


def _keras_improvement(cur, ref, min_delta, mode):
    """MonitorCallback._is_improvement for a set reference: op(cur - signed min_delta, ref) in float32."""
    if mode == "min":
        return _f32_less(cur + min_delta, ref)
    return _f32_less(ref, cur - min_delta)


class _Controller:
    _STATE: tuple = ()
    _CONFIG: tuple = ()

    def state_dict(self) -> dict:
        """Configuration and per-model state as lists and plain values (``json.dumps`` writes it)."""
        out = {"type": type(self).__name__, "M": self.M}
        for k in self._CONFIG:
            v = getattr(self, k)
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        for k in self._STATE:
            out[k] = getattr(self, k).tolist()
        return out

    def load_state_dict(self, state: dict) -> None:
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{name}: state_dict must be a dict, got {type(state).__name__}")
        if state.get("type") != name:
            raise ValueError(f"{name}: state_dict was made by {state.get('type')!r}, not {name}")
        if state.get("M") != self.M:
            raise ValueError(f"{name}: state_dict is for M={state.get('M')} models, this controller has M={self.M}")
        missing = [k for k in (*self._CONFIG, *self._STATE) if k not in state]
        if missing:
            raise ValueError(f"{name}: state_dict lacks {', '.join(missing)}")
        for k in self._CONFIG:
            cur = getattr(self, k)
            setattr(self, k, np.array(state[k], dtype=cur.dtype) if isinstance(cur, np.ndarray) else state[k])
        for k in self._STATE:
            cur = getattr(self, k)
            setattr(self, k, np.array(state[k], dtype=cur.dtype).reshape(self.M))


class Plateau(_Controller):
    """ReduceLROnPlateau over M models: ``step(metrics)`` -> the new learning rates, shape (M,).

    Defaults follow the chosen framework: torch ``threshold=1e-4, threshold_mode="rel", eps=1e-8``;
    keras ``min_delta=1e-4`` (absolute; ``threshold_mode`` must be "abs" and ``eps`` is not used).
    """

    _STATE = ("lr", "best", "has_best", "num_bad", "cooldown_counter", "epoch")
    _CONFIG = ("semantics", "mode", "threshold_mode", "factor", "patience", "threshold", "cooldown", "min_lr", "eps")

    def __init__(self, M: int, lr, *, factor=0.1, patience=10, mode: str = "min", threshold=None,
                 threshold_mode: str | None = None, cooldown=0, min_lr=0.0, eps=None, semantics: str = "torch",
                 min_delta=None):
        o = "Plateau"
        self.M = M = _count(o, M)
        if semantics not in SEMANTICS:
            raise ValueError(f"{o}: semantics must be 'torch' or 'keras', got {semantics!r}")
        self.semantics = semantics
        self.mode = _mode(o, mode)
        if min_delta is not None:
            if threshold is not None:
                raise ValueError(f"{o}: give threshold or its Keras name min_delta, not both")
            threshold = min_delta
        if semantics == "torch":
            threshold_mode = "rel" if threshold_mode is None else threshold_mode
            if threshold_mode not in ("rel", "abs"):
                raise ValueError(f"{o}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
            eps = 1e-8 if eps is None else eps
        else:
            threshold_mode = "abs" if threshold_mode is None else threshold_mode
            if threshold_mode != "abs":
                raise ValueError(f"{o}: semantics='keras' compares with an absolute min_delta; threshold_mode "
                                 f"must be 'abs', got {threshold_mode!r} (use semantics='torch' for 'rel')")
            if eps is not None:
                raise ValueError(f"{o}: eps is a PyTorch parameter; semantics='keras' has none")
            eps = 0.0
        self.threshold_mode = threshold_mode
        self.factor = _per_model(o, "factor", factor, M, lo=0.0, hi=1.0)
        self.patience = _per_model(o, "patience", patience, M, integer=True)
        self.threshold = _per_model(o, "threshold", 1e-4 if threshold is None else threshold, M)
        self.cooldown = _per_model(o, "cooldown", cooldown, M, integer=True)
        self.min_lr = _per_model(o, "min_lr", min_lr, M)
        self.eps = _per_model(o, "eps", eps, M)
        lr = _per_model(o, "lr", lr, M)
        self.lr = lr.astype(np.float32).astype(np.float64) if semantics == "keras" else lr
        self.best = np.full(M, math.inf if self.mode == "min" else -math.inf)
        self.has_best = np.zeros(M, bool)
        self.num_bad = np.zeros(M, np.int64)  # torch's num_bad_epochs, keras's wait
        self.cooldown_counter = np.zeros(M, np.int64)
        self.epoch = np.zeros(M, np.int64)

    def step(self, metrics, active=None) -> np.ndarray:
        """Take one epoch's metric per model; models outside ``active`` keep their state. Returns a
        copy of the learning rates to use next."""
        cur = _metrics("Plateau", metrics, self.M)
        act = _active("Plateau", active, self.M)
        if self.semantics == "torch":
            self._step_torch(cur, act)
        else:
            self._step_keras(cur, act)
        self.epoch += act
        return self.lr.copy()

    def _step_torch(self, cur, act):
        best, th = self.best, self.threshold
        with np.errstate(invalid="ignore", over="ignore"):
            if self.mode == "min":
                better = cur < (best * (1.0 - th) if self.threshold_mode == "rel" else best - th)
            else:
                better = cur > (best * (th + 1.0) if self.threshold_mode == "rel" else best + th)
        better &= act
        bad = act & ~better
        self.best = np.where(better, cur, best)
        self.has_best |= better
        num_bad = np.where(better, 0, self.num_bad + bad)
        cool = act & (self.cooldown_counter > 0)
        self.cooldown_counter = self.cooldown_counter - cool
        num_bad[cool] = 0
        reduce = act & (num_bad > self.patience)
        old = self.lr
        new = np.maximum(old * self.factor, self.min_lr)
        self.lr = np.where(reduce & (old - new > self.eps), new, old)
        self.cooldown_counter = np.where(reduce, self.cooldown, self.cooldown_counter)
        num_bad[reduce] = 0
        self.num_bad = num_bad

    def _step_keras(self, cur, act):
        cool = act & (self.cooldown_counter > 0)
        self.cooldown_counter = self.cooldown_counter - cool
        wait = np.where(cool, 0, self.num_bad)
        improved = act & (~self.has_best | _keras_improvement(cur, self.best, self.threshold, self.mode))
        self.best = np.where(improved, cur, self.best)
        self.has_best |= improved
        wait[improved] = 0
        counting = act & ~improved & ~(self.cooldown_counter > 0)
        wait = wait + counting
        old = self.lr
        reduce = counting & (wait >= self.patience) & (old > self.min_lr.astype(np.float32))
        new = np.maximum(old * self.factor, self.min_lr).astype(np.float32).astype(np.float64)
        self.lr = np.where(reduce, new, old)
        self.cooldown_counter = np.where(reduce, self.cooldown, self.cooldown_counter)
        wait[reduce] = 0
        self.num_bad = wait


class EarlyStopping(_Controller):
    """Keras EarlyStopping over M models: ``step(metrics)`` -> the mask of models that have stopped.

    After each step: ``stopped`` (mask), ``stopped_epoch`` (0 where not stopped, as Keras),
    ``best`` (NaN before the first monitored epoch), ``best_epoch`` (-1 before it), ``improved`` (the
    models whose weights to snapshot now), ``restore_epoch`` (the epoch whose weights Keras would
    restore at the end of training, -1 for none). Stopped models are frozen.
    """

    _STATE = ("best", "has_best", "best_epoch", "wait", "epoch", "stopped", "stopped_epoch", "improved")
    _CONFIG = ("mode", "min_delta", "patience", "baseline", "restore_best_weights", "start_from_epoch")

    def __init__(self, M: int, *, min_delta=0.0, patience=0, mode: str = "min", baseline=None,
                 restore_best_weights: bool = False, start_from_epoch=0):
        o = "EarlyStopping"
        self.M = M = _count(o, M)
        self.mode = _mode(o, mode)
        self.min_delta = np.abs(_per_model(o, "min_delta", min_delta, M, lo=-math.inf))  # Keras takes abs()
        self.patience = _per_model(o, "patience", patience, M, integer=True)
        self.start_from_epoch = _per_model(o, "start_from_epoch", start_from_epoch, M, integer=True)
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise TypeError(f"{o}: restore_best_weights must be a bool, got {restore_best_weights!r}")
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = np.full(M, np.nan) if baseline is None else _per_model(o, "baseline", baseline, M, lo=-math.inf)
        self.best = np.full(M, np.nan)
        self.has_best = np.zeros(M, bool)
        self.best_epoch = np.full(M, -1, np.int64)
        self.wait = np.zeros(M, np.int64)
        self.epoch = np.zeros(M, np.int64)
        self.stopped = np.zeros(M, bool)
        self.stopped_epoch = np.zeros(M, np.int64)
        self.improved = np.zeros(M, bool)

    @property
    def restore_epoch(self) -> np.ndarray:
        if not self.restore_best_weights:
            return np.full(self.M, -1, np.int64)
        return self.best_epoch.copy()

    def step(self, metrics, active=None) -> np.ndarray:
        """Take one epoch's metric per model (models outside ``active`` and stopped ones are left as
        they are, their epoch count too). Returns a copy of ``stopped``."""
        cur = _metrics("EarlyStopping", metrics, self.M)
        act = _active("EarlyStopping", active, self.M) & ~self.stopped
        ep = self.epoch
        mon = act & (ep >= self.start_from_epoch)
        wait = self.wait + mon
        improved = mon & (~self.has_best | _keras_improvement(cur, self.best, self.min_delta, self.mode))
        self.best = np.where(improved, cur, self.best)
        self.has_best |= improved
        self.best_epoch = np.where(improved, ep, self.best_epoch)
        beats_base = np.isnan(self.baseline) | _keras_improvement(cur, self.baseline, self.min_delta, self.mode)
        wait[improved & beats_base] = 0
        stop = mon & ~improved & (wait >= self.patience) & (ep > 0)
        self.stopped |= stop
        self.stopped_epoch = np.where(stop, ep, self.stopped_epoch)
        self.wait = wait
        self.improved = improved
        self.epoch = ep + act
        return self.stopped.copy()
