"""Provenance of a measurement: the machine, library versions, the git commit, the device, a matmul rate.

Used by every writer of results (run ``meta.json``, speed tables) so that each records the same facts.
Heavy libraries (torch) are imported inside the functions that need them.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import subprocess
import time
from pathlib import Path

__all__ = ["utc", "machine", "git", "environment", "matmul_flop_rate", "bf16_flags", "bf16_slow_reason"]

#: The checkout that holds this package (git provenance is read there, never written).
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def utc() -> str:
    """Now, UTC, ``2026-01-31T12:00:00Z``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine(frameworks: bool = True) -> dict:
    """CPU name, numba threads, platform and the versions of Python, NumPy, Numba, lrcore (and, with
    ``frameworks``, of torch / keras / tensorflow where installed)."""
    import numba
    import numpy as np

    import lrcore
    info = {"cpu": platform.processor() or "", "threads": numba.get_num_threads(), "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "lrcore": lrcore.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    for mod in ("torch", "keras", "tensorflow") if frameworks else ():
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


#: CPU flags (``/proc/cpuinfo``) of bfloat16 arithmetic in hardware: x86 AVX512-BF16 and AMX-BF16, Arm's BF16.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def bf16_flags() -> list[str] | None:
    """The CPU's bfloat16 flags (:data:`BF16_FLAGS` present in ``/proc/cpuinfo``), None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next(line for line in f if line.startswith(("flags", "Features")))
    except (OSError, StopIteration):
        return None
    have = set(line.split(":", 1)[1].split())
    return [f for f in BF16_FLAGS if f in have]


def bf16_slow_reason(device) -> str | None:
    """None when ``device`` multiplies bfloat16 in hardware (CPU: a flag of :data:`BF16_FLAGS`; CUDA: compute
    capability 8.0 or later), else why ``precision="bf16"`` will train slower than float32 there (torch still
    computes bfloat16 matmuls, by conversion to float32)."""
    import torch
    dev = torch.device(device)
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        return None if major >= 8 else (f"{torch.cuda.get_device_name(dev)} (compute capability {major}.{minor}) has "
                                         "no bfloat16 tensor cores (8.0 or later have them)")
    flags = bf16_flags()
    if flags is None:
        return "the CPU's flags cannot be read here, so it is not known whether it has bfloat16 arithmetic"
    if flags:
        return None
    return (f"this CPU ({machine(frameworks=False).get('cpu', '?')}) has no bfloat16 arithmetic (no AVX512_BF16 or "
            "AMX-BF16 flag): torch converts the bfloat16 matmuls to float32")


def git(*args) -> str | None:
    """``git <args>`` in the package's checkout; None when git or the checkout is missing."""
    try:
        return subprocess.run(["git", *args], cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device) -> dict:
    """Machine, versions and commit for a run's meta.json (``device``: a torch device or its name)."""
    from importlib import metadata

    import pandas as pd
    import torch
    info = machine(frameworks=False)
    for dist in ("torch", "tensorflow", "keras"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else info.get("cpu", "")
    versions = {k: info[k] for k in ("python", "numpy", "numba", "torch", "keras", "tensorflow", "lrcore")
                if k in info}
    versions["pandas"] = pd.__version__
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"device": str(dev), "device_name": name, "cpu": info.get("cpu", ""), "cpu_bf16_flags": bf16_flags(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "n_threads": torch.get_num_threads(), "platform": info.get("platform", platform.platform()),
            "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None,
            "versions": versions}


def matmul_flop_rate(device, n=1024, repeats=5) -> float:
    """FLOP/s of one float32 ``n x n`` torch matmul (``2 n^3`` FLOPs), best of ``repeats``."""
    import torch
    device = torch.device(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = math.inf
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best
