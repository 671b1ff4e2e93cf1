"""Training throughput: the batched trainer against the sequential one, and against a torch matmul.

``measure(matrix, data, ...)`` trains the matrix batched, a spread of its configurations one at a time
(and with Keras), in one process (``lrbench train-speed``); ``write`` puts ``trainer_<device>.csv`` under
the results root's ``speed/``. What is timed and how: docs/BENCH.md, "bench/speed/trainer.py".
"""
from __future__ import annotations

from pathlib import Path

from ..results import write_csv

__all__ = ["measure", "write", "small_cpu", "COLUMNS", "CUDA_SEQUENTIAL_NOTE"]

#: Printed (and written next to the table) wherever "x sequential" is reported for CUDA.
CUDA_SEQUENTIAL_NOTE = ("note: on CUDA the sequential baseline calls loss.item() every step (a host sync per "
                        "step, as a plain training loop logs its loss), while the batched trainer syncs once per "
                        "epoch: part of the 'x sequential' ratio there is that sync, not batching.")

COLUMNS = ["trainer", "device", "device_name", "n_models", "epochs", "model_epochs_per_s", "samples_per_s",
           "flop_per_s", "matmul_flop_per_s", "speedup_vs_sequential", "flop_fraction_of_matmul", "torch_threads",
           "matrix", "measured_utc"]


def measure(matrix, data, *, device="cpu", epochs: int = 1, sequential_models: int = 12, chunk_size: int | None = None,
            keras_models: int = 0, log=print, optim_impl: str = "auto") -> list[dict]:
    """Rows for results/speed/trainer_<device>.csv (see the module docstring)."""
    import dataclasses

    import torch

    from ..machine import environment, matmul_flop_rate
    from ..machine import utc as _utc
    from ..matrix.runner import CPU_CHUNK, plan_chunks
    from ..train.batched import train_chunk
    from ..train.sequential import train_sequential

    dev = torch.device(device)
    configs = matrix.configs()
    kw = dict(epochs=epochs, batch_size=matrix.batch_size, device=dev, widths=matrix.widths,
              activation=matrix.activation, dropout=matrix.dropout, plateau_kwargs=matrix.plateau)
    stride = max(1, len(configs) // max(1, sequential_models))
    seq_cfgs = configs[::stride][:sequential_models]
    half = len(seq_cfgs) // 2
    # untimed warm-up of both trainers on a slice of the data (thread pools, allocator, kernel caches):
    # the first model trained in a process runs up to 3x slower, which would flatter the batched side
    small = small_cpu(data, matrix.batch_size)
    log("warm-up (untimed)")
    train_sequential(seq_cfgs[:2], small, **kw)
    train_chunk(configs[:chunk_size or CPU_CHUNK], small, optim_impl=optim_impl, **kw)
    mm = [matmul_flop_rate(dev)]
    seq_wall, seq_flops, n_seq = 0.0, 0, 0
    log(f"sequential: {half} of {len(seq_cfgs)} models")
    if half:
        r = train_sequential(seq_cfgs[:half], data, **kw)
        seq_wall, seq_flops, n_seq = r.throughput["wall_s"], r.throughput["flops"], half
    size = chunk_size or (len(configs) if dev.type == "cuda" else CPU_CHUNK)
    b_wall = b_flops = 0
    for k, idx in enumerate(plan_chunks(len(configs), size)):
        log(f"batched: chunk {k + 1} ({len(idx)} models)")
        r = train_chunk([configs[i] for i in idx], data, optim_impl=optim_impl, **kw)
        b_wall += r.throughput["wall_s"]
        b_flops += r.throughput["flops"]
    log(f"sequential: {len(seq_cfgs) - half} more models")
    r = train_sequential(seq_cfgs[half:], data, **kw)
    seq_wall += r.throughput["wall_s"]
    seq_flops += r.throughput["flops"]
    n_seq += len(seq_cfgs) - half
    mm.append(matmul_flop_rate(dev))
    matmul = max(mm)
    env = environment(dev)
    n_train = len(data.x_train)
    measured = [("batched", env["device"], len(configs), b_wall, b_flops, matmul),
                ("sequential", env["device"], n_seq, seq_wall, seq_flops, matmul)]
    if keras_models:
        from ..train.keras import matmul_flop_rate_tf, train_keras
        k_cfgs = seq_cfgs[:keras_models]
        log(f"keras: {len(k_cfgs)} models (model.fit, one at a time)")
        cpu = dataclasses.replace(data, **{f: getattr(data, f).cpu() for f in
                                          ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")})
        kw_keras = {k: v for k, v in kw.items() if k != "device"}
        train_keras(k_cfgs[:1], small_cpu(cpu, matrix.batch_size), **kw_keras)  # untimed warm-up (tracing)
        r = train_keras(k_cfgs, cpu, **kw_keras)
        measured.append(("keras", r.throughput["device"], len(k_cfgs), r.throughput["wall_s"], r.throughput["flops"],
                         matmul_flop_rate_tf()))
    rows = []
    for trainer, device_used, n, wall, flops, mm_rate in measured:
        rows.append(dict(trainer=trainer, device=device_used, device_name=env["device_name"], n_models=n,
                         epochs=epochs, model_epochs_per_s=n * epochs / wall, samples_per_s=n * epochs * n_train / wall,
                         flop_per_s=flops / wall, matmul_flop_per_s=mm_rate, torch_threads=env["n_threads"],
                         matrix=matrix.name, measured_utc=_utc()))
    seq_rate = rows[1]["model_epochs_per_s"]
    for r in rows:
        r["speedup_vs_sequential"] = r["model_epochs_per_s"] / seq_rate
        r["flop_fraction_of_matmul"] = r["flop_per_s"] / r["matmul_flop_per_s"]
    return rows


def small_cpu(data, batch_size: int):
    """A slice of the data (20 batches, 1,000 validation and test images) for untimed warm-ups."""
    import dataclasses
    n = 20 * batch_size
    return dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n], x_val=data.x_val[:1000],
                               y_val=data.y_val[:1000], x_test=data.x_test[:1000], y_test=data.y_test[:1000])


def write(rows: list[dict], out_dir: Path) -> Path:
    """results/speed/trainer_<device type>.csv, written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = "cuda" if rows[0]["device"].startswith("cuda") else "cpu"
    return write_csv(out_dir / f"trainer_{kind}.csv", rows, COLUMNS, lineterminator="\n")

