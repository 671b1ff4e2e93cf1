"""A short, deterministic training on real Fashion-MNIST: the accuracy probe of the regression gate
(``python -m bench.speed.regression``) and of asv's ``accuracy`` benchmarks.

``short_training()`` trains :data:`CONFIGS` for ``EPOCHS`` epochs with the batched chunk trainer
(``bench.trainer.train_chunk``: lrcore schedules -> lr / momentum tables -> BatchedMLP + BatchedOptimizer)
on a fixed subset of the training split (the first :data:`N_TRAIN` examples of the seeded split, batches
of 128: 50 steps per epoch, 300 steps in all) and scores the final weights on the whole test set
(10,000 images). It returns each configuration's test error rate (1 - accuracy) and their mean.

Determinism: one torch thread and ``torch.use_deterministic_algorithms(True)`` for the duration (both
restored afterwards); the trainer's own seeding fixes the weights and the batch order. On one machine and
torch build the error rates are bit-for-bit reproducible (a change in them is a change in the code);
another CPU or torch version may round differently, which the gate's absolute band absorbs.

The configurations touch the parts of the stack whose bugs cost accuracy: a warmup + cosine schedule
(lrcore text form, ``evaluate_many``), a OneCycle schedule that also cycles momentum (the momentum
table), SGD with momentum, Adam, and plain SGD at a constant rate.
"""
from __future__ import annotations

import contextlib
import time
import types

__all__ = ["CONFIGS", "N_TRAIN", "N_VAL", "EPOCHS", "BATCH_SIZE", "deterministic", "subset", "short_training"]

N_TRAIN = 6400       # 50 batches of 128
N_VAL = 2000         # validation after each epoch (the trainer needs one); not scored
EPOCHS = 6           # 300 optimizer steps
BATCH_SIZE = 128

#: (name, optimizer, peak lr, lrcore schedule text with the trainer's placeholders ``peak``, ``total``).
CONFIGS = [
    ("warmup_cosine-momentum", "momentum", 0.05,
     "Warmup(Cosine(lr=peak, decay_steps=total - total // 10), steps=total // 10)"),
    ("onecycle-nesterov", "nesterov", 0.05, "OneCycle(max_lr=peak, total_steps=total)"),
    ("warmup_cosine-adam", "adam", 1e-3,
     "Warmup(Cosine(lr=peak, decay_steps=total - total // 10), steps=total // 10)"),
    ("constant-sgd", "sgd", 0.1, "Constant(lr=peak)"),
]


@contextlib.contextmanager
def deterministic(threads: int = 1):
    """One torch thread (``threads``) and deterministic algorithms inside the block; restored after."""
    import torch
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def subset(data, n_train: int = N_TRAIN, n_val: int = N_VAL):
    """The first ``n_train`` training and ``n_val`` validation examples of ``data``; the whole test set."""
    return types.SimpleNamespace(x_train=data.x_train[:n_train], y_train=data.y_train[:n_train],
                                 x_val=data.x_val[:n_val], y_val=data.y_val[:n_val],
                                 x_test=data.x_test, y_test=data.y_test)


def load_data(data_dir=None):
    """The Fashion-MNIST tensors (CPU), or raise the loader's FileNotFoundError / ValueError."""
    try:
        from bench.train.data import load_fashion_mnist
    except ImportError:  # a commit before the bench/train/ layout (asv history)
        from bench.data import load_fashion_mnist
    return load_fashion_mnist("cpu", data_dir)


def _train_chunk(train_chunk, cfgs, data, epochs: int, batch_size: int, precision: str):
    """``train_chunk`` as the commit under test calls it: with a ``TrainSpec`` where it has one, else with the
    settings as keywords (older commits of the asv history)."""
    try:
        from bench.train.config import TrainSpec
    except ImportError:
        return train_chunk(cfgs, data, epochs=epochs, batch_size=batch_size, device="cpu",
                           **({"precision": precision} if precision != "fp32" else {}))
    return train_chunk(cfgs, data, TrainSpec(epochs=epochs, batch_size=batch_size, precision=precision), device="cpu")


def short_training(data=None, *, data_dir=None, configs=None, epochs: int = EPOCHS,
                   batch_size: int = BATCH_SIZE, precision: str = "fp32") -> dict:
    """Train ``configs`` (default :data:`CONFIGS`) briefly in ``precision``; returns ``{"error_rate": {name: 1 -
    test_acc}, "mean_error_rate": float, "seconds": wall time of the training, "steps": optimizer steps}``."""
    try:
        from bench.train.batched import TrainConfig, steps_per_epoch, train_chunk
    except ImportError:  # a commit before the bench/train/ layout (asv history)
        from bench.trainer import TrainConfig, steps_per_epoch, train_chunk

    if data is None:
        data = load_data(data_dir)
    small = subset(data)
    configs = CONFIGS if configs is None else configs
    cfgs = [TrainConfig(name=name, optimizer=opt, peak_lr=lr, schedule=text, seed=0)
            for name, opt, lr, text in configs]
    with deterministic():
        t0 = time.perf_counter()
        result = _train_chunk(train_chunk, cfgs, small, epochs, batch_size, precision)
        seconds = time.perf_counter() - t0
    acc = dict(zip(result.summary["name"], result.summary["test_acc"].astype(float)))
    errors = {name: round(1.0 - acc[name], 6) for name, *_ in configs}
    return {"error_rate": errors, "mean_error_rate": round(sum(errors.values()) / len(errors), 6), "seconds": seconds,
            "steps": epochs * steps_per_epoch(len(small.x_train), batch_size)}
