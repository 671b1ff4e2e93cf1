"""Evaluate a real Keras 3 learning-rate schedule (TensorFlow backend) at every step, in float32."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def keras_lrs(schedule, steps) -> np.ndarray:
    """``schedule(t)`` for every t in ``steps`` (an int or an array), called one step at a time as
    an optimizer does (the schedule sees a scalar int64 step)."""
    import keras
    t = np.arange(steps) if np.isscalar(steps) else np.asarray(steps)
    return np.array([float(keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(int(s), "int64"))))
                     for s in t])
