"""lrcore.compat.keras against the real Keras 3 schedules (TensorFlow backend), a few configurations each.

Keras computes in float32: tolerance |diff| <= 2e-6 |ref| + 1e-6 max|ref| (DESIGN.md).
"""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras.optimizers import schedules as KS  # noqa: E402

import lrcore  # noqa: E402
from lrcore.compat import keras as K  # noqa: E402
from reference.keras_oracle import keras_lrs  # noqa: E402

CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.3)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.3, staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 20, 20, 45], values=[0.1, 0.05, 0.04, 0.01, 0.001])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, power=2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, power=0.5, cycle=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=50, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=40, warmup_target=1e-3, warmup_steps=20)),
    ("CosineDecay", dict(initial_learning_rate=0.01, decay_steps=40, warmup_target=1e-3, warmup_steps=20, alpha=0.2)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=7, t_mul=1.0, m_mul=0.7, alpha=0.1)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=6, t_mul=1.5, m_mul=0.9)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_keras(name, kwargs):
    n = 100
    want = keras_lrs(getattr(KS, name)(**kwargs), n)
    schedule = getattr(K, name)(**kwargs)
    for backend in ("numpy", "numba"):
        got = lrcore.evaluate(schedule, n, backend=backend)
        tol = 2e-6 * np.abs(want) + 1e-6 * np.abs(want).max()
        bad = np.flatnonzero(np.abs(got - want) > tol)
        assert bad.size == 0, f"{name} {backend}: steps {bad[:5]} lrcore {got[bad[:5]]} keras {want[bad[:5]]}"
