"""The ``lrbench`` command line, one module per command group, each command a thin layer over bench's subpackages:
``train`` (run, find-lr), ``speed`` (speed, train-speed), ``report`` (report, cross-check), ``schedules``
(conformance, plot, translate), ``reference`` (docs-cli); the group and shared options in ``group``, how every
command fails (one line, its own exit status) in ``errors``.

Results go under the results root (``--results``, else ``$LRBENCH_RESULTS``, else ``./results``;
``bench.results``). After a run the command writes the report (``bench.report``): the runner itself never
imports the report.
"""
from . import reference, report, schedules, speed, train  # noqa: F401  (each registers its commands on main)
from .errors import EXIT_IO, EXIT_LOCKED, Failure, io_failure, locked_failure
from .group import main, missing_message
from .reference import CLI_REFERENCE, REGENERATE, cli_reference
from .report import crossframework_cmd, report_cmd, resolve_run_dir
from .schedules import plot_cmd
from .train import _print_run, find_lr_cmd, measure_step_cost, write_run_report

__all__ = ["main", "Failure", "io_failure", "locked_failure", "missing_message", "EXIT_IO", "EXIT_LOCKED",
           "CLI_REFERENCE", "REGENERATE", "cli_reference", "report_cmd", "crossframework_cmd", "resolve_run_dir",
           "plot_cmd", "find_lr_cmd", "measure_step_cost", "write_run_report", "_print_run"]
