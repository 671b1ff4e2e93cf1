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
from .columns import PROFILE_COLUMNS

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
    import torch

    from ..machine import environment, matmul_flop_rate
    from ..matrix.runner import CPU_CHUNK, plan_chunks

    dev = torch.device(device)
    precisions = list(dict.fromkeys(precisions or [matrix.precision]))
    specs = {p: matrix.train_spec(epochs=epochs, early_stopping=None, precision=p, optim_impl=optim_impl)
             for p in precisions}
    configs = matrix.configs()
    stride = max(1, len(configs) // max(1, sequential_models))
    seq_cfgs = configs[::stride][:sequential_models]
    chunks = plan_chunks(len(configs), chunk_size or (len(configs) if dev.type == "cuda" else CPU_CHUNK))
    # 1. untimed warm-up; 2. half the sequential models; 3. the batched chunks, precisions side by side;
    # 4. the other half of the sequential models (a drift over the measurement hits both trainers)
    _warm_up(configs[:chunk_size or CPU_CHUNK], seq_cfgs[:2], small_cpu(data, matrix.batch_size), specs, dev, log)
    mm = [matmul_flop_rate(dev)]
    seq = {p: dict(wall=0.0, flops=0, n=0) for p in precisions}
    half = len(seq_cfgs) // 2
    for prec in precisions:
        if half:
            log(f"sequential ({prec}): {half} of {len(seq_cfgs)} models")
            _sequential(seq_cfgs[:half], data, specs[prec], dev, seq[prec])
    bat = _batched(configs, chunks, data, specs, dev, rounds, log)
    for prec in precisions:
        log(f"sequential ({prec}): {len(seq_cfgs) - half} more models")
        _sequential(seq_cfgs[half:], data, specs[prec], dev, seq[prec])
    mm.append(matmul_flop_rate(dev))
    env = environment(dev)
    measured = []
    for prec in precisions:
        b, q = bat[prec], seq[prec]
        measured.append(("batched", prec, env["device"], b["me"] / epochs, b["wall"], b["flops"], max(mm)))
        measured.append(("sequential", prec, env["device"], q["n"], q["wall"], q["flops"], max(mm)))
    if keras_models:
        measured.append(_keras(seq_cfgs[:keras_models], data, specs[precisions[0]], matrix.batch_size, log))
    rows = _rows(measured, matrix, epochs, len(data.x_train), env, precisions)
    if roofline:
        _rooflines(rows, [configs[i] for i in chunks[0]], specs, bat, dev, env, log, profile)
    return rows


def _warm_up(chunk, seq_cfgs, small, specs: dict, dev, log):
    """Untimed training of both trainers on a slice of the data (thread pools, allocator, kernel caches): the
    first model trained in a process runs up to 3x slower, which would flatter the batched side."""
    from ..train.batched import train_chunk
    from ..train.sequential import train_sequential
    log("warm-up (untimed)")
    for spec in specs.values():
        train_sequential(seq_cfgs, small, spec, device=dev)
        train_chunk(chunk, small, spec, device=dev)


def _sequential(part, data, spec, dev, acc: dict):
    from ..train.sequential import train_sequential
    r = train_sequential(part, data, spec, device=dev)
    acc["wall"] += r.throughput["wall_s"]
    acc["flops"] += r.throughput["flops"]
    acc["n"] += len(part)


def _batched(configs, chunks, data, specs: dict, dev, rounds: int, log) -> dict:
    """Every chunk in every precision, ``rounds`` times, the order of the precisions alternating; per
    precision: wall time, FLOPs, model-epochs, and the first chunk's training time and steps (its step time)."""
    from ..train.batched import train_chunk
    precisions = list(specs)
    bat = {p: dict(wall=0.0, flops=0, me=0, train0=0.0, steps0=0) for p in precisions}
    for rnd in range(max(1, int(rounds))):
        for k, idx in enumerate(chunks):
            for prec in (precisions if (rnd + k) % 2 == 0 else precisions[::-1]):
                log(f"batched ({prec}): chunk {k + 1} ({len(idx)} models)"
                    + (f", round {rnd + 1}" if rounds > 1 else ""))
                r = train_chunk([configs[i] for i in idx], data, specs[prec], device=dev)
                b = bat[prec]
                b["wall"] += r.throughput["wall_s"]
                b["flops"] += r.throughput["flops"]
                b["me"] += len(idx) * specs[prec].epochs
                if k == 0:
                    b["train0"] += r.throughput["train_s"]
                    b["steps0"] += r.throughput["steps"]
    return bat


def _keras(k_cfgs, data, spec, batch_size: int, log) -> tuple:
    """The Keras row's measurement (float32, on the CPU copy of the data, after an untimed tracing run)."""
    import dataclasses

    from ..train.keras import matmul_flop_rate_tf, train_keras
    log(f"keras: {len(k_cfgs)} models (model.fit, one at a time)")
    cpu = dataclasses.replace(data, **{f: getattr(data, f).cpu() for f in
                                      ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")})
    spec = spec.replace(precision="fp32")
    train_keras(k_cfgs[:1], small_cpu(cpu, batch_size), spec)  # untimed warm-up (tracing)
    r = train_keras(k_cfgs, cpu, spec)
    return ("keras", "fp32", r.throughput["device"], len(k_cfgs), r.throughput["wall_s"], r.throughput["flops"],
            matmul_flop_rate_tf())


def _rows(measured, matrix, epochs: int, n_train: int, env: dict, precisions) -> list[dict]:
    """The table's rows, with the speed-ups against the sequential trainer and against fp32."""
    from ..machine import utc as _utc
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
    return rows


def _rooflines(rows, first, specs: dict, bat: dict, dev, env: dict, log, profile: list | None):
    """Each batched row's step (the first chunk's, from the timed training) against its roofline; where that
    step's time goes appended to ``profile`` when given."""
    from . import roofline as R
    for r in rows:
        if r["trainer"] != "batched":
            continue
        prec, b = r["precision"], bat[r["precision"]]
        log(f"roofline ({prec}): the first chunk's matmuls alone, the optimizer's bytes, a profile of a step")
        step = R.make_step(first, specs[prec], device=dev)
        roof = R.measure(step, step_s=b["train0"] / b["steps0"])
        r.update(step_ms=roof["step_s"] * 1e3, roofline_ms=roof["roofline_s"] * 1e3,
                 step_over_roofline=roof["step_over_roofline"], matmul_ms=roof["matmul_s"] * 1e3,
                 optimizer_ms=roof["optimizer_s"] * 1e3, optimizer_bytes=roof["optimizer_bytes"],
                 copy_bandwidth=roof["copy_bandwidth"], optimizer_measured_ms=roof["optimizer_step_s"] * 1e3,
                 optimizer_gb_per_s=roof["optimizer_bandwidth"] / 1e9, optimizer_share_of_copy=roof["optimizer_share"])
        log(f"optimizer update ({prec}): {roof['optimizer_bytes'] / 1e6:.0f} MB in "
            f"{roof['optimizer_step_s'] * 1e3:.1f} ms = {roof['optimizer_bandwidth'] / 1e9:.1f} GB/s, "
            f"{roof['optimizer_share']:.0%} of the copy bandwidth ({roof['copy_bandwidth'] / 1e9:.1f} GB/s); "
            f"step {roof['step_s'] * 1e3:.1f} ms vs roofline {roof['roofline_s'] * 1e3:.1f} ms "
            f"({roof['step_over_roofline']:.2f}x)")
        for p in R.profile(step) if profile is not None else ():
            profile.append(dict(precision=prec, part=p["part"], ms_per_step=p["seconds"] * 1e3, share=p["share"],
                                n_models=len(first), device_name=env["device_name"], measured_utc=r["measured_utc"]))


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

