"""What the three trainers record per model, in one place: the history row of each epoch, divergence, early
stopping, the best validation accuracy, the summary row, and the chunk's result. A trainer keeps only its
step; column meanings: ``bench.train.batched``'s module docstring. Torch-free (numpy and pandas).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from .config import HISTORY_COLUMNS, SUMMARY_COLUMNS, ChunkResult, TrainConfig

__all__ = ["ModelRecords", "chunk_result"]


class ModelRecords:
    """Per-model bookkeeping of ``configs`` (numbered ``models`` in the results), vectorized over the models: a
    stacked trainer passes arrays of all its models, a one-at-a-time trainer arrays of one."""

    def __init__(self, configs: Sequence[TrainConfig], models: Sequence[int]):
        m = len(configs)
        self.configs, self.models = list(configs), [int(i) for i in models]
        self.rows: list[dict] = []
        self.diverged_epoch = np.full(m, -1, np.int64)
        self.stopped_epoch = np.full(m, -1, np.int64)
        self.epochs_trained = np.zeros(m, np.int64)
        self.best_acc = np.full(m, -np.inf)
        self.best_epoch = np.full(m, -1, np.int64)

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_epoch >= 0

    def improve(self, epoch: int, val_acc, ok) -> np.ndarray:
        """Models whose validation accuracy beats their best (among ``ok``): their best is now this epoch."""
        better = np.asarray(ok) & (np.asarray(val_acc) > self.best_acc)
        self.best_acc = np.where(better, val_acc, self.best_acc)
        self.best_epoch[better] = epoch
        return better

    def add_epoch(self, epoch: int, *, train_loss, val_loss, val_acc, lr, momentum, epoch_time_s: float, trained,
                  stopped) -> list[dict]:
        """The epoch's history rows (sorted by model), kept and returned; ``train_loss`` is NaN where not
        ``trained``, ``lr`` is rounded to float32 (what the optimizer used)."""
        trained = np.asarray(trained, bool)
        self.epochs_trained += trained
        out = [self._row(j, dict(epoch=epoch, train_loss=float(train_loss[j]) if trained[j] else math.nan,
                                 val_loss=float(val_loss[j]), val_acc=float(val_acc[j]),
                                 lr=float(np.float32(lr[j])), momentum=float(momentum[j]),
                                 epoch_time_s=epoch_time_s, trained=bool(trained[j]),
                                 diverged=bool(self.diverged_epoch[j] >= 0), stopped=bool(stopped[j])))
               for j in range(len(self.configs))]
        out.sort(key=lambda r: r["model"])
        self.rows.extend(out)
        return out

    def add_idle_epoch(self, epoch: int, j: int = 0) -> dict:
        """A one-at-a-time trainer's epoch after model ``j`` diverged or stopped: its last row, not trained."""
        last = [r for r in self.rows if r["model"] == self.models[j]][-1]
        row = {**last, "epoch": epoch, "train_loss": math.nan, "epoch_time_s": 0.0, "trained": False,
               "diverged": bool(self.diverged_epoch[j] >= 0), "stopped": bool(self.stopped_epoch[j] >= 0)}
        self.rows.append(row)
        return row

    def _row(self, j: int, r: dict) -> dict:
        c = self.configs[j]
        return dict(model=self.models[j], name=c.name, optimizer=c.optimizer, schedule=c.schedule,
                    peak_lr=float(c.peak_lr), seed=int(c.seed), **r)

    def _last_train_losses(self) -> dict[int, float]:
        """Per model: the training loss of its last epoch that has one (NaN: none)."""
        last = {m: math.nan for m in self.models}
        for r in sorted(self.rows, key=lambda r: r["epoch"]):
            if not math.isnan(r["train_loss"]):
                last[r["model"]] = float(r["train_loss"])
        return last

    def summary(self, *, final_val_loss, final_val_acc, test_loss, test_acc, test_acc_best) -> list[dict]:
        """One summary row per model, sorted by model (``test_acc_best``: the scores of the best-validation
        weights; NaN where no epoch had a finite validation score)."""
        out, last_train = [], self._last_train_losses()
        for j, c in enumerate(self.configs):
            best = self.best_epoch[j] >= 0
            out.append(dict(
                model=self.models[j], name=c.name, optimizer=c.optimizer, schedule=c.schedule,
                peak_lr=float(c.peak_lr), seed=int(c.seed), epochs_trained=int(self.epochs_trained[j]),
                diverged=bool(self.diverged_epoch[j] >= 0), diverged_epoch=int(self.diverged_epoch[j]),
                stopped_epoch=int(self.stopped_epoch[j]), final_train_loss=last_train[self.models[j]],
                final_val_loss=float(final_val_loss[j]), final_val_acc=float(final_val_acc[j]),
                best_val_acc=float(self.best_acc[j]) if best else math.nan, best_val_epoch=int(self.best_epoch[j]),
                test_loss=float(test_loss[j]), test_acc=float(test_acc[j]),
                test_acc_best=float(test_acc_best[j]) if best else math.nan))
        return sorted(out, key=lambda r: r["model"])


def chunk_result(rows: list[dict], summaries: list[dict], *, wall_s: float, train_s: float | None, precision: str,
                 epochs: int, steps: int, batch_size: int, n_train: int, flops: int, device: str) -> ChunkResult:
    """The trainers' common result: history sorted by epoch then model, summary by model, the throughput."""
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS).sort_values(["epoch", "model"], kind="stable")
    summary = pd.DataFrame(sorted(summaries, key=lambda r: r["model"]), columns=SUMMARY_COLUMNS)
    m = len(summary)
    throughput = dict(wall_s=wall_s, train_s=train_s, precision=precision, n_models=m, epochs=epochs, steps=steps,
                      batch_size=batch_size, n_train=n_train, samples_per_s=m * n_train * epochs / wall_s,
                      model_epochs_per_s=m * epochs / wall_s, flop_per_s=flops / wall_s, flops=flops,
                      device=str(device))
    return ChunkResult(history.reset_index(drop=True), summary, throughput)
