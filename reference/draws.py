"""Where the conformance generators' random parameters come from, and the parameter draws they share.

A generator draws through a ``Draw``: ``RandomDraw`` (a seeded ``random.Random``, used by ``lrbench
conformance``) or ``HypothesisDraw`` (hypothesis's ``st.data()``, used by ``tests/test_conformance.py``),
so both draw from the same ranges. The helpers below draw a learning rate, a period, a fraction, a decay
factor and a warmup length, edge values included.
"""
from __future__ import annotations

import math
import random


class RandomDraw:
    """Draws from a seeded ``random.Random``."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def real(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi)

    def boolean(self) -> bool:
        return self.rng.random() < 0.5

    def choice(self, options):
        return options[self.rng.randrange(len(options))]


class HypothesisDraw:
    """Draws through hypothesis (``data`` from ``st.data()``), with the same ranges as RandomDraw."""

    def __init__(self, data):
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def real(self, lo: float, hi: float) -> float:
        return self.data.draw(self.st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    def boolean(self) -> bool:
        return self.data.draw(self.st.booleans())

    def choice(self, options):
        return self.data.draw(self.st.sampled_from(list(options)))


def log_uniform(d, lo: float, hi: float) -> float:
    return float(10.0 ** d.real(math.log10(lo), math.log10(hi)))


def lr(d) -> float:
    """A learning rate, log-uniform in [1e-4, 1]."""
    return log_uniform(d, 1e-4, 1.0)


def period(d, hi: int = 60) -> int:
    """A period, 1 (an edge case) often."""
    return d.choice([1, 1, 2, 3]) if d.integer(0, 3) == 0 else d.integer(1, hi)


def fraction(d) -> float:
    return d.choice([0.0, 1.0, 0.5]) if d.integer(0, 4) == 0 else d.real(0.0, 1.0)


def gamma(d) -> float:
    """A decay factor: PyTorch takes any gamma (its validation checks none); > 1 grows, 0 drops to 0 at once."""
    return d.choice([0.0, 1.0, d.real(1.0, 1.5)]) if d.integer(0, 4) == 0 else d.real(0.05, 1.0)


def warmup(d, hi: int = 30) -> int:
    """A warmup length: 0 and 1 (edges) often."""
    return d.choice([0, 0, 1]) if d.integer(0, 2) == 0 else d.integer(2, hi)
