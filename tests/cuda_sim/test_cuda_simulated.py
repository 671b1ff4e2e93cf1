"""The CUDA backend on Numba's CUDA simulator (this process has NUMBA_ENABLE_CUDASIM=1; see conftest.py).

The simulator runs the very kernel of ``lrcore.kernels.cuda`` as Python, thread by thread, so inputs
stay small (<= 200 steps, a handful of schedules). Contract (DESIGN.md, Numerics): numpy vs cuda agree
to 1e-12 relative in float64; float32 output is the float64 value rounded; ``out=`` device buffers are
written in place and returned; bad ``out`` and a missing GPU are clear errors.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import lrcore
from lrcore import (WSD, Constant, Cosine, CosineRestarts, Cyclic, Exponential, InverseSqrt, InverseTime, Lambda,
                    Linear, Multiplicative, MultiStep, OneCycle, PiecewiseConstant, Polynomial, Product, Sequence,
                    Step, Warmup)
from lrcore.kernels import cuda as K
from numba import cuda
from strategies import schedules_and_steps

RTOL = 1e-12


def test_this_process_runs_the_simulator():
    assert K.simulator(cuda), "numba.cuda is not the simulator: NUMBA_ENABLE_CUDASIM=1 was set too late"


def host(d) -> np.ndarray:
    assert getattr(d, "__cuda_ndarray__", False), f"expected a device array, got {type(d)}"
    return d.copy_to_host()


def assert_close(got, want, what="", rtol=RTOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shapes {got.shape} != {want.shape}"
    with np.errstate(invalid="ignore"):
        ok = np.abs(got - want) <= rtol * np.maximum(np.abs(got), np.abs(want)) + 1e-300
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[:5]
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} differ; at flat index {i.tolist()}: "
                             f"{got.ravel()[i].tolist()} vs {want.ravel()[i].tolist()}")


def assert_float32_rounding(v32, v64, what=""):
    """float32 output = the float64 value rounded (to within one float32 ulp: the float64 values of the
    two backends may differ in the last bits and round to neighbours)."""
    v32 = np.asarray(v32)
    assert v32.dtype == np.float32, what
    expected = np.asarray(v64).astype(np.float32)
    bad = np.abs(v32.astype(np.float64) - expected) > np.spacing(np.abs(expected)).astype(np.float64)
    assert not bad.any(), f"{what}: {v32[bad][:5]} vs {expected[bad][:5]}"


# Every schedule kind (and the variants that lower differently), at most a few hundred steps long.
SCHEDULES = [
    Constant(0.3),
    Step(1.0, step_size=7, gamma=0.5),
    MultiStep(0.1, milestones=[10, 10, 50, 120], gamma=0.3),
    PiecewiseConstant(boundaries=[5, 40, 41], values=[1.0, 0.5, 0.25, 0.125]),
    Exponential(0.1, decay_rate=0.9, decay_steps=13),
    Exponential(0.1, decay_rate=0.9, decay_steps=13, staircase=True),
    InverseTime(0.1, decay_rate=0.5, decay_steps=10),
    InverseTime(0.1, decay_rate=0.5, decay_steps=10, staircase=True),
    Polynomial(0.1, decay_steps=90, end=1e-3, power=2.0),
    Polynomial(0.1, decay_steps=40, end=1e-3, power=0.5, cycle=True),
    Linear(0.0, 1.0, 150),
    Cosine(0.1, decay_steps=120, floor=1e-3),
    Cosine(0.1, decay_steps=30, floor=1e-3, periodic=True),
    Cosine(1e-4, decay_steps=80, floor=1.0),  # a rise
    CosineRestarts(1.0, period=10, t_mul=2.0, m_mul=0.8, floor=0.01),
    CosineRestarts(1.0, period=7),
    CosineRestarts(1.0, period=5, t_mul=1.5),
    OneCycle(max_lr=1.0, total_steps=150),
    OneCycle(max_lr=1.0, total_steps=150, three_phase=True, anneal="linear"),
    OneCycle(max_lr=1.0, total_steps=150).momentum,
    Cyclic(0.01, 0.1, step_size_up=10),
    Cyclic(0.01, 0.1, step_size_up=10, step_size_down=25, mode="triangular2"),
    Cyclic(0.01, 0.1, step_size_up=10, mode="exp_range", gamma=0.99),
    Cyclic(0.01, 0.1, step_size_up=10).momentum,
    InverseSqrt(1.0, warmup_steps=20),
    InverseSqrt(1.0, warmup_steps=0),
    WSD(1.0, total_steps=150, warmup_steps=10, decay_steps=40, cooldown="linear"),
    WSD(1.0, total_steps=150, warmup_steps=10, decay_steps=40, cooldown="cosine", floor=0.01),
    WSD(1.0, total_steps=150, warmup_steps=0, decay_steps=40, cooldown="1-sqrt"),
    Warmup(Cosine(0.1, 150), steps=20),
    Warmup(Cosine(0.1, 150), steps=20, shift=False, start_factor=0.1),
    Warmup(Step(0.1, 30, 0.5), steps=20, mode="exponential", start_factor=1e-3),
    Warmup(Constant(0.1), steps=20, mode="exponential", start_factor=1e-2, shift=False),
    Sequence([Linear(0.0, 1.0, 10), Cosine(1.0, 100), Constant(0.01)], milestones=[10, 110]),
    Product([Step(1.0, 30, 0.5), Exponential(0.1, 0.99)], scale=0.5),
    Lambda("0.99 ** t", lr=0.5),
    Multiplicative("0.999 if t < 100 else 0.98", lr=0.2),
]
COMPOSITIONS = [
    Warmup(Sequence([Product([Cosine(1.0, 50), Cyclic(0.5, 1.0, 5)]), CosineRestarts(0.5, 9, t_mul=2.0)], [60]),
           steps=15, start_factor=0.1),
    Product([Warmup(OneCycle(1.0, 100), steps=10, shift=False), Sequence([Constant(1.0), Step(1.0, 5)], [50])]),
    Sequence([Warmup(Linear(1.0, 0.5, 30), 10), Sequence([Constant(0.2), Polynomial(0.2, 30)], [5]),
              Product([Lambda("min(1.0, (t + 1) / 100)"), Exponential(0.1, 0.95, 3, staircase=True)])], [40, 90]),
]
# Unsorted, repeated, and far steps (restarts, periodic cosine and exponentials far out).
ARBITRARY = np.array([199, 0, 5, 5, 3, 150, 10 ** 6, 2 ** 40 + 3, 10 ** 15, 7, 149, 151, 1, 0, 123_456_789], np.int64)


def _arbitrary(s) -> np.ndarray:
    far = any(isinstance(x, Multiplicative) for x in _walk(s))
    return ARBITRARY[ARBITRARY <= 10 ** 5] if far else ARBITRARY


def _walk(s):
    yield s
    for c in ([s.schedule] if isinstance(s, Warmup) else list(getattr(s, "schedules", ()))):
        yield from _walk(c)


@pytest.mark.parametrize("schedule", SCHEDULES + COMPOSITIONS, ids=str)
def test_every_schedule_agrees_with_numpy(schedule):
    n = 200
    want = lrcore.evaluate(schedule, n, backend="numpy")
    got = lrcore.evaluate(schedule, n, backend="cuda")
    assert got.shape == (n,)
    assert_close(host(got), want, f"{schedule} contiguous")
    steps = _arbitrary(schedule)
    assert_close(host(lrcore.evaluate(schedule, steps, backend="cuda")),
                 lrcore.evaluate(schedule, steps, backend="numpy"), f"{schedule} at {steps.tolist()}")


@pytest.mark.parametrize("schedule", SCHEDULES[::3] + COMPOSITIONS[:1], ids=str)
def test_float32_is_the_float64_value_rounded(schedule):
    steps = _arbitrary(schedule)
    for arg in (150, steps):
        v64 = lrcore.evaluate(schedule, arg, backend="numpy")
        got = lrcore.evaluate(schedule, arg, backend="cuda", dtype=np.float32)
        assert got.dtype == np.float32
        assert_float32_rounding(host(got), v64, str(schedule))


def test_evaluate_many_mixed_schedules():
    from bench.speed.evaluator import mixed_schedules
    ss = mixed_schedules(15, 200, seed=3)
    want = lrcore.evaluate_many(ss, 200, backend="numpy")
    got = lrcore.evaluate_many(ss, 200, backend="cuda")
    assert got.shape == (15, 200) and got.dtype == np.float64
    assert_close(host(got), want, "mixed, contiguous")
    steps = np.array([180, 3, 3, 0, 199, 77, 10 ** 4, 12], np.int64)
    got32 = host(lrcore.evaluate_many(ss, steps, backend="cuda", dtype="float32"))
    assert_float32_rounding(got32, lrcore.evaluate_many(ss, steps, backend="numpy"), "mixed, steps, float32")


def test_ranges_counts_and_step_dtypes():
    s = Sequence([Linear(0.0, 1.0, 10), Step(1.0, step_size=3, gamma=0.5)], milestones=[10])
    for arg in (range(37, 90), range(0, 0), 45, [3, 2, 1, 0, 40], np.array([9, 10, 11], np.uint16),
                np.array([0.0, 25.0, 7.0])):
        want = lrcore.evaluate(s, arg, backend="numpy")
        assert_close(host(lrcore.evaluate(s, arg, backend="cuda")), want, f"steps {arg!r}")


def test_grid_stride_loops_cover_everything():
    """Grids far smaller than the work (x and y strides both used), and far larger."""
    ss = [Cosine(1.0, 30), Step(1.0, 4), Constant(0.3), Warmup(Linear(1.0, 0.0, 20), 5), Lambda("0.9 ** t")]
    steps = np.array([36, 1, 0, 17, 5, 35, 2, 30, 29, 3], np.int64)
    for arr, t0, n in ((None, 3, 37), (steps, 0, steps.size)):
        t = np.arange(t0, t0 + n) if arr is None else arr
        want = np.stack([s._numpy(t) for s in ss])
        for launch in (((1, 1), (4, 1)), ((2, 3), (3, 1)), ((9, 7), (5, 1))):
            got = K.evaluate_many_cuda(ss, arr, t0, n, np.float64, launch=launch)
            assert_close(host(got), want, f"launch {launch}, steps {'contiguous' if arr is None else 'array'}")


def test_launch_config_on_a_gpu_shape():
    class FakeDevice:
        MULTIPROCESSOR_COUNT = 132

    class FakeCuda:
        device_array = staticmethod(lambda *a: None)  # not the simulator's
        get_current_device = staticmethod(lambda: FakeDevice())

    (gx, gy), (bx, by) = K.launch_config(FakeCuda, 1, 10 ** 9)
    assert (gy, bx, by) == (1, K.THREADS, 1) and gx == K.BLOCKS_PER_SM * 132
    (gx, gy), _ = K.launch_config(FakeCuda, 10_000, 100_000)
    assert (gx, gy) == (1, 10_000)
    (gx, gy), _ = K.launch_config(FakeCuda, 100_000, 10)
    assert (gx, gy) == (1, K.MAX_GRID_Y)
    (gx, gy), _ = K.launch_config(FakeCuda, 3, 100)
    assert (gx, gy) == (1, 3)


def test_empty_inputs():
    assert host(lrcore.evaluate(Constant(0.1), 0, backend="cuda")).shape == (0,)
    assert host(lrcore.evaluate(Cosine(0.1, 10), np.zeros(0, np.int64), backend="cuda")).shape == (0,)
    assert host(lrcore.evaluate_many([], 5, backend="cuda")).shape == (0, 5)
    assert host(lrcore.evaluate_many([Constant(0.1)], 0, backend="cuda", dtype=np.float32)).shape == (1, 0)


def test_steps_from_2_62_match_the_numba_backend():
    """The same lowered program and the same rule as the CPU kernel where the program's "no upper
    bound" (2**62) is reached: the same values, or the same error."""
    for s in (Constant(0.5), Step(1.0, step_size=10), Sequence([Constant(1.0), Constant(0.5)], [5])):
        steps = np.array([2 ** 62 - 1, 2 ** 62, 2 ** 63 - 1], np.int64)
        try:
            want = lrcore.evaluate(s, steps, backend="numba")
        except ValueError:
            with pytest.raises(ValueError, match="steps"):
                lrcore.evaluate(s, steps, backend="cuda")
            continue
        assert_close(host(lrcore.evaluate(s, steps, backend="cuda")), want, str(s))


@settings(max_examples=25, deadline=None)
@given(schedules_and_steps(depth=2, max_size=12))
def test_random_schedules_agree_with_numpy(case):
    s, steps = case
    assert_close(host(lrcore.evaluate(s, steps, backend="cuda")), lrcore.evaluate(s, steps, backend="numpy"),
                 f"{s} at {steps.tolist()}")


# --- out= -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_out_device_arrays_are_filled_and_returned(dtype):
    ss = [Warmup(Cosine(0.1, 90), 10), Constant(0.25), CosineRestarts(1.0, 7, t_mul=2.0)]
    want = lrcore.evaluate_many(ss, 100, backend="numpy")
    out = cuda.to_device(np.full((3, 100), -7.0, dtype))
    got = lrcore.evaluate_many(ss, 100, backend="cuda", dtype=dtype, out=out)
    assert got is out
    assert_float32_rounding(host(out), want, "evaluate_many out=") if dtype == np.float32 else \
        assert_close(host(out), want, "evaluate_many out=")
    out1 = cuda.to_device(np.full(100, -7.0, dtype))
    assert lrcore.evaluate(ss[0], 100, backend="cuda", dtype=dtype, out=out1) is out1
    np.testing.assert_array_equal(host(out1), host(out)[0])
    # backend="auto" with a device out is a request for device output
    out2 = cuda.to_device(np.full((3, 100), -7.0, dtype))
    assert lrcore.evaluate_many(ss, 100, dtype=dtype, out=out2) is out2
    np.testing.assert_array_equal(host(out2), host(out))
    out3 = cuda.to_device(np.full(100, -7.0, dtype))
    assert lrcore.evaluate(ss[0], 100, dtype=dtype, out=out3) is out3
    np.testing.assert_array_equal(host(out3), host(out)[0])


class Foreign:
    """A buffer of another library that exposes only ``__cuda_array_interface__`` (as a torch CUDA tensor
    does). Under the simulator device memory is host memory, so the pointer is a numpy buffer's."""

    def __init__(self, shape, dtype, strides=None):
        self.host = np.full(shape, -7.0, dtype) if strides is None else np.full((shape[0], 2 * shape[1]), -7.0, dtype)
        view = self.host if strides is None else self.host[:, ::2]
        self.__cuda_array_interface__ = {"shape": view.shape, "typestr": view.dtype.str,
                                         "data": (view.__array_interface__["data"][0], False),
                                         "strides": None if strides is None else view.strides, "version": 3,
                                         "stream": None}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_foreign_cuda_array_interface_is_accepted(dtype):
    ss = [OneCycle(1.0, 50), Lambda("0.99 ** t")]
    steps = np.array([49, 0, 25, 3, 50, 51], np.int64)
    want = lrcore.evaluate_many(ss, steps, backend="numpy")
    buf = Foreign((2, 6), dtype)
    assert lrcore.evaluate_many(ss, steps, backend="cuda", dtype=dtype, out=buf) is buf
    if dtype == np.float32:
        assert_float32_rounding(buf.host, want, "foreign out")
    else:
        assert_close(buf.host, want, "foreign out")
    one = Foreign((6,), dtype)
    assert lrcore.evaluate(ss[0], steps, dtype=dtype, out=one) is one  # auto: device output asked for
    np.testing.assert_array_equal(one.host, buf.host[0])


# --- errors -------------------------------------------------------------------------------------------------

def test_bad_out_buffers_are_value_errors():
    s = [Cosine(0.1, 10), Constant(0.2)]
    cases = [
        (cuda.device_array((2, 9)), r"shape \(2, 10\) and dtype float64, got .*\(2, 9\)"),
        (cuda.device_array((2, 10), np.float32), r"dtype float64, got .*float32"),
        (cuda.device_array((2, 20))[:, ::2], r"not C-contiguous"),
        (Foreign((2, 10), np.float64, strides=True), r"not C-contiguous"),
        (np.empty((2, 10)), r"host array.*backend='numba'"),
        ([[0.0] * 10] * 2, r"out must be a CUDA device array"),
    ]
    for out, match in cases:
        with pytest.raises(ValueError, match=match):
            lrcore.evaluate_many(s, 10, backend="cuda", out=out)
    with pytest.raises(ValueError, match=r"host array"):
        lrcore.evaluate(s[0], 10, backend="cuda", out=np.empty(10))
    with pytest.raises(ValueError, match=r"1-D CUDA device array"):
        lrcore.evaluate(s[0], 10, backend="cuda", out=cuda.device_array((1, 10)))
    with pytest.raises(ValueError, match=r"shape \(1, 10\)"):
        lrcore.evaluate(s[0], 10, backend="cuda", out=cuda.device_array(11))
    # with backend numpy/numba a device out is still the numpy backends' error
    with pytest.raises(ValueError, match=r"numpy array"):
        lrcore.evaluate_many(s, 10, backend="numba", out=cuda.device_array((2, 10)))


def test_cuda_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(K, "_gpu_problem", lambda c: "no CUDA driver or GPU found (CUDA driver library cannot "
                                                     "be found)")
    for call in (lambda: lrcore.evaluate(Constant(0.1), 5, backend="cuda"),
                 lambda: lrcore.evaluate_many([Constant(0.1)], 5, backend="cuda"),
                 lambda: lrcore.evaluate(Constant(0.1), 5, backend="cuda", out=cuda.device_array(5))):
        with pytest.raises(K.CudaUnavailableError, match=r"backend='cuda' cannot run: no CUDA driver or GPU found"):
            call()
    with pytest.raises(ValueError, match="backend='cuda'"):  # also a ValueError (DESIGN: bad input)
        lrcore.evaluate(Constant(0.1), 5, backend="cuda")

    def no_numba_cuda():
        raise ImportError("No module named 'numba_cuda'")
    monkeypatch.setattr(K, "_import_cuda", no_numba_cuda)
    with pytest.raises(K.CudaUnavailableError, match=r"needs the numba-cuda package.*pip install"):
        lrcore.evaluate(Constant(0.1), 5, backend="cuda")


def test_auto_never_picks_the_simulator_for_host_output(monkeypatch):
    """backend='auto' runs on CUDA for host output only on a real GPU; the simulator is not one."""
    monkeypatch.setattr(K, "AUTO_CUDA_MIN", 10)
    assert not K.gpu_available()
    s = Warmup(Cosine(0.1, 150), steps=20)
    got = lrcore.evaluate(s, 100)
    assert isinstance(got, np.ndarray)
    assert_close(got, lrcore.evaluate(s, 100, backend="numpy"), "auto")


def test_auto_host_output_path_copies_back(monkeypatch):
    """What backend='auto' does on a GPU machine above AUTO_CUDA_MIN: compute on the device, return (or
    fill) a host array."""
    monkeypatch.setattr(K, "gpu_available", lambda: True)
    monkeypatch.setattr(K, "AUTO_CUDA_MIN", 10)
    ss = [Warmup(Cosine(0.1, 150), steps=20), Step(1.0, 7)]
    want = lrcore.evaluate_many(ss, 120, backend="numpy")
    got = lrcore.evaluate_many(ss, 120)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert_close(got, want, "auto, GPU path")
    out = np.full((2, 120), -7.0, np.float32)
    assert lrcore.evaluate_many(ss, 120, dtype=np.float32, out=out) is out
    assert_float32_rounding(out, want, "auto, GPU path, out=")
    out1 = np.full(120, -7.0)
    got1 = lrcore.evaluate(ss[0], 120, out=out1)
    assert np.shares_memory(got1, out1)
    assert_close(out1, want[0], "auto, GPU path, evaluate out=")


# --- bench/speed/gpu.py's GPU code paths, at toy sizes -------------------------------------------------------

def test_gpu_speed_cases_run_on_the_simulator(monkeypatch, tmp_path):
    """The benchmark's measuring code (which only runs for real on a GPU machine) end to end at toy sizes:
    the simulator stands in for the GPU, with the few APIs it lacks stubbed (event timings, memory info)."""
    import types as T

    from bench.speed import gpu as G
    ctx = T.SimpleNamespace(deallocations=T.SimpleNamespace(clear=lambda: None),
                            get_memory_info=lambda: (float("inf"), float("inf")))
    monkeypatch.setattr(cuda, "current_context", lambda: ctx, raising=False)
    monkeypatch.setattr(cuda, "event_elapsed_time", lambda a, b: 2.0, raising=False)
    rows = []
    for dt in (np.float32, np.float64):
        G.run_single(cuda, None, rows, 300, dt, 2, 1, log=lambda m: None)
        G.run_many(cuda, None, rows, 4, 300, dt, 2, 1, log=lambda m: None)
    G.run_auto(cuda, rows, 300, 2, 1, log=lambda m: None)
    got = {(r.case, r.dtype, r.method): r for r in rows}
    for case in ("single", "many"):
        for dt in ("float32", "float64"):
            for method in (G.KERNEL, G.EVALUATE, G.COPY, G.CPU):
                assert (case, dt, method) in got, (case, dt, method)
            # lrcore's own errors: float32 rounding, or the 1e-12 contract in float64 (vs exact: a few ulp)
            limit = 1e-7 if dt == "float32" else 1e-12
            for method in (G.KERNEL, G.EVALUATE, G.CPU):
                assert got[(case, dt, method)].max_rel_err <= limit, got[(case, dt, method)]
            assert got[(case, dt, G.KERNEL)].seconds == pytest.approx(2e-3)  # the stubbed events
    assert got[("single", "float32", G.TORCH)].note.startswith("skipped")
    assert {r.method for r in rows if r.case == "auto"} == {G.TO_HOST, G.TO_HOST + ", new array", G.CPU, G.CPU_NEW}
    path = G.write(rows, tmp_path, {"gpu": "simulator"})
    assert path.exists() and G.summary(G.table(rows, "simulator"))
