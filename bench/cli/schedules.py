"""Schedules themselves: ``lrbench conformance`` (lrcore against the frameworks), ``lrbench plot`` and
``lrbench translate``."""
from __future__ import annotations

from pathlib import Path

import click

from ..results import results_root
from .group import _under, main
from .train import _positive


@main.command()
@click.option("--examples", default=200, show_default=True, type=click.IntRange(1),
              help="Random cases per constructor (CI: 20), besides the pinned edge cases.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random parameter draws.")
@click.option("--framework", "frameworks", multiple=True, type=click.Choice(["torch", "keras", "hf", "timm", "optax"]),
              default=("torch", "keras", "hf", "timm", "optax"), show_default=True,
              help="Which frameworks to run (repeatable).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="The summary CSV." + _under("conformance.csv"))
def conformance(examples, seed, frameworks, out_path):
    """Conformance: lrcore.compat against the real PyTorch, Keras, transformers, timm and optax on random valid
    parameters."""
    import time

    from rich.console import Console
    from rich.table import Table

    from reference import conformance as C

    from ..results import write_csv
    console = Console(width=max(Console().width, 100))
    start = time.perf_counter()
    with console.status("running") as status:
        rows = C.run(examples, seed=seed, frameworks=frameworks,
                     log=lambda r: status.update(f"running: {r['framework']} {r['schedule']} done"))
    path = Path(out_path) if out_path else results_root() / "conformance.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["framework", "schedule", "cases", "max_err", "err_measure", "limit", "explained_steps", "verdict"]
    write_csv(path, [{**r, "max_err": f"{r['max_err']:.3g}"} for r in rows], columns, extrasaction="ignore",
              lineterminator="\n")
    t = Table(title=f"conformance: {examples} random cases per constructor + pinned edge cases, seed {seed}",
              title_justify="left")
    for col in ("framework", "schedule", "cases", "max error", "explained steps", "verdict"):
        t.add_column(col, justify="left" if col in ("framework", "schedule", "verdict") else "right", no_wrap=True)
    for r in rows:
        t.add_row(r["framework"], r["schedule"], str(r["cases"]), f"{r['max_err']:.2g}",
                  str(r["explained_steps"]), r["verdict"] if r["verdict"] == "pass" else f"[red]{r['verdict']}[/red]")
    console.print(t)
    console.print("max error: relative (torch, hf, timm, optax: limit 1e-10) or |diff| / (2e-6 |ref| + 1e-6 max|ref|) (keras, "
                  "limit 1); explained steps: see reference/DIFFERENCES.md and reference/explained.py EXPLAINED")
    for r in rows:
        for f in r["failures"][:3]:
            console.print(f"[red]mismatch[/red] {C.describe(f)}", soft_wrap=True)
    cases = sum(r["cases"] for r in rows)
    console.print(f"{cases} cases in {time.perf_counter() - start:.0f} s; written: {path}")
    if any(r["failures"] for r in rows):
        raise SystemExit(1)



@main.command("plot")
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
    from ..report.schedules import ScheduleTextError, plot
    if Path(out).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise click.BadParameter(f"the file name must end in .png, .svg or .pdf, got {out!r}", param_hint="--out")
    try:
        path = plot(list(schedules), steps, out, peak=peak, log=log)
    except ScheduleTextError as e:
        raise click.BadParameter(str(e), param_hint="SCHEDULES") from None
    except OSError as e:
        raise click.BadParameter(e.strerror or str(e), param_hint="--out") from None
    click.echo(f"written: {path}")

@main.command("translate")
@click.argument("text")
@click.option("--to", "target", required=True, type=click.Choice(["torch", "keras", "hf", "timm", "optax"]),
              help="The framework to write the schedule in.")
@click.option("--from", "source", default=None, type=click.Choice(["lrcore", "torch", "keras", "hf", "timm", "optax"]),
              help="What TEXT is: lrcore's text form, or a package's own constructor call (default: the framework "
                   "whose constructor TEXT names).")
@click.option("--lr", default=None, type=float,
              help="The optimizer's learning rate, for torch, hf and timm code (not needed where the constructor "
                   "sets it: OneCycleLR's max_lr, CyclicLR's base_lr).")
@click.option("--steps", default=None, type=click.IntRange(min=1),
              help="Exact on steps 0..N-1 only (the text says so); without it, exact on every step or refused.")
def translate(text, target, source, lr, steps):
    """Print the constructor call that reproduces a schedule exactly in another framework, e.g.
    lrbench translate "get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=100,
    num_training_steps=1000)" --lr 3e-4 --to optax --steps 1000."""
    import lrcore
    from lrcore.codeform import MissingLR, guess_framework, unknown_hint
    try:
        if source is None:
            source = guess_framework(text)
            if source is None:
                raise ValueError(f"translate: {unknown_hint(text)}")
            if source != "lrcore":
                click.echo(f"(reading TEXT as {source} code: --from {source})", err=True)
        schedule = lrcore.parse(text) if source == "lrcore" else lrcore.from_code(text, source, lr=lr)
        click.echo(lrcore.to_code(schedule, target, steps=steps))
    except MissingLR as e:
        raise click.ClickException(f"--lr is required: {str(e).partition(': ')[2].partition(':')[0]}: give the "
                                   "optimizer's learning rate, e.g. --lr 0.1") from None
    except (ValueError, TypeError) as e:
        message = str(e)
        if source == "lrcore" and message.startswith("unknown schedule"):
            message = f"translate: {unknown_hint(text)}"
        raise click.ClickException(message) from None


