"""``lrbench report``, ``lrbench find-lr`` and ``lrbench plot`` (click commands; bench/cli.py registers them)."""
from __future__ import annotations

from pathlib import Path

import click

RESULTS = Path(__file__).resolve().parent.parent / "results"
ALL_OPTIMIZERS = "sgd,momentum,nesterov,rmsprop,adam,adamw"

__all__ = ["report_cmd", "find_lr_cmd", "plot_cmd", "resolve_run_dir"]


def resolve_run_dir(run: str, results: Path) -> Path:
    """A run folder path, a run id under ``results/runs/``, or a unique prefix of one; else a ClickException
    that lists the runs there."""
    p = Path(run)
    if (p / "meta.json").is_file():
        return p
    runs_dir = Path(results) / "runs"
    runs = sorted(q.name for q in runs_dir.glob("*") if (q / "meta.json").is_file()) if runs_dir.is_dir() else []
    if run in runs:
        return runs_dir / run
    matches = [r for r in runs if r.startswith(run)]
    if len(matches) == 1:
        return runs_dir / matches[0]
    if len(matches) > 1:
        raise click.BadParameter(f"{run!r} matches several runs: {', '.join(matches)}", param_hint="RUN")
    listing = ", ".join(runs) if runs else "none"
    raise click.BadParameter(f"no run {run!r}: not a folder with a meta.json, and not a run under {runs_dir} "
                             f"(runs there: {listing})", param_hint="RUN")


@click.command("report")
@click.argument("run")
@click.option("--results", "results_dir", default=str(RESULTS), show_default=True,
              type=click.Path(file_okay=False), help="The results folder (runs/, conformance.csv, speed/).")
def report_cmd(run, results_dir):
    """Write report.html and report.md for RUN (a run id under results/runs/, or a run folder)."""
    from .report import ReportError, write_report
    run_dir = resolve_run_dir(run, Path(results_dir))
    try:
        html_path, md_path = write_report(run_dir, Path(results_dir))
    except ReportError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"written: {html_path}")
    click.echo(f"written: {md_path}")


def _widths(ctx, param, value):
    try:
        w = tuple(int(x) for x in value.replace(" ", "").split(",") if x)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 784,256,128,10, got {value!r}") from None
    if len(w) < 2 or min(w) < 1 or w[0] != 784 or w[-1] != 10:
        raise click.BadParameter(f"need >= 2 positive widths from 784 (pixels) to 10 (classes), got {value!r}")
    return w


def _optimizers(ctx, param, value):
    from .trainer import OPTIMIZERS
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


@click.command("find-lr")
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
@click.option("--out", "out_dir", default=str(RESULTS / "find_lr"), show_default=True,
              type=click.Path(file_okay=False), help="Where find_lr.csv, find_lr_curve.csv and find_lr.png go.")
def find_lr_cmd(optimizers, steps, lr_min, lr_max, smoothing, diverge_factor, batch_size, widths, activation,
                dropout, device, seed, data_dir, out_dir):
    """Smith's LR range test for every optimizer at once; suggests peak learning rates.

    Suggestions per optimizer: the steepest descent of the smoothed loss, the lr of its minimum / 10, and
    their geometric mean ("suggested", what a matrix's peak_lr = "find" uses).
    """
    import torch
    from rich.console import Console
    from rich.table import Table

    from . import find_lr as F
    from .data import FashionMNISTError, load_fashion_mnist
    if lr_min >= lr_max:
        raise click.BadParameter(f"--lr-min ({lr_min}) must be below --lr-max ({lr_max})", param_hint="--lr-min")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter("this machine has no CUDA GPU", param_hint="--device")
    elif device != "cpu" and not device.startswith("cuda"):
        raise click.BadParameter(f"expected auto, cpu, cuda or cuda:N, got {device!r}", param_hint="--device")
    try:
        data = load_fashion_mnist(device, data_dir)
    except FashionMNISTError as e:
        raise click.ClickException(str(e)) from None
    console = Console()
    with console.status(f"range test: {', '.join(optimizers)} ({steps} steps, {lr_min:g} to {lr_max:g})"):
        curve = F.range_test(optimizers, data, widths=widths, activation=activation, dropout=dropout,
                             batch_size=batch_size, device=device, seed=seed, lr_min=lr_min, lr_max=lr_max,
                             steps=steps, smoothing=smoothing, diverge_factor=diverge_factor)
    sug = F.suggest(curve)
    out = Path(out_dir)
    table = F.write_results(curve, sug, out, steps=steps, title=f"LR range test ({'-'.join(map(str, widths))} "
                            f"{activation}, batch {batch_size}, seed {seed})")
    t = Table(title="LR range test", title_justify="left")
    for col in ("optimizer", "steepest", "min / 10", "suggested", "stopped at lr"):
        t.add_column(col, justify="left" if col == "optimizer" else "right")
    for r in table.itertuples():
        t.add_row(r.optimizer, f"{r.steepest:.3g}", f"{r.min_over_10:.3g}", f"{r.suggested:.3g}",
                  f"{r.last_lr:.3g}" if r.stopped else f"(not stopped, {r.last_lr:.3g})")
    console.print(t)
    for name in ("find_lr.csv", "find_lr_curve.csv", "find_lr.png"):
        console.print(f"written: {out / name}")


@click.command("plot")
@click.argument("schedules", nargs=-1, required=True)
@click.option("--steps", required=True, type=click.IntRange(1, 2 ** 62),
              help="Steps to draw (the placeholder `total`); above 100,000 the curves are sampled at 100,000 "
                   "evenly spaced steps.")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output image (.png, .svg or .pdf).")
@click.option("--peak", default=None, type=float, callback=lambda c, p, v: v if v is None else _positive(c, p, v),
              help="Value of the placeholder `peak`.")
@click.option("--log", is_flag=True, help="Logarithmic learning-rate axis.")
def plot_cmd(schedules, steps, out, peak, log):
    """Draw one or more schedules given as text, e.g. "Cosine(lr=0.1, decay_steps=1000)" (and momentum
    where they cycle it)."""
    from .plot_schedules import ScheduleTextError, plot
    if Path(out).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise click.BadParameter(f"the file name must end in .png, .svg or .pdf, got {out!r}", param_hint="--out")
    try:
        path = plot(list(schedules), steps, out, peak=peak, log=log)
    except ScheduleTextError as e:
        raise click.BadParameter(str(e), param_hint="SCHEDULES") from None
    except OSError as e:
        raise click.BadParameter(e.strerror or str(e), param_hint="--out") from None
    click.echo(f"written: {path}")
