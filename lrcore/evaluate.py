"""``evaluate`` and ``evaluate_many``: schedules at arrays of steps, on a chosen backend.

Backends: ``numpy`` (the readable reference: each schedule's own vectorized formula), ``numba``
(the lowered program run by ``lrcore.kernels.cpu`` on every core), ``auto`` (numba when there are
at least ``AUTO_NUMBA_MIN`` values to compute, numpy below: compiled code pays off on large arrays).
``cuda`` (``lrcore.kernels.cuda``) returns a device array or fills a device ``out``; ``auto`` uses it
for a device ``out``, and on a GPU machine from ``lrcore.kernels.cuda.AUTO_CUDA_MIN`` values (copied back);
when that GPU run fails (the CUDA compile or launch: a driver older than the NVVM, no libNVVM) ``auto``
warns once and uses numba for the rest of the process.
"""
from __future__ import annotations

import numpy as np

from . import _validate as V
from .base import Schedule
from .kernels.cuda import is_device_array as _device_output

BACKENDS = ("auto", "numpy", "numba", "cuda")
AUTO_NUMBA_MIN = 20_000
_CUDA_FAILED = False  # backend="auto": the GPU failed once in this process; numba from then on


def _cuda_failed(exc: BaseException) -> None:
    """backend="auto" never fails for lack of a working GPU: warn once, then numba for the process."""
    global _CUDA_FAILED
    _CUDA_FAILED = True
    import warnings
    warnings.warn(f"lrcore: backend='auto' could not run on the GPU ({type(exc).__name__}: "
                  f"{' '.join(str(exc).split())[:500]}); using the numba CPU backend from now on",
                  RuntimeWarning, stacklevel=3)


_steps = V.steps  # the older private name


def _schedules(schedules) -> list[Schedule]:
    if isinstance(schedules, Schedule):
        raise TypeError("evaluate_many takes a list of schedules; use evaluate for one")
    out = list(schedules)
    for i, s in enumerate(out):
        if not isinstance(s, Schedule):
            raise TypeError(f"schedules[{i}] must be an lrcore schedule, got {s!r}")
    return out


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


def evaluate_many(schedules, steps, *, backend: str = "auto", dtype=np.float64, out=None) -> np.ndarray:
    """Learning rates of every schedule at every step: shape (len(schedules), len(steps)).

    ``steps`` is a count n (steps 0..n-1), a ``range`` with step 1, or a 1-D array of integers >= 0
    (any order, repeats allowed). All schedules run in one kernel call on the compiled backends.
    ``out`` (optional) is a C-contiguous array of the result's shape and dtype to write into.
    """
    schedules = _schedules(schedules)
    arr, t0, n = V.steps(steps)
    dt = _dtype(dtype)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    shape = (len(schedules), n)
    if backend == "cuda" or (backend == "auto" and _device_output(out)):  # device output asked for
        from .kernels.cuda import evaluate_many_cuda
        return evaluate_many_cuda(schedules, arr, t0, n, dt, out)
    if out is not None:
        if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dt or not out.flags.c_contiguous:
            got = f"{type(out).__name__} {getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}"
            raise ValueError(f"out must be a C-contiguous numpy array of shape {shape} and dtype {dt}, got {got}")
    if backend == "auto":
        from .kernels import cuda
        if not _CUDA_FAILED and cuda.auto_uses_cuda(len(schedules) * n):  # a GPU, and enough values to pay
            try:
                return cuda.evaluate_many_cuda(schedules, arr, t0, n, dt, out, to_host=True)
            except Exception as e:  # compile or launch failed (driver older than the NVVM, no libNVVM, ...)
                _cuda_failed(e)
        backend = "numba" if len(schedules) * n >= AUTO_NUMBA_MIN else "numpy"
    if out is None:
        out = np.empty(shape, dt)
    if backend == "numpy":
        t = np.arange(t0, t0 + n, dtype=np.int64) if arr is None else arr
        for i, s in enumerate(schedules):
            out[i] = s._numpy(t)
        return out
    import numba

    from . import _threads, program
    from .kernels import cpu
    _threads.ensure_started()  # before numba.get_num_threads(): keeps the caller's OpenMP thread count
    prog = program.build(schedules, arr, t0, n)
    steps_arg = np.zeros(0, np.int64) if arr is None else arr
    # the kernel computes in float64; float32 output is written directly, each value rounded once
    cpu.evaluate_program(np.int64(t0), steps_arg, arr is None, prog.sched_leaves, prog.leaves, prog.P,
                         prog.tables, out, numba.get_num_threads())
    return out


def evaluate(schedule: Schedule, steps, *, backend: str = "auto", dtype=np.float64, out=None) -> np.ndarray:
    """Learning rates of one schedule at ``steps`` (see ``evaluate_many``): a 1-D array."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be an lrcore schedule, got {schedule!r}")
    if out is not None and (backend == "cuda" or (backend == "auto" and _device_output(out))):
        from .kernels.cuda import as_row
        evaluate_many([schedule], steps, backend="cuda", dtype=dtype, out=as_row(out))
        return out
    if out is not None:
        if not isinstance(out, np.ndarray) or out.ndim != 1:
            raise ValueError(f"out must be a 1-D numpy array, got {type(out).__name__} {getattr(out, 'shape', '')}")
        return evaluate_many([schedule], steps, backend=backend, dtype=dtype, out=out.reshape(1, -1))[0]
    return evaluate_many([schedule], steps, backend=backend, dtype=dtype)[0]

