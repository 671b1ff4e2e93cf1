"""The ``lrbench`` command line."""
from __future__ import annotations

from pathlib import Path

import click

RESULTS = Path(__file__).resolve().parent.parent / "results"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """lrbench: learning-rate schedules, their conformance and their benchmark."""


def _count(ctx, param, value):
    try:
        v = float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number such as 5e7, got {value!r}") from None
    if v < 1 or not v.is_integer():
        raise click.BadParameter(f"must be a positive integer, got {value!r}")
    return int(v)


@main.command()
@click.option("--steps", default="5e7", callback=_count, show_default=True, help="Steps of the warmup+cosine case.")
@click.option("--many", default="1000", callback=_count, show_default=True, help="Schedules in the evaluate_many case.")
@click.option("--many-steps", default="1e5", callback=_count, show_default=True, help="Steps per schedule there.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(1), help="Timed runs (median).")
@click.option("--torch-steps", default="1e5", callback=_count, show_default=True, help="PyTorch loop prefix.")
@click.option("--keras-steps", default="2000", callback=_count, show_default=True, help="Keras calls prefix.")
@click.option("--out", "out_dir", default=str(RESULTS / "speed"), show_default=True, type=click.Path(file_okay=False),
              help="Where evaluate_cpu.csv/.json go.")
def speed(steps, many, many_steps, repeats, torch_steps, keras_steps, out_dir):
    """Evaluator speed: lrcore numba vs numpy, a numpy closed form, PyTorch and Keras, in one run."""
    from rich.console import Console
    from rich.table import Table

    from . import speed as sp
    if steps < 200:
        raise click.BadParameter("must be at least 200", param_hint="--steps")
    if many_steps < 100:
        raise click.BadParameter("must be at least 100", param_hint="--many-steps")
    console = Console()
    with console.status("measuring") as status:
        rows = sp.run(steps, many, many_steps, repeats, min(torch_steps, steps), min(keras_steps, steps),
                      log=lambda msg: (status.update(f"measuring: {msg}"), console.log(msg)))
    meta = sp.machine()
    path = sp.write(rows, Path(out_dir), meta)
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


@main.command()
@click.option("--examples", default=200, show_default=True, type=click.IntRange(1),
              help="Random cases per constructor (CI: 20), besides the pinned edge cases.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random parameter draws.")
@click.option("--framework", "frameworks", multiple=True, type=click.Choice(["torch", "keras"]),
              default=("torch", "keras"), show_default=True, help="Which frameworks to run (repeatable).")
@click.option("--out", "out_path", default=str(RESULTS / "conformance.csv"), show_default=True,
              type=click.Path(dir_okay=False), help="The summary CSV.")
def conformance(examples, seed, frameworks, out_path):
    """Conformance: lrcore.compat against the real PyTorch and Keras on random valid parameters."""
    import csv
    import time

    from rich.console import Console
    from rich.table import Table

    from reference import conformance as C
    console = Console(width=max(Console().width, 100))
    start = time.perf_counter()
    with console.status("running") as status:
        rows = C.run(examples, seed=seed, frameworks=frameworks,
                     log=lambda r: status.update(f"running: {r['framework']} {r['schedule']} done"))
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["framework", "schedule", "cases", "max_err", "err_measure", "limit", "explained_steps", "verdict"]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows({**r, "max_err": f"{r['max_err']:.3g}"} for r in rows)
    tmp.replace(path)
    t = Table(title=f"conformance: {examples} random cases per constructor + pinned edge cases, seed {seed}",
              title_justify="left")
    for col in ("framework", "schedule", "cases", "max error", "explained steps", "verdict"):
        t.add_column(col, justify="left" if col in ("framework", "schedule", "verdict") else "right", no_wrap=True)
    for r in rows:
        t.add_row(r["framework"], r["schedule"], str(r["cases"]), f"{r['max_err']:.2g}",
                  str(r["explained_steps"]), r["verdict"] if r["verdict"] == "pass" else f"[red]{r['verdict']}[/red]")
    console.print(t)
    console.print("max error: relative (torch, limit 1e-10) or |diff| / (2e-6 |ref| + 1e-6 max|ref|) (keras, "
                  "limit 1); explained steps: see reference/DIFFERENCES.md and reference/conformance.py EXPLAINED")
    for r in rows:
        for f in r["failures"][:3]:
            console.print(f"[red]mismatch[/red] {C.describe(f)}", soft_wrap=True)
    cases = sum(r["cases"] for r in rows)
    console.print(f"{cases} cases in {time.perf_counter() - start:.0f} s; written: {path}")
    if any(r["failures"] for r in rows):
        raise SystemExit(1)


def _shard(ctx, param, value):
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected i/n such as 1/2, got {value!r}") from None
    if not 1 <= i <= n:
        raise click.BadParameter(f"needs 1 <= i <= n, got {value!r}")
    return i, n


def summary_table(summary, title: str):
    """Rich table: mean (and spread) of test accuracy over seeds per optimizer x schedule, best first."""
    from rich.table import Table
    g = summary.groupby(["optimizer", "name"], sort=False)
    agg = g.agg(test_acc=("test_acc", "mean"), test_sd=("test_acc", "std"), best=("test_acc_best", "mean"),
                val=("best_val_acc", "mean"), seeds=("seed", "count"), diverged=("diverged", "sum")).reset_index()
    agg = agg.sort_values("test_acc", ascending=False)
    t = Table(title=title, title_justify="left")
    for col in ("optimizer", "schedule", "test acc (mean)", "sd", "test acc @ best val", "best val acc", "seeds",
                "diverged"):
        t.add_column(col, justify="left" if col in ("optimizer", "schedule") else "right")
    for r in agg.itertuples():
        t.add_row(r.optimizer, r.name, f"{r.test_acc:.4f}", "" if r.test_sd != r.test_sd else f"{r.test_sd:.4f}",
                  f"{r.best:.4f}", f"{r.val:.4f}", str(r.seeds), str(int(r.diverged)))
    return t


@main.command()
@click.option("--matrix", "matrix_spec", default="quick", show_default=True,
              help="A built-in matrix (quick, default, full, keras-classic) or a TOML file.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N] (auto: CUDA when present).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the matrix's epochs.")
@click.option("--seeds", default=None, help="Override the matrix's seeds: a count (3) or a list (0,1,2).")
@click.option("--shard", default="1/1", callback=_shard, show_default=True,
              help="Train only chunks i-1, i-1+n, ... of the plan; join the shards with lrbench merge.")
@click.option("--resume", default=None, metavar="RUN_ID", help="Continue an interrupted run (skips finished chunks).")
@click.option("--run-id", default=None, help="Name of the run folder (default: time-matrix[-trainer]).")
@click.option("--sequential", is_flag=True, help="One model at a time with torch.nn + torch.optim + lrcore "
              "(the baseline of the speed-up and a cross-check).")
@click.option("--framework", type=click.Choice(["torch", "keras"]), default=None,
              help="Train with PyTorch (default for torch matrices) or Keras model.fit (one model at a time). "
                   "--framework torch on a Keras matrix trains its lrcore schedules (keras-native ones dropped).")
@click.option("--chunk-size", type=click.IntRange(1), default=None,
              help="Models trained together (default: all on CUDA, 72 on the CPU).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Fashion-MNIST folder.")
@click.option("--results", "results_dir", default=str(RESULTS), show_default=True, type=click.Path(file_okay=False))
@click.option("--threads", type=click.IntRange(0), default=0, help="torch threads (0: torch's default).")
@click.option("--no-report", is_flag=True, help="Do not write report.html / report.md at the end.")
@click.option("--no-progress", is_flag=True, help="A line per chunk instead of progress bars.")
@click.option("--optim-impl", type=click.Choice(["auto", "numba", "torch"]), default="auto", show_default=True,
              help="Batched optimizer: numba kernels (CPU) or torch tensor ops (any device; what CUDA runs). "
                   "auto: numba on the CPU, torch elsewhere.")
def run(matrix_spec, device, epochs, seeds, shard, resume, run_id, sequential, framework, chunk_size, data_dir,
        results_dir, threads, no_report, no_progress, optim_impl):
    """Train a schedules x optimizers x seeds matrix on Fashion-MNIST; write results/runs/<run-id>/."""
    import sys

    from rich.console import Console

    from .data import FashionMNISTError
    from .matrix import MatrixError, load_matrix, parse_seeds
    from .runner import RunError, run_matrix
    console = Console(stderr=True)
    if threads:
        import torch
        torch.set_num_threads(threads)
    if sequential and framework == "keras":
        raise click.UsageError("--sequential is the PyTorch one-at-a-time trainer; Keras always trains one at a time")
    trainer = "sequential" if sequential else ("keras" if framework == "keras" else
                                               ("batched" if framework == "torch" else None))
    try:
        matrix = None
        if resume is None:
            matrix = load_matrix(matrix_spec)
            changes = {}
            if epochs is not None:
                changes["epochs"] = epochs
            if seeds is not None:
                try:
                    changes["seeds"] = parse_seeds(seeds)
                except ValueError as e:
                    raise click.BadParameter(str(e), param_hint="--seeds") from None
            if changes:
                matrix = matrix.replace(**changes)
            console.print(f"matrix {matrix.name} ({matrix.source}): {len(matrix.peak_lr)} optimizers x "
                          f"{len(matrix.schedules)} schedules x {len(matrix.seeds)} seeds = {matrix.n_configs} "
                          f"models, {matrix.epochs} epochs")
        elif any(v is not None for v in (epochs, seeds, run_id, chunk_size, trainer)) or shard != (1, 1):
            raise click.UsageError("--resume continues a run with its own settings: give no --epochs, --seeds, "
                                   "--run-id, --chunk-size, --shard, --sequential or --framework")
        run_dir = run_matrix(matrix, results_dir=Path(results_dir), run_id=run_id, device=device, trainer=trainer,
                             shard=shard, chunk_size=chunk_size, data_dir=data_dir, resume=resume,
                             report=not no_report, progress=not no_progress, console=console,
                             command="lrbench " + " ".join(sys.argv[1:]), optim_impl=optim_impl)
    except (MatrixError, RunError, FashionMNISTError) as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished chunks are saved; continue with "
                      "lrbench run --resume <run-id> (see results/runs/)")
        raise SystemExit(130)
    _print_run(run_dir, console)


def _print_run(run_dir: Path, console):
    import json

    import pandas as pd
    meta = json.loads((run_dir / "meta.json").read_text())
    summary = pd.read_csv(run_dir / "summary.csv")
    out = __import__("rich.console", fromlist=["Console"]).Console()
    out.print(summary_table(summary, f"run {meta['run_id']}: test accuracy over seeds ({meta['trainer']}, "
                                     f"{meta['device_name']})"))
    tp = meta.get("throughput", {})
    if tp:
        out.print(f"throughput: {tp['model_epochs_per_s']:.3g} model-epochs/s, {tp['samples_per_s']:.3g} samples/s, "
                  f"{tp['flop_per_s'] / 1e9:.3g} GFLOP/s of matmul work "
                  f"({tp['flop_per_s'] / tp['matmul_flop_per_s']:.0%} of a torch 1024^3 matmul here); "
                  f"{tp['wall_s']:.0f} s of training")
    for name in ("report.html", "report.md"):
        if (run_dir / name).is_file():
            out.print(f"report: {run_dir / name}")
    out.print(f"written: {run_dir}")


@main.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--run-id", default=None, help="Name of the merged run folder (default: <shard id>-merged).")
@click.option("--results", "results_dir", default=str(RESULTS), show_default=True, type=click.Path(file_okay=False))
@click.option("--no-report", is_flag=True)
def merge(runs, run_id, results_dir, no_report):
    """Join the shards of a run (lrbench run --shard i/n) into one run folder."""
    from rich.console import Console

    from .runner import RunError, merge_runs
    try:
        out = merge_runs(list(runs), results_dir=Path(results_dir), run_id=run_id, report=not no_report)
    except RunError as e:
        raise click.ClickException(str(e)) from None
    _print_run(out, Console(stderr=True))


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
@click.option("--out", "out_dir", default=str(RESULTS / "speed"), show_default=True, type=click.Path(file_okay=False))
@click.option("--optim-impl", type=click.Choice(["auto", "numba", "torch"]), default="auto", show_default=True,
              help="Batched optimizer: numba kernels (CPU) or torch tensor ops (any device; what CUDA runs). "
                   "auto: numba on the CPU, torch elsewhere.")
def train_speed(matrix_spec, device, epochs, sequential_models, chunk_size, keras_models, threads, data_dir, out_dir,
                optim_impl):
    """Training throughput: batched vs sequential (model-epochs/s) and FLOP rate vs a torch matmul."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from . import trainer_speed
    from .data import FashionMNISTError, load_fashion_mnist
    from .matrix import MatrixError, load_matrix
    from .runner import RunError, resolve_device
    if threads:
        torch.set_num_threads(threads)
    console = Console()
    try:
        matrix = load_matrix(matrix_spec)
        dev = resolve_device(device)
        data = load_fashion_mnist(dev, data_dir)
    except (MatrixError, RunError, FashionMNISTError) as e:
        raise click.ClickException(str(e)) from None
    import importlib.util
    if keras_models and importlib.util.find_spec("tensorflow") is None:
        console.log("keras: skipped (TensorFlow is not installed)")
        keras_models = 0
    with console.status("measuring") as status:
        rows = trainer_speed.measure(matrix, data, device=dev, epochs=epochs, sequential_models=sequential_models,
                                     chunk_size=chunk_size, keras_models=keras_models, optim_impl=optim_impl,
                                     log=lambda m: (status.update(m), console.log(m)))
    path = trainer_speed.write(rows, Path(out_dir))
    t = Table(title=f"training throughput, matrix {matrix.name}, {epochs} epoch(s), {rows[0]['device_name']}, "
                    f"{rows[0]['torch_threads']} torch threads", title_justify="left")
    for col in ("trainer", "models", "model-epochs/s", "samples/s", "GFLOP/s", "of matmul", "x sequential"):
        t.add_column(col, justify="left" if col == "trainer" else "right")
    for r in rows:
        t.add_row(r["trainer"], str(r["n_models"]), f"{r['model_epochs_per_s']:.3g}", f"{r['samples_per_s']:.3g}",
                  f"{r['flop_per_s'] / 1e9:.3g}", f"{r['flop_fraction_of_matmul']:.0%}",
                  f"{r['speedup_vs_sequential']:.2f}x")
    console.print(t)
    mm = f"torch float32 1024^3 matmul: {rows[0]['matmul_flop_per_s'] / 1e9:.3g} GFLOP/s"
    if rows[-1]["trainer"] == "keras":
        mm += f" (TensorFlow's, for the keras row: {rows[-1]['matmul_flop_per_s'] / 1e9:.3g})"
    console.print(f"{mm}; written: {path}")
    if rows[0]["device"].startswith("cuda"):
        console.print(trainer_speed.CUDA_SEQUENTIAL_NOTE)

from .commands_report import find_lr_cmd, plot_cmd, report_cmd  # noqa: E402
main.add_command(report_cmd); main.add_command(find_lr_cmd); main.add_command(plot_cmd)
from .crossframework import crossframework_cmd  # noqa: E402
main.add_command(crossframework_cmd)

if __name__ == "__main__":
    main()
