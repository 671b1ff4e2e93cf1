"""Train a chunk of MLP configurations at once (one BatchedMLP stack) on Fashion-MNIST.

``train_chunk(configs, data, epochs=...)`` -> :class:`ChunkResult` ``(history, summary, throughput)``:

* ``history``: pandas DataFrame, one row per model per epoch (columns :data:`HISTORY_COLUMNS`).
* ``summary``: pandas DataFrame, one row per model (columns :data:`SUMMARY_COLUMNS`).
* ``throughput``: dict (``samples_per_s``, ``model_epochs_per_s``, ``flop_per_s``, ``wall_s``, ...).

Rules
-----
* Paired design: a config's ``seed`` fixes its initial weights (BatchedMLP seeds) and its batch order:
  per epoch one permutation of the training set from ``torch.Generator`` seeded by
  ``SeedSequence([seed, epoch])``. Models with the same seed see the same batches: the stack is ordered
  by seed and each step gathers one batch per seed, ``(seeds, B, 784)``, shared by that seed's models
  (``BatchedMLP`` groups, never copied per model). The last batch of an epoch may be smaller (no drop).
* Schedules: text with the placeholders ``peak`` (the config's ``peak_lr``) and ``total``
  (``epochs * steps_per_epoch``), parsed by ``lrcore.parse``; the lr table (and the momentum / Adam beta1
  table where a schedule has ``.momentum``) of all models is computed once with
  ``lrcore.evaluate_many`` and rounded to float32. The numba optimizer (CPU) takes a column of the host
  table per step; the torch optimizer (``optim_impl="torch"``, what CUDA runs) gets tables that live on
  the training device for the whole chunk (float64 holding the float32 values), so a step makes no host
  sync and no host-to-device copy: losses, divergence and the active mask stay on the device and are
  read back once per epoch, and plateau updates write into the device table once per epoch.
  ``schedule="plateau"`` is reactive: lr
  starts at ``peak`` and ``lrcore.Plateau`` (torch semantics, factor 0.1 / patience 2 by default, see
  ``plateau_kwargs``) steps on the validation loss after each epoch.
* Schedule-free optimizers (``sgd_schedulefree``, ``adamw_schedulefree``): the stack's parameters hold
  their gradient point y while training; before each validation pass ``BatchedOptimizer.eval()`` moves
  them to the averaged weights x (the package's ``optimizer.eval()``), so validation, the best-weights
  snapshots and the final test scores are those of x; ``train()`` moves back at the next epoch.
* A model whose training loss is NaN/inf is frozen (``train_step``'s active mask) and reported
  ``diverged``; optional early stopping (``lrcore.EarlyStopping`` on validation loss) freezes stopped
  models and restores their best (lowest validation loss) weights for the final score, Keras
  ``restore_best_weights`` style (restored at the end whether stopped or not).
* At the end: test accuracy of the final weights (``test_acc``) and of the best-validation-accuracy
  weights (``test_acc_best``; a snapshot of each model's slice is kept whenever it improves).

History columns (one row per model per epoch, sorted by epoch then ``model``)
------------------------------------------------------------------------------
``model`` (index of the config in the caller's list), ``name``, ``optimizer``, ``schedule``, ``peak_lr``,
``seed``, ``epoch`` (0-based), ``train_loss`` (mean of the epoch's batch losses; NaN when the model was
frozen for the whole epoch), ``val_loss``, ``val_acc`` (``model.evaluate`` on ``x_val`` after the epoch),
``lr`` (float32 lr of the epoch's last step), ``momentum`` (momentum / beta1 of that step when some model
of the chunk cycles momentum, else NaN), ``epoch_time_s`` (wall time of the whole batched epoch,
training plus validation, shared by the chunk's models), ``trained`` (active at the start of the
epoch), ``diverged`` (a NaN/inf training loss so far; frozen since), ``stopped`` (stopped early, at
this epoch or before; the epoch of stopping is still trained).

Summary columns (one row per model)
-----------------------------------
``model``, ``name``, ``optimizer``, ``schedule``, ``peak_lr``, ``seed``, ``epochs_trained``, ``diverged``,
``diverged_epoch`` / ``stopped_epoch`` (-1 for none), ``final_train_loss`` (last finite epoch mean),
``final_val_loss``, ``final_val_acc``, ``test_loss``, ``test_acc`` (final weights, after the
early-stopping restore when early stopping is on), ``best_val_acc``, ``best_val_epoch``,
``test_acc_best`` (weights of the best validation accuracy).

Precision (``precision="bf16"``): the stack's matmuls in bfloat16 with float32 master weights
(:mod:`bench.train.mixed`); the images are rounded to bfloat16 once per chunk (what autocast does to them
at every step), validation and test scoring run in the same precision.

Throughput (``ChunkResult.throughput``): ``wall_s`` (all epochs, training and validation, not the test
scoring), ``train_s`` (the training steps alone, without validation), ``precision``, ``samples_per_s = M * n_train * epochs / wall_s`` and ``model_epochs_per_s`` (frozen models
counted: the stack does their work anyway), ``flop_per_s``: the matmul work counted by
``step_flops(..., input_grad=False)`` over the training steps plus ``forward_flops`` of each epoch's
validation pass, over ``wall_s`` (elementwise work is not counted).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

import lrcore

from .config import (_BASE_MOMENTUM, HISTORY_COLUMNS, NATIVE_PREFIX, OPTIMIZERS, SUMMARY_COLUMNS,  # noqa: F401
                     ChunkResult, TrainConfig, steps_per_epoch, strip_native)
from .model import OPTIMIZER_DEFAULTS, BatchedMLP, BatchedOptimizer, forward_flops, step_flops, train_step

__all__ = ["TrainConfig", "NATIVE_PREFIX", "strip_native", "OPTIMIZERS", "HISTORY_COLUMNS", "SUMMARY_COLUMNS", "ChunkResult", "train_chunk",
           "batch_permutation", "steps_per_epoch", "stack_order", "make_stack"]

def batch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the training set for ``seed`` in ``epoch`` (CPU int64 tensor)."""
    s = int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.randperm(n, generator=torch.Generator().manual_seed(s))


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _snapshot(model: BatchedMLP) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.params]


@torch.no_grad()
def _copy_slices(dst: Sequence[torch.Tensor], src: Sequence[torch.Tensor], mask: np.ndarray):
    idx = np.flatnonzero(mask)
    if len(idx):
        i = torch.as_tensor(idx, device=dst[0].device)
        for d, s in zip(dst, src):
            d[i] = s[i]


def stack_order(configs: Sequence[TrainConfig]) -> list[int]:
    """The stack's order of ``configs``: seed-major (the models of a seed share each batch: one matmul per
    seed group, the batch never copied per model), then optimizer kind (runs of one kind for the torch
    optimizer path). Results go back in the caller's order."""
    return sorted(range(len(configs)), key=lambda m: (configs[m].seed, OPTIMIZERS[configs[m].optimizer][0],
                                                       configs[m].optimizer))


def make_stack(cfgs: Sequence[TrainConfig], *, widths=(784, 256, 128, 10), activation: str = "relu",
               dropout: float = 0.0, device="cpu", precision: str = "fp32", optim_impl: str = "auto", lr=None):
    """(model, optimizer, groups) for configurations already in :func:`stack_order`: the BatchedMLP, its
    BatchedOptimizer with each optimizer's hyper-parameters (``lr``: the first step's, per model; default
    the peaks) and the number of consecutive models of each seed."""
    kinds = [OPTIMIZERS[c.optimizer][0] for c in cfgs]
    hyper: dict[str, list] = {}
    for name in {n for c in cfgs for n in OPTIMIZERS[c.optimizer][1]}:
        hyper[name] = [OPTIMIZERS[c.optimizer][1].get(name, OPTIMIZER_DEFAULTS[k].get(name, 0.0))
                       for c, k in zip(cfgs, kinds)]
    model = BatchedMLP([c.seed for c in cfgs], widths, activation, dropout, device=device, precision=precision)
    lr = [c.peak_lr for c in cfgs] if lr is None else lr
    opt = BatchedOptimizer(model.params, kinds, impl=optim_impl, lr=lr, **hyper)
    seeds = sorted({c.seed for c in cfgs})
    return model, opt, [sum(c.seed == s for c in cfgs) for s in seeds]


def train_chunk(configs: Sequence[TrainConfig], data, *, epochs: int, batch_size: int = 128, device="cpu",
                widths=(784, 256, 128, 10), activation: str = "relu", dropout: float = 0.0, early_stopping=None, progress: Callable | None = None,
                plateau_kwargs: dict | None = None, eval_batch_size: int = 5000, optim_impl: str = "auto",
                precision: str = "fp32") -> ChunkResult:
    """Train every config for ``epochs`` epochs in one stack (see the module docstring).

    ``early_stopping``: None, a patience (int) or a dict of ``lrcore.EarlyStopping`` keyword arguments
    (monitored: validation loss). ``progress(epoch, rows)``: called after each epoch with that epoch's
    history rows (dicts). ``optim_impl``: :class:`BatchedOptimizer`'s ``impl`` (auto: numba on the CPU,
    torch elsewhere). ``precision``: "fp32" | "bf16" (:class:`BatchedMLP`'s).
    """
    configs = list(configs)
    if not configs:
        raise ValueError("train_chunk: no configs")
    if int(epochs) < 1:
        raise ValueError(f"train_chunk: epochs must be >= 1, got {epochs!r}")
    epochs, B = int(epochs), int(batch_size)
    dev = torch.device(device)
    M = len(configs)
    order = stack_order(configs)
    cfgs = [configs[m] for m in order]

    x_dtype = torch.bfloat16 if precision == "bf16" else data.x_train.dtype  # the matmuls' input, rounded once
    x_train, y_train = data.x_train.to(dev, x_dtype), data.y_train.to(dev)
    x_val, y_val = data.x_val.to(dev, x_dtype), data.y_val.to(dev)
    x_test, y_test = data.x_test.to(dev, x_dtype), data.y_test.to(dev)
    N = len(x_train)
    spe = steps_per_epoch(N, B)
    total = epochs * spe

    # --- schedules: lr and momentum tables, computed once
    scheds = [c.parse(total, spe) for c in cfgs]
    lr_np = np.empty((M, total), np.float64)
    static = [m for m in range(M) if scheds[m] is not None]
    if static:
        lr_np[static] = lrcore.evaluate_many([scheds[m] for m in static], total)
    reactive = np.array([s is None for s in scheds])
    lr_np[reactive] = np.array([c.peak_lr for c in cfgs])[reactive, None]
    mom_sched = [s.momentum if s is not None else None for s in scheds]
    cycling = [m for m in range(M) if mom_sched[m] is not None]
    mom_np = None
    if cycling:
        mom_np = np.repeat(np.array([_BASE_MOMENTUM[c.optimizer] for c in cfgs])[:, None], total, axis=1)
        mom_np[cycling] = lrcore.evaluate_many([mom_sched[m] for m in cycling], total)
    # float32 tables on the host: each step hands the optimizer a column without a device round trip
    lr_table = lr_np.astype(np.float32)
    mom_table = None if mom_np is None else mom_np.astype(np.float32)
    plateau = None
    if reactive.any():
        kw = dict(factor=0.1, patience=2)
        kw.update(plateau_kwargs or {})
        plateau = lrcore.Plateau(M, lr_np[:, 0], mode="min", semantics="torch", **kw)
    es = None
    if early_stopping is not None:
        kw = {"patience": int(early_stopping)} if isinstance(early_stopping, (int, np.integer)) \
            else dict(early_stopping)
        kw.setdefault("restore_best_weights", True)
        es = lrcore.EarlyStopping(M, mode="min", **kw)

    # --- model and optimizer
    model, opt, groups = make_stack(cfgs, widths=widths, activation=activation, dropout=dropout, device=dev,
                                    precision=precision, optim_impl=optim_impl, lr=lr_np[:, 0])
    on_device = opt.impl == "torch"
    if on_device:  # the tables on the training device for the whole chunk (see the module docstring)
        lr_cols = torch.as_tensor(lr_table, dtype=torch.float64, device=dev)
        mom_cols = None if mom_table is None else torch.as_tensor(mom_table, dtype=torch.float64, device=dev)
    else:
        lr_cols, mom_cols = lr_table, mom_table

    seeds = sorted({c.seed for c in cfgs})

    active = torch.ones(M, dtype=torch.bool, device=dev)
    diverged_epoch = np.full(M, -1, np.int64)
    epochs_trained = np.zeros(M, np.int64)
    best_acc = np.full(M, -np.inf)
    best_acc_epoch = np.full(M, -1, np.int64)
    best_acc_weights = _snapshot(model)
    es_weights = _snapshot(model) if es is not None else None
    rows: list[dict] = []
    flops = 0
    train_s = 0.0
    t_start = time.perf_counter()
    for epoch in range(epochs):
        _sync(dev)
        t0 = time.perf_counter()
        trained = active.cpu().numpy().copy()
        perms = torch.stack([batch_permutation(s, epoch, N) for s in seeds]).to(dev)  # (seeds, N)
        opt.train()  # schedule-free models: parameters back to the gradient point y (others: no-op)
        loss_sum = torch.zeros(M, dtype=torch.float64, device=dev)
        for k in range(spe):
            t = epoch * spe + k
            idx = perms[:, k * B:(k + 1) * B]
            losses, active = train_step(model, opt, x_train[idx], y_train[idx], lr=lr_cols[:, t],  # (seeds, B, 784)
                                        momentum=None if mom_cols is None else mom_cols[:, t], active=active,
                                        groups=groups)
            loss_sum.add_(losses)  # float32 into float64, one op
            flops += step_flops(widths, idx.shape[1], M, input_grad=False)
        _sync(dev)
        train_s += time.perf_counter() - t0
        opt.eval()  # schedule-free models: evaluate and snapshot the averaged weights x (others: no-op)
        val_loss_t, val_acc_t = model.evaluate(x_val, y_val, eval_batch_size)
        flops += forward_flops(widths, len(x_val), M)
        _sync(dev)
        dt = time.perf_counter() - t0
        train_loss = (loss_sum / spe).cpu().numpy()
        val_loss, val_acc = val_loss_t.cpu().numpy(), val_acc_t.cpu().numpy()
        act_np = active.cpu().numpy()
        newly_div = trained & ~act_np  # lost during this epoch: only divergence freezes inside an epoch
        diverged_epoch[newly_div] = epoch
        diverged = diverged_epoch >= 0
        epochs_trained += trained
        lr_last = lr_np[:, (epoch + 1) * spe - 1].copy()
        mom_last = np.full(M, np.nan) if mom_np is None else mom_np[:, (epoch + 1) * spe - 1].copy()
        ok = trained & ~diverged & np.isfinite(val_loss)
        # best validation accuracy snapshot
        better = ok & (val_acc > best_acc)
        best_acc = np.where(better, val_acc, best_acc)
        best_acc_epoch[better] = epoch
        _copy_slices(best_acc_weights, model.params, better)
        metric = np.where(np.isfinite(val_loss), val_loss, np.inf)
        if plateau is not None:
            new_lr = plateau.step(metric, active=ok & reactive)
            if epoch + 1 < epochs:
                lr_np[reactive, (epoch + 1) * spe:] = new_lr[reactive, None]
                lr_table[reactive, (epoch + 1) * spe:] = new_lr[reactive, None]
                if on_device:  # one host-to-device copy per epoch
                    rows_r = torch.as_tensor(np.flatnonzero(reactive), device=dev)
                    lr_cols[rows_r, (epoch + 1) * spe:] = torch.as_tensor(
                        lr_table[reactive, (epoch + 1) * spe:], dtype=torch.float64, device=dev)
        stopped = np.zeros(M, bool)
        if es is not None:
            stopped = es.step(metric, active=ok)
            _copy_slices(es_weights, model.params, es.improved)
            if stopped.any():
                active = active & torch.as_tensor(~stopped, device=dev)
        epoch_rows = []
        for j in range(M):
            c = cfgs[j]
            epoch_rows.append(dict(model=order[j], name=c.name, optimizer=c.optimizer, schedule=c.schedule,
                                   peak_lr=float(c.peak_lr), seed=int(c.seed), epoch=epoch,
                                   train_loss=float(train_loss[j]) if trained[j] else math.nan,
                                   val_loss=float(val_loss[j]), val_acc=float(val_acc[j]),
                                   lr=float(np.float32(lr_last[j])), momentum=float(mom_last[j]),
                                   epoch_time_s=dt, trained=bool(trained[j]), diverged=bool(diverged[j]),
                                   stopped=bool(stopped[j])))
        epoch_rows.sort(key=lambda r: r["model"])
        rows.extend(epoch_rows)
        if progress is not None:
            progress(epoch, epoch_rows)
    _sync(dev)
    wall = time.perf_counter() - t_start

    # --- final scores
    if es is not None:
        _copy_slices(model.params, es_weights, es.best_epoch >= 0)
    test_loss, test_acc = (t.cpu().numpy() for t in model.evaluate(x_test, y_test, eval_batch_size))
    final_val_loss, final_val_acc = (t.cpu().numpy() for t in model.evaluate(x_val, y_val, eval_batch_size))
    _copy_slices(model.params, best_acc_weights, best_acc_epoch >= 0)
    _, test_acc_best = (t.cpu().numpy() for t in model.evaluate(x_test, y_test, eval_batch_size))
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    summary_rows = []
    last_train = history.sort_values("epoch").groupby("model")["train_loss"].agg(
        lambda s: s.dropna().iloc[-1] if s.notna().any() else math.nan)
    for j in range(M):
        c = cfgs[j]
        summary_rows.append(dict(
            model=order[j], name=c.name, optimizer=c.optimizer, schedule=c.schedule, peak_lr=float(c.peak_lr),
            seed=int(c.seed), epochs_trained=int(epochs_trained[j]), diverged=bool(diverged_epoch[j] >= 0),
            diverged_epoch=int(diverged_epoch[j]),
            stopped_epoch=int(es.stopped_epoch[j]) if es is not None and es.stopped[j] else -1,
            final_train_loss=float(last_train[order[j]]), final_val_loss=float(final_val_loss[j]),
            final_val_acc=float(final_val_acc[j]),
            best_val_acc=float(best_acc[j]) if best_acc_epoch[j] >= 0 else math.nan,
            best_val_epoch=int(best_acc_epoch[j]), test_loss=float(test_loss[j]), test_acc=float(test_acc[j]),
            test_acc_best=float(test_acc_best[j]) if best_acc_epoch[j] >= 0 else math.nan))
    summary = pd.DataFrame(sorted(summary_rows, key=lambda r: r["model"]), columns=SUMMARY_COLUMNS)
    throughput = dict(wall_s=wall, train_s=train_s, precision=precision, n_models=M, epochs=epochs, steps=total,
                      batch_size=B, n_train=N,
                      samples_per_s=M * N * epochs / wall, model_epochs_per_s=M * epochs / wall,
                      flop_per_s=flops / wall, flops=flops, device=str(dev))
    return ChunkResult(history, summary, throughput)
