"""Helpers shared by the asv benchmarks (no benchmarks here).

``harness("probes")`` imports ``bench/speed/probes.py`` (and ``bench/speed/shortrun.py``) *of the
working tree that holds these benchmarks*, as the package ``_lrbench_harness``, whatever commit of the
project is installed: asv runs today's benchmarks against yesterday's code, and the measurement code must
come from today. Those modules import the project (``lrcore``, ``bench.train.batched``, ...) with absolute
imports, falling back to the names of older layouts, so the project code measured is the commit's.
"""
import importlib
import os
import sys
import types
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
_PKG = "_lrbench_harness"

#: Exceptions that mean "this commit does not have what the benchmark needs" -> skip, not fail.
MISSING = (ImportError, AttributeError, TypeError)


def harness(name: str):
    if _PKG not in sys.modules:
        pkg = types.ModuleType(_PKG)
        pkg.__path__ = [str(BENCH_DIR)]
        sys.modules[_PKG] = pkg
    return importlib.import_module(f"{_PKG}.{name}")


def skip(reason: str):
    raise NotImplementedError(reason)


def threads() -> int:
    """LRBENCH_ASV_THREADS (default 1): numba and torch threads for the timings; 0 = library default."""
    return int(os.environ.get("LRBENCH_ASV_THREADS", "1"))


def pin_threads():
    """Pin numba's and torch's thread counts (single-threaded timings compare across commits on a shared
    machine; set LRBENCH_ASV_THREADS=0 to time with every core)."""
    n = threads()
    if n <= 0:
        return
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
