"""The CUDA backend (``lrcore.kernels.cuda``) and its GPU benchmark (``bench/speed/gpu.py``).

The kernel's tests run on Numba's CUDA simulator, which must be switched on (NUMBA_ENABLE_CUDASIM=1)
before ``numba.cuda`` is first imported and then applies to the whole process: they live in
``tests/cuda_sim/`` and ``test_cuda_simulator_suite`` runs them in a fresh interpreter. The tests here
run in this process without the simulator: availability errors, backend='auto' on a machine without
a GPU, and the benchmark's pure-Python parts.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import lrcore
from lrcore import Constant, Cosine, Warmup

ROOT = Path(__file__).resolve().parent.parent
SIM_DIR = ROOT / "tests" / "cuda_sim"


def _numba_cuda_installed() -> bool:
    return importlib.util.find_spec("numba_cuda") is not None or importlib.util.find_spec("numba.cuda") is not None


def _env(**extra) -> dict:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return env


@pytest.mark.skipif(not _numba_cuda_installed(), reason="numba-cuda is not installed")
def test_cuda_simulator_suite(request):
    """tests/cuda_sim/ under NUMBA_ENABLE_CUDASIM=1 in a fresh interpreter (its output is shown on failure)."""
    if any(Path(str(item.fspath)).parent == SIM_DIR for item in request.session.items):
        pytest.skip("tests/cuda_sim runs in this process (NUMBA_ENABLE_CUDASIM=1 is set here)")
    cmd = [sys.executable, "-m", "pytest", str(SIM_DIR), "-q", "-p", "no:cacheprovider", "--no-header", "-rfE"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(NUMBA_ENABLE_CUDASIM="1"), capture_output=True, text=True,
                       timeout=900)
    out = (r.stdout + r.stderr)[-12_000:]
    print(out)
    assert r.returncode == 0, f"the CUDA simulator suite failed (rc={r.returncode}):\n{out}"
    assert " passed" in r.stdout and "no tests ran" not in r.stdout, out


def test_importing_the_backend_and_benchmark_does_not_import_numba_cuda():
    """Importing numba.cuda fixes simulator or not for the process: lrcore and bench.speed.gpu must only
    import it when a CUDA evaluation is asked for."""
    code = ("import sys, lrcore, lrcore.kernels.cuda, bench.speed.gpu; lrcore.evaluate(lrcore.Constant(0.1), 30_000); "
            "print(sorted(m for m in sys.modules if m.startswith('numba.cuda') or m == 'numba_cuda'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]", r.stdout


def test_missing_numba_cuda_is_a_clear_error(monkeypatch):
    from lrcore.kernels import cuda as K

    def missing():
        raise ImportError("No module named 'numba_cuda'")
    monkeypatch.setattr(K, "_import_cuda", missing)
    for call in (lambda: lrcore.evaluate(Constant(0.1), 5, backend="cuda"),
                 lambda: lrcore.evaluate_many([Constant(0.1)], 5, backend="cuda", dtype=np.float32),
                 lambda: lrcore.evaluate(Constant(0.1), 5, backend="cuda", out=np.empty(5))):
        with pytest.raises(K.CudaUnavailableError, match=r"backend='cuda' needs the numba-cuda package.*pip install"):
            call()
    with pytest.raises(ValueError, match="numba-cuda"):
        lrcore.evaluate(Constant(0.1), 5, backend="cuda")


def test_missing_gpu_is_a_clear_error(monkeypatch):
    from lrcore.kernels import cuda as K
    fake = types.SimpleNamespace(device_array=lambda *a, **k: None)  # a numba.cuda that is not the simulator
    monkeypatch.setattr(K, "_import_cuda", lambda: fake)
    monkeypatch.setattr(K, "_gpu_problem", lambda c: "no CUDA driver or GPU found (driver library cannot be found)")
    with pytest.raises(K.CudaUnavailableError, match=r"backend='cuda' cannot run: no CUDA driver or GPU found.*"
                                                     r"backend='numba'"):
        lrcore.evaluate_many([Cosine(0.1, 10)], 5, backend="cuda")


def test_no_gpu_here_gives_the_real_reason():
    """Without the simulator and without a GPU (this machine, CI): the probe's own words."""
    from lrcore.kernels import cuda as K
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not _numba_cuda_installed() or K.gpu_available():
        pytest.skip("needs numba-cuda, no GPU and no simulator")
    with pytest.raises(K.CudaUnavailableError, match=r"backend='cuda' cannot run: (no CUDA driver or GPU found|"
                                                     r"the CUDA driver is present but libNVVM|no usable CUDA GPU)"):
        lrcore.evaluate(Constant(0.1), 5, backend="cuda")


def test_auto_never_fails_without_a_gpu(monkeypatch):
    """backend='auto' above its CUDA threshold: the GPU where there is one, the CPU elsewhere; a host
    array and the same values either way."""
    from lrcore.kernels import cuda as K
    monkeypatch.setattr(K, "AUTO_CUDA_MIN", 100)
    s = Warmup(Cosine(lr=0.1, decay_steps=900), steps=100)
    got = lrcore.evaluate(s, 1000)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    want = lrcore.evaluate(s, 1000, backend="numpy")
    assert np.all(np.abs(got - want) <= 1e-12 * np.abs(want) + 1e-300)
    out = np.empty((2, 1000), np.float32)
    assert lrcore.evaluate_many([s, Constant(0.5)], 1000, dtype=np.float32, out=out) is out
    assert np.all(np.abs(out[0] - want.astype(np.float32)) <= np.spacing(want.astype(np.float32)))


def test_device_output_detection_imports_nothing():
    from lrcore.kernels.cuda import is_device_array

    class CAI:
        __cuda_array_interface__ = {"shape": (3,), "typestr": "<f8", "data": (0, False), "version": 3}
    assert is_device_array(CAI()) and not is_device_array(np.empty(3)) and not is_device_array(None)
    assert not is_device_array([1.0, 2.0])


# --- bench/speed/gpu.py ----------------------------------------------------------------------------------------

def _fake_rows():
    from bench.speed import gpu as G
    R = G.Row
    n, S = 10 ** 9, 10 ** 4
    return [
        R("single", "d", G.KERNEL, "float32", n, 4 * n, 0.004, "cuda events", 6e-8, "grid (2112, 1)"),
        R("single", "d", G.EVALUATE, "float32", n, 4 * n, 0.0042, "wall", 6e-8),
        R("single", "d", G.COPY, "float32", n, 4 * n, 0.0025, "cuda events"),
        R("single", "d", G.TORCH, "float32", n, 4 * n, 0.010, "cuda events", 3e-3),
        R("single", "d", G.CPU, "float32", n, 4 * n, 1.0, "wall", 6e-8),
        R("single", "d", G.KERNEL, "float64", n, 8 * n, 0.010, "cuda events", 1e-15),
        R("single", "d", G.COPY, "float64", n, 8 * n, 0.005, "cuda events"),
        R("single", "d", G.TORCH, "float64", n, 8 * n, math.nan, "", None, "skipped: no room"),
        R("many", "m", G.KERNEL, "float64", S * 10 ** 5, 8 * S * 10 ** 5, 0.02, "cuda events", 1e-15),
        R("many", "m", G.COPY, "float64", S * 10 ** 5, 8 * S * 10 ** 5, 0.005, "cuda events"),
        R("auto", "a", G.TO_HOST + ", new array", "float64", 2 ** 25, 2 ** 28, 0.05, "wall"),
        R("auto", "a", G.CPU_NEW, "float64", 2 ** 25, 2 ** 28, 0.1, "wall"),
    ]


def test_gpu_speed_table_ratios():
    from bench.speed import gpu as G
    records = {(r["case"], r["dtype"], r["method"]): r for r in G.table(_fake_rows(), "NVIDIA H100")}
    k32 = records[("single", "float32", G.KERNEL)]
    assert k32["fraction_of_copy_write_bw"] == pytest.approx(0.0025 / 0.004)
    assert k32["speedup_vs_torch"] == pytest.approx(0.010 / 0.004)
    assert k32["speedup_vs_cpu_numba"] == pytest.approx(1.0 / 0.004)
    assert k32["write_GBps"] == pytest.approx(4e9 / 0.004 / 1e9)
    assert k32["values_per_second"] == pytest.approx(1e9 / 0.004)
    assert k32["device"] == "NVIDIA H100" and k32["median_seconds"] == 0.004
    copy = records[("single", "float32", G.COPY)]
    assert copy["fraction_of_copy_write_bw"] is None and copy["speedup_vs_torch"] is None
    assert records[("single", "float32", G.TORCH)]["fraction_of_copy_write_bw"] == pytest.approx(0.25)
    assert records[("single", "float32", G.CPU)]["fraction_of_copy_write_bw"] is None
    k64 = records[("single", "float64", G.KERNEL)]
    assert k64["fraction_of_copy_write_bw"] == pytest.approx(0.5) and k64["speedup_vs_torch"] is None
    assert records[("single", "float64", G.TORCH)]["write_GBps"] is None
    assert records[("many", "float64", G.KERNEL)]["fraction_of_copy_write_bw"] == pytest.approx(0.25)
    assert records[("auto", "float64", G.TO_HOST + ", new array")]["speedup_vs_cpu_numba"] == pytest.approx(2.0)
    lines = G.summary(list(records.values()))
    assert any("single float32 lrcore cuda kernel" in l and "0.62" in l and "MET" in l and "NOT" not in l
               for l in lines), lines
    assert any("auto threshold" in l and "2.00x" in l for l in lines), lines
    assert "lrcore cuda kernel" in G.format_table(list(records.values()))


def test_gpu_speed_writes_csv_and_json(tmp_path):
    import csv
    from bench.speed import gpu as G
    path = G.write(_fake_rows(), tmp_path, {"gpu": "NVIDIA H200", "cpu": "x"})
    assert path == tmp_path / "evaluate_gpu.csv"
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == len(_fake_rows()) and {r["device"] for r in rows} == {"NVIDIA H200"}
    data = json.loads((tmp_path / "evaluate_gpu.json").read_text())
    assert data["machine"]["gpu"] == "NVIDIA H200" and len(data["rows"]) == len(rows)
    assert data["rows"][7]["median_seconds"] is None  # NaN is not JSON
    assert any("MET" in line for line in data["summary"])


def test_gpu_speed_without_a_gpu_fails_clearly(monkeypatch):
    from bench.speed import gpu as G
    from lrcore.kernels import cuda as K

    def unavailable():
        raise K.CudaUnavailableError("backend='cuda' cannot run: no CUDA driver or GPU found (test)")
    monkeypatch.setattr(K, "get_cuda", unavailable)
    with pytest.raises(SystemExit, match=r"bench.speed.gpu needs an NVIDIA GPU.*no CUDA driver or GPU found"):
        G.main(["--n", "1000", "--out-dir", "/nonexistent/never-written"])
    with pytest.raises(SystemExit):
        G.main(["--n", "10"])  # argparse: too small


@pytest.mark.skipif(not _numba_cuda_installed(), reason="numba-cuda is not installed")
def test_gpu_speed_command_fails_clearly_here(tmp_path):
    """``python -m bench.speed.gpu`` on a machine without a GPU: a one-line reason, exit status 1, no files."""
    from lrcore.kernels import cuda as K
    if K.gpu_available():
        pytest.skip("a GPU is present: the benchmark would run")
    env = _env()
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    r = subprocess.run([sys.executable, "-m", "bench.speed.gpu", "--out-dir", str(tmp_path)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    assert "bench.speed.gpu needs an NVIDIA GPU" in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert not list(tmp_path.iterdir())


def test_missing_nvvm_message_says_where_it_looked(monkeypatch):
    """Without libNVVM the error names every place numba-cuda searches, with this process's values."""
    import sys

    from lrcore.kernels import cuda as C
    monkeypatch.setenv("CUDA_HOME", "/opt/no-such-cuda")
    text = C._nvvm_search()
    assert "/opt/no-such-cuda" in text and sys.prefix in text and "conda" in text and "/usr/local/cuda" in text
