"""One command for a machine with a GPU: ``make gpu-check`` (``python -m bench.speed.gpu_check``).

Needs only Python with torch, numba, numba-cuda, numpy and pandas (no TensorFlow, no internet, the
project not installed: run from the repository root); Fashion-MNIST comes from ``--data-dir`` (copy the
four IDX files into the git-ignored ``data/fashion-mnist/``). Steps, each in its own process with its own
timeout; a step that fails or times out is reported and the next one runs:

1. ``versions``: Python, torch (and its CUDA), numba, numba-cuda, numpy, pandas; ``nvidia-smi``.
2. ``evaluator``: compile lrcore's CUDA evaluator and check every schedule family (``bench.speed.evaluator.mixed_schedules``)
   against the numpy backend in float64 (relative error <= 1e-12) and float32.
3. ``evaluator-speed``: ``python -m bench.speed.gpu`` (smaller sizes): ``evaluate_many`` on the GPU against
   a device-to-device copy of the same bytes (the write bandwidth).
4. ``train-cuda`` / ``train-cpu``: the quick matrix for 2 epochs on CUDA (torch optimizer path) and on
   the CPU (numba); ``train-compare`` compares the test accuracies per configuration.
5. ``train-speed``: ``lrbench train-speed --device cuda --precision fp32 --precision bf16`` (``trainer_cuda.csv``
   and ``step_profile_cuda.csv``; the "x sequential" ratio there is flattered by the sequential trainer's
   per-step ``loss.item()``, see the note it prints).
6. ``precisions``: one batched step of the quick matrix's 76 models on CUDA in fp32, tf32 (fp32 with
   ``torch.backends.cuda.matmul.allow_tf32``) and bf16, each against its roofline
   (:mod:`bench.speed.roofline`: matmuls alone + optimizer bytes at the copy bandwidth), the three
   interleaved (``speed/precision_cuda.csv``).

Without a GPU every GPU step is reported ``skipped`` (with the reason), never crashed. Everything goes under
``--out`` (default ``$OUT``, else ``gpu-check-out/``): ``steps.csv`` (step, status, seconds, detail),
``summary.json``, a ``<step>.log`` per step, and the numbers each step writes (``versions.json``,
``nvidia-smi.txt``, ``evaluator_check.csv``, ``speed/evaluate_gpu.csv``, ``runs/``,
``train_compare.csv``, ``speed/trainer_cuda.csv``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["STEPS", "main"]

ROOT = Path(__file__).resolve().parent.parent

#: (name, timeout in seconds, needs: "" | "cuda" (torch sees a GPU) | "numba-cuda" (lrcore's kernels run))
STEPS = [
    ("versions", 30, ""),
    ("evaluator", 75, "numba-cuda"),
    ("evaluator-speed", 60, "numba-cuda"),
    ("train-cuda", 75, "cuda"),
    ("train-cpu", 90, "cuda"),  # the reference of the comparison: only where there is a CUDA run
    ("train-compare", 15, "cuda"),
    ("train-speed", 150, "cuda"),
    ("precisions", 90, "cuda"),
]


def _torch_gpu() -> str | None:
    """None when torch sees a CUDA GPU, else why not."""
    try:
        import torch
    except Exception as e:
        return f"torch does not import ({type(e).__name__}: {e})"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (torch.version.cuda={torch.version.cuda})"
    return None


def _numba_gpu() -> str | None:
    """None when lrcore's CUDA kernels can run on a real GPU, else why not."""
    try:
        from lrcore.kernels import cuda as K
        cuda = K.get_cuda()
    except Exception as e:  # CudaUnavailableError says what is missing; an import error, what broke
        return f"{type(e).__name__}: {e}"
    if K.simulator(cuda):
        return "NUMBA_ENABLE_CUDASIM is set: the simulator is not a GPU"
    return None


# ------------------------------------------------------------------------------------------------ the steps

def step_versions(out: Path, args) -> str:
    import platform
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for mod in ("numpy", "pandas", "numba", "torch", "numba_cuda", "pyarrow", "lrcore"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "?")
        except Exception as e:
            info[mod] = f"not importable ({type(e).__name__})"
    try:
        import torch
        info["torch_cuda"] = torch.version.cuda
        info["torch_cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    info["lrcore_cuda_problem"] = _numba_gpu()
    (out / "versions.json").write_text(json.dumps(info, indent=1) + "\n")
    for k, v in info.items():
        print(f"{k}: {v}")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        text = "nvidia-smi: not found"
    else:
        r = subprocess.run([smi], capture_output=True, text=True, timeout=20)
        text = r.stdout + r.stderr
    (out / "nvidia-smi.txt").write_text(text)
    print(text)
    return info.get("gpu", "no GPU")


def step_evaluator(out: Path, args, n: int = 20_000, n_schedules: int = 60, stride: int = 7) -> str:
    import numpy as np

    import lrcore
    from bench.speed.evaluator import mixed_schedules
    scheds = mixed_schedules(n_schedules, n)
    steps = np.unique(np.concatenate([np.arange(0, n, stride), [n - 1, n, 3 * n]])).astype(np.int64)
    rows, worst = [], 0.0
    for dt, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        t0 = time.perf_counter()
        got = lrcore.evaluate_many(scheds, steps, backend="cuda", dtype=dt)
        got = got.copy_to_host() if hasattr(got, "copy_to_host") else np.asarray(got)
        first = time.perf_counter() - t0  # includes the compile
        ref = lrcore.evaluate_many(scheds, steps, backend="numpy").astype(dt)
        for i, s in enumerate(scheds):
            scale = np.maximum(np.abs(ref[i].astype(np.float64)), np.finfo(dt).tiny)
            rel = float(np.max(np.abs(got[i].astype(np.float64) - ref[i]) / scale))
            fam = type(s).__name__
            rows.append(dict(family=fam, schedule=str(s)[:120], dtype=np.dtype(dt).name, max_rel_err=rel,
                             tolerance=tol, ok=rel <= tol))
            if dt == np.float64:
                worst = max(worst, rel)
        print(f"{np.dtype(dt).name}: {len(scheds)} schedules x {len(steps)} steps, first call {first:.2f} s")
    with (out / "evaluator_check.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    bad = [r for r in rows if not r["ok"]]
    fams = sorted({r["family"] for r in rows})
    print(f"families: {', '.join(fams)}; worst float64 relative error {worst:.2e}")
    if bad:
        raise AssertionError(f"{len(bad)} schedule(s) beyond tolerance, e.g. {bad[0]}")
    return f"{len(fams)} families, float64 max rel err {worst:.1e}"


def step_evaluator_speed(out: Path, args) -> str:
    from bench.speed import gpu as gpu_speed
    gpu_speed.main(["--n", "2e8", "--many", "2000", "--many-steps", "1e5", "--repeats", "5", "--cpu-repeats", "1",
                    "--out-dir", str(out / "speed")])
    return "speed/evaluate_gpu.csv"


def _run_cli(argv: list[str]) -> None:
    """``lrbench ARGV`` in a child process (the command line sits above this module)."""
    r = subprocess.run([sys.executable, "-m", "bench.cli", *argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"lrbench {' '.join(argv)} exited {r.returncode}:\n{r.stderr[-3000:]}")


def _train(out: Path, args, device: str) -> str:
    run_id = f"gpu-check-{device}"
    shutil.rmtree(out / "results" / "runs" / run_id, ignore_errors=True)
    argv = ["run", "--matrix", "quick", "--epochs", "2", "--device", device, "--run-id", run_id,
            "--results", str(out / "results"), "--no-report", "--no-progress"]
    if args.data_dir:
        argv += ["--data-dir", str(args.data_dir)]
    _run_cli(argv)
    meta = json.loads((out / "results" / "runs" / run_id / "meta.json").read_text())
    tp = meta.get("throughput", {})
    return f"{meta.get('device_name', device)}: " + ", ".join(f"{k} {v:.4g}" for k, v in tp.items()
                                                               if isinstance(v, (int, float)))


def step_train_cuda(out: Path, args) -> str:
    return _train(out, args, "cuda")


def step_train_cpu(out: Path, args) -> str:
    return _train(out, args, "cpu")


def step_train_compare(out: Path, args) -> str:
    import pandas as pd
    runs = out / "results" / "runs"
    a = pd.read_csv(runs / "gpu-check-cuda" / "summary.csv")
    b = pd.read_csv(runs / "gpu-check-cpu" / "summary.csv")
    keys = [k for k in ("name", "optimizer", "schedule", "seed") if k in a.columns and k in b.columns]
    m = a.merge(b, on=keys, suffixes=("_cuda", "_cpu"))
    cols = [c for c in ("test_acc", "final_val_acc", "final_train_loss") if f"{c}_cuda" in m.columns]
    for c in cols:
        m[f"{c}_diff"] = m[f"{c}_cuda"] - m[f"{c}_cpu"]
    keep = keys + [f"{c}_{s}" for c in cols for s in ("cuda", "cpu", "diff")]
    m[keep].to_csv(out / "train_compare.csv", index=False)
    d = m["test_acc_diff"].abs()
    text = (f"{len(m)} configurations: test accuracy |cuda - cpu| mean {d.mean():.4f}, max {d.max():.4f}; "
            f"mean test accuracy cuda {m['test_acc_cuda'].mean():.4f}, cpu {m['test_acc_cpu'].mean():.4f}")
    print(text)
    if len(m) != len(a) or abs(m["test_acc_cuda"].mean() - m["test_acc_cpu"].mean()) > 0.01:
        raise AssertionError("CUDA and CPU runs disagree: " + text)
    return text


def step_train_speed(out: Path, args) -> str:
    argv = ["train-speed", "--device", "cuda", "--keras-models", "0", "--sequential-models", "4",
            "--precision", "fp32", "--precision", "bf16", "--out", str(out / "speed")]
    if args.data_dir:
        argv += ["--data-dir", str(args.data_dir)]
    _run_cli(argv)
    return "speed/trainer_cuda.csv"


def step_precisions(out: Path, args, rounds: int = 5, device: str = "cuda", **spec_changes) -> str:
    """fp32, tf32 and bf16 steps of the quick matrix's models, interleaved, with their rooflines
    (``device``/``spec_changes``: where and how small, for the CPU test of this step)."""
    import platform

    import torch

    from bench.matrix import load_matrix
    from bench.speed import roofline as R
    mx = load_matrix("quick")
    configs = mx.configs()
    modes = {"fp32": ("fp32", False), "tf32": ("fp32", True), "bf16": ("bf16", False)}
    steps = {m: R.make_step(configs, mx.train_spec(precision=p, optim_impl="torch", **spec_changes), device=device)
             for m, (p, _) in modes.items()}
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine()
    old = torch.backends.cuda.matmul.allow_tf32
    times = {m: [] for m in modes}
    rows = []
    try:
        for r in range(rounds):  # interleaved, the order reversed every other round
            for m in (list(modes) if r % 2 == 0 else list(modes)[::-1]):
                torch.backends.cuda.matmul.allow_tf32 = modes[m][1]
                times[m].append(R.step_time(steps[m], 10))
        for m, (prec, tf32) in modes.items():
            torch.backends.cuda.matmul.allow_tf32 = tf32
            step_s = sorted(times[m])[len(times[m]) // 2]
            roof = R.measure(steps[m], step_s=step_s)
            rows.append(dict(mode=m, n_models=len(configs), step_ms=step_s * 1e3, roofline_ms=roof["roofline_s"] * 1e3,
                             step_over_roofline=roof["step_over_roofline"], matmul_ms=roof["matmul_s"] * 1e3,
                             matmul_tflop_per_s=roof["matmul_flops"] / roof["matmul_s"] / 1e12,
                             optimizer_ms=roof["optimizer_s"] * 1e3, copy_bandwidth=roof["copy_bandwidth"],
                             gpu=name))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    (out / "speed").mkdir(parents=True, exist_ok=True)
    with (out / "speed" / f"precision_{device}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    base = rows[0]["step_ms"]
    return "; ".join(f"{r['mode']} {r['step_ms']:.2f} ms/step ({base / r['step_ms']:.2f}x fp32, "
                     f"{r['step_over_roofline']:.2f}x roofline)" for r in rows)


# ------------------------------------------------------------------------------------------------ driver

def _one(name: str, out: Path, args) -> None:
    """Run one step in this process (the child of the driver)."""
    detail = globals()["step_" + name.replace("-", "_")](out, args)
    (out / f".{name}.detail").write_text(str(detail))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out", help="where every number goes")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST folder (the four IDX files)")
    ap.add_argument("--steps", default=",".join(s[0] for s in STEPS), help="comma-separated subset of the steps")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)  # internal: run one step here
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.data_dir:
        args.data_dir = str(Path(args.data_dir).resolve())
    if args.step:
        _one(args.step, out, args)
        return 0
    wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(wanted) - {s[0] for s in STEPS}
    if unknown:
        ap.error(f"unknown step(s) {sorted(unknown)}; known: {[s[0] for s in STEPS]}")
    problems = {"cuda": _torch_gpu(), "numba-cuda": _numba_gpu()}
    results, failed = [], set()
    t_all = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name, timeout, needs in STEPS:
        if name not in wanted:
            continue
        reason = problems.get(needs)
        if reason is None and name == "train-compare" and failed & {"train-cuda", "train-cpu"}:
            reason = "a training run failed"
        if reason is not None:
            results.append(dict(step=name, status="skipped", seconds=0.0, detail=reason))
            print(f"[{name}] skipped: {reason}", flush=True)
            continue
        print(f"[{name}] running (timeout {timeout} s)", flush=True)
        log = out / f"{name}.log"
        (out / f".{name}.detail").unlink(missing_ok=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "bench.speed.gpu_check", "--step", name, "--out", str(out)]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        try:
            with log.open("w") as f:
                r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT, env=env)
            status = "ok" if r.returncode == 0 else "failed"
            detail = (out / f".{name}.detail").read_text() if status == "ok" else \
                f"exit {r.returncode}: " + " | ".join(log.read_text().strip().splitlines()[-3:])
        except subprocess.TimeoutExpired:
            status, detail = "timeout", f"killed after {timeout} s"
        dt = time.perf_counter() - t0
        if status != "ok":
            failed.add(name)
        results.append(dict(step=name, status=status, seconds=round(dt, 1), detail=detail))
        print(f"[{name}] {status} in {dt:.1f} s: {detail}", flush=True)
        tail = log.read_text().strip().splitlines()[-15:]
        if tail:
            print("    " + "\n    ".join(tail), flush=True)
    with (out / "steps.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["step", "status", "seconds", "detail"], lineterminator="\n")
        w.writeheader()
        w.writerows(results)
    summary = dict(total_seconds=round(time.perf_counter() - t_all, 1), gpu_problems=problems, steps=results)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"gpu-check: {sum(r['status'] == 'ok' for r in results)} ok, "
          f"{sum(r['status'] == 'skipped' for r in results)} skipped, {len(failed)} failed or timed out, "
          f"{summary['total_seconds']} s; written: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
