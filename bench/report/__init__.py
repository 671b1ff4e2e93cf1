"""The comparison report of a run: statistics, the PyTorch-vs-Keras verdict, figures, HTML and Markdown.

Reads result files (a run folder, the results root's conformance and speed tables) and lrcore, never the
runner or the trainers. Entry points: ``write_report`` and ``write_verdicts`` (``render``), ``compare`` (``crossframework``), and
``schedules.plot`` (``lrbench plot``).
"""
from .crossframework import compare
from .render import ReportError, answer_line, build_report, write_report, write_verdicts

__all__ = ["write_report", "write_verdicts", "answer_line", "build_report", "ReportError", "compare"]
