"""The asv history of one machine at a glance: a few headline numbers per recorded commit, as a table and a
figure (``results/asv/<machine>/timeline.csv`` and ``timeline.png``), written by ``make track`` after it
measures and by ``python -m bench.speed.timeline [--machine NAME]`` (default: every machine).

asv's own graphs (``asv publish``) stay generated, not committed; this digest is small enough to commit
beside the results it reads. Commits run in measuring order: by commit date, oldest first. A point measured
by other benchmark code than the newest point of its series (asv's benchmark ``version``, a hash of the
benchmark's source) is drawn hollow and not joined to the others: asv does not compare it either.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "asv"


@dataclass(frozen=True)
class Series:
    """One headline number: ``benchmark`` at the parameter combination ``params`` (asv's repr of each value),
    times ``scale``; ``better`` is "lower" or "higher"."""
    label: str
    benchmark: str
    params: tuple[str, ...]
    unit: str
    scale: float = 1.0
    better: str = "lower"


HEADLINES = (
    Series("warmup+cosine, 1M steps (numba)", "evaluate.Evaluate.time_evaluate",
           ("'numba'", "'warmup_cosine'", "1000000"), "ms", 1e3),
    Series("cosine restarts, 1M steps (numba)", "evaluate.Evaluate.time_evaluate",
           ("'numba'", "'restarts'", "1000000"), "ms", 1e3),
    Series("1,000 schedules at once (numba)", "evaluate.EvaluateMany.time_evaluate_many",
           ("'numba'", "1000"), "ms", 1e3),
    Series("kernels' share of the write limit (evaluate_many)", "evaluate.FamilyShare.track_share",
           ("'evaluate_many'",), "share", better="higher"),
    Series("one training step, 36 models (batched)", "training.TrainStep.time_step",
           ("'batched'", "36"), "ms", 1e3),
    Series("batched / sequential step time, same run", "ratios.Ratios.track_batched_over_sequential",
           (), "ratio"),
    Series("one bf16 training step, 36 models", "training.TrainStepBF16.time_step", ("36",), "ms", 1e3),
    Series("short training: mean test error", "accuracy.ShortTraining.track_test_error_rate",
           ("'mean'",), "error rate"),
    Series("peak memory, a chunk of 16 models", "memory.ChunkMemory.peakmem_train_chunk", ("16",), "MB", 1e-6),
)


def _value(entry: list, columns: list[str], params: tuple[str, ...]) -> float:
    """The result of one parameter combination in an asv result entry (``results[name]``); NaN if absent."""
    row = dict(zip(columns, entry))
    values, grid = row.get("result"), row.get("params") or []
    if values is None:
        return math.nan
    combos = list(itertools.product(*grid))  # asv's order: the last parameter varies fastest
    try:
        v = values[combos.index(params)]
    except ValueError:
        return math.nan
    return math.nan if v is None else float(v)


def load(folder: Path, series=HEADLINES) -> pd.DataFrame:
    """One row per recorded commit and series: commit, date, label, value, unit, version, current (measured
    by the newest benchmark code of its series). Oldest commit first."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        if path.name in ("machine.json", "benchmarks.json"):
            continue
        data = json.loads(path.read_text())
        columns, results = data["result_columns"], data["results"]
        for s in series:
            entry = results.get(s.benchmark)
            value = math.nan if entry is None else _value(entry, columns, s.params) * s.scale
            version = None if entry is None else dict(zip(columns, entry)).get("version")
            rows.append({"commit": data["commit_hash"][:7], "date": pd.to_datetime(data["date"], unit="ms", utc=True),
                         "label": s.label, "value": value, "unit": s.unit, "version": version})
    if not rows:
        raise FileNotFoundError(f"no asv result files in {folder} (run `make track` first)")
    out = pd.DataFrame(rows).sort_values(["date", "commit"], kind="stable").reset_index(drop=True)
    newest = out.dropna(subset=["value"]).groupby("label")["version"].last()
    out["current"] = out["version"].eq(out["label"].map(newest))
    return out


def table(long: pd.DataFrame) -> pd.DataFrame:
    """The wide table: a row per commit (oldest first), a column per series ("label (unit)")."""
    long = long.assign(column=long["label"] + " (" + long["unit"] + ")")
    columns, commits = list(dict.fromkeys(long["column"])), list(dict.fromkeys(long["commit"]))
    wide = long.pivot(index="commit", columns="column", values="value").reindex(index=commits, columns=columns)
    dates = long.drop_duplicates("commit").set_index("commit")["date"]
    return wide.rename_axis(columns=None).reset_index().assign(date=lambda t: t["commit"].map(dates))[
        ["commit", "date", *columns]]


def figure(long: pd.DataFrame, machine: str, series=HEADLINES):
    """A panel per series, commits along x; hollow points: other benchmark code (not joined)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    commits = list(dict.fromkeys(long["commit"]))
    x = {c: i for i, c in enumerate(commits)}
    ncol = 3
    nrow = math.ceil(len(series) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.1 * nrow), sharex=True, squeeze=False)
    for ax, s in zip(axes.flat, series):
        d = long[long["label"] == s.label].dropna(subset=["value"])
        cur, old = d[d["current"]], d[~d["current"]]
        ax.plot([x[c] for c in cur["commit"]], cur["value"], "o-", ms=3.5, color="tab:blue")
        ax.plot([x[c] for c in old["commit"]], old["value"], "o", ms=3.5, mfc="none", color="tab:gray")
        ax.set_title(f"{s.label}\n({s.unit}, {s.better} is better)", fontsize=8.5)
        ax.set_ylim(bottom=0)  # from zero: one-sample noise should not look like a change
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if d.empty:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="gray")
    for ax in axes.flat[len(series):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xticks(range(len(commits)), commits, rotation=90, fontsize=6.5)
    fig.suptitle(f"asv history on {machine}: {len(commits)} commits, oldest first "
                 "(hollow: measured by older benchmark code)", fontsize=10)
    fig.tight_layout()
    return fig


def write(machine: str, results: Path = RESULTS) -> tuple[Path, Path]:
    """``timeline.csv`` and ``timeline.png`` in ``results/<machine>/``; returns their paths."""
    folder = results / machine
    long = load(folder)
    csv, png = folder / "timeline.csv", folder / "timeline.png"
    table(long).to_csv(csv, index=False, float_format="%.6g")
    fig = figure(long, machine)
    fig.savefig(png, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return csv, png


def machines(results: Path = RESULTS) -> list[str]:
    """The machine folders under ``results`` that hold asv result files."""
    return sorted({p.parent.name for p in results.glob("*/*.json") if p.name != "machine.json"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed.timeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--machine", action="append", help="an asv machine folder under results/asv (repeatable; "
                    "default: every folder with results)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="asv's results folder (default: %(default)s)")
    args = ap.parse_args(argv)
    for machine in args.machine or machines(args.results):
        try:
            paths = write(machine, args.results)
        except FileNotFoundError as exc:
            ap.error(f"--machine {machine}: {exc}")
        for path in paths:
            print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
