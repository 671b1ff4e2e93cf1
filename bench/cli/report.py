"""``lrbench report`` (a run's report.html / report.md) and ``lrbench cross-check`` (two runs, paired)."""
from __future__ import annotations

from pathlib import Path

import click

from ..results import RunLocked, RunNotFound, find_run, results_root
from .errors import _again, io_failure, locked_failure
from .group import _root_option, main, missing_message
from .train import measure_step_cost


def resolve_run_dir(run: str, results: Path | None = None) -> Path:
    """A run folder path, a run id under ``<results>/runs/``, or a unique prefix of one; else a usage error
    that lists the runs there."""
    try:
        return find_run(run, results, prefix=True)
    except RunNotFound as e:
        raise click.BadParameter(str(e), param_hint="RUN") from None


@main.command("report")
@click.argument("run")
@_root_option()
@click.option("--measure-step-cost", "measure", is_flag=True,
              help="First (re)measure each optimizer's cost per step on this machine, on the run's chunk shape, "
                   "into the run's step_cost.csv (needs torch; lrbench run does it after training). The report "
                   "turns epochs to target into seconds only with it.")
@click.option("--device", default=None, help="With --measure-step-cost: cpu | cuda[:N] [default: the run's device].")
def report_cmd(run, results_dir, measure, device):
    """Write report.html and report.md for RUN (a run id under results/runs/, or a run folder)."""
    from ..report import ReportError, write_report
    run_dir = resolve_run_dir(run, results_root(results_dir))
    if measure:
        msg = missing_message("run")
        if msg:
            raise click.ClickException(msg.replace("lrbench run", "lrbench report --measure-step-cost"))
        from rich.console import Console
        if measure_step_cost(run_dir, Console(stderr=True), device) is None:
            raise click.ClickException(f"{run_dir}: step cost not measured (see above)")
    try:
        html_path, md_path = write_report(run_dir, results_root(results_dir))
    except ReportError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise io_failure(e, run_dir, results_dir, then=_again()) from None
    except RunLocked as e:
        raise locked_failure(e, "Try again when it has ended (lrbench run writes the report itself when it "
                                "finishes)") from None
    from ..report import answer_line
    click.echo(f"answer: {answer_line(run_dir)}")
    click.echo(f"written: {html_path}")
    click.echo(f"written: {md_path}")
    click.echo(f"written: {run_dir / 'verdicts.csv'}")



@main.command("cross-check")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--out", "out_csv", default=None, type=click.Path(dir_okay=False),
              help="CSV path (default: crossframework.csv in the Keras run's folder; precision.csv in the bf16 run's)")
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="significance level; only 0.05 (the 95% paired t interval) is supported")
def crossframework_cmd(run_a, run_b, out_csv, alpha):
    """Compare two runs of the same configurations, paired over seeds: a PyTorch run and a Keras run (RUN_A the
    PyTorch one), or the same matrix in bf16 and in fp32 (either order: bf16 - fp32, written into the bf16
    run, whose report then says whether bf16 changes a verdict). Runs of different precision are never pooled."""
    import pandas as pd

    from ..report import crossframework as CF
    try:
        precisions = {CF.run_precision(r): r for r in (run_a, run_b)}
        if len(precisions) == 2:  # a comparison of precisions (bench.report.precision)
            from ..report import precision as PR
            if set(precisions) != {"bf16", "fp32"}:
                raise ValueError(f"cross-check: runs of precision {sorted(precisions)}; compare bf16 with fp32")
            if alpha != 0.05:
                raise ValueError(f"cross-check: alpha must be 0.05 (the 95% paired t interval), got {alpha}")
            df, table = PR.compare(precisions["bf16"], precisions["fp32"], out_csv)
            where = Path(out_csv) if out_csv else CF.run_dir(precisions["bf16"]) / "precision.csv"
        else:
            df = CF.compare(run_a, run_b, out_csv, alpha=alpha)
            where = Path(out_csv) if out_csv else CF.run_dir(run_b) / "crossframework.csv"
            table = None
    except (FileNotFoundError, ValueError, RunNotFound) as e:
        raise click.ClickException(str(e)) from None
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        click.echo(df.to_string(index=False))
    if table is not None:
        click.echo(PR.verdict_line(df, table))
    else:
        for metric in dict.fromkeys(df["metric"]):
            click.echo(CF.verdict(df, metric))
    also = f" and {where.with_name(where.stem + '_verdicts.csv')}" if table is not None else ""
    click.echo(f"wrote {where}{also}")




@main.command("verdict-changes")
@click.argument("old_run")
@click.argument("new_run")
@_root_option()
@click.option("--out", "out_csv", default=None, type=click.Path(dir_okay=False),
              help="also write every comparison, changed or not, to this CSV")
@click.option("--all", "show_all", is_flag=True, help="list the unchanged comparisons too")
def verdict_changes_cmd(old_run, new_run, results_dir, out_csv, show_all):
    """Which verdicts changed from OLD_RUN to NEW_RUN (run ids or folders): their verdicts.csv joined by family,
    optimizer, schedule and metric; per family, a count of each old -> new verdict, then the changed rows."""
    from rich.console import Console
    from rich.table import Table

    from ..report import verdict_changes as VC
    root = results_root(results_dir)
    try:
        old_dir, new_dir = resolve_run_dir(old_run, root), resolve_run_dir(new_run, root)
        changes = VC.verdict_changes(VC.read_verdicts(old_dir), VC.read_verdicts(new_dir))
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    console = Console(width=160)
    counts = Table(title=f"verdicts, {old_dir.name} -> {new_dir.name}", title_justify="left")
    for col in ("family", "old", "new", "comparisons"):
        counts.add_column(col, justify="right" if col == "comparisons" else "left")
    for r in VC.transitions(changes).itertuples(index=False):
        counts.add_row(r.family, r.old, r.new, str(r.count), style=None if r.old == r.new else "bold")
    console.print(counts)
    shown = changes if show_all else changes[(changes["change"] != "unchanged") | changes["versus_changed"]]
    if len(shown):
        rows = Table(title="changed comparisons (difference in pp, new run minus its baseline)", title_justify="left")
        for col in ("family", "optimizer", "schedule", "versus (old -> new)", "diff old", "diff new", "change"):
            rows.add_column(col)
        for r in shown.itertuples(index=False):
            versus = f"{r.versus_old} -> {r.versus_new}" if r.versus_changed else (
                r.versus_new if r.change == "only in new" else r.versus_old)
            rows.add_row(r.family, r.optimizer, r.schedule, str(versus), _pp(r.mean_diff_pp_old),
                         _pp(r.mean_diff_pp_new), r.change)
        console.print(rows)
    n_changed = int((changes["change"] != "unchanged").sum())
    click.echo(f"{n_changed} of {len(changes)} comparisons changed (verdict, or present in one run only)")
    if out_csv:
        try:
            changes.to_csv(out_csv, index=False)
        except OSError as e:
            raise io_failure(e) from None
        click.echo(f"wrote {out_csv}")


def _pp(x) -> str:
    return "-" if x != x else f"{x:+.2f}"
