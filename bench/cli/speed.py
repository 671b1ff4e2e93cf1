"""``lrbench speed`` (lrcore's evaluator) and ``lrbench train-speed`` (the trainers' throughput and roofline)."""
from __future__ import annotations

from pathlib import Path

import click

from ..results import results_root
from .group import _count, _precision_option, _under, _warn_if_bf16_is_slow, main


@main.command()
@click.option("--steps", default="5e7", callback=_count, show_default=True, help="Steps of the warmup+cosine case.")
@click.option("--many", default="1000", callback=_count, show_default=True, help="Schedules in the evaluate_many case.")
@click.option("--many-steps", default="1e5", callback=_count, show_default=True, help="Steps per schedule there.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(1), help="Timed runs (median).")
@click.option("--torch-steps", default="1e5", callback=_count, show_default=True, help="PyTorch loop prefix.")
@click.option("--keras-steps", default="2000", callback=_count, show_default=True, help="Keras calls prefix.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where evaluate_cpu.csv/.json go." + _under("speed"))
def speed(steps, many, many_steps, repeats, torch_steps, keras_steps, out_dir):
    """Evaluator speed: lrcore numba vs numpy, a numpy closed form, PyTorch and Keras, in one run."""
    from rich.console import Console
    from rich.table import Table

    from ..machine import machine
    from ..speed import evaluator as sp
    if steps < 200:
        raise click.BadParameter("must be at least 200", param_hint="--steps")
    if many_steps < 100:
        raise click.BadParameter("must be at least 100", param_hint="--many-steps")
    console = Console()
    with console.status("measuring") as status:
        rows = sp.run(steps, many, many_steps, repeats, min(torch_steps, steps), min(keras_steps, steps),
                      log=lambda msg: (status.update(f"measuring: {msg}"), console.log(msg)))
    meta = machine()
    path = sp.write(rows, Path(out_dir) if out_dir else results_root() / "speed", meta)
    records = sp.table(rows)
    for case in dict.fromkeys(r["case"] for r in records):
        t = Table(title=case, title_justify="left")
        for col in ("method", "values/s", "x numpy", "max rel err", "timed on"):
            t.add_column(col, justify="left" if col == "method" else "right")
        for r in (r for r in records if r["case"] == case):
            ratio = r["speedup_vs_numpy"]
            t.add_row(r["method"], f"{r['values_per_second']:.3g}", "" if ratio is None else f"{ratio:.3g}x",
                      "" if r["max_rel_err"] is None else f"{r['max_rel_err']:.1e}", f"{r['timed_values']:.0e}")
        console.print(t)
    console.print(f"machine: {meta['cpu']}, {meta['threads']} threads")
    console.print(f"written: {path}")



@main.command("train-speed")
@click.option("--matrix", "matrix_spec", default="quick", show_default=True, help="Whose configurations to train.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--sequential-models", type=click.IntRange(2), default=12, show_default=True,
              help="Configurations (spread over the matrix) trained one at a time for the baseline.")
@click.option("--chunk-size", type=click.IntRange(1), default=None, help="Batched models per chunk.")
@click.option("--keras-models", type=click.IntRange(0), default=3, show_default=True,
              help="Of the sequential configurations, how many also train with Keras model.fit (0: none; "
                   "skipped when TensorFlow is not installed).")
@click.option("--threads", type=click.IntRange(0), default=0, help="torch threads (0: torch's default).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where trainer_<device>.csv goes." + _under("speed"))
@click.option("--optim-impl", type=click.Choice(["auto", "numba", "torch"]), default="auto", show_default=True,
              help="Batched optimizer: numba kernels (CPU) or torch tensor ops (any device; what CUDA runs). "
                   "auto: numba on the CPU, torch elsewhere.")
@_precision_option("Repeat it (--precision fp32 --precision bf16) to measure both side by side, the batched "
                   "chunks of each in turn [default: the matrix's].", multiple=True)
@click.option("--rounds", type=click.IntRange(1), default=1, show_default=True,
              help="Times each precision's batched chunks are trained, in alternating order (side by side).")
@click.option("--no-roofline", is_flag=True, help="Skip the roofline (each batched step against its matmuls alone "
              "and its optimizer's bytes at the copy bandwidth) and the step profile.")
def train_speed(matrix_spec, device, epochs, sequential_models, chunk_size, keras_models, threads, data_dir, out_dir,
                optim_impl, precision, rounds, no_roofline):
    """Training throughput: batched vs sequential (model-epochs/s), FLOP rate vs a torch matmul, and each batched
    step against its roofline (its matmuls alone + its optimizer's bytes at the copy bandwidth)."""
    import torch
    from rich.console import Console

    from ..matrix import MatrixError, load_matrix
    from ..speed import trainer as trainer_speed
    from ..train import FashionMNISTError, load_fashion_mnist
    from ..train.registry import DeviceError, resolve_device
    if threads:
        torch.set_num_threads(threads)
    console = Console()
    try:
        matrix = load_matrix(matrix_spec)
        dev = resolve_device(device)
        data = load_fashion_mnist(dev, data_dir)
    except (MatrixError, DeviceError, FashionMNISTError) as e:
        raise click.ClickException(str(e)) from None
    precisions = list(precision) or [matrix.precision]
    if "bf16" in precisions:
        _warn_if_bf16_is_slow(console, dev)
    import importlib.util
    if keras_models and importlib.util.find_spec("tensorflow") is None:
        console.log("keras: skipped (TensorFlow is not installed)")
        keras_models = 0
    profile: list[dict] = []
    with console.status("measuring") as status:
        rows = trainer_speed.measure(matrix, data, device=dev, epochs=epochs, sequential_models=sequential_models,
                                     chunk_size=chunk_size, keras_models=keras_models, optim_impl=optim_impl,
                                     log=lambda m: (status.update(m), console.log(m)), precisions=precisions,
                                     rounds=rounds, roofline=not no_roofline, profile=profile)
    path = trainer_speed.write(rows, Path(out_dir) if out_dir else results_root() / "speed", profile)
    console.print(_throughput_table(rows, matrix.name, epochs, len(precisions) > 1))
    for table in (_roofline_table(rows), _profile_table(profile)):
        if table is not None:
            console.print(table)
    mm = f"torch float32 1024^3 matmul: {rows[0]['matmul_flop_per_s'] / 1e9:.3g} GFLOP/s"
    if rows[-1]["trainer"] == "keras":
        mm += f" (TensorFlow's, for the keras row: {rows[-1]['matmul_flop_per_s'] / 1e9:.3g})"
    console.print(f"{mm}; written: {path}")
    if rows[0]["device"].startswith("cuda"):
        console.print(trainer_speed.CUDA_SEQUENTIAL_NOTE)




def _throughput_table(rows: list[dict], matrix_name: str, epochs: int, several_precisions: bool):
    from rich.table import Table
    t = Table(title=f"training throughput, matrix {matrix_name}, {epochs} epoch(s), {rows[0]['device_name']}, "
                    f"{rows[0]['torch_threads']} torch threads", title_justify="left")
    cols = ["trainer", "precision", "models", "model-epochs/s", "samples/s", "GFLOP/s", "of fp32 matmul",
            "x sequential"] + (["x fp32"] if several_precisions else [])
    for col in cols:
        t.add_column(col, justify="left" if col in ("trainer", "precision") else "right")
    for r in rows:
        t.add_row(r["trainer"], r["precision"], str(r["n_models"]), f"{r['model_epochs_per_s']:.3g}",
                  f"{r['samples_per_s']:.3g}", f"{r['flop_per_s'] / 1e9:.3g}", f"{r['flop_fraction_of_matmul']:.0%}",
                  f"{r['speedup_vs_sequential']:.2f}x",
                  *([f"{r['speedup_vs_fp32']:.2f}x" if r.get("speedup_vs_fp32") else ""]
                    if several_precisions else []))
    return t


def _roofline_table(rows: list[dict]):
    """Each batched step against its roofline (None without roofline measurements)."""
    from rich.table import Table
    roofs = [r for r in rows if r.get("roofline_ms")]
    if not roofs:
        return None
    t = Table(title="the batched step against its roofline (the first chunk; roofline = its matmuls timed alone "
                    "at their shapes and dtype + the optimizer's bytes at the copy bandwidth)",
              title_justify="left")
    for col in ("precision", "step", "roofline", "step / roofline", "matmuls alone", "optimizer bytes",
                "at copy bandwidth"):
        t.add_column(col, justify="left" if col == "precision" else "right")
    for r in roofs:
        t.add_row(r["precision"], f"{r['step_ms']:.1f} ms", f"{r['roofline_ms']:.1f} ms",
                  f"{r['step_over_roofline']:.2f}x", f"{r['matmul_ms']:.1f} ms",
                  f"{r['optimizer_bytes'] / 1e6:.0f} MB", f"{r['copy_bandwidth'] / 1e9:.1f} GB/s = "
                                                            f"{r['optimizer_ms']:.1f} ms")
    return t


def _profile_table(profile: list[dict]):
    """Where a batched step's time goes, per precision (None without a profile)."""
    from rich.table import Table
    if not profile:
        return None
    t = Table(title="where a batched step's time goes (each aten call timed in real steps; the optimizer's "
                    "update as one part)", title_justify="left")
    precs = list(dict.fromkeys(p["precision"] for p in profile))
    parts = list(dict.fromkeys(p["part"] for p in profile))
    t.add_column("part")
    for prec in precs:
        t.add_column(f"{prec} ms/step", justify="right")
        t.add_column("share", justify="right")
    got = {(p["precision"], p["part"]): p for p in profile}
    for part in parts:
        cells = []
        for prec in precs:
            p = got.get((prec, part))
            cells += [f"{p['ms_per_step']:.2f}", f"{p['share']:.0%}"] if p else ["", ""]
        t.add_row(part, *cells)
    return t
