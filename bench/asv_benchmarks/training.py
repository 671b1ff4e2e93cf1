"""One training step: the batched stack (``bench.batched.train_step`` on a BatchedMLP of M models) against
M plain ``torch.nn.Sequential`` + ``torch.optim`` models stepped one at a time (the sequential trainer's
inner loop). Models 784-256-128-10, batches of 128 per model, optimizers sgd / momentum / nesterov /
rmsprop / adam / adamw in turn; random inputs (speed does not depend on the pixels, and no data set is
needed). One torch thread unless LRBENCH_ASV_THREADS says otherwise.
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
    """Seconds per training step of all ``models`` (forward, backward, optimizer update)."""
    params = (["batched", "sequential"], [1, 6])
    param_names = ["trainer", "models"]

    def setup(self, trainer, models):
        try:
            import torch  # noqa: F401
            pin_threads()
            self.pair = harness("regression").TrainingPair(models)
            self.step = self.pair.batched_step if trainer == "batched" else self.pair.sequential_step
        except MISSING as exc:
            skip(f"not at this commit: {exc}")
        self.step()  # allocations, optimizer state

    def time_step(self, trainer, models):
        self.step()
