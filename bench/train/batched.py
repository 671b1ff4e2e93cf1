"""Train a chunk of MLP configurations at once (one BatchedMLP stack) on Fashion-MNIST.

``train_chunk(configs, data, spec)`` -> :class:`ChunkResult` ``(history, summary, throughput)`` (``spec``: a
:class:`bench.train.config.TrainSpec`, epochs, batch size, model, early stopping, plateau, precision):

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
  ``TrainSpec.plateau``) steps on the validation loss after each epoch.
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

import time
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

import lrcore

from .config import (_BASE_MOMENTUM, HISTORY_COLUMNS, NATIVE_PREFIX, OPTIMIZERS, SUMMARY_COLUMNS,  # noqa: F401
                     ChunkResult, TrainConfig, TrainSpec, steps_per_epoch, strip_native)
from .model import OPTIMIZER_DEFAULTS, BatchedMLP, BatchedOptimizer, forward_flops, step_flops, train_step
from .record import ModelRecords, chunk_result

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


def make_stack(cfgs: Sequence[TrainConfig], spec: TrainSpec, *, device="cpu", lr=None):
    """(model, optimizer, groups) for configurations already in :func:`stack_order`: the BatchedMLP of ``spec``'s
    model and precision, its BatchedOptimizer (``spec.optim_impl``) with each optimizer's hyper-parameters (``lr``:
    the first step's, per model; default the peaks) and the number of consecutive models of each seed."""
    kinds = [OPTIMIZERS[c.optimizer][0] for c in cfgs]
    hyper: dict[str, list] = {}
    for name in {n for c in cfgs for n in OPTIMIZERS[c.optimizer][1]}:
        hyper[name] = [OPTIMIZERS[c.optimizer][1].get(name, OPTIMIZER_DEFAULTS[k].get(name, 0.0))
                       for c, k in zip(cfgs, kinds)]
    model = BatchedMLP([c.seed for c in cfgs], spec.widths, spec.activation, spec.dropout, device=device,
                       precision=spec.precision)
    lr = [c.peak_lr for c in cfgs] if lr is None else lr
    opt = BatchedOptimizer(model.params, kinds, impl=spec.optim_impl, lr=lr, **hyper)
    seeds = sorted({c.seed for c in cfgs})
    return model, opt, [sum(c.seed == s for c in cfgs) for s in seeds]


class _Tables:
    """The chunk's lr table (and momentum / beta1 table where a schedule cycles it), computed once: float64
    (``lr`` / ``mom``), float32 on the host, and the optimizer's columns (``lr_cols`` / ``mom_cols``: on the
    training device for the torch optimizer); ``plateau`` steps the reactive models' rows after each epoch."""

    def __init__(self, cfgs: Sequence[TrainConfig], spec: TrainSpec, spe: int):
        m, total = len(cfgs), spec.epochs * spe
        scheds = [c.parse(total, spe) for c in cfgs]
        self.lr = np.empty((m, total), np.float64)
        static = [i for i in range(m) if scheds[i] is not None]
        if static:
            self.lr[static] = lrcore.evaluate_many([scheds[i] for i in static], total)
        self.reactive = np.array([s is None for s in scheds])
        self.lr[self.reactive] = np.array([c.peak_lr for c in cfgs])[self.reactive, None]
        cycling = [i for i in range(m) if scheds[i] is not None and scheds[i].momentum is not None]
        self.mom = None
        if cycling:
            self.mom = np.repeat(np.array([_BASE_MOMENTUM[c.optimizer] for c in cfgs])[:, None], total, axis=1)
            self.mom[cycling] = lrcore.evaluate_many([scheds[i].momentum for i in cycling], total)
        # float32 tables on the host: each step hands the optimizer a column without a device round trip
        self.lr32 = self.lr.astype(np.float32)
        self.lr_cols, self.mom_cols = self.lr32, None if self.mom is None else self.mom.astype(np.float32)
        self.plateau = (lrcore.Plateau(m, self.lr[:, 0], mode="min", semantics="torch", **spec.plateau_kwargs())
                        if self.reactive.any() else None)
        self.spe, self.epochs, self.dev = spe, spec.epochs, None

    def to(self, dev: torch.device):
        """The columns on the training device for the whole chunk (the torch optimizer; see the module
        docstring)."""
        self.dev = dev
        self.lr_cols = torch.as_tensor(self.lr32, dtype=torch.float64, device=dev)
        if self.mom_cols is not None:
            self.mom_cols = torch.as_tensor(self.mom_cols, dtype=torch.float64, device=dev)

    def last(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(lr, momentum) of the epoch's last step, per model (momentum NaN when no model cycles it)."""
        t = (epoch + 1) * self.spe - 1
        return self.lr[:, t].copy(), np.full(len(self.lr), np.nan) if self.mom is None else self.mom[:, t].copy()

    def step_plateau(self, epoch: int, metric: np.ndarray, ok: np.ndarray):
        """The reactive models' lr for the epochs to come, from this epoch's validation loss."""
        if self.plateau is None:
            return
        new_lr = self.plateau.step(metric, active=ok & self.reactive)
        if epoch + 1 >= self.epochs:
            return
        r, a = self.reactive, (epoch + 1) * self.spe
        self.lr[r, a:] = new_lr[r, None]
        self.lr32[r, a:] = new_lr[r, None]
        if self.dev is not None:  # one host-to-device copy per epoch
            rows = torch.as_tensor(np.flatnonzero(r), device=self.dev)
            self.lr_cols[rows, a:] = torch.as_tensor(self.lr32[r, a:], dtype=torch.float64, device=self.dev)


class _Data(NamedTuple):
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _on_device(data, dev: torch.device, precision: str) -> _Data:
    """The six tensors on the training device; bf16: the images rounded once (what autocast does each step)."""
    x_dtype = torch.bfloat16 if precision == "bf16" else data.x_train.dtype
    return _Data(data.x_train.to(dev, x_dtype), data.y_train.to(dev), data.x_val.to(dev, x_dtype),
                 data.y_val.to(dev), data.x_test.to(dev, x_dtype), data.y_test.to(dev))


class _Stack(NamedTuple):
    model: BatchedMLP
    opt: BatchedOptimizer
    groups: list[int]
    seeds: list[int]
    tables: _Tables
    es: object  # lrcore.EarlyStopping or None
    records: ModelRecords


def train_chunk(configs: Sequence[TrainConfig], data, spec: TrainSpec, *, device="cpu",
                progress: Callable | None = None) -> ChunkResult:
    """Train every config as ``spec`` says, in one stack (see the module docstring). ``progress(epoch, rows)``:
    called after each epoch with that epoch's history rows (dicts)."""
    configs = list(configs)
    if not configs:
        raise ValueError("train_chunk: no configs")
    dev = torch.device(device)
    order = stack_order(configs)
    cfgs = [configs[m] for m in order]
    d = _on_device(data, dev, spec.precision)
    N, B, M = len(d.x_train), int(spec.batch_size), len(cfgs)
    spe = steps_per_epoch(N, B)
    tables = _Tables(cfgs, spec, spe)
    model, opt, groups = make_stack(cfgs, spec, device=dev, lr=tables.lr[:, 0])
    if opt.impl == "torch":
        tables.to(dev)
    es_kw = spec.early_stopping_kwargs()
    st = _Stack(model, opt, groups, sorted({c.seed for c in cfgs}), tables,
                None if es_kw is None else lrcore.EarlyStopping(M, mode="min", **es_kw), ModelRecords(cfgs, order))
    best_weights, es_weights = _snapshot(model), _snapshot(model) if st.es is not None else None
    active = torch.ones(M, dtype=torch.bool, device=dev)
    flops, train_s = 0, 0.0
    t_start = time.perf_counter()
    for epoch in range(spec.epochs):
        # 1. train every active model for an epoch; 2. validate; 3. record, snapshot, step plateau and stopping
        _sync(dev)
        t0 = time.perf_counter()
        trained = active.cpu().numpy().copy()
        loss_sum, active, f = _train_epoch(st, d, spec, epoch, active)
        _sync(dev)
        train_s += time.perf_counter() - t0
        opt.eval()  # schedule-free models: evaluate and snapshot the averaged weights x (others: no-op)
        val = model.evaluate(d.x_val, d.y_val, spec.eval_batch_size)
        flops += f + forward_flops(spec.widths, len(d.x_val), M)
        _sync(dev)
        rows, active = _end_epoch(st, epoch, (loss_sum / spe).cpu().numpy(), val, trained, active,
                                  time.perf_counter() - t0, best_weights, es_weights)
        if progress is not None:
            progress(epoch, rows)
    _sync(dev)
    wall = time.perf_counter() - t_start
    summary = _final_scores(st, d, spec, best_weights, es_weights)
    return chunk_result(st.records.rows, summary, wall_s=wall, train_s=train_s, precision=spec.precision,
                        epochs=spec.epochs, steps=spec.epochs * spe, batch_size=B, n_train=N, flops=flops, device=dev)


def _train_epoch(st: _Stack, d: _Data, spec: TrainSpec, epoch: int, active: torch.Tensor):
    """One epoch's steps: each seed's own batch order, one batch per seed shared by its models. Returns the
    per-model loss sum (float64, on the device), the active mask after it and the matmul FLOPs."""
    N, B, spe = len(d.x_train), int(spec.batch_size), st.tables.spe
    perms = torch.stack([batch_permutation(s, epoch, N) for s in st.seeds]).to(d.x_train.device)  # (seeds, N)
    st.opt.train()  # schedule-free models: parameters back to the gradient point y (others: no-op)
    loss_sum = torch.zeros(len(st.records.configs), dtype=torch.float64, device=d.x_train.device)
    flops = 0
    lr_cols, mom_cols = st.tables.lr_cols, st.tables.mom_cols
    for k in range(spe):
        t = epoch * spe + k
        idx = perms[:, k * B:(k + 1) * B]
        losses, active = train_step(st.model, st.opt, d.x_train[idx], d.y_train[idx], lr=lr_cols[:, t],  # (seeds, B, 784)
                                    momentum=None if mom_cols is None else mom_cols[:, t], active=active,
                                    groups=st.groups)
        loss_sum.add_(losses)  # float32 into float64, one op
        flops += step_flops(spec.widths, idx.shape[1], len(st.records.configs), input_grad=False)
    return loss_sum, active, flops


def _end_epoch(st: _Stack, epoch: int, train_loss: np.ndarray, val, trained: np.ndarray, active: torch.Tensor,
               dt: float, best_weights, es_weights):
    """After an epoch's validation: divergence, the best-accuracy snapshot, plateau, early stopping (which
    freezes the stopped models), the history rows. Returns (rows, active)."""
    rec = st.records
    val_loss, val_acc = (t.cpu().numpy() for t in val)
    newly_div = trained & ~active.cpu().numpy()  # lost during this epoch: only divergence freezes inside an epoch
    rec.diverged_epoch[newly_div] = epoch
    lr_last, mom_last = st.tables.last(epoch)
    ok = trained & ~rec.diverged & np.isfinite(val_loss)
    _copy_slices(best_weights, st.model.params, rec.improve(epoch, val_acc, ok))
    metric = np.where(np.isfinite(val_loss), val_loss, np.inf)
    st.tables.step_plateau(epoch, metric, ok)
    stopped = np.zeros(len(rec.configs), bool)
    if st.es is not None:
        stopped = st.es.step(metric, active=ok)
        _copy_slices(es_weights, st.model.params, st.es.improved)
        if stopped.any():
            active = active & torch.as_tensor(~stopped, device=active.device)
    rows = rec.add_epoch(epoch, train_loss=train_loss, val_loss=val_loss, val_acc=val_acc, lr=lr_last,
                         momentum=mom_last, epoch_time_s=dt, trained=trained, stopped=stopped)
    return rows, active


def _final_scores(st: _Stack, d: _Data, spec: TrainSpec, best_weights, es_weights) -> list[dict]:
    """Test and final validation scores (after early stopping's restore), then the test accuracy of the
    best-validation-accuracy weights: the summary rows."""
    model, rec, eb = st.model, st.records, spec.eval_batch_size
    if st.es is not None:
        _copy_slices(model.params, es_weights, st.es.best_epoch >= 0)
        rec.stopped_epoch[:] = np.where(st.es.stopped, st.es.stopped_epoch, -1)
    test_loss, test_acc = (t.cpu().numpy() for t in model.evaluate(d.x_test, d.y_test, eb))
    final_val_loss, final_val_acc = (t.cpu().numpy() for t in model.evaluate(d.x_val, d.y_val, eb))
    _copy_slices(model.params, best_weights, rec.best_epoch >= 0)
    _, test_acc_best = (t.cpu().numpy() for t in model.evaluate(d.x_test, d.y_test, eb))
    return rec.summary(final_val_loss=final_val_loss, final_val_acc=final_val_acc, test_loss=test_loss,
                       test_acc=test_acc, test_acc_best=test_acc_best)
