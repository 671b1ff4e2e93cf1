"""``lrbench run`` (train a matrix, then its step cost, roofline and report) and ``lrbench find-lr``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..results import RunLocked, results_root
from .errors import _run_ref, io_failure, locked_failure
from .group import ALL_OPTIMIZERS, _precision_option, _root_option, _under, _warn_if_bf16_is_slow, main


def summary_table(summary, title: str):
    """Rich table: mean (and spread) of test accuracy over seeds per optimizer x schedule, best first."""
    from rich.table import Table
    g = summary.groupby(["optimizer", "name"], sort=False)
    agg = g.agg(peak=("peak_lr", "first"), test_acc=("test_acc", "mean"), test_sd=("test_acc", "std"),
                best=("test_acc_best", "mean"), val=("best_val_acc", "mean"), seeds=("seed", "count"),
                diverged=("diverged", "sum")).reset_index()
    agg = agg.sort_values("test_acc", ascending=False)
    t = Table(title=title, title_justify="left")
    for col in ("optimizer", "schedule", "peak lr", "test acc (mean)", "sd", "test acc @ best val", "best val acc",
                "seeds", "diverged"):
        t.add_column(col, justify="left" if col in ("optimizer", "schedule") else "right", no_wrap=True)
    for r in agg.itertuples():
        t.add_row(r.optimizer, r.name, f"{r.peak:.3g}", f"{r.test_acc:.4f}",
                  "" if r.test_sd != r.test_sd else f"{r.test_sd:.4f}", f"{r.best:.4f}", f"{r.val:.4f}", str(r.seeds),
                  str(int(r.diverged)))
    return t



@main.command()
@click.option("--matrix", "matrix_spec", default="quick", show_default=True,
              help="A built-in matrix (quick, default, full, keras-classic, precision) or a TOML file.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N] (auto: CUDA when present).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the matrix's epochs.")
@click.option("--seeds", default=None, help="Override the matrix's seeds: a count (3) or a list (0,1,2).")
@click.option("--resume", default=None, metavar="RUN_ID", help="Continue an interrupted run (skips finished chunks).")
@click.option("--run-id", default=None, help="Name of the run folder (default: time-matrix[-trainer]).")
@click.option("--sequential", is_flag=True, help="One model at a time with torch.nn + torch.optim + lrcore "
              "(the baseline of the speed-up and a cross-check).")
@click.option("--framework", type=click.Choice(["torch", "keras"]), default=None,
              help="Train with PyTorch (default for torch matrices) or Keras model.fit (one model at a time). "
                   "--framework torch on a Keras matrix trains its lrcore schedules (keras-native ones dropped).")
@click.option("--chunk-size", type=click.IntRange(1), default=None,
              help="Models trained together, one Ray task each (default: all on CUDA, split over the "
                   "cluster's GPUs on Ray; 72 on the CPU).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Fashion-MNIST folder.")
@_root_option()
@click.option("--threads", type=click.IntRange(0), default=0,
              help="torch threads of this process (0: torch's default; Ray tasks use --cpus-per-task).")
@click.option("--no-report", is_flag=True, help="Do not write report.html / report.md at the end (verdicts.csv is written all the same).")
@click.option("--no-progress", is_flag=True, help="A line per chunk instead of progress bars.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where chunks train: this process, or Ray tasks (pip install 'lrbench[ray]').")
@click.option("--address", default=None, help="Ray: a running cluster (auto | HOST:PORT, see ray start); "
              "default: a private local cluster sized to this machine.")
@click.option("--cpus-per-task", type=click.IntRange(1), default=None,
              help="Ray: CPUs per chunk task, also its torch / Numba threads [default: 1].")
@click.option("--gpus-per-task", type=click.FloatRange(0), default=None,
              help="Ray: GPUs per chunk task [default: 1 when the cluster has GPUs and --device is not cpu, else 0].")
@click.option("--max-retries", type=click.IntRange(0), default=None,
              help="Ray: retries of a chunk whose worker died (never after a trainer error) [default: 3].")
@click.option("--optim-impl", type=click.Choice(["auto", "numba", "torch"]), default="auto", show_default=True,
              help="Batched optimizer: numba kernels (CPU) or torch tensor ops (any device; what CUDA runs). "
                   "auto: numba on the CPU, torch elsewhere.")
@click.option("--no-tuning", is_flag=True, help="Drop the matrix's [tuning] table: every configuration at its "
              "optimizer's hand-set peak_lr, on the evaluation seeds only.")
@click.option("--no-step-cost", is_flag=True, help="Skip measuring each optimizer's cost per step after training "
              "(step_cost.csv; the report then gives times to target in epochs only).")
@_precision_option("Training precision [default: the matrix's, else fp32].")
def run(matrix_spec, device, epochs, seeds, resume, run_id, sequential, framework, chunk_size, data_dir,
        results_dir, threads, no_report, no_progress, executor, address, cpus_per_task, gpus_per_task, max_retries,
        optim_impl, no_tuning, no_step_cost, precision):
    """Train a schedules x optimizers x seeds matrix on Fashion-MNIST; write results/runs/<run-id>/.

    --resume continues a run with either executor, whichever trained its first chunks.
    """
    from rich.console import Console

    from ..matrix import MatrixError
    from ..matrix.executors import ExecutorError, make_executor
    from ..matrix.runner import CorruptPartWarning, RunError, RunWriteError, run_matrix
    from ..train import FashionMNISTError
    from ..train.registry import DeviceError, pick_trainer, resolve_device
    console = Console(stderr=True)
    _show_part_warnings(console, CorruptPartWarning)
    try:
        ex = make_executor(executor, address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
                           max_retries=max_retries)
    except ExecutorError as e:
        raise click.UsageError(str(e)) if executor == "local" else click.ClickException(str(e)) from None
    if threads:
        import torch
        torch.set_num_threads(threads)
    try:
        trainer = pick_trainer(framework, sequential)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    try:
        matrix = None
        if resume is None:
            matrix = _matrix_of(matrix_spec, epochs, seeds, no_tuning, precision)
            if matrix.precision == "bf16":
                _warn_if_bf16_is_slow(console, resolve_device(device, trainer or "batched"))
            console.print(_matrix_banner(matrix))
        elif any(v is not None for v in (epochs, seeds, run_id, chunk_size, trainer, precision)) or no_tuning:
            raise click.UsageError("--resume continues a run with its own settings: give no --epochs, --seeds, "
                                   "--run-id, --chunk-size, --sequential, --framework, --precision or --no-tuning")
        run_dir = run_matrix(matrix, results_dir=results_root(results_dir), run_id=run_id, device=device,
                             trainer=trainer, chunk_size=chunk_size, data_dir=data_dir, resume=resume,
                             progress=not no_progress, console=console, executor=ex,
                             command="lrbench " + " ".join(sys.argv[1:]), optim_impl=optim_impl)
    except RunWriteError as e:
        raise io_failure(e.error, e.run_dir, results_dir) from None
    except RunLocked as e:
        raise locked_failure(e, "Pick another --run-id" if resume is None else
                             "Wait for it to end, or stop it (Ctrl-C, or kill on its host: finished chunks stay) "
                             "and resume again") from None
    except (MatrixError, RunError, FashionMNISTError, ExecutorError, DeviceError) as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished chunks are saved; continue with "
                      "lrbench run --resume <run-id> (see results/runs/)")
        raise SystemExit(130)
    _after_run(run_dir, console, local=executor == "local", step_cost=not no_step_cost, report=not no_report,
               results_dir=results_dir)


def _show_part_warnings(console, category) -> None:
    """Warnings of ``category`` (a corrupt part, trained again) as one yellow line on the console."""
    import warnings
    show = warnings.showwarning

    def show_warning(message, cat, *args, **kwargs):
        if issubclass(cat, category):
            console.print(f"[yellow]warning[/yellow]: {message}", soft_wrap=True)
        else:
            show(message, cat, *args, **kwargs)
    warnings.showwarning = show_warning


def _matrix_of(matrix_spec: str, epochs, seeds, no_tuning: bool, precision):
    """The matrix ``--matrix`` names, with the options that override it."""
    from ..matrix import load_matrix, parse_seeds
    matrix = load_matrix(matrix_spec)
    changes = {}
    if epochs is not None:
        changes["epochs"] = epochs
    if seeds is not None:
        try:
            changes["seeds"] = parse_seeds(seeds)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--seeds") from None
    if no_tuning:
        changes["tuning"] = None
    if precision is not None:
        changes["precision"] = precision
    return matrix.replace(**changes) if changes else matrix


def _after_run(run_dir: Path, console, *, local: bool, step_cost: bool, report: bool, results_dir) -> None:
    """After training: the post-run measurements where the run trained here (the roofline of its first chunk,
    the step cost), the report, the run's summary on the console."""
    if local:  # Ray workers' machines are not this one: measure there
        from ..speed.postrun import roofline_of_run
        roofline_of_run(run_dir)  # the first chunk's step against its own limit (meta.json)
        if step_cost:
            measure_step_cost(run_dir, console)
    try:  # every run writes verdicts.csv; without ``report`` (--no-report) only that
        write_run_report(run_dir, results_root(results_dir), verdicts_only=not report)
    except OSError as e:
        raise io_failure(e, run_dir, results_dir) from None
    except RunLocked as e:
        raise locked_failure(e, f"The run is complete; that process writes its report (else: lrbench report "
                                f"{_run_ref(run_dir, results_dir)})") from None
    _print_run(run_dir, console)


def measure_step_cost(run_dir: Path, console, device: str | None = None) -> Path | None:
    """step_cost.csv for a complete, whole run of the batched trainer (bench.speed.step_cost); None, with the
    reason printed, for any other run. Where the run's device is not here (a Ray run's GPUs), nothing is measured."""
    import json

    from ..speed import step_cost
    meta = json.loads((Path(run_dir) / "meta.json").read_text())
    if meta.get("status") != "complete" or meta.get("shard", "1/1") != "1/1":
        console.print(f"step cost: not measured: run {meta.get('run_id')} is not complete (status "
                      f"{meta.get('status')!r})", soft_wrap=True)
        return None
    try:
        with console.status("measuring each optimizer's cost per step (step_cost.csv)"):
            rows = step_cost.measure(run_dir, device=device)
    except step_cost.StepCostError as e:
        console.print(f"step cost: not measured: {e}", soft_wrap=True)
        return None
    path = step_cost.write(run_dir, rows)
    console.print("step cost per model-step: " + ", ".join(f"{r['optimizer']} {1e3 * r['model_step_s']:.3g} ms"
                                                          for r in rows)
                  + f" ({rows[0]['n_models']} models per stack, {rows[0]['device_name']}); written: {path}",
                  soft_wrap=True)
    return path


def _matrix_banner(matrix) -> str:
    """What a run of ``matrix`` trains, in one or two lines (models per stage for a tuned matrix)."""
    n_sf = sum(o in matrix.schedule_free_optimizers for o in matrix.peak_lr)
    sf = (f" + {n_sf} schedule-free x {len(matrix.schedule_free)} warmup-only schedule(s)" if n_sf else "")
    what = (f"matrix {matrix.name} ({matrix.source}): ({len(matrix.peak_lr) - n_sf} optimizers x "
            f"{len(matrix.schedules)} schedules{sf})" + (f" in {matrix.precision}" if matrix.precision != "fp32" else ""))
    t = matrix.tuning
    if t is None:
        return f"{what} x {len(matrix.seeds)} seeds = {matrix.n_configs} models, {matrix.epochs} epochs"
    factors = ", ".join(f"{f:g}" for f in t.lr_factors)
    confirm = (f"; the leading factor{' and its neighbours' if t.confirm_neighbours else ''} of each also on tuning "
               f"seeds {list(t.confirm)}" if t.confirm else "")
    return (f"{what}, tuned: x peak_lr factors [{factors}] x tuning seed(s) {list(t.screen)} = {matrix.n_tuning_models} "
            f"models (+ up to {t.extend} factor(s) outward where the best is on the edge){confirm}; selected by mean "
            f"{t.metric} over {len(t.seeds)} tuning seeds among factors with no collapse; "
            f"then each at its selected peak x evaluation seeds {list(matrix.seeds)} = {matrix.n_configs} models; "
            f"{matrix.epochs} epochs")


def write_run_report(run_dir: Path, results_dir: Path, verdicts_only: bool = False):
    """report.html / report.md and verdicts.csv (only verdicts.csv with ``verdicts_only``) of a complete, whole
    (unsharded) run; None for a shard (merge it first)."""
    import json

    from ..report import write_report, write_verdicts
    meta = json.loads((Path(run_dir) / "meta.json").read_text())
    if meta.get("status") != "complete" or meta.get("shard", "1/1") != "1/1":
        return None
    return write_verdicts(run_dir) if verdicts_only else write_report(run_dir, results_dir)


def _print_run(run_dir: Path, console):
    import json

    import pandas as pd
    meta = json.loads((run_dir / "meta.json").read_text())
    summary = pd.read_csv(run_dir / "summary.csv")
    from rich.console import Console
    tuned = "stage" in summary and summary["stage"].astype(str).str.startswith("tune").any()
    if tuned:  # the evaluation models: each configuration at its selected peak, on fresh seeds
        summary = summary[~summary["stage"].astype(str).str.startswith("tune")]
    table = summary_table(summary, f"run {meta['run_id']}: test accuracy over "
                                   f"{'evaluation seeds at each tuned peak LR' if tuned else 'seeds'} "
                                   f"({meta['trainer']}, {meta.get('precision', 'fp32')}, {meta['device_name']})")
    out = Console()
    if not out.is_terminal:  # a file or a pipe (80 columns by default): as wide as the table, names never cut
        out = Console(width=max(out.width, Console(width=1000).measure(table).maximum))
    out.print(table)
    tp = meta.get("throughput", {})
    if tp:
        out.print(f"throughput: {tp['model_epochs_per_s']:.3g} model-epochs/s, {tp['samples_per_s']:.3g} samples/s, "
                  f"{tp['flop_per_s'] / 1e9:.3g} GFLOP/s of matmul work "
                  f"({tp['flop_per_s'] / tp['matmul_flop_per_s']:.0%} of a torch float32 1024^3 matmul here); "
                  f"{tp['wall_s']:.0f} s of training")
        roof = tp.get("roofline")
        if roof and roof.get("roofline_s"):
            out.print(f"roofline ({roof['precision']}, chunk {roof.get('chunk', 0)} of {roof['n_models']} models): a "
                      f"step takes {roof['step_s'] * 1e3:.1f} ms, {roof['step_over_roofline']:.2f}x its limit of "
                      f"{roof['roofline_s'] * 1e3:.1f} ms = its matmuls alone {roof['matmul_s'] * 1e3:.1f} ms + "
                      f"the optimizer's {roof['optimizer_bytes'] / 1e6:.0f} MB at "
                      f"{roof['copy_bandwidth'] / 1e9:.1f} GB/s {roof['optimizer_s'] * 1e3:.1f} ms")
    if (run_dir / "verdicts.csv").is_file():  # the report's first line: the answer, from verdicts.csv
        from ..report import answer_line
        out.print(f"answer: {answer_line(run_dir)}", markup=False)
    for name in ("report.html", "report.md", "verdicts.csv"):
        if (run_dir / name).is_file():
            out.print(f"{'report' if name.startswith('report') else 'verdicts'}: {run_dir / name}")
    out.print(f"written: {run_dir}")



def _widths(ctx, param, value):
    try:
        w = tuple(int(x) for x in value.replace(" ", "").split(",") if x)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 784,256,128,10, got {value!r}") from None
    if len(w) < 2 or min(w) < 1 or w[0] != 784 or w[-1] != 10:
        raise click.BadParameter(f"need >= 2 positive widths from 784 (pixels) to 10 (classes), got {value!r}")
    return w


def _optimizers(ctx, param, value):
    from ..train.config import OPTIMIZERS
    names = [x.strip() for x in value.split(",") if x.strip()]
    bad = [n for n in names if n not in OPTIMIZERS]
    if not names or bad:
        raise click.BadParameter(f"unknown optimizer(s) {', '.join(bad) or '(none given)'}; known: "
                                 f"{', '.join(OPTIMIZERS)}")
    if len(set(names)) != len(names):
        raise click.BadParameter(f"optimizers repeat: {value!r}")
    return names


def _positive(ctx, param, value):
    if not value > 0:
        raise click.BadParameter(f"must be > 0, got {value}")
    return value


@main.command("find-lr")
@click.option("--optimizers", default=ALL_OPTIMIZERS, show_default=True, callback=_optimizers,
              help="Comma-separated optimizers, all tested at once in one batched stack.")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(2), help="Steps of the sweep.")
@click.option("--lr-min", default=1e-7, show_default=True, type=float, callback=_positive)
@click.option("--lr-max", default=10.0, show_default=True, type=float, callback=_positive)
@click.option("--smoothing", default=0.98, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="beta of the loss's exponential moving average.")
@click.option("--diverge-factor", default=4.0, show_default=True, type=click.FloatRange(1, min_open=True),
              help="Stop an optimizer when its smoothed loss passes this times its best.")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--widths", default="784,256,128,10", show_default=True, callback=_widths, help="MLP layer widths.")
@click.option("--activation", default="relu", show_default=True, type=click.Choice(["relu", "gelu", "tanh"]))
@click.option("--dropout", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option("--seed", default=0, show_default=True, type=int, help="Initial weights and batch order.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Fashion-MNIST IDX files.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where find_lr.csv, find_lr_curve.csv and find_lr.png go." + _under("find_lr"))
@_precision_option("[default: fp32]")
def find_lr_cmd(optimizers, steps, lr_min, lr_max, smoothing, diverge_factor, batch_size, widths, activation,
                dropout, device, seed, data_dir, out_dir, precision):
    """Smith's LR range test for every optimizer at once; suggests peak learning rates.

    Suggestions per optimizer: the steepest descent of the smoothed loss, the lr of its minimum / 10, and
    their geometric mean ("suggested", what a matrix's peak_lr = "find" uses).
    """
    from rich.console import Console
    from rich.table import Table

    from ..train import FashionMNISTError, load_fashion_mnist
    from ..train import find_lr as F
    from ..train.config import TrainSpec
    from ..train.registry import DeviceError, resolve_device
    if lr_min >= lr_max:
        raise click.BadParameter(f"--lr-min ({lr_min}) must be below --lr-max ({lr_max})", param_hint="--lr-min")
    try:
        device = resolve_device(device)
    except DeviceError as e:
        raise click.BadParameter(str(e), param_hint="--device") from None
    try:
        data = load_fashion_mnist(device, data_dir)
    except FashionMNISTError as e:
        raise click.ClickException(str(e)) from None
    console = Console()
    spec = TrainSpec(batch_size=batch_size, widths=widths, activation=activation, dropout=dropout,
                     precision=precision or "fp32")
    if spec.precision == "bf16":
        _warn_if_bf16_is_slow(console, device)
    with console.status(f"range test: {', '.join(optimizers)} ({steps} steps, {lr_min:g} to {lr_max:g}, "
                        f"{spec.precision})"):
        curve = F.range_test(optimizers, data, spec, device=device, seed=seed, lr_min=lr_min, lr_max=lr_max,
                             steps=steps, smoothing=smoothing, diverge_factor=diverge_factor)
    sug = F.suggest(curve)
    out = Path(out_dir) if out_dir else results_root() / "find_lr"
    table = F.write_results(curve, sug, out, steps=steps, title=f"LR range test ({F.title_of(spec, seed)})",
                            precision=spec.precision)
    t = Table(title="LR range test", title_justify="left")
    for col in ("optimizer", "steepest", "min / 10", "suggested", "stopped at lr"):
        t.add_column(col, justify="left" if col == "optimizer" else "right")
    for r in table.itertuples():
        t.add_row(r.optimizer, f"{r.steepest:.3g}", f"{r.min_over_10:.3g}", f"{r.suggested:.3g}",
                  f"{r.last_lr:.3g}" if r.stopped else f"(not stopped, {r.last_lr:.3g})")
    console.print(t)
    for name in ("find_lr.csv", "find_lr_curve.csv", "find_lr.png"):
        console.print(f"written: {out / name}")


