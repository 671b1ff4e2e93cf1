"""Each optimizer's cost per training step, measured side by side on a run's chunk shape: ``step_cost.csv``.

``measure(run_dir)`` builds, for every optimizer of the run, a stack of M models (M = the run's chunk size), all
with that optimizer, and times :func:`bench.train.model.train_step` round-robin across the optimizers,
interleaved, median per optimizer; ``write`` puts the rows in the run folder. ``lrbench run`` does it after
training, ``lrbench report RUN --measure-step-cost`` again. Rules: docs/BENCH.md, "bench/speed/step_cost.py".
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from ..results import write_csv

__all__ = ["measure", "write", "chunk_shape", "COLUMNS", "FILE", "StepCostError"]

FILE = "step_cost.csv"
COLUMNS = ["optimizer", "kind", "n_models", "seed_groups", "batch_size", "widths", "model_step_s", "step_s",
           "step_s_min", "step_s_max", "rounds", "steps_per_round", "finite_models", "impl", "precision", "device",
           "device_name", "n_threads", "torch", "run_device_name", "measured_utc"]


class StepCostError(ValueError):
    """A run whose step cost this module cannot measure (another trainer, a device not here), with the reason."""


def chunk_shape(meta: dict) -> tuple[int, int]:
    """(M, seed groups) of the run's evaluation chunks: M = its largest chunk of the last stage (all chunks of a
    run without stages); the seed groups = the evaluation seeds (a chunk's models share a batch per seed)."""
    chunks = meta.get("chunks") or []
    stages = meta.get("stages") or []
    last = (stages[-1].get("chunks") if stages else None) or range(len(chunks))
    sizes = [len(chunks[k]) for k in last if k < len(chunks)]
    if not sizes:
        raise StepCostError(f"run {meta.get('run_id')}: meta.json has no chunks (an unfinished or older run)")
    return max(sizes), max(1, min(len(meta.get("seeds") or [0]), max(sizes)))


def _run_spec(meta: dict, device: str | None):
    """(TrainSpec, optimizers, device) of the run in ``meta``: its matrix's, as it trained (precision, optimizer
    implementation: bf16 steps cost less); ``device``: default the run's."""
    import torch

    from ..matrix.spec import MatrixError, from_dict
    from ..train.config import OPTIMIZERS
    from ..train.registry import DeviceError, resolve_device
    if meta.get("trainer", "batched") != "batched":
        raise StepCostError(f"run {meta.get('run_id')}: trainer {meta.get('trainer')!r}; the step cost is measured "
                            "for the batched trainer's stacks (the report gives epochs only for this run)")
    mx = meta.get("matrix") or {}
    opts = [o for o in (meta.get("peak_lr") or mx.get("peak_lr") or {}) if o in OPTIMIZERS]
    if not opts:
        raise StepCostError(f"run {meta.get('run_id')}: no optimizer of the batched trainer in meta.json")
    try:
        matrix = from_dict(mx, source=mx.get("source", ""))
    except MatrixError as e:
        raise StepCostError(f"run {meta.get('run_id')}: {e}") from None
    spec = matrix.train_spec(precision=meta.get("precision") or matrix.precision,
                             optim_impl=meta.get("optim_impl") or "auto")
    try:
        dev = torch.device(resolve_device(device or meta.get("device") or "cpu"))
    except DeviceError:
        raise StepCostError(f"run {meta.get('run_id')} trained on {device or meta.get('device')}; this machine has "
                            "no CUDA GPU (measure on a machine like the run's)") from None
    return spec, opts, dev


def _stacks(opts: list[str], spec, M: int, S: int, dev) -> dict:
    """Per optimizer: a stack of ``M`` models in ``S`` seed groups, all with that optimizer, at a small lr."""
    import numpy as np
    import torch

    from ..train.config import OPTIMIZERS
    from ..train.model import BatchedMLP
    from ..train.optim import OPTIMIZER_DEFAULTS, BatchedOptimizer
    groups = [M // S + (g < M % S) for g in range(S)]  # models per seed, as in an evaluation chunk
    seeds = [g for g, n in enumerate(groups) for _ in range(n)]
    stacks = {}
    for o in opts:
        kind, extra = OPTIMIZERS[o]
        model = BatchedMLP(seeds, spec.widths, spec.activation, spec.dropout, device=dev, precision=spec.precision)
        hyper = {n: [extra.get(n, OPTIMIZER_DEFAULTS[kind].get(n, 0.0))] * M for n in extra}
        opt = BatchedOptimizer(model.params, kind, impl=spec.optim_impl, lr=[1e-4] * M, **hyper)  # stays finite
        lr = (torch.full((M,), 1e-4, dtype=torch.float64, device=dev) if opt.impl == "torch" else
              np.full(M, 1e-4, dtype=np.float32))  # the trainer's column types: device float64 / host float32
        opt.train()
        stacks[o] = (model, opt, lr, kind)
    return stacks, groups


def measure(run_dir: Path, *, device: str | None = None, rounds: int = 5, steps: int = 5, warmup: int = 2,
            log=None) -> list[dict]:
    """Rows of step_cost.csv for the run in ``run_dir`` (see the module docstring); ``device``: default the run's."""
    import torch

    from ..machine import environment
    from ..machine import utc as _utc
    from ..train.model import train_step

    meta = json.loads((Path(run_dir) / "meta.json").read_text())
    spec, opts, dev = _run_spec(meta, device)
    M, S = chunk_shape(meta)
    B, widths = int(spec.batch_size), spec.widths
    # synthetic standardised inputs: a dense MLP's step costs the same on any values; no data set needed
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4 * B * S, widths[0], generator=gen).to(dev)
    y = torch.randint(0, widths[-1], (4 * B * S,), generator=gen).to(dev)
    batches = [torch.randperm(len(x), generator=gen)[:B * S].reshape(S, B).to(dev) for _ in range(4)]
    stacks, groups = _stacks(opts, spec, M, S, dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def run_steps(o: str, n: int, k0: int):
        model, opt, lr, _ = stacks[o]
        losses = None
        for k in range(n):
            idx = batches[(k0 + k) % len(batches)]
            losses, _ = train_step(model, opt, x[idx], y[idx], lr=lr, groups=groups)
        return losses

    for o in opts:  # untimed: allocations, thread pools, kernel caches
        run_steps(o, warmup, 0)
    times, last = {o: [] for o in opts}, {}
    for r in range(rounds):
        order = opts[r % len(opts):] + opts[:r % len(opts)]  # rotated: no optimizer always first after another
        for o in order:
            sync()
            t0 = time.perf_counter()
            last[o] = run_steps(o, steps, r * steps)
            sync()
            times[o].append((time.perf_counter() - t0) / steps)
        if log:
            log(f"step cost: round {r + 1}/{rounds}")
    env = environment(dev)
    rows = []
    for o in opts:
        med = statistics.median(times[o])
        rows.append(dict(optimizer=o, kind=stacks[o][3], n_models=M, seed_groups=S, batch_size=B,
                         widths="x".join(map(str, widths)), model_step_s=med / M, step_s=med,
                         step_s_min=min(times[o]), step_s_max=max(times[o]), rounds=rounds, steps_per_round=steps,
                         finite_models=int(torch.isfinite(last[o]).sum()), impl=stacks[o][1].impl,
                         precision=spec.precision, device=env["device"],
                         device_name=env["device_name"], n_threads=env["n_threads"],
                         torch=env["versions"].get("torch", ""), run_device_name=meta.get("device_name", ""),
                         measured_utc=_utc()))
    return rows


def write(run_dir: Path, rows: list[dict]) -> Path:
    """``step_cost.csv`` in the run folder, written atomically."""
    return write_csv(Path(run_dir) / FILE, rows, COLUMNS, lineterminator="\n")
