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

    # -- chunks running at once (Ray tasks): one bar per chunk in flight, keyed by chunk
    def task_started(self, j: int, chunk: int, n_models: int, epochs: int, where: str = ""):
        """A task began ``chunk`` (again, after a retry: its epochs so far are taken back)."""
        self._tasks = getattr(self, "_tasks", {})
        self._finished = getattr(self, "_finished", set())
        if chunk in self._finished:
            return
        old = self._tasks.pop(chunk, None)
        if old is not None:
            self._progress.remove_task(old["bar"])
            self._progress.update(self._run, advance=-old["done"])
        label = f"chunk {j + 1}/{self.n_chunks} (#{chunk}, {n_models} models{', ' + where if where else ''})"
        self._tasks[chunk] = {"bar": self._progress.add_task(label, total=n_models * epochs), "label": label,
                              "t0": time.perf_counter(), "done": 0, "total": n_models * epochs}

    def task_epoch(self, chunk: int, epoch: int, n_rows: int, best: float):
        t = getattr(self, "_tasks", {}).get(chunk)
        if t is None:
            return
        if math.isfinite(best):
            self.best = max(self.best, best)
        t["done"] += n_rows
        self._progress.update(self._run, advance=n_rows)
        self._progress.update(t["bar"], advance=n_rows, description=f"{t['label']} epoch {epoch + 1}")

    def task_finished(self, chunk: int, total: int):
        """``chunk`` is written; ``total``: its model-epochs (events still in flight are not waited for)."""
        self._finished = getattr(self, "_finished", set())
        self._finished.add(chunk)
        t = getattr(self, "_tasks", {}).pop(chunk, None)
        done = 0 if t is None else t["done"]
        self._progress.update(self._run, advance=total - done)
        if t is not None:
            self._progress.remove_task(t["bar"])
        if not self.enabled:
            best = f", best val acc {self.best:.4f}" if math.isfinite(self.best) else ""
            took = f" in {time.perf_counter() - t['t0']:.1f} s" if t is not None else ""
            self.console.print(f"chunk #{chunk} done{took}{best}")
