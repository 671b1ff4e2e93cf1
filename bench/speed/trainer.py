"""Training throughput: the batched trainer against the sequential one, and against a torch matmul.

``measure(matrix, data, ...)`` trains the matrix batched, a spread of its configurations one at a time
(and with Keras), in each precision asked, in one process (``lrbench train-speed``), and puts each batched
step against its roofline (:mod:`bench.speed.roofline`); ``write`` puts ``trainer_<device>.csv`` (and the
step profile, ``step_profile_<device>.csv``) under the results root's ``speed/``. What is timed and how:
docs/BENCH.md, "bench/speed/trainer.py".
"""
from __future__ import annotations

from pathlib import Path

from ..results import write_csv

__all__ = ["measure", "write", "small_cpu", "COLUMNS", "PROFILE_COLUMNS", "CUDA_SEQUENTIAL_NOTE"]

#: Printed (and written next to the table) wherever "x sequential" is reported for CUDA.
CUDA_SEQUENTIAL_NOTE = ("note: on CUDA the sequential baseline calls loss.item() every step (a host sync per "
                        "step, as a plain training loop logs its loss), while the batched trainer syncs once per "
                        "epoch: part of the 'x sequential' ratio there is that sync, not batching.")

COLUMNS = ["trainer", "device", "device_name", "n_models", "epochs", "model_epochs_per_s", "samples_per_s",
           "flop_per_s", "matmul_flop_per_s", "speedup_vs_sequential", "flop_fraction_of_matmul", "torch_threads",
           "matrix", "measured_utc", "precision", "speedup_vs_fp32", "step_ms", "roofline_ms", "step_over_roofline",
           "matmul_ms", "optimizer_ms", "optimizer_bytes", "copy_bandwidth", "optimizer_measured_ms",
           "optimizer_gb_per_s", "optimizer_share_of_copy"]
#: Columns of ``step_profile_<device>.csv``: where a batched step's time goes (:func:`bench.speed.roofline.profile`).
PROFILE_COLUMNS = ["precision", "part", "ms_per_step", "share", "n_models", "device_name", "measured_utc"]


def measure(matrix, data, *, device="cpu", epochs: int = 1, sequential_models: int = 12, chunk_size: int | None = None,
            keras_models: int = 0, log=print, optim_impl: str = "auto", precisions=None, rounds: int = 1,
            roofline: bool = True, profile: list | None = None) -> list[dict]:
    """Rows for results/speed/trainer_<device>.csv (see the module docstring), one batched and one sequential
    row per precision of ``precisions`` (default: the matrix's), a Keras row (float32) when asked.

    Precisions are measured side by side: the batched chunks of every precision train in turn, ``rounds``
    times, the order reversed every other round (a drift in the machine's speed hits each alike); with
    ``roofline`` each batched row gets its step's time against :mod:`bench.speed.roofline`'s limit (the first
    chunk's step, from the timed training), and where that step's time goes is appended to ``profile`` (a
    list, when given: rows of :data:`PROFILE_COLUMNS` for :func:`write`).
    """
    import dataclasses

    import torch

    from ..machine import environment, matmul_flop_rate
    from ..machine import utc as _utc
    from ..matrix.runner import CPU_CHUNK, plan_chunks
    from ..train.batched import train_chunk
    from ..train.sequential import train_sequential

    dev = torch.device(device)
    precisions = list(dict.fromkeys(precisions or [matrix.precision]))
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
    for prec in precisions:
        train_sequential(seq_cfgs[:2], small, precision=prec, **kw)
        train_chunk(configs[:chunk_size or CPU_CHUNK], small, optim_impl=optim_impl, precision=prec, **kw)
    mm = [matmul_flop_rate(dev)]
    seq = {p: dict(wall=0.0, flops=0, n=0) for p in precisions}

    def sequential(part, prec):
        r = train_sequential(part, data, precision=prec, **kw)
        seq[prec]["wall"] += r.throughput["wall_s"]
        seq[prec]["flops"] += r.throughput["flops"]
        seq[prec]["n"] += len(part)

    for prec in precisions:
        if half:
            log(f"sequential ({prec}): {half} of {len(seq_cfgs)} models")
            sequential(seq_cfgs[:half], prec)
    size = chunk_size or (len(configs) if dev.type == "cuda" else CPU_CHUNK)
    chunks = plan_chunks(len(configs), size)
    bat = {p: dict(wall=0.0, flops=0, me=0, train0=0.0, steps0=0) for p in precisions}
    for rnd in range(max(1, int(rounds))):
        for k, idx in enumerate(chunks):
            order = precisions if (rnd + k) % 2 == 0 else precisions[::-1]
            for prec in order:
                log(f"batched ({prec}): chunk {k + 1} ({len(idx)} models)"
                    + (f", round {rnd + 1}" if rounds > 1 else ""))
                r = train_chunk([configs[i] for i in idx], data, optim_impl=optim_impl, precision=prec, **kw)
                b = bat[prec]
                b["wall"] += r.throughput["wall_s"]
                b["flops"] += r.throughput["flops"]
                b["me"] += len(idx) * epochs
                if k == 0:
                    b["train0"] += r.throughput["train_s"]
                    b["steps0"] += r.throughput["steps"]
    for prec in precisions:
        log(f"sequential ({prec}): {len(seq_cfgs) - half} more models")
        sequential(seq_cfgs[half:], prec)
    mm.append(matmul_flop_rate(dev))
    matmul = max(mm)
    env = environment(dev)
    n_train = len(data.x_train)
    measured = []
    for prec in precisions:
        b, q = bat[prec], seq[prec]
        measured.append(("batched", prec, env["device"], b["me"] / epochs, b["wall"], b["flops"], matmul))
        measured.append(("sequential", prec, env["device"], q["n"], q["wall"], q["flops"], matmul))
    if keras_models:
        from ..train.keras import matmul_flop_rate_tf, train_keras
        k_cfgs = seq_cfgs[:keras_models]
        log(f"keras: {len(k_cfgs)} models (model.fit, one at a time)")
        cpu = dataclasses.replace(data, **{f: getattr(data, f).cpu() for f in
                                          ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")})
        kw_keras = {k: v for k, v in kw.items() if k != "device"}
        train_keras(k_cfgs[:1], small_cpu(cpu, matrix.batch_size), **kw_keras)  # untimed warm-up (tracing)
        r = train_keras(k_cfgs, cpu, **kw_keras)
        measured.append(("keras", "fp32", r.throughput["device"], len(k_cfgs), r.throughput["wall_s"],
                         r.throughput["flops"], matmul_flop_rate_tf()))
    rows = []
    for trainer, prec, device_used, n, wall, flops, mm_rate in measured:
        rows.append(dict(trainer=trainer, precision=prec, device=device_used, device_name=env["device_name"],
                         n_models=int(n), epochs=epochs, model_epochs_per_s=n * epochs / wall,
                         samples_per_s=n * epochs * n_train / wall, flop_per_s=flops / wall,
                         matmul_flop_per_s=mm_rate, torch_threads=env["n_threads"], matrix=matrix.name,
                         measured_utc=_utc()))
    rate = {(r["trainer"], r["precision"]): r["model_epochs_per_s"] for r in rows}
    for r in rows:
        r["speedup_vs_sequential"] = r["model_epochs_per_s"] / rate.get(("sequential", r["precision"]), float("nan"))
        r["flop_fraction_of_matmul"] = r["flop_per_s"] / r["matmul_flop_per_s"]
        if ("fp32" in precisions and r["precision"] != "fp32" and (r["trainer"], "fp32") in rate):
            r["speedup_vs_fp32"] = r["model_epochs_per_s"] / rate[(r["trainer"], "fp32")]
    if roofline:
        from . import roofline as R
        first = [configs[i] for i in chunks[0]]
        for r in rows:
            if r["trainer"] != "batched":
                continue
            prec, b = r["precision"], bat[r["precision"]]
            log(f"roofline ({prec}): the first chunk's matmuls alone, the optimizer's bytes, a profile of a step")
            step = R.make_step(first, widths=matrix.widths, activation=matrix.activation, dropout=matrix.dropout,
                               batch_size=matrix.batch_size, device=dev, precision=prec, optim_impl=optim_impl)
            roof = R.measure(step, step_s=b["train0"] / b["steps0"])
            r.update(step_ms=roof["step_s"] * 1e3, roofline_ms=roof["roofline_s"] * 1e3,
                     step_over_roofline=roof["step_over_roofline"], matmul_ms=roof["matmul_s"] * 1e3,
                     optimizer_ms=roof["optimizer_s"] * 1e3, optimizer_bytes=roof["optimizer_bytes"],
                     copy_bandwidth=roof["copy_bandwidth"], optimizer_measured_ms=roof["optimizer_step_s"] * 1e3,
                     optimizer_gb_per_s=roof["optimizer_bandwidth"] / 1e9,
                     optimizer_share_of_copy=roof["optimizer_share"])
            log(f"optimizer update ({prec}): {roof['optimizer_bytes'] / 1e6:.0f} MB in "
                f"{roof['optimizer_step_s'] * 1e3:.1f} ms = {roof['optimizer_bandwidth'] / 1e9:.1f} GB/s, "
                f"{roof['optimizer_share']:.0%} of the copy bandwidth ({roof['copy_bandwidth'] / 1e9:.1f} GB/s); "
                f"step {roof['step_s'] * 1e3:.1f} ms vs roofline {roof['roofline_s'] * 1e3:.1f} ms "
                f"({roof['step_over_roofline']:.2f}x)")
            for p in R.profile(step) if profile is not None else ():
                profile.append(dict(precision=prec, part=p["part"], ms_per_step=p["seconds"] * 1e3,
                                            share=p["share"], n_models=len(first), device_name=env["device_name"],
                                            measured_utc=r["measured_utc"]))
    return rows


def small_cpu(data, batch_size: int):
    """A slice of the data (20 batches, 1,000 validation and test images) for untimed warm-ups."""
    import dataclasses
    n = 20 * batch_size
    return dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n], x_val=data.x_val[:1000],
                               y_val=data.y_val[:1000], x_test=data.x_test[:1000], y_test=data.y_test[:1000])


def write(rows: list[dict], out_dir: Path, profile: list[dict] | None = None) -> Path:
    """results/speed/trainer_<device type>.csv (and step_profile_<device type>.csv when ``profile`` has
    rows), written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = "cuda" if rows[0]["device"].startswith("cuda") else "cpu"
    if profile:
        write_csv(out_dir / f"step_profile_{kind}.csv", profile, PROFILE_COLUMNS, lineterminator="\n")
    return write_csv(out_dir / f"trainer_{kind}.csv", rows, COLUMNS, lineterminator="\n")

