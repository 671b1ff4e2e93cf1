"""pytest-benchmark: one training step of 6 MLPs (784-256-128-10, batches of 128, sgd / momentum /
nesterov / rmsprop / adam / adamw), batched stack against one-at-a-time torch.nn + torch.optim, on one
torch thread (random inputs; no data set needed). Group: ``train-step``."""
import pytest

torch = pytest.importorskip("torch")

from bench.regression import TrainingPair  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("trainer", ["batched", "sequential"])
def test_train_step_6_models(benchmark, one_thread, trainer):
    benchmark.group = "train-step-6-models"
    pair = TrainingPair(6)
    step = pair.batched_step if trainer == "batched" else pair.sequential_step
    step()
    benchmark.pedantic(step, rounds=20, warmup_rounds=2)
