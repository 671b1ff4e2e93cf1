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


if __name__ == "__main__":
    main()
