"""GPU evaluator speed: lrcore's CUDA backend against the memory system, PyTorch and the CPU, in one run.

    python -m bench.speed.gpu            # on a machine with an NVIDIA GPU; writes results/speed/evaluate_gpu.*

Cases (one schedule, many schedules, the ``auto`` threshold), methods and the bandwidth target:
docs/BENCH.md, "bench/speed/gpu.py".
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import lrcore

from ..machine import machine
from ..results import DEFAULT_HELP, results_root, write_csv, write_text
from .evaluator import mixed_schedules, sample_steps, warmup_cosine

KERNEL = "lrcore cuda kernel"
EVALUATE = "lrcore cuda evaluate(out=)"
COPY = "device-to-device copy (same bytes)"
TORCH = "torch native (arange + cos)"
CPU = "lrcore numba (CPU)"
TO_HOST = "lrcore cuda -> host (auto)"
CPU_NEW = "lrcore numba (CPU), new array"
GPU_METHODS = (KERNEL, EVALUATE, TORCH)
TARGET = ("single", "float32", KERNEL, 0.5)  # case, dtype, method, minimum fraction of copy write bandwidth


@dataclass
class Row:
    case: str             # single | many | auto
    description: str
    method: str
    dtype: str
    values: int
    bytes_written: int
    seconds: float        # median
    timing: str           # "cuda events" | "wall clock + synchronize"
    max_rel_err: float | None = None
    note: str = ""


# --- timing ----------------------------------------------------------------------------------------------------

def wall_median(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def event_median(cuda, fn: Callable[[], object], repeats: int) -> float:
    """Median seconds between CUDA events recorded on the default stream around ``fn``."""
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = cuda.event(), cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cuda.event_elapsed_time(start, end) / 1e3)
    return statistics.median(times)


def torch_event_median(torch, fn: Callable[[], object], repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


# --- set-up ------------------------------------------------------------------------------------------------------

def require_gpu():
    """``numba.cuda`` on a real GPU, or SystemExit saying what is missing."""
    from lrcore.kernels import cuda as K
    try:
        cuda = K.get_cuda()
    except K.CudaUnavailableError as e:
        raise SystemExit(f"bench.speed.gpu needs an NVIDIA GPU with its driver: {e}") from None
    if K.simulator(cuda):
        raise SystemExit("bench.speed.gpu needs a real NVIDIA GPU, not Numba's CUDA simulator: "
                         "unset NUMBA_ENABLE_CUDASIM")
    return cuda


def torch_cuda():
    """torch when it has CUDA, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def free_device_memory(cuda) -> None:
    gc.collect()
    cuda.current_context().deallocations.clear()


def fits(cuda, nbytes: int) -> bool:
    free, _ = cuda.current_context().get_memory_info()
    return nbytes <= 0.9 * free


def device_info(cuda) -> dict:
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    free, total = cuda.current_context().get_memory_info()
    info = {"gpu": name, "compute_capability": ".".join(map(str, dev.compute_capability)),
            "multiprocessors": dev.MULTIPROCESSOR_COUNT, "gpu_memory_gib": round(total / 2 ** 30, 1)}
    try:
        from numba.cuda.cudadrv.driver import driver
        info["cuda_driver"] = ".".join(map(str, driver.get_version()))
    except Exception:
        pass
    try:
        from importlib.metadata import version
        info["numba_cuda"] = version("numba-cuda")
    except Exception:
        pass
    return info


def gather(cuda, torch, d, rows: np.ndarray | None, cols: np.ndarray) -> np.ndarray:
    """d[rows][:, cols] (d[cols] for 1-D) of a device array, as float64 on the host. With torch, through a
    zero-copy tensor view of d (checked), else a full copy to the host."""
    if torch is not None:
        t = torch.as_tensor(d, device="cuda")
        assert t.data_ptr() == d.device_ctypes_pointer.value, "torch.as_tensor copied the device array"
        c = torch.as_tensor(cols, device="cuda")
        sel = t[c] if rows is None else t[torch.as_tensor(rows, device="cuda")][:, c]
        return sel.double().cpu().numpy()
    h = d.copy_to_host()
    return (h[cols] if rows is None else h[rows][:, cols]).astype(np.float64)


def samples(n: int, k: int = 4000) -> np.ndarray:
    """``bench.speed.evaluator.sample_steps`` (edges of the warmup and of the end, and random steps) inside [0, n)."""
    s = sample_steps(n, k)
    return s[(s >= 0) & (s < n)]


def max_rel(got: np.ndarray, want: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def exact_or_reference(schedule, sample: np.ndarray, n: int) -> tuple[np.ndarray, str]:
    try:
        from .evaluator import exact_values
        return exact_values(sample, n), "exact (mpmath)"
    except ImportError:
        return lrcore.evaluate(schedule, sample, backend="numpy"), "lrcore numpy backend (mpmath not installed)"


def torch_warmup_cosine(torch, n: int, dtype, peak: float = 0.1, start_factor: float = 1e-3):
    """The hand-written PyTorch version of ``warmup_cosine(n)`` on the GPU."""
    w = max(1, n // 100)
    t = torch.arange(n, device="cuda", dtype=dtype)
    warm = peak * (start_factor + (1 - start_factor) * t / w)
    cos = 0.5 * peak * (1 + torch.cos(math.pi * (t - w) / (n - w)))
    return torch.where(t < w, warm, cos)


def kernel_launcher(cuda, schedules, n: int, out):
    """A function that launches the kernel alone (the program uploaded once, here), and its config."""
    from lrcore import program
    from lrcore.kernels import cuda as K
    prog = program.build(schedules, None, 0, n)
    steps, sched_leaves, leaves, P, tables = K._upload(cuda, prog, None)
    kern = K.kernel(cuda)
    grid, block = K.launch_config(cuda, len(schedules), n)
    return (lambda: kern[grid, block](np.int64(0), steps, True, sched_leaves, leaves, P, tables, out)), (grid, block)


# --- cases -------------------------------------------------------------------------------------------------------

def run_lrcore_gpu(cuda, torch, rows, case, desc, schedules, n, dtype, repeats, check) -> None:
    """Kernel alone, whole evaluate call, and a copy of as many bytes, into one device buffer."""
    S = len(schedules)
    itemsize = np.dtype(dtype).itemsize
    nbytes = S * n * itemsize
    name = np.dtype(dtype).name
    if not fits(cuda, 2 * nbytes):
        rows.append(Row(case, desc, KERNEL, name, S * n, nbytes, math.nan, "", None,
                        f"skipped: {2 * nbytes / 2 ** 30:.1f} GiB do not fit in GPU memory"))
        return
    out = cuda.device_array((S, n), dtype)
    launch, (grid, block) = kernel_launcher(cuda, schedules, n, out)
    sec = event_median(cuda, launch, repeats)
    err = check(out)
    rows.append(Row(case, desc, KERNEL, name, S * n, nbytes, sec, "cuda events", err,
                    f"grid {grid}, block {block}"))
    if S == 1:
        call = lambda: lrcore.evaluate(schedules[0], n, backend="cuda", dtype=dtype, out=out[0])  # noqa: E731
    else:
        call = lambda: lrcore.evaluate_many(schedules, n, backend="cuda", dtype=dtype, out=out)  # noqa: E731
    sec = wall_median(call, repeats, cuda.synchronize)
    rows.append(Row(case, desc, EVALUATE, name, S * n, nbytes, sec, "wall clock + synchronize", check(out)))
    src = cuda.device_array((S, n), dtype)
    sec = event_median(cuda, lambda: out.copy_to_device(src), repeats)
    rows.append(Row(case, desc, COPY, name, S * n, nbytes, sec, "cuda events", None,
                    f"numba DeviceNDArray.copy_to_device (device to device), {nbytes / 2 ** 30:.2f} GiB"))
    del out, src
    free_device_memory(cuda)


def run_single(cuda, torch, rows, n, dtype, repeats, cpu_repeats, log) -> None:
    sched, w = warmup_cosine(n)
    desc = f"warmup(1%)+cosine, {n:.0e} steps"
    name = np.dtype(dtype).name
    sample = samples(n)
    exact, ref = exact_or_reference(sched, sample, n)
    desc += f"; errors vs {ref}"
    check = lambda d: max_rel(gather(cuda, torch, d[0], None, sample), exact)  # noqa: E731
    log(f"single {name}: lrcore cuda and copy")
    run_lrcore_gpu(cuda, torch, rows, "single", desc, [sched], n, dtype, repeats, check)
    nbytes = n * np.dtype(dtype).itemsize
    if torch is not None:
        log(f"single {name}: torch native")
        tdtype = getattr(torch, name)
        if fits(cuda, 6 * nbytes):
            sec = torch_event_median(torch, lambda: torch_warmup_cosine(torch, n, tdtype), repeats)
            v = torch_warmup_cosine(torch, n, tdtype)
            err = max_rel(v[torch.as_tensor(sample, device="cuda")].double().cpu().numpy(), exact)
            del v
            torch.cuda.empty_cache()
            rows.append(Row("single", desc, TORCH, name, n, nbytes, sec, "cuda events (torch)", err,
                            f"torch {torch.__version__}, arange in {name}"))
        else:
            rows.append(Row("single", desc, TORCH, name, n, nbytes, math.nan, "", None,
                            "skipped: temporaries do not fit in GPU memory"))
    else:
        rows.append(Row("single", desc, TORCH, name, n, nbytes, math.nan, "", None, "skipped: torch has no CUDA here"))
    if cpu_repeats:
        log(f"single {name}: lrcore numba (CPU)")
        host = np.empty(n, dtype)
        sec = wall_median(lambda: lrcore.evaluate(sched, n, backend="numba", dtype=dtype, out=host), cpu_repeats)
        rows.append(Row("single", desc, CPU, name, n, nbytes, sec, "wall clock", max_rel(host[sample], exact)))
        del host


def run_many(cuda, torch, rows, many, many_steps, dtype, repeats, cpu_repeats, log) -> None:
    schedules = mixed_schedules(many, many_steps)
    desc = f"evaluate_many: {many:.0e} mixed schedules x {many_steps:.0e} steps"
    name = np.dtype(dtype).name
    sub_rows = np.arange(0, many, max(1, many // 150))
    cols = samples(many_steps, k=300)
    want = lrcore.evaluate_many([schedules[r] for r in sub_rows], cols, backend="numpy")
    desc += f"; errors vs lrcore numpy on {sub_rows.size} x {cols.size}"
    check = lambda d: max_rel(gather(cuda, torch, d, sub_rows, cols), want)  # noqa: E731
    log(f"many {name}: lrcore cuda and copy")
    run_lrcore_gpu(cuda, torch, rows, "many", desc, schedules, many_steps, dtype, repeats, check)
    if cpu_repeats:
        log(f"many {name}: lrcore numba (CPU)")
        host = np.empty((many, many_steps), dtype)
        sec = wall_median(lambda: lrcore.evaluate_many(schedules, many_steps, backend="numba", dtype=dtype, out=host),
                          cpu_repeats)
        err = max_rel(host[sub_rows][:, cols].astype(np.float64), want)
        rows.append(Row("many", desc, CPU, name, many * many_steps, host.nbytes, sec, "wall clock", err))
        del host


def run_auto(cuda, rows, n, repeats, cpu_repeats, log) -> None:
    """backend='auto' on a GPU machine from AUTO_CUDA_MIN values: GPU then copy back, vs the CPU kernel."""
    from lrcore.kernels import cuda as K
    sched, _ = warmup_cosine(n)
    desc = f"warmup(1%)+cosine, {n:.2e} steps (AUTO_CUDA_MIN = {K.AUTO_CUDA_MIN:.2e}), host output"
    log("auto: cuda -> host vs CPU")
    host = np.empty((1, n))
    sec = wall_median(lambda: K.evaluate_many_cuda([sched], None, 0, n, np.float64, host, to_host=True), repeats)
    rows.append(Row("auto", desc, TO_HOST, "float64", n, host.nbytes, sec, "wall clock", None,
                    "into a reused (pageable) host array"))
    sec = wall_median(lambda: K.evaluate_many_cuda([sched], None, 0, n, np.float64, to_host=True), repeats)
    rows.append(Row("auto", desc, TO_HOST + ", new array", "float64", n, host.nbytes, sec, "wall clock"))
    if cpu_repeats:
        sec = wall_median(lambda: lrcore.evaluate_many([sched], n, backend="numba", out=host), max(cpu_repeats, 3))
        rows.append(Row("auto", desc, CPU, "float64", n, host.nbytes, sec, "wall clock"))
        sec = wall_median(lambda: lrcore.evaluate_many([sched], n, backend="numba"), max(cpu_repeats, 3))
        rows.append(Row("auto", desc, CPU_NEW, "float64", n, host.nbytes, sec, "wall clock"))


# --- tables ------------------------------------------------------------------------------------------------------

def _ok(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and x > 0


def table(rows: list[Row], device: str = "") -> list[dict]:
    """Rows as dicts with rates and ratios against the copy, torch native and the CPU kernel of the same
    case and dtype (None where that baseline or the row's time is missing)."""
    base: dict[tuple, float] = {}
    for r in rows:
        if r.method in (COPY, TORCH, CPU, CPU_NEW) and _ok(r.seconds):
            base[(r.case, r.dtype, r.method)] = r.seconds
    out = []
    for r in rows:
        ok = _ok(r.seconds)

        def ratio(method, only=None):
            b = base.get((r.case, r.dtype, method))
            if not ok or b is None or r.method == method or (only is not None and r.method not in only):
                return None
            return b / r.seconds
        rec = asdict(r)
        rec["median_seconds"] = rec.pop("seconds")
        rec.update(values_per_second=r.values / r.seconds if ok else None,
                   write_GBps=r.bytes_written / r.seconds / 1e9 if ok else None,
                   fraction_of_copy_write_bw=ratio(COPY, GPU_METHODS),
                   speedup_vs_torch=ratio(TORCH, (KERNEL, EVALUATE)),
                   speedup_vs_cpu_numba=(ratio(CPU, GPU_METHODS + (TO_HOST,))
                                         or ratio(CPU_NEW, (TO_HOST + ", new array",))),
                   device=device)
        out.append(rec)
    return out


def summary(records: list[dict]) -> list[str]:
    lines = []
    case, dtype, method, goal = TARGET
    for rec in records:
        if (rec["case"], rec["dtype"], rec["method"]) == (case, dtype, method):
            f = rec["fraction_of_copy_write_bw"]
            verdict = "n/a" if f is None else ("MET" if f >= goal else "NOT MET")
            lines.append(f"target {case} {dtype} {method}: fraction of copy write bandwidth "
                         f"{'n/a' if f is None else f'{f:.2f}'} (>= {goal}): {verdict}")
    for rec in records:
        if rec["case"] == "auto" and rec["method"] == TO_HOST + ", new array" and rec["speedup_vs_cpu_numba"]:
            s = rec["speedup_vs_cpu_numba"]
            lines.append(f"auto threshold: GPU + copy back is {s:.2f}x the CPU kernel at AUTO_CUDA_MIN values "
                         f"({'worth it' if s > 1 else 'not worth it: raise AUTO_CUDA_MIN'})")
    return lines


def format_table(records: list[dict]) -> str:
    head = (f"{'case':7} {'dtype':8} {'method':40} {'ms':>10} {'GB/s':>8} {'x copy':>7} {'x torch':>8} {'x cpu':>8} "
            f"{'max rel err':>11}")
    lines = [head, "-" * len(head)]
    fmt = lambda x, f: "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)  # noqa: E731
    for r in records:
        lines.append(f"{r['case']:7} {r['dtype']:8} {r['method'][:40]:40} "
                     f"{fmt(r['median_seconds'] * 1e3, '10.3f'):>10} "
                     f"{fmt(r['write_GBps'], '8.1f'):>8} {fmt(r['fraction_of_copy_write_bw'], '7.2f'):>7} "
                     f"{fmt(r['speedup_vs_torch'], '8.2f'):>8} {fmt(r['speedup_vs_cpu_numba'], '8.1f'):>8} "
                     f"{fmt(r['max_rel_err'], '11.1e'):>11}" + (f"  {r['note']}" if r["note"] else ""))
    return "\n".join(lines)


def write(rows: list[Row], out_dir: Path, meta: dict) -> Path:
    """out_dir/evaluate_gpu.csv and .json (rows, machine with the GPU named, summary)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = table(rows, meta.get("gpu", ""))
    path = out_dir / "evaluate_gpu.csv"
    write_csv(path, records, list(records[0]) if records else ["case"])
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()} for rec in records]
    write_text(out_dir / "evaluate_gpu.json",
               json.dumps({"machine": meta, "summary": summary(records), "rows": clean}, indent=2))
    return path


# --- main --------------------------------------------------------------------------------------------------------

def _count(text: str) -> int:
    v = float(text)
    if v < 1 or not v.is_integer():
        raise argparse.ArgumentTypeError(f"expected a positive integer such as 1e9, got {text!r}")
    return int(v)


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(prog="python -m bench.speed.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=_count, default=10 ** 9, help="steps of the single-schedule case (1e9)")
    p.add_argument("--many", type=_count, default=10 ** 4, help="schedules of the many case (1e4)")
    p.add_argument("--many-steps", type=_count, default=10 ** 5, help="steps per schedule there (1e5)")
    p.add_argument("--dtypes", default="float32,float64", help="comma-separated (float32,float64)")
    p.add_argument("--repeats", type=int, default=10, help="timed GPU runs per method (median)")
    p.add_argument("--cpu-repeats", type=int, default=3, help="timed CPU runs (0: skip the CPU kernel)")
    p.add_argument("--no-auto", action="store_true", help="skip the auto-threshold case")
    p.add_argument("--out-dir", type=Path, default=None,
                   help=f"where evaluate_gpu.csv/.json go (default: speed/ under {DEFAULT_HELP})")
    args = p.parse_args(argv)
    if args.n < 200 or args.many_steps < 200:
        p.error("--n and --many-steps must be at least 200")
    dtypes = [np.dtype(d.strip()) for d in args.dtypes.split(",") if d.strip()]
    if any(d not in (np.float32, np.float64) for d in dtypes):
        p.error(f"--dtypes must name float32 and/or float64, got {args.dtypes!r}")

    cuda = require_gpu()
    torch = torch_cuda()
    meta = {**machine(), **device_info(cuda), "torch_cuda": bool(torch),
            "args": {k: str(v) for k, v in vars(args).items()}}
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"device: {meta['gpu']} (cc {meta['compute_capability']}, {meta['multiprocessors']} SMs, "
        f"{meta['gpu_memory_gib']} GiB); torch CUDA: {bool(torch)}")
    rows: list[Row] = []
    for dt in dtypes:
        run_single(cuda, torch, rows, args.n, dt, args.repeats, args.cpu_repeats, log)
        free_device_memory(cuda)
    for dt in dtypes:
        run_many(cuda, torch, rows, args.many, args.many_steps, dt, args.repeats, args.cpu_repeats, log)
        free_device_memory(cuda)
    if not args.no_auto:
        from lrcore.kernels.cuda import AUTO_CUDA_MIN
        run_auto(cuda, rows, AUTO_CUDA_MIN, args.repeats, args.cpu_repeats, log)
    path = write(rows, args.out_dir or results_root() / "speed", meta)
    records = table(rows, meta["gpu"])
    print(f"{meta['gpu']}\n{format_table(records)}\n" + "\n".join(summary(records)) + f"\nwritten: {path}")
    return rows


if __name__ == "__main__":
    main()
