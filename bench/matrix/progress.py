"""The progress display of ``lrbench run``: one bar for the whole run, one for the chunk in training.

Both count model-epochs (a batched chunk of M models finishes M of them per epoch; the sequential and
Keras trainers one); the run bar shows the ETA, the chunk bar the epoch and the best validation accuracy
so far. Written to a file or a pipe (CI logs, ``| tee``), bars are replaced by one plain line per epoch
(chunk, epoch, elapsed, ETA, best validation accuracy so far). ``enabled=False`` (``--no-progress``)
prints one line per finished chunk instead.
"""
from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

__all__ = ["RunProgress"]


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RunProgress:
    def __init__(self, run_id: str, total_model_epochs: int, n_chunks: int, *, enabled: bool = True,
                 console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.plain = enabled and not self.console.is_terminal  # a line per epoch instead of bars
        self.n_chunks = n_chunks
        self.best = -math.inf
        self._total, self._done = max(total_model_epochs, 1), 0
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("model-epochs"), TimeElapsedColumn(), TextColumn("ETA"),
                                  TimeRemainingColumn(), console=self.console, disable=not enabled or self.plain)
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
        self._epochs = epochs

    def _line(self, label: str, epoch: int, epochs: int, n_rows: int):
        """One plain progress line (output that is not a terminal): elapsed, ETA from the run's model-epochs."""
        self._done += n_rows
        if not self.plain:
            return
        elapsed = time.perf_counter() - self._t0
        eta = elapsed * (self._total - self._done) / self._done if self._done else math.nan
        best = f", best val acc {self.best:.4f}" if math.isfinite(self.best) else ""
        self.console.print(f"{label} epoch {epoch + 1}/{epochs}: {_hms(elapsed)} elapsed, ETA {_hms(eta)}{best}",
                           soft_wrap=True)

    def epoch_done(self, epoch: int, rows: list[dict]):
        """The trainers' ``progress(epoch, rows)`` callback."""
        accs = [r["val_acc"] for r in rows if r.get("trained") and math.isfinite(r["val_acc"])]
        if accs:
            self.best = max(self.best, max(accs))
        best = f", best val acc {self.best:.4f}" if math.isfinite(self.best) else ""
        self._progress.update(self._chunk, advance=len(rows), description=f"{self._label} epoch {epoch + 1}{best}")
        self._progress.update(self._run, advance=len(rows))
        self._line(self._label, epoch, self._epochs, len(rows))
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
            self._done -= old["done"]
        label = f"chunk {j + 1}/{self.n_chunks} (#{chunk}, {n_models} models{', ' + where if where else ''})"
        self._tasks[chunk] = {"bar": self._progress.add_task(label, total=n_models * epochs), "label": label,
                              "t0": time.perf_counter(), "done": 0, "total": n_models * epochs, "epochs": epochs}

    def task_epoch(self, chunk: int, epoch: int, n_rows: int, best: float):
        t = getattr(self, "_tasks", {}).get(chunk)
        if t is None:
            return
        if math.isfinite(best):
            self.best = max(self.best, best)
        t["done"] += n_rows
        self._progress.update(self._run, advance=n_rows)
        self._progress.update(t["bar"], advance=n_rows, description=f"{t['label']} epoch {epoch + 1}")
        self._line(t["label"], epoch, t["epochs"], n_rows)

    def task_finished(self, chunk: int, total: int):
        """``chunk`` is written; ``total``: its model-epochs (events still in flight are not waited for)."""
        self._finished = getattr(self, "_finished", set())
        self._finished.add(chunk)
        t = getattr(self, "_tasks", {}).pop(chunk, None)
        done = 0 if t is None else t["done"]
        self._progress.update(self._run, advance=total - done)
        self._done += total - done
        if t is not None:
            self._progress.remove_task(t["bar"])
        if not self.enabled:
            best = f", best val acc {self.best:.4f}" if math.isfinite(self.best) else ""
            took = f" in {time.perf_counter() - t['t0']:.1f} s" if t is not None else ""
            self.console.print(f"chunk #{chunk} done{took}{best}")
