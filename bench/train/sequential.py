"""The sequential baseline: the same configurations as :func:`bench.train.batched.train_chunk`, one at a time,
with plain ``torch.nn`` modules, ``torch.optim`` and ``lrcore.integrations.torch.LrcoreScheduler``.

``train_sequential(configs, data, spec)`` -> :class:`bench.train.batched.ChunkResult` with the same
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
  ``"plateau"``: PyTorch's own ``ReduceLROnPlateau`` (mode min, on the validation loss, ``TrainSpec.plateau_kwargs()``
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

import torch
import torch.nn.functional as F

import lrcore
from lrcore.integrations.torch import LrcoreScheduler

from .batched import batch_permutation
from .config import _BASE_MOMENTUM, OPTIMIZERS, ChunkResult, TrainConfig, TrainSpec, steps_per_epoch
from .model import forward_flops, step_flops, torch_optimizer, torch_reference_model
from .record import ModelRecords, chunk_result
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


class _Model:
    """One model of the baseline: torch.nn net, torch.optim optimizer and its scheduler (LrcoreScheduler, or
    ReduceLROnPlateau for "plateau"), early stopping and the weights to restore."""

    def __init__(self, config: TrainConfig, spec: TrainSpec, dev: torch.device, spe: int):
        torch.manual_seed(config.seed)
        self.net = torch_reference_model(spec.widths, spec.activation, spec.dropout).to(dev)
        kind, hyper = OPTIMIZERS[config.optimizer]
        self.opt = torch_optimizer(kind, self.net.parameters(), lr=float(config.peak_lr), **hyper)
        self.schedule = config.parse(spec.epochs * spe, spe)
        self.sched = (LrcoreScheduler(self.opt, self.schedule) if self.schedule is not None else
                      torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, mode="min", **spec.plateau_kwargs()))
        es_kw = spec.early_stopping_kwargs()
        self.es = None if es_kw is None else lrcore.EarlyStopping(1, mode="min", **es_kw)
        self.sf_mode = self.opt if kind in SCHEDULE_FREE else None  # the schedulefree package's train()/eval()
        self.best_state = self.es_state = None


def train_one(config: TrainConfig, data, spec: TrainSpec, *, device="cpu", record_momentum: bool = False,
              progress: Callable | None = None, model_index: int = 0):
    """Train one configuration as ``spec`` says; returns (history rows, summary row, flops)."""
    dev = torch.device(device)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    x_val, y_val = data.x_val.to(dev), data.y_val.to(dev)
    spe = steps_per_epoch(len(x_train), spec.batch_size)
    m = _Model(config, spec, dev, spe)
    rec, flops = ModelRecords([config], [model_index]), 0
    for epoch in range(spec.epochs):
        if rec.diverged_epoch[0] >= 0 or rec.stopped_epoch[0] >= 0:
            rec.add_idle_epoch(epoch)
            continue
        # 1. the epoch's steps; 2. validate; 3. best weights, plateau, early stopping; 4. the history row
        _sync(dev)
        t0 = time.perf_counter()
        loss_sum, lr_used, mom_used, f = _train_epoch(m, rec, spec, x_train, y_train, epoch, spe)
        if m.sf_mode is not None:
            m.sf_mode.eval()  # schedule-free: evaluate (and snapshot) the averaged weights x
        val_loss, val_acc = _evaluate(m.net, x_val, y_val, spec.eval_batch_size, spec.precision)
        flops += f + forward_flops(spec.widths, len(x_val))
        _sync(dev)
        dt = time.perf_counter() - t0
        _after_validation(m, rec, epoch, val_loss, val_acc)
        row = rec.add_epoch(epoch, train_loss=[loss_sum / spe if rec.diverged_epoch[0] < 0 else math.nan],
                            val_loss=[val_loss], val_acc=[val_acc], lr=[lr_used],
                            momentum=[mom_used if record_momentum else math.nan], epoch_time_s=dt, trained=[True],
                            stopped=[rec.stopped_epoch[0] >= 0])
        if progress is not None:
            progress(epoch, row)
    if m.sf_mode is not None:
        m.sf_mode.eval()  # a model that diverged in its first epoch is still in train mode
    return rec.rows, _final_scores(m, rec, data, spec, dev)[0], flops


def _train_epoch(m: _Model, rec: ModelRecords, spec: TrainSpec, x_train, y_train, epoch: int, spe: int):
    """One epoch's steps, stopping at a non-finite batch loss (divergence, recorded in ``rec``). Returns (loss
    sum, lr and momentum of the last update, matmul FLOPs)."""
    B, dev = int(spec.batch_size), x_train.device
    perm = batch_permutation(rec.configs[0].seed, epoch, len(x_train)).to(dev)
    if m.sf_mode is not None:
        m.sf_mode.train()  # schedule-free: back to the gradient point y
    loss_sum, flops, lr_used, mom_used = 0.0, 0, math.nan, math.nan
    for k in range(spe):
        idx = perm[k * B:(k + 1) * B]
        m.opt.zero_grad(set_to_none=True)
        with _autocast(dev, spec.precision):
            loss = F.cross_entropy(m.net(x_train[idx]), y_train[idx])
        value = loss.item()  # what a plain training loop logs; also the divergence check
        if not math.isfinite(value):  # frozen before this update, as the batched trainer
            rec.diverged_epoch[0] = epoch
            break
        loss.backward()
        lr_used, mom_used = float(m.opt.param_groups[0]["lr"]), _momentum_of(m.opt)
        m.opt.step()
        if m.schedule is not None:
            m.sched.step()
        loss_sum += value
        flops += step_flops(spec.widths, len(idx), 1, input_grad=False)
    return loss_sum, lr_used, mom_used, flops


def _after_validation(m: _Model, rec: ModelRecords, epoch: int, val_loss: float, val_acc: float):
    """The best-accuracy weights, the plateau step and early stopping after a finite validation loss; a
    non-finite one counts as divergence."""
    if rec.diverged_epoch[0] >= 0:
        return
    if not math.isfinite(val_loss):
        rec.diverged_epoch[0] = epoch
        return
    if rec.improve(epoch, [val_acc], [True])[0]:
        m.best_state = copy.deepcopy(m.net.state_dict())
    if m.schedule is None:
        m.sched.step(val_loss)
    if m.es is not None:
        stopped = bool(m.es.step([val_loss])[0])
        if m.es.improved[0]:
            m.es_state = copy.deepcopy(m.net.state_dict())
        if stopped:
            rec.stopped_epoch[0] = epoch


def _final_scores(m: _Model, rec: ModelRecords, data, spec: TrainSpec, dev) -> list[dict]:
    """Test and final validation scores (after early stopping's restore), the best weights' test accuracy."""
    eb, prec = spec.eval_batch_size, spec.precision
    if m.es is not None and m.es_state is not None:
        m.net.load_state_dict(m.es_state)
    x_val, y_val = data.x_val.to(dev), data.y_val.to(dev)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)
    test_loss, test_acc = _evaluate(m.net, x_test, y_test, eb, prec)
    final_val_loss, final_val_acc = _evaluate(m.net, x_val, y_val, eb, prec)
    test_acc_best = math.nan
    if m.best_state is not None:
        m.net.load_state_dict(m.best_state)
        test_acc_best = _evaluate(m.net, x_test, y_test, eb, prec)[1]
    return rec.summary(final_val_loss=[final_val_loss], final_val_acc=[final_val_acc], test_loss=[test_loss],
                       test_acc=[test_acc], test_acc_best=[test_acc_best])


def train_sequential(configs: Sequence[TrainConfig], data, spec: TrainSpec, *, device="cpu",
                     progress: Callable | None = None) -> ChunkResult:
    """Train every config as ``spec`` says, one after the other (see the module docstring); the result has
    ``train_chunk``'s columns. ``progress(epoch, rows)`` is called after each epoch of each model."""
    configs = list(configs)
    if not configs:
        raise ValueError("train_sequential: no configs")
    dev = torch.device(device)
    spe = steps_per_epoch(len(data.x_train), spec.batch_size)
    total = spec.epochs * spe
    record_momentum = any(c.parse(total, spe) is not None and c.parse(total, spe).momentum is not None
                          for c in configs)
    rows, summaries, flops = [], [], 0
    _sync(dev)
    t0 = time.perf_counter()
    for m, c in enumerate(configs):
        r, s, f = train_one(c, data, spec, device=dev, record_momentum=record_momentum, progress=progress,
                            model_index=m)
        if record_momentum and c.reactive:
            for row in r:
                row["momentum"] = _BASE_MOMENTUM[c.optimizer]
        rows.extend(r)
        summaries.append(s)
        flops += f
    _sync(dev)
    # train_s: the training steps are not timed apart from validation here
    return chunk_result(rows, summaries, wall_s=time.perf_counter() - t0, train_s=None, precision=spec.precision,
                        epochs=spec.epochs, steps=total, batch_size=int(spec.batch_size), n_train=len(data.x_train),
                        flops=flops, device=dev)
