"""The sequential baseline: the same configurations as :func:`bench.train.batched.train_chunk`, one at a time,
with plain ``torch.nn`` modules, ``torch.optim`` and ``lrcore.integrations.torch.LrcoreScheduler``.

``train_sequential(configs, data, epochs=...)`` -> :class:`bench.train.batched.ChunkResult` with the same
history / summary columns and throughput keys as ``train_chunk`` (see there), so the two trainers can be
compared row by row. It is the baseline of the batched trainer's speed-up and a cross-check of its
accuracy.

Rules (what is the same as the batched trainer, and what is not)
----------------------------------------------------------------
* Same initial weights: ``torch.manual_seed(seed)`` then ``bench.train.model.torch_reference_model`` (the
  parity rule of :class:`bench.train.model.BatchedMLP`). Same batch order: ``batch_permutation(seed, epoch)``.
* Optimizer: ``torch.optim`` (``bench.train.model.torch_optimizer``) with the hyper-parameters of
  ``bench.train.batched.OPTIMIZERS``, built with ``lr=peak_lr``. Schedule: ``LrcoreScheduler(opt, schedule)``
  (the (t+1)-th optimizer step uses ``schedule(t)``; momentum / beta1 cycled where the schedule has one).
  ``"plateau"``: PyTorch's own ``ReduceLROnPlateau`` (mode min, on the validation loss, ``plateau_kwargs``
  are its keyword arguments; default factor 0.1, patience 2), stepped after each epoch.
* A model whose batch loss is NaN/inf stops training at that batch and is reported ``diverged``.
  Early stopping: ``lrcore.EarlyStopping`` for one model (restore-best on validation loss).
* Not bit-identical to the batched trainer: the batched stack uses ``bmm`` in float32 with another
  summation order, and dropout masks come from another generator. Accuracies agree to noise (checked
  in ``tests/test_runner.py::test_sequential_trainer_agrees_with_batched``).
* Precision ``"bf16"``: forward and loss under ``torch.autocast(dtype=torch.bfloat16)`` (training and
  evaluation), the reference recipe the batched trainer writes out (:mod:`bench.train.mixed`).
* Times: ``epoch_time_s`` is this model's own epoch (training and validation); throughput counts all
  models' epochs over the total wall time.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import lrcore
from lrcore.integrations.torch import LrcoreScheduler

from .batched import batch_permutation
from .config import _BASE_MOMENTUM, HISTORY_COLUMNS, OPTIMIZERS, SUMMARY_COLUMNS, ChunkResult, TrainConfig, steps_per_epoch
from .model import forward_flops, step_flops, torch_optimizer, torch_reference_model
from .optim import SCHEDULE_FREE

__all__ = ["train_sequential", "train_one"]


def _sync(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _autocast(dev: torch.device, precision: str):
    """torch.autocast to bfloat16 for ``precision="bf16"``, else nothing."""
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def _evaluate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
              precision: str = "fp32") -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode, float64 sums."""
    net.eval()
    loss = correct = 0.0
    for a in range(0, len(x), batch_size):
        with _autocast(x.device, precision):
            logits = net(x[a:a + batch_size]).float()
        loss += float(F.cross_entropy(logits, y[a:a + batch_size], reduction="sum").double())
        correct += float((logits.argmax(-1) == y[a:a + batch_size]).double().sum())
    net.train()
    return loss / len(x), correct / len(x)


def _momentum_of(opt: torch.optim.Optimizer) -> float:
    g = opt.param_groups[0]
    return float(g["betas"][0]) if "betas" in g else float(g.get("momentum", 0.0))


def train_one(config: TrainConfig, data, *, epochs: int, batch_size: int = 128, device="cpu",
              widths=(784, 256, 128, 10), activation: str = "relu", dropout: float = 0.0, early_stopping=None,
              plateau_kwargs: dict | None = None, record_momentum: bool = False, eval_batch_size: int = 5000,
              progress: Callable | None = None, model_index: int = 0, precision: str = "fp32"):
    """Train one configuration; returns (history rows, summary row, flops)."""
    dev = torch.device(device)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    x_val, y_val = data.x_val.to(dev), data.y_val.to(dev)
    N, B = len(x_train), int(batch_size)
    spe = steps_per_epoch(N, B)
    total = int(epochs) * spe
    torch.manual_seed(config.seed)
    net = torch_reference_model(widths, activation, dropout).to(dev)
    kind, hyper = OPTIMIZERS[config.optimizer]
    opt = torch_optimizer(kind, net.parameters(), lr=float(config.peak_lr), **hyper)
    schedule = config.parse(total, spe)
    if schedule is None:
        kw = dict(factor=0.1, patience=2)
        kw.update(plateau_kwargs or {})
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **kw)
    else:
        sched = LrcoreScheduler(opt, schedule)
    es = None
    if early_stopping is not None:
        kw = {"patience": int(early_stopping)} if isinstance(early_stopping, (int, np.integer)) \
            else dict(early_stopping)
        kw.setdefault("restore_best_weights", True)
        es = lrcore.EarlyStopping(1, mode="min", **kw)
    rows, flops = [], 0
    best_acc, best_epoch, best_state = -math.inf, -1, None
    sf_mode = opt if kind in SCHEDULE_FREE else None  # the schedulefree package's optimizer.train()/.eval()
    es_state = None
    diverged_epoch, stopped_epoch, trained_epochs = -1, -1, 0
    for epoch in range(int(epochs)):
        if diverged_epoch >= 0 or stopped_epoch >= 0:
            rows.append(dict(epoch=epoch, train_loss=math.nan, val_loss=rows[-1]["val_loss"],
                             val_acc=rows[-1]["val_acc"], lr=rows[-1]["lr"], momentum=rows[-1]["momentum"],
                             epoch_time_s=0.0, trained=False, diverged=diverged_epoch >= 0,
                             stopped=stopped_epoch >= 0))
            continue
        _sync(dev)
        t0 = time.perf_counter()
        perm = batch_permutation(config.seed, epoch, N).to(dev)
        if sf_mode is not None:
            sf_mode.train()  # schedule-free: back to the gradient point y
        loss_sum = 0.0
        lr_used = mom_used = math.nan
        for k in range(spe):
            idx = perm[k * B:(k + 1) * B]
            opt.zero_grad(set_to_none=True)
            with _autocast(dev, precision):
                loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            value = loss.item()  # what a plain training loop logs; also the divergence check
            if not math.isfinite(value):  # frozen before this update, as the batched trainer
                diverged_epoch = epoch
                break
            loss.backward()
            lr_used, mom_used = float(opt.param_groups[0]["lr"]), _momentum_of(opt)
            opt.step()
            if schedule is not None:
                sched.step()
            loss_sum += value
            flops += step_flops(widths, len(idx), 1, input_grad=False)
        trained_epochs += 1
        if sf_mode is not None:
            sf_mode.eval()  # schedule-free: evaluate (and snapshot) the averaged weights x
        val_loss, val_acc = _evaluate(net, x_val, y_val, eval_batch_size, precision)
        flops += forward_flops(widths, len(x_val))
        _sync(dev)
        dt = time.perf_counter() - t0
        if diverged_epoch < 0 and math.isfinite(val_loss):
            if val_acc > best_acc:
                best_acc, best_epoch, best_state = val_acc, epoch, copy.deepcopy(net.state_dict())
            if schedule is None:
                sched.step(val_loss)
            if es is not None:
                stopped = bool(es.step([val_loss])[0])
                if es.improved[0]:
                    es_state = copy.deepcopy(net.state_dict())
                if stopped:
                    stopped_epoch = epoch
        elif diverged_epoch < 0:  # non-finite validation loss: count it as divergence
            diverged_epoch = epoch
        rows.append(dict(epoch=epoch, train_loss=loss_sum / spe if diverged_epoch < 0 else math.nan,
                         val_loss=val_loss, val_acc=val_acc, lr=float(np.float32(lr_used)),
                         momentum=float(mom_used) if record_momentum else math.nan, epoch_time_s=dt,
                         trained=True, diverged=diverged_epoch >= 0, stopped=stopped_epoch >= 0))
        if progress is not None:
            progress(epoch, [_full_row(config, model_index, rows[-1])])
    if sf_mode is not None:
        sf_mode.eval()  # a model that diverged in its first epoch is still in train mode
    if es is not None and es_state is not None:
        net.load_state_dict(es_state)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)
    test_loss, test_acc = _evaluate(net, x_test, y_test, eval_batch_size, precision)
    final_val_loss, final_val_acc = _evaluate(net, x_val, y_val, eval_batch_size, precision)
    test_acc_best = math.nan
    if best_state is not None:
        net.load_state_dict(best_state)
        test_acc_best = _evaluate(net, x_test, y_test, eval_batch_size, precision)[1]
    finite_train = [r["train_loss"] for r in rows if math.isfinite(r["train_loss"])]
    summary = dict(model=model_index, name=config.name, optimizer=config.optimizer, schedule=config.schedule,
                   peak_lr=float(config.peak_lr), seed=int(config.seed), epochs_trained=trained_epochs,
                   diverged=diverged_epoch >= 0, diverged_epoch=diverged_epoch, stopped_epoch=stopped_epoch,
                   final_train_loss=finite_train[-1] if finite_train else math.nan,
                   final_val_loss=final_val_loss, final_val_acc=final_val_acc,
                   best_val_acc=best_acc if best_epoch >= 0 else math.nan, best_val_epoch=best_epoch,
                   test_loss=test_loss, test_acc=test_acc, test_acc_best=test_acc_best)
    return [_full_row(config, model_index, r) for r in rows], summary, flops


def _full_row(config: TrainConfig, model: int, r: dict) -> dict:
    return dict(model=model, name=config.name, optimizer=config.optimizer, schedule=config.schedule,
                peak_lr=float(config.peak_lr), seed=int(config.seed), **r)


def train_sequential(configs: Sequence[TrainConfig], data, *, epochs: int, batch_size: int = 128, device="cpu",
                     widths=(784, 256, 128, 10), activation: str = "relu", dropout: float = 0.0,
                     early_stopping=None, progress: Callable | None = None, plateau_kwargs: dict | None = None,
                     eval_batch_size: int = 5000, precision: str = "fp32") -> ChunkResult:
    """Train every config, one after the other (see the module docstring); the result has
    ``train_chunk``'s columns. ``progress(epoch, rows)`` is called after each epoch of each model."""
    configs = list(configs)
    if not configs:
        raise ValueError("train_sequential: no configs")
    if int(epochs) < 1:
        raise ValueError(f"train_sequential: epochs must be >= 1, got {epochs!r}")
    dev = torch.device(device)
    spe = steps_per_epoch(len(data.x_train), batch_size)
    record_momentum = any(c.parse(int(epochs) * spe, spe) is not None
                          and c.parse(int(epochs) * spe, spe).momentum is not None for c in configs)
    rows, summaries, flops = [], [], 0
    _sync(dev)
    t0 = time.perf_counter()
    for m, c in enumerate(configs):
        r, s, f = train_one(c, data, epochs=epochs, batch_size=batch_size, device=dev, widths=widths,
                            activation=activation, dropout=dropout, early_stopping=early_stopping,
                            plateau_kwargs=plateau_kwargs, record_momentum=record_momentum,
                            eval_batch_size=eval_batch_size, progress=progress, model_index=m, precision=precision)
        if record_momentum and c.reactive:
            for row in r:
                row["momentum"] = _BASE_MOMENTUM[c.optimizer]
        rows.extend(r)
        summaries.append(s)
        flops += f
    _sync(dev)
    wall = time.perf_counter() - t0
    M, N = len(configs), len(data.x_train)
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS).sort_values(["epoch", "model"], kind="stable")
    summary = pd.DataFrame(summaries, columns=SUMMARY_COLUMNS)
    # train_s: the training steps are not timed apart from validation here
    throughput = dict(wall_s=wall, train_s=None, precision=precision, n_models=M, epochs=int(epochs),
                      steps=int(epochs) * spe, batch_size=int(batch_size),
                      n_train=N, samples_per_s=M * N * int(epochs) / wall, model_epochs_per_s=M * int(epochs) / wall,
                      flop_per_s=flops / wall, flops=flops, device=str(dev))
    return ChunkResult(history.reset_index(drop=True), summary, throughput)
