"""Evaluate a real Keras 3 learning-rate schedule (TensorFlow backend) at every step, in float32.

The oracle is ``schedule(t)`` called eagerly with a scalar int64 step, one step at a time, as an
optimizer does. Two faster ways were tried and rejected because they do not give the same bits:

* one eager call on a vector of steps: TensorFlow's vectorized float32 ``pow``/``log``/``cos`` kernels
  differ from the scalar ones in the last ulp (up to 1e-7 relative), depending on the step's position
  in the vector;
* ``tf.function`` (a traced graph, as in ``model.fit``): grappler rewrites ``x / constant`` into
  ``x * (1 / constant)``, so ``55.0 / 55.0`` gives 0.99999994 and a staircase ExponentialDecay or
  InverseTimeDecay switches one step late at exact multiples of decay_steps (and PolynomialDecay with
  cycle starts a new cycle one step early); see reference/DIFFERENCES.md.
"""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_keras():
    """``import keras`` with TensorFlow's start-up lines on stderr (oneDNN, CUDA drivers: C++ logging that
    runs before TF_CPP_MIN_LOG_LEVEL is read) sent to /dev/null; errors still raise."""
    import sys
    if "keras" not in sys.modules:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    return sys.modules["keras"]


def keras_lrs(schedule, steps) -> np.ndarray:
    """``schedule(t)`` for every t in ``steps`` (an int or an array), called one step at a time as
    an optimizer does (the schedule sees a scalar int64 step)."""
    keras = import_keras()
    t = np.arange(steps) if np.isscalar(steps) else np.asarray(steps)
    return np.array([float(keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(int(s), "int64"))))
                     for s in t])


def keras_lrs_graph(schedule, steps) -> np.ndarray:
    """``schedule(t)`` inside a ``tf.function`` traced for a scalar int64 step (what a compiled train step
    evaluates); used only to show the graph-mode difference in reference/DIFFERENCES.md."""
    import tensorflow as tf
    t = np.arange(steps) if np.isscalar(steps) else np.asarray(steps)
    f = tf.function(lambda s: tf.cast(schedule(s), tf.float32), input_signature=[tf.TensorSpec([], tf.int64)])
    return np.array([float(f(tf.constant(int(s), tf.int64))) for s in t])
