"""Start Numba's thread pool without changing the caller's OpenMP thread count.

Numba starts its threading layer once per process, on the first parallel launch (or the first
``numba.get_num_threads()``). The OpenMP layer's ``launch_threads`` then calls
``omp_set_num_threads(NUMBA_NUM_THREADS)`` (every core) on the calling thread. That call binds to the
first ``omp_set_num_threads`` in the process's global symbol scope: PyTorch loads its bundled
``libgomp`` globally, so after lrcore's first evaluation ``torch.get_num_threads()`` read every core
again although the caller had asked for ``torch.set_num_threads(1)`` (issue 15). Numba's own kernels
are not affected by the fix: each launch passes its thread count to the parallel region
(``num_threads`` clause), it never reads that global setting.

Alternatives weighed: choosing the ``workqueue`` layer never touches OpenMP, but the layer is a
process-wide choice (every other Numba user in the process would get it) and it aborts on concurrent
or nested launches; ``tbb`` needs the ``tbb`` package, which is not a dependency. So lrcore keeps
whatever layer Numba picks and starts the pool itself, once, inside ``ensure_started``: it reads the
calling thread's OpenMP thread count from every OpenMP runtime it can reach (the global scope, which
is what Numba's pool binds to when PyTorch is loaded, and the runtime Numba's ``omppool`` links), lets
Numba start its pool, then sets each count back. Later launches do not call ``omp_set_num_threads``.
"""
from __future__ import annotations

import ctypes
import threading

_lock = threading.Lock()
_started = False


def _omp_runtimes() -> list:
    """(get, set) of omp_get_max_threads / omp_set_num_threads for each distinct OpenMP runtime
    reachable from here: the process's global scope first, then the one Numba's omppool links."""
    handles = []
    try:
        handles.append(ctypes.CDLL(None))
    except OSError:  # pragma: no cover - no dlopen(NULL) on this platform
        pass
    try:
        from numba.np.ufunc import omppool
        handles.append(ctypes.CDLL(omppool.__file__))
    except (ImportError, OSError):  # no OpenMP layer: nothing of the caller's to protect from Numba
        pass
    out, seen = [], set()
    for h in handles:
        try:
            get, put = h.omp_get_max_threads, h.omp_set_num_threads
        except AttributeError:
            continue
        key = ctypes.cast(get, ctypes.c_void_p).value
        if key in seen:
            continue
        seen.add(key)
        get.restype, get.argtypes = ctypes.c_int, []
        put.restype, put.argtypes = None, [ctypes.c_int]
        out.append((get, put))
    return out


def ensure_started() -> None:
    """Start Numba's parallel thread pool (idempotent), leaving the caller's OpenMP thread count as it
    was. Call before the first parallel kernel and before ``numba.get_num_threads()``."""
    global _started
    if _started:
        return
    with _lock:
        if _started:
            return
        from numba.np.ufunc import parallel
        if not getattr(parallel, "_is_initialized", False):
            runtimes = _omp_runtimes()
            saved = [(put, get()) for get, put in runtimes]
            try:
                parallel._launch_threads()
            finally:
                for put, n in saved:
                    if n > 0:
                        put(n)
        _started = True
