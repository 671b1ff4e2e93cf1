"""CUDA backend: every schedule of a lowered program at every step, one GPU thread per value.

``evaluate_many_cuda`` runs ``program.build``'s flat program (the same one the CPU kernel runs) with
one kernel launch: a 2-D grid-stride loop, x over steps and y over schedules, so a thread computes
value (s, i) as the product of schedule s's leaves active at step t_i (``lo <= t_i < hi``), each
leaf by ``formulas.leaf_value`` (the one scalar definition every backend shares; TABLE leaves read
the precomputed ``tables`` row). It computes in float64 and rounds on store for float32 output, so
a float32 value is the float64 value rounded, as on the CPU.

Contiguous steps (a count or a ``range``) need no upload: t_i = t0 + i. Otherwise the int64 step
array goes up once per call, packed with the program's integer arrays (two host-to-device copies in
all: integers, then floats). The program arrays are a few hundred bytes, read by every thread of a
warp at the same address (a broadcast from L1), so a launch is bound by the output's write bandwidth
when the schedules are cheap.

The result is a device array (``numba.cuda`` ``DeviceNDArray``) that PyTorch or CuPy take
without a copy through ``__cuda_array_interface__`` (``torch.as_tensor(x, device="cuda")``);
``out=`` accepts any C-contiguous device buffer with that interface (a torch CUDA tensor included)
and is returned as given. The call returns after the kernel has finished (it synchronizes), so the
values are ready on any stream.

``numba.cuda`` is imported on first use, never at import time: importing it fixes whether the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) is used for the whole process. Under the simulator the same
kernel runs as Python on the CPU (tests), and a foreign ``__cuda_array_interface__`` is read as host
memory (the simulator's "device").
"""
from __future__ import annotations

import functools
import types

import numpy as np

from . import formulas as F

# backend="auto" with host output computes on a GPU (then copies back) from this many values on. The
# copy back over PCIe costs about what the CPU kernel needs to write the values itself, so the GPU pays
# only for large or costly work; ``python -m bench.gpu_speed`` measures this point (its "auto" case).
AUTO_CUDA_MIN = 1 << 25

THREADS = 256           # threads per block on a GPU
BLOCKS_PER_SM = 16      # blocks in flight per multiprocessor the grid aims at (grid-stride beyond)
MAX_GRID_Y = 65535
SIM_THREADS, SIM_BLOCKS = 8, 4  # the simulator runs a block's threads as Python threads: keep it small


class CudaUnavailableError(ValueError, RuntimeError):
    """backend='cuda' was asked for where there is no usable CUDA GPU (the message says what is missing).
    A ValueError (an argument this machine cannot honour), and a RuntimeError."""


# --- availability -------------------------------------------------------------------------------------------

def _import_cuda():
    """``numba.cuda`` (ImportError when numba-cuda or its CUDA bindings are missing). A hook for tests."""
    from numba import cuda
    return cuda


def simulator(cuda) -> bool:
    """Whether ``cuda`` is Numba's CUDA simulator."""
    return "simulator" in getattr(cuda.device_array, "__module__", "")


def _gpu_problem(cuda) -> str | None:
    """None when kernels can run (a GPU with a driver and libNVVM, or the simulator), else what is missing.
    A hook for tests."""
    if simulator(cuda):
        return None
    try:
        if cuda.is_available():  # numba-cuda's own test: a driver that initialises, and libNVVM
            return None
        from numba.cuda.cudadrv import driver as drv
        if not drv.driver.is_available:
            why = " ".join(str(drv.driver.initialization_error or "").split())
            return f"no CUDA driver or GPU found ({why or 'the driver did not initialise'})"
        return ("the CUDA driver is present but libNVVM (the CUDA compiler library Numba needs) was not found; "
                f"searched {_nvvm_search()}: install the CUDA toolkit and set CUDA_HOME, or "
                "`pip install cuda-toolkit[nvvm]` (or numba-cuda's cu12 / cu13 extra) into this Python")
    except Exception as e:  # a broken installation: say what it said
        return f"no usable CUDA GPU ({type(e).__name__}: {' '.join(str(e).split())})"
    return None


def _nvvm_search() -> str:
    """Where numba-cuda looks for libNVVM, in its order, with this process's values (for the error)."""
    import os
    import sys
    places = [f"the conda environment (CONDA_PREFIX={os.environ.get('CONDA_PREFIX') or 'unset'})",
              f"NVIDIA's CUDA wheels in {sys.prefix}",
              f"CUDA_HOME / CUDA_PATH ({os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH') or 'unset'})",
              "the system toolkit (/usr/local/cuda, the loader's library path)"]
    try:  # numba-cuda's own lookup says why it failed, where it has one
        from numba.cuda import cuda_paths
        cuda_paths._get_nvvm_path()
    except Exception as e:
        places.append(f"numba-cuda said: {' '.join(str(e).split())[:300]}")
    return "; ".join(places)


def get_cuda():
    """``numba.cuda``, or CudaUnavailableError saying what is missing (numba-cuda, driver, GPU)."""
    try:
        cuda = _import_cuda()
    except ImportError as e:
        raise CudaUnavailableError(
            "backend='cuda' needs the numba-cuda package, which is not installed or not importable "
            f"(pip install 'lrbench[cuda]', or pip install numba-cuda): {e}") from e
    except Exception as e:  # e.g. CUDA Python bindings of the wrong version
        raise CudaUnavailableError(f"backend='cuda': numba.cuda failed to import ({type(e).__name__}: {e})") from e
    problem = _gpu_problem(cuda)
    if problem is not None:
        raise CudaUnavailableError(f"backend='cuda' cannot run: {problem}. Use backend='numba' (CPU) or "
                                   "backend='auto' on this machine.")
    return cuda


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """A real GPU is usable (never the simulator); False rather than an error. Cached per process."""
    try:
        cuda = _import_cuda()
        return not simulator(cuda) and _gpu_problem(cuda) is None
    except Exception:
        return False


def auto_uses_cuda(values: int) -> bool:
    """backend='auto' with host output: a GPU is present and there are enough values to pay for it."""
    return values >= AUTO_CUDA_MIN and gpu_available()


def is_device_array(obj) -> bool:
    """A device buffer (``__cuda_array_interface__``, or a numba/simulator device array), not a host array.
    Imports nothing."""
    if obj is None or isinstance(obj, np.ndarray):
        return False
    return bool(getattr(obj, "__cuda_ndarray__", False)) or hasattr(obj, "__cuda_array_interface__")


# --- device buffers ---------------------------------------------------------------------------------------------

def _sim_from_interface(cuda, obj):
    """Simulator: a foreign ``__cuda_array_interface__`` read as host memory (the simulator's device)."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    desc = obj.__cuda_array_interface__
    if desc.get("mask") is not None:
        raise ValueError("out: masked __cuda_array_interface__ buffers are not supported")

    class _Host:  # keeps ``obj`` alive as the numpy array's base
        owner = obj
        __array_interface__ = {"shape": tuple(desc["shape"]), "typestr": desc["typestr"],
                               "data": tuple(desc["data"]), "strides": desc.get("strides"), "version": 3}
    return FakeCUDAArray(np.asarray(_Host()))


def _as_device(cuda, obj):
    """A numba device array viewing ``obj``'s memory (no copy)."""
    if getattr(obj, "__cuda_ndarray__", False):
        return obj
    if simulator(cuda):
        return _sim_from_interface(cuda, obj)
    return cuda.as_cuda_array(obj)


def _describe(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__name__} {getattr(obj, 'shape', '')} {getattr(obj, 'dtype', '')}"


def device_out(cuda, out, shape: tuple, dtype: np.dtype):
    """``out`` as a numba device array, checked: a C-contiguous device buffer of ``shape`` and ``dtype``."""
    if isinstance(out, np.ndarray) or not is_device_array(out):
        host = " (a host array: backend='cuda' writes device memory; use backend='numba' for host output)" \
            if isinstance(out, np.ndarray) or hasattr(out, "__array_interface__") else ""
        raise ValueError(f"out must be a CUDA device array (__cuda_array_interface__) of shape {shape} and dtype "
                         f"{dtype}, got {_describe(out)}{host}")
    try:
        d = _as_device(cuda, out)
    except (TypeError, ValueError, KeyError, NotImplementedError) as e:
        raise ValueError(f"out: not a usable CUDA array ({e}), got {_describe(out)}") from e
    if tuple(d.shape) != tuple(shape) or np.dtype(d.dtype) != dtype or not d.is_c_contiguous():
        layout = "" if d.is_c_contiguous() else " not C-contiguous"
        raise ValueError(f"out must be a C-contiguous CUDA device array of shape {shape} and dtype {dtype}, "
                         f"got {_describe(out)}{layout}")
    return d


def as_row(out):
    """A 1-D device ``out`` of ``evaluate`` as the (1, n) device array ``evaluate_many`` writes into."""
    cuda = get_cuda()
    if isinstance(out, np.ndarray) or not is_device_array(out):
        host = " (a host array: use backend='numba' for host output)" if isinstance(out, np.ndarray) else ""
        raise ValueError(f"out must be a 1-D CUDA device array (__cuda_array_interface__), got {_describe(out)}{host}")
    d = _as_device(cuda, out)
    if len(d.shape) != 1:
        raise ValueError(f"out must be a 1-D CUDA device array, got shape {tuple(d.shape)}")
    if not d.is_c_contiguous():
        raise ValueError(f"out must be a C-contiguous CUDA device array, got strides {tuple(d.strides)}")
    return d.reshape(1, d.shape[0])


# --- the kernel -------------------------------------------------------------------------------------------------

cuda = None        # ``numba.cuda``, set on first use (the simulator swaps this global for its fake module)
leaf_value = None  # ``formulas.leaf_value`` as a CUDA device function (see ``device_formulas``)


def _evaluate_program(t0, steps, contiguous, sched_leaves, leaves, P, tables, out):
    """out[s, i] = product of schedule s's active leaves at t_i = t0 + i (contiguous) or steps[i].

    Schedule s owns leaves sched_leaves[s, 0] <= l < sched_leaves[s, 1]; leaves[l] = (op, lo, hi, shift,
    off); a TABLE leaf reads tables[P[off], i]. Grid-stride loops: x over steps, y over schedules."""
    S = out.shape[0]
    n = out.shape[1]
    x, y = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    for s in range(y, S, sy):
        l0 = sched_leaves[s, 0]
        l1 = sched_leaves[s, 1]
        for i in range(x, n, sx):
            t = t0 + i if contiguous else steps[i]
            v = 1.0
            for l in range(l0, l1):
                if leaves[l, 1] <= t and t < leaves[l, 2]:
                    op = leaves[l, 0]
                    off = leaves[l, 4]
                    if op == F.TABLE:
                        v *= tables[int(P[off]), i]
                    else:
                        u = t - leaves[l, 3]
                        p = (P[off], P[off + 1], P[off + 2], P[off + 3], P[off + 4], P[off + 5], P[off + 6],
                             P[off + 7])
                        v *= leaf_value(op, u if u > 0 else 0, p, P, off)
            out[s, i] = v  # float32 output: rounded here, once


def device_formulas(cuda_module) -> dict:
    """Every function of ``lrcore.kernels.formulas`` as a CUDA device function: the same code objects
    (so the same formulas, no second implementation), bound to a copy of that module's namespace in
    which each function name is its device version. Needed because numba-cuda (0.30) cannot type the
    ``register_jitable(inline="always")`` overloads of the CPU target; ``forceinline`` asks NVVM to
    inline them instead."""
    ns = dict(vars(F))
    for name, obj in vars(F).items():
        if isinstance(obj, types.FunctionType) and obj.__module__ == F.__name__:
            fn = types.FunctionType(obj.__code__, ns, name, obj.__defaults__, obj.__closure__)
            fn.__qualname__, fn.__doc__ = obj.__qualname__, obj.__doc__
            ns[name] = _device_function(cuda_module, fn)
    return ns


def _device_function(cuda_module, fn):
    if simulator(cuda_module):
        return cuda_module.jit(device=True)(fn)
    try:
        return cuda_module.jit(device=True, forceinline=True)(fn)
    except (TypeError, KeyError, ValueError):  # a numba-cuda without ``forceinline``: NVVM inlines at -O3 anyway
        return cuda_module.jit(device=True)(fn)


_KERNELS: dict = {}


def kernel(cuda_module):
    """The kernel, compiled lazily per argument types, for this ``numba.cuda`` (real or simulator)."""
    global cuda, leaf_value
    key = id(cuda_module)
    if key not in _KERNELS:
        cuda, leaf_value = cuda_module, device_formulas(cuda_module)["leaf_value"]
        _KERNELS[key] = (cuda_module.jit(_evaluate_program), leaf_value)
    cuda, leaf_value = cuda_module, _KERNELS[key][1]
    return _KERNELS[key][0]


def launch_config(cuda, S: int, n: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block): x covers the steps, y the schedules, about BLOCKS_PER_SM blocks per multiprocessor;
    the kernel's grid-stride loops cover the rest."""
    if simulator(cuda):
        threads, target = SIM_THREADS, SIM_BLOCKS
    else:
        threads = THREADS
        target = BLOCKS_PER_SM * cuda.get_current_device().MULTIPROCESSOR_COUNT
    gy = max(1, min(S, MAX_GRID_Y))
    gx = max(1, min(-(-n // threads), -(-target // gy)))
    return (gx, gy), (threads, 1)


def _upload(cuda, prog, arr: np.ndarray | None):
    """Program (and step) arrays on the device in two copies: one int64 buffer, one float64 buffer."""
    S, L = prog.sched_leaves.shape[0], prog.leaves.shape[0]
    leaves = prog.leaves if L else np.zeros((1, 5), np.int64)
    steps = arr if arr is not None and arr.size else np.zeros(1, np.int64)
    ints = np.concatenate([prog.sched_leaves.ravel(), leaves.ravel(), steps])
    tables = prog.tables if prog.tables.size else np.ones((1, 1))
    floats = np.concatenate([prog.P, tables.ravel()])
    d_ints, d_floats = cuda.to_device(ints), cuda.to_device(floats)
    a, b = 2 * S, 2 * S + leaves.size
    nP = prog.P.size
    return (d_ints[b:], d_ints[:a].reshape(S, 2), d_ints[a:b].reshape(leaves.shape[0], 5), d_floats[:nP],
            d_floats[nP:].reshape(tables.shape))


def evaluate_many_cuda(schedules, arr: np.ndarray | None, t0: int, n: int, dtype, out=None, *,
                       to_host: bool = False, launch=None):
    """Values of ``schedules`` at ``arr`` (int64 steps, or None for t0 .. t0 + n - 1), shape (S, n).

    Returns a device array, or ``out`` (a C-contiguous device buffer of that shape and dtype, any object
    with ``__cuda_array_interface__``) filled in place. ``to_host=True`` (backend='auto'): computed on
    the GPU, returned as a numpy array (``out``, when given, is then a host array). ``launch`` =
    (grid, block) overrides the launch configuration (tests of the grid-stride loops).
    """
    cuda = get_cuda()
    dtype = np.dtype(dtype)
    shape = (len(schedules), n)
    if to_host:
        host_out = out
        d_out = cuda.device_array(shape, dtype)
    elif out is None:
        d_out = cuda.device_array(shape, dtype)
    else:
        d_out = device_out(cuda, out, shape, dtype)
    if shape[0] and n:
        from .. import program
        prog = program.build(schedules, arr, t0, n)
        steps, sched_leaves, leaves, P, tables = _upload(cuda, prog, arr)
        grid, block = launch or launch_config(cuda, *shape)
        kernel(cuda)[grid, block](np.int64(t0), steps, arr is None, sched_leaves, leaves, P, tables, d_out)
        cuda.synchronize()
    if to_host:
        if host_out is None:
            return d_out.copy_to_host()
        d_out.copy_to_host(host_out)
        return host_out
    return d_out if out is None else out
