"""PyTorch's CPU kernel families (``ATEN_CPU_CAPABILITY``) in float32 parity tests.

PyTorch picks its float32 kernels by CPU (``default``, ``avx2``, ``avx512``): the same matmul rounds
differently in each, and 300 steps of training amplify that. :func:`family_spread` measures it: a test
module's reference runs (its ``family_references()``) are repeated in a subprocess under every other
family this CPU supports, and the spread is, per element, the largest distance from this process's
run. A float32 parity test then allows what float32 itself does when only the kernels change.

Results are cached per (module, family) in ``$LRBENCH_KERNEL_FAMILY_CACHE`` (set by ``tests/conftest.py``
for the session and inherited by the subprocesses of ``tests/test_kernel_families.py``): npz files,
never pickle.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ENV = "ATEN_CPU_CAPABILITY"
CACHE_ENV = "LRBENCH_KERNEL_FAMILY_CACHE"
TESTS = Path(__file__).resolve().parent
ORDER = ("default", "avx2", "avx512")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def supported() -> list[str]:
    """The families this CPU can run, from its flags (as ATen decides: avx2 needs AVX2 + FMA, avx512
    needs AVX-512 F, BW, VL and DQ), whatever ``ATEN_CPU_CAPABILITY`` this process was started with."""
    flags = cpu_flags()
    if not flags:  # not Linux x86: only the family torch runs here
        return [current()]
    out = ["default"]
    if {"avx2", "fma"} <= flags:
        out.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            out.append("avx512")
    return out


def current() -> str:
    import torch
    return torch.backends.cpu.get_cpu_capability().lower()


def _cache() -> Path:
    path = os.environ.get(CACHE_ENV)
    if not path:
        raise RuntimeError(f"{CACHE_ENV} is not set (tests/conftest.py sets it for a pytest session)")
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def _flatten(refs: dict) -> dict[str, np.ndarray]:
    return {f"{name}|{i}|{k}": p.detach().cpu().numpy() for name, states in refs.items()
            for i, state in enumerate(states) for k, p in enumerate(state)}


def _save(path: Path, refs: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **_flatten(refs))
    os.replace(tmp, path)


def _references(module: str, family: str) -> dict[str, np.ndarray]:
    """``module.family_references()`` computed under ``family`` (in a subprocess; cached)."""
    path = _cache() / f"{module}-{family}.npz"
    if not path.is_file():
        code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]; "
                f"import kernel_families as K, {module} as M; from pathlib import Path; "
                f"assert K.current() == {family!r}, K.current(); "
                f"K._save(Path({str(path)!r}), M.family_references())")
        env = {**os.environ, ENV: family}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{module}.family_references() under {ENV}={family} failed:\n{done.stderr[-3000:]}")
    with np.load(path) as z:
        return dict(z)


def family_spread(module: str, here: dict) -> dict:
    """Per reference run and state, per parameter: max over the other supported families of
    |their run - this process's run| (torch tensors shaped like ``here``'s)."""
    import torch
    fam = current()
    own = _cache() / f"{module}-{fam}.npz"
    if not own.is_file():
        _save(own, here)
    flat = _flatten(here)
    worst = {key: np.zeros_like(v) for key, v in flat.items()}
    for other in supported():
        if other == fam:
            continue
        theirs = _references(module, other)
        for key, v in flat.items():
            worst[key] = np.maximum(worst[key], np.abs(theirs[key] - v))
    return {name: [[torch.from_numpy(worst[f"{name}|{i}|{k}"]) for k in range(len(state))]
                   for i, state in enumerate(states)] for name, states in here.items()}
