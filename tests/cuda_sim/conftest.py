"""Tests of the CUDA backend that run on Numba's CUDA simulator, in their own process.

``NUMBA_ENABLE_CUDASIM=1`` must be set before ``numba.cuda`` is first imported, and it switches
``numba.cuda`` to the simulator for the whole process; so these files are collected only in a process
started with it (``tests/test_cuda.py::test_cuda_simulator_suite`` starts one). By hand:

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda_sim -q
"""
import os
import sys
from pathlib import Path

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["*.py"]
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: ``strategies``
