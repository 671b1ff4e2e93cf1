"""A training step against its own limit: the sum of its matmuls timed alone and its optimizer's bytes at the
machine's copy bandwidth (``lrbench train-speed``, and ``meta.json``'s ``throughput.roofline`` after a run).

    roofline = sum over the step's matmuls of (its time alone: exact sizes, strides and dtype; best of n)
             + optimizer bytes / copy bandwidth

* The matmuls are recorded from one real step of the chunk (a ``TorchDispatchMode`` keeps every aten ``mm``,
  ``bmm``, ``addmm`` and ``baddbmm`` call with its arguments' sizes, strides and dtypes) and replayed one by
  one on fresh tensors of the same layout: whatever layout the trainer uses (bench.train.mixed's in bf16) is
  what is timed.
* Optimizer bytes: what one update must read and write at least: parameters (read + write), gradients
  (read, in their dtype: 2 bytes in bf16), every state tensor (read + write), the bfloat16 copy of the
  parameters (write).
* Copy bandwidth: a 256 MB tensor copy, (bytes read + bytes written) / time, best of n.
* The optimizer's achieved bandwidth: its bytes over its measured pass in real steps (:func:`optimizer_time`),
  and that as a share of the copy bandwidth (1.0: the update runs at the speed of a copy).

:func:`profile` says where a step's time goes: each aten call of a real step timed by category, the
optimizer's pass (the numba kernels run outside aten) and the rest (Python and dispatch).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Step", "make_step", "record_matmuls", "time_matmuls", "optimizer_bytes", "copy_bandwidth",
           "optimizer_time", "measure", "profile", "MATMULS"]

MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")
#: aten name -> profile category (anything else: "other aten ops")
CATEGORIES = {**{n: "matmuls" for n in MATMULS},
              **{n: "activations and their backward" for n in (
                  "aten::relu_", "aten::relu", "aten::threshold_backward", "aten::gelu", "aten::gelu_backward",
                  "aten::tanh", "aten::tanh_backward")},
              **{n: "loss (log-softmax, gradient of the logits)" for n in (
                  "aten::_log_softmax", "aten::exp_", "aten::gather", "aten::scatter_add_", "aten::neg",
                  "aten::full", "aten::div_", "aten::squeeze")},
              **{n: "bias gradients and loss sums" for n in ("aten::sum", "aten::mean", "aten::add_")},
              **{n: "casts and copies" for n in ("aten::_to_copy", "aten::copy_")},
              **{n: "batch gather" for n in ("aten::index", "aten::index_select")}}


def _name(func) -> str:
    """An aten op's name without its overload (``aten::baddbmm.out`` -> ``aten::baddbmm``)."""
    return func.name().split(".")[0]


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class Step:
    """One training step of a chunk, as ``train_chunk`` takes it: a batch per seed gathered from the training
    set, ``train_step`` with the step's learning rates and the active mask."""
    model: object
    opt: object
    groups: list
    x: torch.Tensor
    y: torch.Tensor
    perms: torch.Tensor
    batch_size: int
    lr: object
    device: torch.device
    t: int = 0

    def __call__(self):
        from ..train.model import train_step
        n = self.perms.shape[1] // self.batch_size
        k = self.t % n
        idx = self.perms[:, k * self.batch_size:(k + 1) * self.batch_size]
        losses, _ = train_step(self.model, self.opt, self.x[idx], self.y[idx], lr=self.lr, groups=self.groups)
        self.t += 1
        return losses


def make_step(configs, spec, *, device="cpu", n_batches: int = 8) -> Step:
    """A :class:`Step` of ``configs`` (any order: sorted as the trainer sorts them) trained as ``spec`` (a
    :class:`bench.train.config.TrainSpec`) says, on random images (speed does not depend on the pixels),
    ``n_batches`` different batches per seed."""
    from ..train.batched import batch_permutation, make_stack, stack_order
    dev = torch.device(device)
    cfgs = [configs[i] for i in stack_order(configs)]
    model, opt, groups = make_stack(cfgs, spec, device=dev)
    widths, batch_size, precision = spec.widths, spec.batch_size, spec.precision
    n = n_batches * batch_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, widths[0], generator=g).to(dev, torch.bfloat16 if precision == "bf16" else torch.float32)
    y = torch.randint(0, widths[-1], (n,), generator=g).to(dev)
    seeds = sorted({c.seed for c in cfgs})
    perms = torch.stack([batch_permutation(s, 0, n) for s in seeds]).to(dev)
    lr = torch.tensor([c.peak_lr for c in cfgs], dtype=torch.float64, device=dev) if opt.impl == "torch" \
        else [c.peak_lr for c in cfgs]
    return Step(model, opt, groups, x, y, perms, batch_size, lr, dev)


# ------------------------------------------------------------------------------------------- matmuls

@dataclasses.dataclass
class Call:
    func: object
    args: tuple
    kwargs: dict

    @property
    def name(self) -> str:
        return _name(self.func)


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls: list[Call] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _name(func) in MATMULS:
            spec = lambda a: (a.size(), a.stride(), a.dtype, a.device) if isinstance(a, torch.Tensor) else a
            self.calls.append(Call(func, tuple(spec(a) for a in args), {k: spec(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def record_matmuls(step: Step) -> list[Call]:
    """The matmul calls of one step (``step`` is taken once more)."""
    rec = _Recorder()
    with rec:
        step()
    return rec.calls


def _fresh(spec):
    """A tensor of the recorded size, strides (broadcast ones included), dtype and device, random values."""
    if not (isinstance(spec, tuple) and len(spec) == 4 and isinstance(spec[0], torch.Size)):
        return spec
    size, stride, dtype, device = spec
    n = 1 + sum((s - 1) * st for s, st in zip(size, stride) if s > 0)
    base = torch.empty(n, dtype=torch.float32, device=device).normal_(0, 0.1).to(dtype)
    return torch.as_strided(base, size, stride)


def _flops(call: Call) -> int:
    """2 * m * n * k (* batch) of a recorded matmul."""
    shapes = [a[0] for a in call.args if isinstance(a, tuple) and len(a) == 4 and isinstance(a[0], torch.Size)]
    a, b = (shapes[-2], shapes[-1])  # the two factors are the last two tensor arguments
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def time_matmuls(calls: list[Call], device, repeats: int = 10) -> list[dict]:
    """Each call alone on fresh tensors of its layout, best of ``repeats`` after a warm-up: one row per call
    (op, shapes, dtype, seconds, flops)."""
    dev = torch.device(device)
    rows = []
    for c in calls:
        args = tuple(_fresh(a) for a in c.args)
        kwargs = {k: _fresh(v) for k, v in c.kwargs.items()}
        c.func(*args, **kwargs)
        best = math.inf
        for _ in range(repeats):
            _sync(dev)
            t0 = time.perf_counter()
            c.func(*args, **kwargs)
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
        shapes = " x ".join("x".join(map(str, a[0])) for a in c.args
                            if isinstance(a, tuple) and len(a) == 4 and isinstance(a[0], torch.Size))
        dtype = next(a[2] for a in c.args if isinstance(a, tuple) and len(a) == 4)
        rows.append(dict(op=c.name.replace("aten::", ""), shapes=shapes, dtype=str(dtype).replace("torch.", ""),
                         seconds=best, flops=_flops(c)))
    return rows


# ----------------------------------------------------------------------------------------- optimizer

def _states(kind: str, hyper: dict, m: int) -> int:
    """How many state tensors the update of model ``m`` (of ``kind``) reads and writes (torch.optim's)."""
    if kind == "sgd":
        return int(hyper["momentum"][m] != 0)
    if kind == "rmsprop":
        return 1 + int(bool(hyper["centered"][m])) + int(hyper["momentum"][m] > 0)
    return {"adam": 2, "adamw": 2, "sgd_schedulefree": 1, "adamw_schedulefree": 2}[kind]


def optimizer_bytes(opt, grads) -> int:
    """Bytes one update of every model must move at least, per model: its parameters read and written, its
    gradients read (in their dtype), each state tensor its optimizer keeps read and written (:func:`_states`;
    in the parameters' dtype), its bfloat16 copy written (where there is one)."""
    total = 0
    for p, g in zip(opt.params, grads):
        n = p[0].numel()
        low = 2 if getattr(p, "_lrbench_low", None) is not None else 0
        for m, kind in enumerate(opt.kinds):
            states = _states(kind, opt._host, m)
            total += n * (2 * p.element_size() + g.element_size() + low + 2 * states * p.element_size())
    return total


def copy_bandwidth(device, nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Bytes per second of a tensor copy (read + write), best of ``repeats``."""
    dev = torch.device(device)
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def step_time(step: Step, steps: int = 10) -> float:
    """Median seconds of ``steps`` steps after two warm-up steps."""
    step(), step()
    times = []
    for _ in range(steps):
        _sync(step.device)
        t0 = time.perf_counter()
        step()
        _sync(step.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def optimizer_time(step: Step, steps: int = 5) -> float:
    """Median seconds of the optimizer's update (its whole ``step`` call) in ``steps`` real steps, after one
    untimed step."""
    step()
    opt, inner, spent = step.opt, step.opt.step, []

    def timed_step(*args, **kwargs):
        _sync(step.device)
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        _sync(step.device)
        spent.append(time.perf_counter() - t0)
        return out

    opt.step = timed_step
    try:
        for _ in range(steps):
            step()
    finally:
        del opt.step
    return statistics.median(spent)


def measure(step: Step, *, step_s: float | None = None, repeats: int = 10, optimizer_steps: int = 5) -> dict:
    """The roofline of ``step`` and the step's time against it (``step_s``: a step's time measured elsewhere,
    e.g. in a training run; default: :func:`step_time` here). Keys: step_s, roofline_s, step_over_roofline,
    matmul_s, matmul_flops, optimizer_bytes, copy_bandwidth, optimizer_s (the bytes at the copy bandwidth),
    optimizer_step_s (the update measured, :func:`optimizer_time`), optimizer_bandwidth (bytes / that),
    optimizer_share (of the copy bandwidth), precision, matmuls (one dict per call)."""
    calls = record_matmuls(step)
    mm = time_matmuls(calls, step.device, repeats)
    nbytes = optimizer_bytes(step.opt, step.model.grads)
    bw = copy_bandwidth(step.device)
    if step_s is None:
        step_s = step_time(step)
    matmul_s = sum(r["seconds"] for r in mm)
    roof = matmul_s + nbytes / bw
    opt_s = optimizer_time(step, optimizer_steps)
    return dict(step_s=step_s, roofline_s=roof, step_over_roofline=step_s / roof, matmul_s=matmul_s,
                matmul_flops=sum(r["flops"] for r in mm), optimizer_bytes=nbytes, copy_bandwidth=bw,
                optimizer_s=nbytes / bw, optimizer_step_s=opt_s, optimizer_bandwidth=nbytes / opt_s,
                optimizer_share=nbytes / opt_s / bw, precision=step.model.precision,
                n_models=step.model.n_models, matmuls=mm)


# ------------------------------------------------------------------------------------------- profile

class _Timer(TorchDispatchMode):
    def __init__(self, device):
        super().__init__()
        self.device = device
        self.seconds: dict[str, float] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        _sync(self.device)
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        _sync(self.device)
        name = _name(func)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        return out


def profile(step: Step, steps: int = 5) -> list[dict]:
    """Where a step's time goes: rows (part, seconds per step, share of the step), the parts summing to the
    step's median time: aten ops by :data:`CATEGORIES` outside the optimizer, the optimizer's update (its
    wall time: numba kernels or torch ops), and the rest (Python, dispatch, the profiler's own cost)."""
    step_s = step_time(step, max(steps, 5))
    opt = step.opt
    inner = opt.step
    spent = {"optimizer update": 0.0}
    timer = _Timer(step.device)

    def timed_step(*args, **kwargs):  # the optimizer's pass, its own aten ops included
        t0 = time.perf_counter()
        with _Pause(timer):
            out = inner(*args, **kwargs)
        _sync(step.device)
        spent["optimizer update"] += time.perf_counter() - t0
        return out

    opt.step = timed_step
    try:
        with timer:
            for _ in range(steps):
                step()
    finally:
        del opt.step
    parts: dict[str, float] = {}
    for name, s in timer.seconds.items():
        key = CATEGORIES.get(name, "other aten ops")
        parts[key] = parts.get(key, 0.0) + s / steps
    parts["optimizer update"] = spent["optimizer update"] / steps
    parts["Python and dispatch (the rest)"] = max(0.0, step_s - sum(parts.values()))
    order = ["matmuls", "optimizer update"]
    rows = [dict(part=k, seconds=parts[k], share=parts[k] / step_s) for k in
            order + sorted(k for k in parts if k not in order) if k in parts]
    return rows


class _Pause:
    """Leave a dispatch mode for the block (the optimizer is timed as one part, its own ops included)."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        from torch.utils._python_dispatch import _pop_mode_temporarily
        self._ctx = _pop_mode_temporarily()
        self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def main(argv=None):
    """``python -m bench.speed.roofline [--matrix quick] [--precision fp32 --precision bf16] [--rounds 5]``: the
    first chunk's step in each precision, timed interleaved (the order reversed every other round; median of
    the rounds' medians), each against its roofline, and where its time goes."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.speed.roofline", description=main.__doc__.split("\n")[0])
    ap.add_argument("--matrix", default="quick")
    ap.add_argument("--precision", action="append", choices=["fp32", "bf16"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="steps per round and precision")
    ap.add_argument("--optim-impl", default="auto", choices=["auto", "numba", "torch"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="write roofline_<device>.csv and step_profile_<device>.csv here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..machine import machine
    from ..matrix import load_matrix
    from ..matrix.runner import CPU_CHUNK, plan_chunks
    mx = load_matrix(args.matrix)
    configs = mx.configs()
    first = [configs[i] for i in plan_chunks(len(configs), len(configs) if args.device.startswith("cuda")
                                             else CPU_CHUNK)[0]]
    precisions = args.precision or ["fp32", "bf16"]
    steps = {p: make_step(first, mx.train_spec(precision=p, optim_impl=args.optim_impl), device=args.device)
             for p in precisions}
    times = {p: [] for p in precisions}
    for r in range(args.rounds):
        for p in (precisions if r % 2 == 0 else precisions[::-1]):
            times[p].append(step_time(steps[p], args.steps))
    m = machine(frameworks=False)
    print(f"matrix {mx.name}: first chunk, {len(first)} models, batch {mx.batch_size}; {m['cpu']}, "
          f"{torch.get_num_threads()} torch threads; {args.rounds} interleaved rounds of {args.steps} steps")
    step_s = {p: statistics.median(times[p]) for p in precisions}
    table, parts = [], []
    for p in precisions:
        r = measure(steps[p], step_s=step_s[p])
        table.append(r)
        spread = f"[{min(times[p]) * 1e3:.1f}, {max(times[p]) * 1e3:.1f}]"
        print(f"{p}: step {r['step_s'] * 1e3:.1f} ms {spread}, roofline {r['roofline_s'] * 1e3:.1f} ms "
              f"(matmuls alone {r['matmul_s'] * 1e3:.1f} ms = {r['matmul_flops'] / r['matmul_s'] / 1e9:.0f} GFLOP/s; "
              f"optimizer {r['optimizer_bytes'] / 1e6:.0f} MB at {r['copy_bandwidth'] / 1e9:.1f} GB/s = "
              f"{r['optimizer_s'] * 1e3:.1f} ms): step / roofline {r['step_over_roofline']:.2f}x")
        print(f"    optimizer update measured: {r['optimizer_step_s'] * 1e3:.1f} ms = "
              f"{r['optimizer_bandwidth'] / 1e9:.1f} GB/s, {r['optimizer_share']:.0%} of the copy bandwidth")
        for row in r["matmuls"]:
            print(f"    {row['op']:8s} {row['shapes']:40s} {row['dtype']:9s} {row['seconds'] * 1e3:7.2f} ms "
                  f"{row['flops'] / row['seconds'] / 1e9:7.0f} GFLOP/s")
        for row in profile(steps[p]):
            print(f"    {row['part']:45s} {row['seconds'] * 1e3:7.2f} ms {row['share']:5.0%}")
            parts.append(dict(row, precision=p))
    if "fp32" in step_s and "bf16" in step_s:
        ratios = [a / b for a, b in zip(times["fp32"], times["bf16"])]
        print(f"bf16 step speed-up over fp32: {step_s['fp32'] / step_s['bf16']:.2f}x (per round "
              f"{min(ratios):.2f}-{max(ratios):.2f}x)")
    if args.out:
        print("written:", *_write(table, parts, args.out, m["cpu"], args.device))


#: Columns of ``roofline_<device>.csv`` (``python -m bench.speed.roofline --out DIR``).
ROOFLINE_COLUMNS = ["precision", "n_models", "step_ms", "roofline_ms", "step_over_roofline", "matmul_ms",
                    "matmul_gflop_per_s", "optimizer_bytes", "copy_gb_per_s", "optimizer_at_copy_ms",
                    "optimizer_measured_ms", "optimizer_gb_per_s", "optimizer_share_of_copy", "device_name",
                    "torch_threads", "measured_utc"]


def _write(table: list[dict], parts: list[dict], out, device_name: str, device: str) -> list:
    """The roofline rows and the step profile as CSV under ``out`` (the profile in trainer_speed's columns)."""
    from pathlib import Path

    from ..machine import utc
    from ..results import write_csv
    from .columns import PROFILE_COLUMNS
    out, now = Path(out), utc()
    out.mkdir(parents=True, exist_ok=True)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    rows = [dict(precision=r["precision"], n_models=r["n_models"], step_ms=r["step_s"] * 1e3,
                 roofline_ms=r["roofline_s"] * 1e3, step_over_roofline=r["step_over_roofline"],
                 matmul_ms=r["matmul_s"] * 1e3, matmul_gflop_per_s=r["matmul_flops"] / r["matmul_s"] / 1e9,
                 optimizer_bytes=r["optimizer_bytes"], copy_gb_per_s=r["copy_bandwidth"] / 1e9,
                 optimizer_at_copy_ms=r["optimizer_s"] * 1e3, optimizer_measured_ms=r["optimizer_step_s"] * 1e3,
                 optimizer_gb_per_s=r["optimizer_bandwidth"] / 1e9, optimizer_share_of_copy=r["optimizer_share"],
                 device_name=device_name, torch_threads=torch.get_num_threads(), measured_utc=now) for r in table]
    prof = [dict(precision=p["precision"], part=p["part"], ms_per_step=p["seconds"] * 1e3, share=p["share"],
                 n_models=next(r["n_models"] for r in table if r["precision"] == p["precision"]),
                 device_name=device_name, measured_utc=now) for p in parts]
    return [write_csv(out / f"roofline_{kind}.csv", rows, ROOFLINE_COLUMNS, lineterminator="\n"),
            write_csv(out / f"step_profile_{kind}.csv", prof, PROFILE_COLUMNS, lineterminator="\n")]


if __name__ == "__main__":
    main()
