"""bench.speed.roofline: the matmuls of a real step recorded and replayed at their layout, the optimizer's bytes,
the profile of a step. Structure only: no wall-clock assertion (speed is measured by lrbench train-speed)."""
import pytest
import torch

from bench.speed import roofline as R
from bench.train.config import TrainConfig, TrainSpec

SMALL = (784, 32, 16, 10)


def configs():
    return [TrainConfig(f"m{k}", opt, lr, seed=k % 2) for k, (opt, lr) in
            enumerate([("sgd", 0.1), ("adam", 1e-3), ("sgd", 0.1), ("adam", 1e-3), ("momentum", 0.01),
                       ("momentum", 0.01)])]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_recorded_matmuls_are_the_steps(precision):
    """Two seeds (two groups sharing a batch): the first layer's forward and weight gradient once per group, the
    other layers' forward, weight gradient and input gradient once each; dtype and FLOPs as trained."""
    step = R.make_step(configs(), TrainSpec(widths=SMALL, batch_size=32, precision=precision))
    calls = R.record_matmuls(step)
    assert len(calls) == 2 + 2 + 3 * 2
    rows = R.time_matmuls(calls, "cpu", repeats=2)
    want = torch.float32 if precision == "fp32" else torch.bfloat16
    assert {r["dtype"] for r in rows} == {str(want).replace("torch.", "")}
    M, B = 6, 32
    flops = M * sum(2 * B * i * o * (2 if k == 0 else 3) for k, (i, o) in enumerate(zip(SMALL[:-1], SMALL[1:])))
    assert sum(r["flops"] for r in rows) == flops
    assert all(r["seconds"] > 0 for r in rows)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_optimizer_bytes(precision):
    """sgd: parameter read + write and gradient read; momentum: + its buffer; adam: + two moments; bf16:
    gradients of 2 bytes and a 2-byte copy of the parameters written."""
    step = R.make_step(configs(), TrainSpec(widths=SMALL, batch_size=32, precision=precision))
    step()
    n = sum(p[0].numel() for p in step.model.params)  # one model's parameters
    grad, low = (4, 0) if precision == "fp32" else (2, 2)
    per_model = {"sgd": 8 + grad + low, "adam": 8 + grad + low + 16, "momentum": 8 + grad + low + 8}
    want = n * sum(2 * v for v in per_model.values())
    assert R.optimizer_bytes(step.opt, step.model.grads) == want


def test_measure_and_profile():
    step = R.make_step(configs(), TrainSpec(widths=SMALL, batch_size=32, precision="bf16"))
    r = R.measure(step, repeats=2)
    assert r["roofline_s"] == pytest.approx(r["matmul_s"] + r["optimizer_bytes"] / r["copy_bandwidth"])
    assert r["step_over_roofline"] == pytest.approx(r["step_s"] / r["roofline_s"]) and r["precision"] == "bf16"
    assert R.measure(step, step_s=1.0, repeats=1)["step_s"] == 1.0
    parts = R.profile(step, steps=2)
    names = [p["part"] for p in parts]
    assert names[:2] == ["matmuls", "optimizer update"] and "Python and dispatch (the rest)" in names
    assert all(p["seconds"] >= 0 for p in parts)
    assert not hasattr(step.opt, "__dict__") or "step" not in vars(step.opt)  # the timing wrapper is removed


def test_optimizer_bandwidth_and_the_written_tables(tmp_path):
    """measure() reports the optimizer's update measured in real steps (bytes / its time, and that over the copy
    bandwidth); ``python -m bench.speed.roofline --out`` writes those rows and the step profile as CSV."""
    import csv

    step = R.make_step(configs(), TrainSpec(widths=SMALL, batch_size=32, precision="fp32"))
    r = R.measure(step, step_s=1.0, repeats=1, optimizer_steps=2)
    assert r["optimizer_step_s"] > 0
    assert r["optimizer_bandwidth"] == pytest.approx(r["optimizer_bytes"] / r["optimizer_step_s"])
    assert r["optimizer_share"] == pytest.approx(r["optimizer_bandwidth"] / r["copy_bandwidth"])
    parts = [dict(p, precision="fp32") for p in R.profile(step, steps=2)]
    roof, prof = R._write([r], parts, tmp_path, "a CPU", "cpu")
    rows = list(csv.DictReader(roof.open()))
    assert list(rows[0]) == R.ROOFLINE_COLUMNS and float(rows[0]["optimizer_share_of_copy"]) > 0
    assert len(list(csv.DictReader(prof.open()))) == len(parts)
