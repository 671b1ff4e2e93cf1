"""One training step of M models, as each trainer takes it (``bench.speed.probes.TrainingPair``):

* ``batched``: ``bench.train.batched.train_chunk``'s inner step -- ``bench.train.model.train_step`` on a
  ``BatchedMLP`` stack of the M models with ``BatchedOptimizer`` (its default implementation: the Numba
  kernels on the CPU), the stack ordered by seed, one batch per seed shared by that seed's models
  (``groups``), the step's column of the float32 lrcore lr table, the active mask;
* ``sequential``: ``bench.train.sequential.train_one``'s inner step for each of the M models in turn -- plain
  ``torch.nn.Sequential`` + ``torch.optim`` + ``lrcore.integrations.torch.LrcoreScheduler``
  (``zero_grad``, forward, ``loss.item()``, backward, ``optimizer.step()``, ``scheduler.step()``).

Models 784-256-128-10, batches of 128, optimizers sgd / momentum / nesterov / rmsprop / adam / adamw in
turn over two paired seeds, warmup + cosine schedules; random inputs (speed does not depend on the
pixels, and no data set is needed). One torch and numba thread unless LRBENCH_ASV_THREADS says otherwise
(the regression gate's ratio of the same pair runs on 2). Commits without the trainers' pieces
(``bench.train.batched``, ``train_step(groups=...)``, ``LrcoreScheduler``) are skipped.
"""
from ._harness import MISSING, harness, pin_threads, skip

# Imported once in asv's forkserver (not in every benchmark process): the package __init__ has already
# pointed sys.path at the commit under test when LRBENCH_ASV_PROJECT is set.
import lrcore  # noqa: F401,E402
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None


class TrainStep:
    """Seconds per training step of all ``models`` (forward, backward, optimizer update, lr schedule)."""
    params = (["batched", "sequential"], [1, 6, 36])
    param_names = ["trainer", "models"]

    def setup(self, trainer, models):
        try:
            import torch  # noqa: F401
            pin_threads()
            self.pair = harness("probes").TrainingPair(models)
            self.step = self.pair.batched_step if trainer == "batched" else self.pair.sequential_step
            self.step()  # allocations, optimizer state; fails here on a commit whose trainer lacks a piece
        except MISSING as exc:
            skip(f"not at this commit: {exc}")

    def time_step(self, trainer, models):
        self.step()


class TrainStepBF16:
    """Seconds per training step of all ``models`` in bf16 (the batched trainer's mixed precision: bfloat16
    matmuls, float32 master weights and optimizer); its own benchmark so that fp32's history stays as it was."""
    params = ([6, 36],)
    param_names = ["models"]

    def setup(self, models):
        try:
            import torch  # noqa: F401
            pin_threads()
            self.pair = harness("probes").TrainingPair(models, precision="bf16")
            self.pair.batched_step()  # fails here on a commit without precision="bf16"
        except MISSING as exc:
            skip(f"not at this commit: {exc}")

    def time_step(self, models):
        self.pair.batched_step()
