"""lrcore's evaluation never changes the caller's OpenMP / PyTorch thread count (issue 15).

Numba's OpenMP threading layer calls ``omp_set_num_threads(every core)`` when its pool starts; each
case runs in a fresh interpreter, since the pool starts once per process (see ``lrcore._threads``).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, timeout=600,
                          capture_output=True, text=True)


@pytest.mark.parametrize("order", ["torch_first", "lrcore_first"])
def test_evaluation_keeps_torch_thread_count(order):
    pytest.importorskip("torch")
    imports = "import torch\nimport lrcore" if order == "torch_first" else "import lrcore\nimport torch"
    r = _run(imports + """
import numpy as np
from lrcore.compat import torch as T
torch.set_num_threads(1)
assert torch.get_num_threads() == 1
ss = [T.OneCycleLR(max_lr=0.1, total_steps=100_000) for _ in range(50)]
lrcore.evaluate_many(ss, 100_000, backend="numba")
a = torch.get_num_threads()
lrcore.evaluate(lrcore.Lambda("0.99 ** t"), 50_000, backend="numba")  # a Numba-compiled user function
b = torch.get_num_threads()
import numba
numba.get_num_threads()
print("THREADS", a, b, torch.get_num_threads(), numba.threading_layer())
""")
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("THREADS"))
    assert line.split()[1:4] == ["1", "1", "1"], f"torch thread count changed by lrcore: {line}"


def test_evaluation_keeps_openmp_thread_count_without_torch():
    """The OpenMP runtime Numba links: its thread count set by the caller stays."""
    r = _run("""
import ctypes
try:
    from numba.np.ufunc import omppool
except ImportError:
    print("NO_OMP"); raise SystemExit
omp = ctypes.CDLL(omppool.__file__)
omp.omp_set_num_threads(1)
import lrcore
lrcore.evaluate(lrcore.Cosine(0.1, 1000), 100_000, backend="numba")
print("OMP", omp.omp_get_max_threads())
""")
    assert r.returncode == 0, r.stderr[-3000:]
    if "NO_OMP" in r.stdout:
        pytest.skip("Numba has no OpenMP layer here")
    assert "OMP 1" in r.stdout, r.stdout
