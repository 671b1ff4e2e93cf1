"""pytest-benchmark versions of `lrbench speed`'s cases (run with `pytest --benchmark-only`).

Sizes follow the speed command: LRBENCH_BENCH_STEPS (default 5e7) and 1,000 mixed schedules x 1e5.
Groups: ``warmup-cosine`` (numba vs lrcore's numpy backend vs a numpy closed form), ``evaluate-many``.
The saved baseline and how to compare with it: docs/TRACKING.md.
"""
import os

import numpy as np
import pytest

import lrcore
from bench.speed import evaluator as sp

N = int(float(os.environ.get("LRBENCH_BENCH_STEPS", "5e7")))


@pytest.fixture(scope="module")
def warmup_cosine():
    return sp.warmup_cosine(N)[0]


def test_numba_warmup_cosine(benchmark, warmup_cosine):
    benchmark.group = "warmup-cosine"
    out = np.empty(N)
    lrcore.evaluate(warmup_cosine, N, backend="numba", out=out)
    benchmark(lrcore.evaluate, warmup_cosine, N, backend="numba", out=out)


def test_numpy_backend_warmup_cosine(benchmark, warmup_cosine):
    benchmark.group = "warmup-cosine"
    benchmark.pedantic(lrcore.evaluate, (warmup_cosine, N), {"backend": "numpy"}, rounds=3)


def test_numpy_closed_form_warmup_cosine(benchmark):
    benchmark.group = "warmup-cosine"
    t = np.arange(N)
    benchmark.pedantic(sp.numpy_closed_form, (t, N), rounds=3)


def test_numba_evaluate_many_1000_mixed(benchmark):
    benchmark.group = "evaluate-many"
    scheds = sp.mixed_schedules(1000, 100_000)
    out = np.empty((1000, 100_000))
    lrcore.evaluate_many(scheds, 100_000, backend="numba", out=out)
    benchmark(lrcore.evaluate_many, scheds, 100_000, backend="numba", out=out)
