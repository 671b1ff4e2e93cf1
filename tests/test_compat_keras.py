"""lrcore.compat.keras against the real Keras 3 schedules (TensorFlow backend), a few configurations each.

Keras computes in float32: tolerance |diff| <= 2e-6 |ref| + 1e-6 max|ref| (DESIGN.md).
"""
import math

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


# Configurations Keras accepts (it checks only decay_steps > 0 and the lengths of boundaries / values) that
# lrcore used to refuse, and the ends of every parameter's range.
WIDE = [
    ("PiecewiseConstantDecay", dict(boundaries=[10, 44, 13, 52], values=[0.1, 0.2, 0.3, 0.4, 0.5])),  # unsorted
    ("PiecewiseConstantDecay", dict(boundaries=[42, 34, 30, 47], values=[0.04, 0.03, 0.02, 0.01, 0.005])),
    ("PiecewiseConstantDecay", dict(boundaries=[-0.5, 3.7, 3.2], values=[0.1, 0.2, 0.3, 0.4])),  # truncated
    ("PiecewiseConstantDecay", dict(boundaries=[2.5, 7.99], values=[0.1, 0.2, 0.3])),
    ("CosineDecay", dict(initial_learning_rate=0.2, decay_steps=7.5, warmup_target=0.1, warmup_steps=3.7, alpha=0.2)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=10, warmup_target=0.1, warmup_steps=0.4)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=10, warmup_target=0.1, warmup_steps=-2.5)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=20, alpha=2.0)),  # alpha > 1: a rise
    ("CosineDecay", dict(initial_learning_rate=0.05, decay_steps=10, alpha=0.1, warmup_target=0.2, warmup_steps=2)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.05, first_decay_steps=10, alpha=0.1, t_mul=3.0, m_mul=4.0)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.05, first_decay_steps=4.5, alpha=1.5, t_mul=1.5, m_mul=0.0)),
    ("ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=3, decay_rate=1.5)),
    ("ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=3.5, decay_rate=0.0, staircase=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=0.75, decay_rate=60.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=7, power=0.0, cycle=True)),
    ("PolynomialDecay", dict(initial_learning_rate=0.01, decay_steps=7.5, end_learning_rate=0.05, power=8.0)),
]


@pytest.mark.parametrize("name,kwargs", WIDE, ids=[f"{c[0]}-{i}" for i, c in enumerate(WIDE)])
def test_matches_keras_over_its_whole_range(name, kwargs):
    test_matches_keras(name, kwargs)


def test_unsorted_boundaries_add_up_like_keras():
    """Keras sums values[k] * (b[k-1] < t <= b[k]) over k: with b = [10, 5] the middle interval is empty,
    t <= 10 gives values[0] and t > 5 gives values[-1], so steps 6..10 get both."""
    s = K.PiecewiseConstantDecay(boundaries=[10, 5], values=[1.0, 0.5, 0.25])
    assert lrcore.evaluate(s, np.array([0, 5, 6, 10, 11])).tolist() == [1.0, 1.0, 1.25, 1.25, 0.25]


# Keras's own unit tests (keras/src/optimizers/schedules/learning_rate_schedule_test.py), their expected
# values held against lrcore with their tolerance (1e-6).
def _np_cosine_decay_restarts(step, decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    fac = 1.0
    while step >= decay_steps:
        step -= decay_steps
        decay_steps *= t_mul
        fac *= m_mul
    return (1.0 - alpha) * fac * 0.5 * (1.0 + math.cos(math.pi * step / decay_steps)) + alpha


def _np_cosine_decay(step, decay_steps, alpha=0.0):
    step = min(step, decay_steps)
    return (1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * step / decay_steps)) + alpha


KERAS_OWN = [
    (K.ExponentialDecay(0.05, 10, 0.96), [(5, 0.05 * 0.96 ** 0.5)]),
    (K.ExponentialDecay(0.1, 3, 0.96, staircase=True), [(1, 0.1), (2, 0.1), (100, 0.1 * 0.96 ** (100 // 3))]),
    (K.PiecewiseConstantDecay([100, 110, 120], [1.0, 0.1, 0.01, 0.001]),
     [(0, 1.0), (100, 1.0), (105, 0.1), (110, 0.1), (120, 0.01), (999, 0.001)]),
    (K.PiecewiseConstantDecay([1, 2, 3], [0.4, 0.5, 0.6, 0.7]), [(0, 0.4), (1, 0.4), (2, 0.5), (3, 0.6), (4, 0.7)]),
    (K.PolynomialDecay(0.05, 10, 0.0), [(5, 0.025)]),
    (K.PolynomialDecay(0.05, 10, 0.001), [(10, 0.001), (5, 0.0255), (15, 0.001)]),
    (K.PolynomialDecay(0.05, 10, 0.001, cycle=True), [(15, 0.049 * 0.25 + 0.001)]),
    (K.PolynomialDecay(0.05, 10, 0.0, power=0.5), [(5, 0.05 * 0.5 ** 0.5)]),
    (K.PolynomialDecay(0.05, 10, 0.001, power=0.5), [(10, 0.001), (5, 0.049 * 0.5 ** 0.5 + 0.001), (15, 0.001)]),
    (K.PolynomialDecay(0.05, 10, 0.001, power=0.5, cycle=True), [(15, 0.049 * 0.25 ** 0.5 + 0.001)]),
    (K.PolynomialDecay(0.001, 10, cycle=True), [(0, 0.001)]),
    (K.InverseTimeDecay(0.1, 10, 0.96), [(i, 0.1 / (1 + i / 10 * 0.96)) for i in range(11)]),
    (K.InverseTimeDecay(0.1, 10, 0.96, staircase=True), [(i, 0.1 / (1 + 0.96 * (i // 10))) for i in range(11)]),
    (K.CosineDecay(1.0, 1000), [(t, _np_cosine_decay(t, 1000)) for t in range(0, 1500, 250)]),
    (K.CosineDecay(1.0, 1000, 0.1), [(t, _np_cosine_decay(t, 1000, 0.1)) for t in range(0, 1500, 250)]),
    (K.CosineDecay(0.0, 10, warmup_target=10.0, warmup_steps=1500), [(t, t / 1500 * 10.0) for t in range(0, 1500, 250)]),
    (K.CosineDecay(0.0, 1000, warmup_target=10.0, warmup_steps=2000),
     [(t, t / 2000 * 10.0 if t < 2001 else 10.0 * _np_cosine_decay(t - 2000, 1000)) for t in range(0, 3000, 250)]),
    (K.CosineDecayRestarts(1.0, 1000), [(t, _np_cosine_decay_restarts(t, 1000)) for t in range(0, 1500, 250)]),
    (K.CosineDecayRestarts(1.0, 1000, alpha=0.1),
     [(t, _np_cosine_decay_restarts(t, 1000, alpha=0.1)) for t in range(0, 1500, 250)]),
    (K.CosineDecayRestarts(1.0, 1000, m_mul=0.9),
     [(t, _np_cosine_decay_restarts(t, 1000, m_mul=0.9)) for t in range(0, 1500, 250)]),
    (K.CosineDecayRestarts(1.0, 1000, t_mul=1.0),
     [(t, _np_cosine_decay_restarts(t, 1000, t_mul=1.0)) for t in range(0, 1500, 250)]),
]


@pytest.mark.parametrize("schedule,expected", KERAS_OWN, ids=[f"{type(s).__name__}-{i}" for i, (s, _) in enumerate(KERAS_OWN)])
def test_keras_own_unit_test_expectations(schedule, expected):
    steps, want = np.array([t for t, _ in expected]), np.array([v for _, v in expected])
    for backend in ("numpy", "numba"):
        np.testing.assert_allclose(lrcore.evaluate(schedule, steps, backend=backend), want, rtol=1e-6, atol=1e-6)
