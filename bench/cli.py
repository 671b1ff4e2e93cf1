"""The ``lrbench`` command line: every command, each a thin layer over bench's subpackages.

Results go under the results root (``--results``, else ``$LRBENCH_RESULTS``, else ``./results``;
``bench.results``). After a run or a merge the command writes the report (``bench.report``): the runner
itself never imports the report.
"""
from __future__ import annotations

import errno
import importlib.util
import os
import shlex
import sys
import warnings
from pathlib import Path

import click

from .results import DEFAULT_HELP, ENV_VAR, RunLocked, RunNotFound, find_run, results_root

ALL_OPTIMIZERS = "sgd,momentum,nesterov,rmsprop,adam,adamw"
#: Exit status when results could not be written (sysexits' EX_IOERR) and when another process is writing
#: the run (EX_TEMPFAIL: try again later); any other error exits 1, a bad argument 2.
EXIT_IO, EXIT_LOCKED = 74, 75


def _under(sub: str) -> str:
    """How an output default under the results root reads in --help (never a path inside the package)."""
    return f"  [default: ${ENV_VAR}/{sub}, else ./results/{sub}]"


def _root_option():
    return click.option("--results", "results_dir", default=None, type=click.Path(file_okay=False),
                        help=f"The results root (runs/, conformance.csv, speed/).  [default: {DEFAULT_HELP}]")


#: What each command imports beyond lrcore's numpy + numba + click, and the extra that installs it.
NEEDS = {"run": ("torch", "pandas", "pyarrow", "matplotlib", "rich"), "train-speed": ("torch", "pandas", "rich"),
         "find-lr": ("torch", "pandas", "matplotlib", "rich"), "conformance": ("torch", "pandas", "rich"),
         "report": ("pandas", "pyarrow", "matplotlib"), "cross-check": ("pandas", "pyarrow", "rich"),
         "plot": ("matplotlib",), "speed": ("pandas", "rich", "mpmath")}
EXTRA = {"torch": "torch", "tensorflow": "keras", "keras": "keras", "pandas": "bench", "pyarrow": "bench",
         "matplotlib": "bench", "rich": "bench", "mpmath": "bench"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_message(command: str) -> str | None:
    """What ``command`` lacks, and the pip line that adds it (None when nothing is missing)."""
    missing = [m for m in NEEDS.get(command, ()) if not _installed(m)]
    if not missing:
        return None
    extras = ",".join(sorted({EXTRA[m] for m in missing}))
    msg = f"lrbench {command} needs {', '.join(missing)}, not installed here: pip install 'lrbench[{extras}]'"
    if "torch" in missing:
        msg += ("\n(PyTorch trains the models. Install the build for your machine first, e.g. the CPU build on a "
                "machine without a GPU, as the README's set-up does: an unpinned torch brings the CUDA build.)")
    return msg


class Failure(click.ClickException):
    """A one-line error with its own exit status."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


#: What to do about an errno, in the one-line message of an OSError.
_ADVICE = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some of your disk quota",
           errno.EFBIG: "raise the file-size limit (ulimit -f)",
           errno.EACCES: "make the folder writable or give another --results",
           errno.EPERM: "make the folder writable or give another --results",
           errno.EROFS: "give a --results on a writable file system",
           errno.ENOENT: "create the folder again (was the results folder moved or removed?)"}


def _again() -> str:
    return shlex.join(["lrbench", *sys.argv[1:]])


def _run_ref(run_dir: Path, results_dir: str | None) -> str:
    """How a command names the run: its id (with --results when one was given) under the results root,
    else its folder."""
    if run_dir.parent == results_root(results_dir) / "runs":
        return shlex.join([run_dir.name, *(["--results", str(results_dir)] if results_dir else [])])
    return shlex.quote(str(run_dir))


def io_failure(e: OSError, run_dir: Path | None = None, results_dir: str | None = None,
               then: str | None = None) -> Failure:
    """The one line for an OSError: the path, the errno's meaning, what is saved, the command that continues."""
    import json
    code = errno.errorcode.get(e.errno, f"errno {e.errno}") if e.errno is not None else "no errno"
    meaning = f"{e.filename or 'a file'}: {os.strerror(e.errno) if e.errno else e.strerror or e} ({code})"
    meta = {}
    if run_dir is not None:
        try:
            meta = json.loads((run_dir / "meta.json").read_text())
        except (OSError, ValueError):
            pass
    if run_dir is None:
        saved, nxt = "Its results are not saved", _again()
    elif not meta:
        saved, nxt = f"Nothing of run {run_dir.name} is saved", _again()
    elif meta.get("status") == "complete":
        saved = f"Run {run_dir.name} is complete and saved in {run_dir} (summary.csv, epochs.parquet, meta.json)"
        nxt = f"lrbench report {_run_ref(run_dir, results_dir)}"
    else:
        done = len(list((run_dir / "parts").glob("chunk-*.json")))
        saved = f"Run {run_dir.name} has {done} of {len(meta.get('chunks', []))} chunks saved in {run_dir / 'parts'}"
        nxt = f"lrbench run --resume {_run_ref(run_dir, results_dir)}"
    advice = _ADVICE.get(e.errno, "fix the cause")
    if run_dir is None:  # commands that write outside runs take --out too
        advice = advice.replace("--results", "--results or --out")
    return Failure(f"{meaning}. {saved}; {advice}, then: {then or nxt}", EXIT_IO)


def locked_failure(e: RunLocked, todo: str) -> Failure:
    return Failure(f"{e}. {todo}", EXIT_LOCKED)


class _Main(click.Group):
    """The group: a run folder locked by another writer, or an OSError naming a file, ends any command in one
    line and its own exit status instead of a traceback (commands that write runs add what is saved)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RunLocked as e:
            raise locked_failure(e, "One writer at a time: try again when it has ended") from None
        except OSError as e:
            if e.filename is None:  # not about a file (a socket, a closed pipe): not ours to explain
                raise
            raise io_failure(e) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx):
    """lrbench: learning-rate schedules, their conformance and their benchmark."""
    with warnings.catch_warnings():  # click 9 moves protected_args into args
        warnings.simplefilter("ignore", DeprecationWarning)
        rest = [*getattr(ctx, "protected_args", []), *ctx.args]
    if ctx.invoked_subcommand and not {"-h", "--help"} & set(rest):
        msg = missing_message(ctx.invoked_subcommand)
        if msg:
            raise click.ClickException(msg)


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
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where evaluate_cpu.csv/.json go." + _under("speed"))
def speed(steps, many, many_steps, repeats, torch_steps, keras_steps, out_dir):
    """Evaluator speed: lrcore numba vs numpy, a numpy closed form, PyTorch and Keras, in one run."""
    from rich.console import Console
    from rich.table import Table

    from .machine import machine
    from .speed import evaluator as sp
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

    from .results import write_csv
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
                  "limit 1); explained steps: see reference/DIFFERENCES.md and reference/conformance.py EXPLAINED")
    for r in rows:
        for f in r["failures"][:3]:
            console.print(f"[red]mismatch[/red] {C.describe(f)}", soft_wrap=True)
    cases = sum(r["cases"] for r in rows)
    console.print(f"{cases} cases in {time.perf_counter() - start:.0f} s; written: {path}")
    if any(r["failures"] for r in rows):
        raise SystemExit(1)


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


def _precision_option(help_default: str, multiple: bool = False):
    return click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None, multiple=multiple,
                        help="fp32, or bf16: the matmuls in bfloat16 with float32 master weights, optimizer state, "
                             "loss and softmax (torch.autocast's recipe); runs of different precision are never "
                             "pooled. " + help_default)


def _warn_if_bf16_is_slow(console, device) -> None:
    """Before training: say so where bfloat16 will be slower than float32 (no bf16 arithmetic in hardware)."""
    from .machine import bf16_slow_reason
    reason = bf16_slow_reason(device)
    if reason:
        console.print(f"[yellow]warning[/yellow]: --precision bf16 will train slower than fp32 here: {reason}.",
                      soft_wrap=True)


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
@click.option("--no-report", is_flag=True, help="Do not write report.html / report.md at the end.")
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
    import warnings

    from rich.console import Console

    from .matrix import MatrixError, load_matrix, parse_seeds
    from .matrix.executors import ExecutorError, make_executor
    from .matrix.runner import CorruptPartWarning, RunError, RunWriteError, run_matrix
    from .train import FashionMNISTError
    from .train.registry import DeviceError, pick_trainer, resolve_device
    console = Console(stderr=True)
    show = warnings.showwarning

    def show_warning(message, category, *args, **kwargs):
        if issubclass(category, CorruptPartWarning):
            console.print(f"[yellow]warning[/yellow]: {message}", soft_wrap=True)
        else:
            show(message, category, *args, **kwargs)
    warnings.showwarning = show_warning
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
            if changes:
                matrix = matrix.replace(**changes)
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
    if executor == "local":  # Ray workers' machines are not this one: measure there
        from .speed.postrun import roofline_of_run
        roofline_of_run(run_dir)  # the first chunk's step against its own limit (meta.json)
        if not no_step_cost:
            measure_step_cost(run_dir, console)
    if not no_report:
        try:
            write_run_report(run_dir, results_root(results_dir))
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

    from .speed import step_cost
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


def write_run_report(run_dir: Path, results_dir: Path):
    """report.html / report.md of a complete, whole (unsharded) run; None for a shard (merge it first)."""
    import json

    from .report import write_report
    meta = json.loads((Path(run_dir) / "meta.json").read_text())
    if meta.get("status") != "complete" or meta.get("shard", "1/1") != "1/1":
        return None
    return write_report(run_dir, results_dir)


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
    for name in ("report.html", "report.md"):
        if (run_dir / name).is_file():
            out.print(f"report: {run_dir / name}")
    out.print(f"written: {run_dir}")


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
    from rich.table import Table

    from .matrix import MatrixError, load_matrix
    from .speed import trainer as trainer_speed
    from .train import FashionMNISTError, load_fashion_mnist
    from .train.registry import DeviceError, resolve_device
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
    t = Table(title=f"training throughput, matrix {matrix.name}, {epochs} epoch(s), {rows[0]['device_name']}, "
                    f"{rows[0]['torch_threads']} torch threads", title_justify="left")
    cols = ["trainer", "precision", "models", "model-epochs/s", "samples/s", "GFLOP/s", "of fp32 matmul",
            "x sequential"] + (["x fp32"] if len(precisions) > 1 else [])
    for col in cols:
        t.add_column(col, justify="left" if col in ("trainer", "precision") else "right")
    for r in rows:
        t.add_row(r["trainer"], r["precision"], str(r["n_models"]), f"{r['model_epochs_per_s']:.3g}",
                  f"{r['samples_per_s']:.3g}", f"{r['flop_per_s'] / 1e9:.3g}", f"{r['flop_fraction_of_matmul']:.0%}",
                  f"{r['speedup_vs_sequential']:.2f}x",
                  *([f"{r['speedup_vs_fp32']:.2f}x" if r.get("speedup_vs_fp32") else ""]
                    if len(precisions) > 1 else []))
    console.print(t)
    roofs = [r for r in rows if r.get("roofline_ms")]
    if roofs:
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
        console.print(t)
    if profile:
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
        console.print(t)
    mm = f"torch float32 1024^3 matmul: {rows[0]['matmul_flop_per_s'] / 1e9:.3g} GFLOP/s"
    if rows[-1]["trainer"] == "keras":
        mm += f" (TensorFlow's, for the keras row: {rows[-1]['matmul_flop_per_s'] / 1e9:.3g})"
    console.print(f"{mm}; written: {path}")
    if rows[0]["device"].startswith("cuda"):
        console.print(trainer_speed.CUDA_SEQUENTIAL_NOTE)


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
    from .report import ReportError, write_report
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
    from .train.config import OPTIMIZERS
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

    from .train import FashionMNISTError, load_fashion_mnist
    from .train import find_lr as F
    from .train.config import TrainSpec
    from .train.registry import DeviceError, resolve_device
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
    from .report.schedules import ScheduleTextError, plot
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
@click.option("--from", "source", default="lrcore", show_default=True,
              type=click.Choice(["lrcore", "torch", "keras", "hf", "timm", "optax"]),
              help="What TEXT is: lrcore's text form, or a package's own constructor call.")
@click.option("--lr", default=None, type=float, help="The optimizer's learning rate (--from torch, hf, timm).")
def translate(text, target, source, lr):
    """Print the constructor call that reproduces a schedule exactly in another framework, e.g.
    lrbench translate "get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=100,
    num_training_steps=1000)" --from hf --lr 3e-4 --to optax."""
    import lrcore
    try:
        schedule = lrcore.parse(text) if source == "lrcore" else lrcore.from_code(text, source, lr=lr)
        click.echo(lrcore.to_code(schedule, target))
    except (ValueError, TypeError) as e:
        raise click.ClickException(str(e)) from None


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

    from .report import crossframework as CF
    try:
        precisions = {CF.run_precision(r): r for r in (run_a, run_b)}
        if len(precisions) == 2:  # a comparison of precisions (bench.report.precision)
            from .report import precision as PR
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


# ------------------------------------------------------------------------------------- the CLI reference

CLI_REFERENCE = "docs/CLI.md"
REGENERATE = f"python -m bench.cli docs-cli -o {CLI_REFERENCE}"
EXIT_CODES = [(0, "success"), (1, "an error, said in one line (a failed chunk, a bad matrix, ...)"),
              (2, "a bad argument or option (click's usage error)"),
              (EXIT_IO, "results could not be written (a full disk, a file-size limit, no permission, a read-only "
                        "file system): the line names the file, the error, what is saved and the command that "
                        "continues (`lrbench run --resume ID`, `lrbench report ID`)"),
              (EXIT_LOCKED, "another process is writing the run folder: the line names its pid, host, command "
                            "and start; nothing was changed"),
              (130, "interrupted (Ctrl-C, SIGTERM): finished chunks are saved, `lrbench run --resume ID` continues")]


def _type_text(p: click.Parameter) -> str:
    """How an option's values read in the reference (the same under every click version)."""
    if getattr(p, "is_flag", False):
        return "flag"
    t, info = p.type, p.type.to_info_dict()
    if isinstance(t, click.Choice):
        return "|".join(map(str, t.choices))
    if isinstance(t, (click.IntRange, click.FloatRange)):
        kind = "INTEGER" if isinstance(t, click.IntRange) else "FLOAT"
        lo = "" if info["min"] is None else f"{info['min']} {'<' if info['min_open'] else '<='} "
        hi = "" if info["max"] is None else f" {'<' if info['max_open'] else '<='} {info['max']}"
        return f"{lo}{kind}{hi}"
    if isinstance(t, click.Path):
        return "FOLDER" if not info["file_okay"] else "FILE" if not info["dir_okay"] else "PATH"
    return {"integer": "INTEGER", "float": "FLOAT", "text": "TEXT", "boolean": "BOOLEAN"}.get(info["name"],
                                                                                             info["name"].upper())


def _default_text(p: click.Parameter) -> str:
    d = p.default
    if getattr(p, "is_flag", False):
        return "on" if d is True else "off"
    if isinstance(d, (tuple, list)):
        return ", ".join(map(str, d))
    return str(d) if isinstance(d, (str, int, float)) and not isinstance(d, bool) else ""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def cli_reference() -> str:
    """docs/CLI.md: every command with its help, arguments, options, their values and defaults, from the click
    commands themselves (``lrbench docs-cli``; tests/test_docs.py keeps the file equal to this)."""
    import inspect
    out = ["# lrbench command reference", "",
           f"Generated from the click commands by `{REGENERATE}`; do not edit by hand (tests/test_docs.py fails "
           "when it is stale). Every command takes `-h` / `--help`.", "",
           "Exit status of every command:", ""]
    out += [f"- `{code}`: {what}" for code, what in EXIT_CODES]
    ctx = click.Context(main, info_name="lrbench")
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        args = [p for p in cmd.params if isinstance(p, click.Argument)]
        usage = " ".join(["lrbench", name, "[OPTIONS]" if any(isinstance(p, click.Option) for p in cmd.params)
                          else "", *(p.human_readable_name + ("..." if p.nargs == -1 else "") for p in args)])
        out += ["", f"## lrbench {name}", "", inspect.cleandoc(cmd.help or "").replace("\b\n", ""), "",
                f"Usage: `{' '.join(usage.split())}`", "", "| option | values | default | what |", "|---|---|---|---|"]
        for p in cmd.params:
            if isinstance(p, click.Argument):
                out.append(f"| `{p.human_readable_name}` | {_cell(_type_text(p))} | | "
                           f"{'required' if p.required else 'optional'}{', repeatable' if p.nargs == -1 else ''} |")
            elif not p.hidden:
                opts = " / ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
                help_ = p.help or ""
                help_ += " (repeatable)" if p.multiple and "repeatable" not in help_ else ""
                help_ += " (required)" if p.required else ""
                out.append(f"| {opts} | {_cell(_type_text(p))} | {_cell(_default_text(p))} | {_cell(help_)} |")
    return "\n".join(out) + "\n"


@main.command("docs-cli", hidden=True)
@click.option("-o", "--out", "out", default=None, type=click.Path(dir_okay=False),
              help=f"Write the reference here (e.g. {CLI_REFERENCE}) instead of printing it.")
def docs_cli(out):
    """Print (or write) the Markdown reference of every command: docs/CLI.md."""
    text = cli_reference()
    if out is None:
        click.echo(text, nl=False)
    else:
        from .results import write_text
        write_text(out, text)
        click.echo(f"written: {out}")


if __name__ == "__main__":
    main()
