"""The comparison report of a run: statistics, the PyTorch-vs-Keras verdict, figures, HTML and Markdown.

Reads result files (a run folder, the results root's conformance and speed tables) and lrcore, never the
runner or the trainers. Entry points: ``write_report`` (``render``), ``compare`` (``crossframework``), and
``schedules.plot`` (``lrbench plot``).
"""
from .crossframework import compare
from .render import ReportError, build_report, write_report

__all__ = ["write_report", "build_report", "ReportError", "compare"]
