"""The benchmark matrix: its spec (TOML files, built-ins in ``builtin/``), the runner, its progress display.

Entry points: ``load_matrix`` and ``Matrix`` (``spec``; no torch import), ``runner.run_matrix`` and
``runner.merge_runs`` (train a matrix into a run folder under the results root; imported on use).
"""
from .spec import Matrix, MatrixError, builtin_names, load_matrix, parse_seeds

__all__ = ["Matrix", "MatrixError", "builtin_names", "load_matrix", "parse_seeds"]
