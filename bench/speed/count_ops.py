"""Count the aten calls of the batched trainer: host syncs and kernel-launching ops per training step.

``python -m bench.speed.count_ops [--matrix quick] [--epochs 1] [--optim-impl torch] [--steps N]`` trains the
matrix's first chunk (the quick matrix: 72 models) with :func:`bench.train.batched.train_chunk` on the CPU
under a ``TorchDispatchMode`` that counts every aten call and prints, per training step:

* host syncs: calls of ``aten._local_scalar_dense`` (``.item()``, ``bool(t)``, ``float(t)``; on a GPU each
  one waits for the device);
* kernel-launching ops: every other aten call except view ops (``OpOverload.is_view``: they launch no
  kernel) -- what each would cost on a GPU is one launch;
* allocations (``aten.empty*``) are counted among the ops (on a GPU they launch nothing; listed apart).

Per step = the whole run's counts (per-epoch work included: validation, the epoch's bookkeeping)
divided by the number of training steps. ``--steps N`` trains on the first ``N * batch_size`` training
images only (a shorter run for tests). The counts are a property of the code path, not of the machine:
the torch optimizer path (``--optim-impl torch``) is the one CUDA runs.
"""
from __future__ import annotations

import collections

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["OpCounter", "count_chunk", "main"]

_SYNC = "aten::_local_scalar_dense"


class OpCounter(TorchDispatchMode):
    """Counts aten calls by name: ``syncs`` (``_local_scalar_dense``), ``ops`` (non-view calls), ``views``."""

    def __init__(self):
        super().__init__()
        self.calls: collections.Counter = collections.Counter()
        self.syncs = self.ops = self.views = self.allocs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.name()
        self.calls[name] += 1
        if name == _SYNC:
            self.syncs += 1
        elif func.is_view:
            self.views += 1
        else:
            self.ops += 1
            if name.startswith("aten::empty"):
                self.allocs += 1
        return func(*args, **(kwargs or {}))


def count_chunk(matrix="quick", *, epochs: int = 1, optim_impl: str = "torch", steps: int | None = None,
                data=None, data_dir=None, precision: str = "fp32", widths=None) -> dict:
    """Train the matrix's first chunk under :class:`OpCounter`; returns the counts per training step
    (``widths``: narrower layers of the same count, for a count that does not need the real sizes)."""
    from ..matrix import load_matrix
    from ..matrix.runner import CPU_CHUNK
    from ..train.batched import steps_per_epoch, train_chunk
    if isinstance(matrix, str):
        matrix = load_matrix(matrix)
    if data is None:
        from ..train.data import load_fashion_mnist
        data = load_fashion_mnist("cpu", data_dir)
    if steps is not None:
        import dataclasses
        n = int(steps) * matrix.batch_size
        data = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    configs = matrix.configs()[:CPU_CHUNK]
    spec = matrix.train_spec(epochs=epochs, early_stopping=None, optim_impl=optim_impl, precision=precision,
                             **({"widths": widths} if widths is not None else {}))
    train_chunk(configs[:2], _slice(data, matrix.batch_size), spec.replace(epochs=1))  # warm-up, uncounted
    counter = OpCounter()
    with counter:
        train_chunk(configs, data, spec)
    n_steps = epochs * steps_per_epoch(len(data.x_train), matrix.batch_size)
    return dict(models=len(configs), epochs=epochs, steps=n_steps, optim_impl=optim_impl, precision=precision,
                syncs=counter.syncs, ops=counter.ops, allocs=counter.allocs, views=counter.views,
                syncs_per_step=counter.syncs / n_steps, ops_per_step=counter.ops / n_steps,
                top=counter.calls.most_common(25))


def _slice(data, batch_size):
    import dataclasses
    n = 2 * batch_size
    return dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n], x_val=data.x_val[:500],
                               y_val=data.y_val[:500], x_test=data.x_test[:500], y_test=data.y_test[:500])


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m bench.speed.count_ops", description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", default="quick")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--optim-impl", default="torch", choices=["auto", "numba", "torch"])
    ap.add_argument("--steps", type=int, default=None, help="train on this many batches per epoch only")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = count_chunk(args.matrix, epochs=args.epochs, optim_impl=args.optim_impl, steps=args.steps,
                    data_dir=args.data_dir, precision=args.precision)
    print(f"matrix {args.matrix}: {r['models']} models, {r['epochs']} epoch(s), {r['steps']} steps, "
          f"optimizer impl {r['optim_impl']}, {r['precision']}")
    print(f"host syncs (aten._local_scalar_dense): {r['syncs']} = {r['syncs_per_step']:.3f} per step")
    print(f"kernel-launching aten ops (views excluded): {r['ops']} = {r['ops_per_step']:.1f} per step "
          f"({r['allocs']} of them aten.empty* allocations)")
    print("most frequent calls:")
    for name, n in r["top"]:
        print(f"  {n / r['steps']:8.2f}/step  {name}")


if __name__ == "__main__":
    main()
