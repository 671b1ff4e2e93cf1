"""The float32 parity tests under every PyTorch CPU kernel family this CPU supports.

PyTorch picks its float32 kernels by CPU (``torch.backends.cpu.get_cpu_capability()``); ``ATEN_CPU_CAPABILITY``
picks a lower family in a new process. The tests marked ``float32_parity`` (tests/test_batched.py,
tests/test_schedulefree.py) run here in this process's family and below in a subprocess per other family,
so an AMD machine (AVX2) runs two families and an Intel one (AVX-512) three: a bound that holds only for
the kernels of the machine a test was written on fails on any machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kernel_families as K

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_batched.py", "tests/test_schedulefree.py", "tests/test_kernel_families.py"]


def test_supported_families_come_from_the_cpu():
    fams = K.supported()
    assert fams[0] == "default" or len(fams) == 1
    assert list(fams) == sorted(fams, key=K.ORDER.index)
    requested = os.environ.get(K.ENV)
    if requested is None:  # torch runs the best family the CPU has
        assert K.current() == fams[-1]


@pytest.mark.float32_parity
def test_this_process_runs_the_requested_family():
    """In the subprocesses below: the family asked for is the one torch runs."""
    requested = os.environ.get(K.ENV)
    if requested is None:
        pytest.skip(f"{K.ENV} not set: this process runs torch's choice ({K.current()})")
    assert K.current() == requested


OTHERS = [f for f in K.supported() if f != K.current()]


@pytest.mark.skipif(not OTHERS, reason=f"this CPU supports only the family torch runs here ({K.current()})")
@pytest.mark.parametrize("family", OTHERS)
def test_float32_parity_under_family(family):
    env = {**os.environ, K.ENV: family, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "float32_parity", *FILES]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, f"float32 parity under {K.ENV}={family} failed:\n{tail}"
    assert " passed" in tail and " skipped" not in tail.splitlines()[-1], tail
