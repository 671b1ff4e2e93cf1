"""The ``lrbench`` click group, what each command needs installed, and the options several commands share."""
from __future__ import annotations

import importlib.util
import warnings

import click

from ..results import DEFAULT_HELP, ENV_VAR
from .errors import map_errors

ALL_OPTIMIZERS = "sgd,momentum,nesterov,rmsprop,adam,adamw"


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



class _Main(click.Group):
    """The group: a run folder locked by another writer, or an OSError naming a file, ends any command in one
    line and its own exit status instead of a traceback (:mod:`bench.cli.errors`)."""

    def invoke(self, ctx):
        return map_errors(lambda: super(_Main, self).invoke(ctx))


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


def _precision_option(help_default: str, multiple: bool = False):
    return click.option("--precision", type=click.Choice(["fp32", "bf16"]), default=None, multiple=multiple,
                        help="fp32, or bf16: the matmuls in bfloat16 with float32 master weights, optimizer state, "
                             "loss and softmax (torch.autocast's recipe); runs of different precision are never "
                             "pooled. " + help_default)


def _warn_if_bf16_is_slow(console, device) -> None:
    """Before training: say so where bfloat16 will be slower than float32 (no bf16 arithmetic in hardware)."""
    from ..machine import bf16_slow_reason
    reason = bf16_slow_reason(device)
    if reason:
        console.print(f"[yellow]warning[/yellow]: --precision bf16 will train slower than fp32 here: {reason}.",
                      soft_wrap=True)


