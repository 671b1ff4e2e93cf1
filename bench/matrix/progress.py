"""The progress display of ``lrbench run``: one bar for the whole run, one for the chunk in training.

Both count model-epochs (a batched chunk of M models finishes M of them per epoch; the sequential and
Keras trainers one); the run bar shows the ETA, the chunk bar the epoch and the best validation accuracy
so far. ``enabled=False`` (``--no-progress``) prints one line per finished chunk instead.
"""
from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

__all__ = ["RunProgress"]


class RunProgress:
    def __init__(self, run_id: str, total_model_epochs: int, n_chunks: int, *, enabled: bool = True,
                 console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.n_chunks = n_chunks
        self.best = -math.inf
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("model-epochs"), TimeElapsedColumn(), TextColumn("ETA"),
                                  TimeRemainingColumn(), console=self.console, disable=not enabled)
        self._run = self._progress.add_task(f"run {run_id}", total=max(total_model_epochs, 1))
        self._chunk = None
        self._t0 = time.perf_counter()

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def start_chunk(self, j: int, chunk: int, n_models: int, epochs: int):
        if self._chunk is not None:
            self._progress.remove_task(self._chunk)
        self._label = f"chunk {j + 1}/{self.n_chunks} (#{chunk}, {n_models} models)"
        self._chunk = self._progress.add_task(self._label, total=n_models * epochs)
        self._chunk_t0 = time.perf_counter()
        self._chunk_id = chunk
        self._chunk_left = n_models * epochs

    def epoch_done(self, epoch: int, rows: list[dict]):
        """The trainers' ``progress(epoch, rows)`` callback."""
        accs = [r["val_acc"] for r in rows if r.get("trained") and math.isfinite(r["val_acc"])]
        if accs:
            self.best = max(self.best, max(accs))
        best = f", best val acc {self.best:.4f}" if math.isfinite(self.best) else ""
        self._progress.update(self._chunk, advance=len(rows), description=f"{self._label} epoch {epoch + 1}{best}")
        self._progress.update(self._run, advance=len(rows))
        self._chunk_left -= len(rows)
        if not self.enabled and self._chunk_left <= 0:
            self.console.print(f"chunk #{self._chunk_id} done in "
                               f"{time.perf_counter() - self._chunk_t0:.1f} s{best}")
