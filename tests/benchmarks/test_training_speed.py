"""pytest-benchmark: one training step of 36 MLPs (784-256-128-10, batches of 128, sgd / momentum /
nesterov / rmsprop / adam / adamw over two paired seeds) as each trainer takes it
(``bench.speed.probes.TrainingPair``): the batched trainer's ``train_step`` with ``BatchedOptimizer``
against the sequential trainer's torch.nn + torch.optim + LrcoreScheduler, one model at a time; on the
regression gate's 2 threads (random inputs; no data set needed). Group: ``train-step-36-models``."""
import pytest

torch = pytest.importorskip("torch")

from bench.speed.probes import TRAIN_MODELS, TRAIN_THREADS, TrainingPair, pinned_threads  # noqa: E402


@pytest.fixture(scope="module")
def gate_threads():
    with pinned_threads(TRAIN_THREADS):
        yield


@pytest.mark.parametrize("trainer", ["batched", "sequential"])
def test_train_step(benchmark, gate_threads, trainer):
    benchmark.group = f"train-step-{TRAIN_MODELS}-models"
    pair = TrainingPair(TRAIN_MODELS)
    step = pair.batched_step if trainer == "batched" else pair.sequential_step
    step()
    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
