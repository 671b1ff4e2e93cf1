"""The device path (what CUDA runs), exercised on the CPU: ``optim_impl="torch"``.

* A training step of the quick matrix's 72 models makes no host sync and a bounded number of
  kernel-launching aten ops, counted under a ``TorchDispatchMode`` (``bench.speed.count_ops``). The marginal
  cost of a step is measured as the difference of two runs of 20 and 40 steps (per-chunk and per-epoch
  work cancels); ``python -m bench.speed.count_ops`` gives the whole-epoch numbers.
* The trainer with the torch optimizer equals the trainer with the numba optimizer (real data).
* ``backend="auto"`` in lrcore falls back to numba, with one warning, when the GPU run fails.
* ``make gpu-check``'s script runs here with every GPU step reported as skipped.
No test needs a GPU.
"""
import csv
import warnings

import numpy as np
import pytest
import torch

import lrcore
from bench.speed import count_ops
from bench.train.optim_fused import period

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def data():
    from bench.train.data import load_fashion_mnist
    try:
        return load_fashion_mnist("cpu")
    except (FileNotFoundError, ValueError) as e:  # pragma: no cover - machines without the data set
        pytest.skip(f"Fashion-MNIST not installed: {e}")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_step_makes_no_host_sync_and_few_ops(data):
    short, long = (count_ops.count_chunk("quick", steps=n, data=data) for n in (20, 40))
    assert short["models"] == long["models"] == 72
    syncs = (long["syncs"] - short["syncs"]) / 20
    ops = (long["ops"] - short["ops"]) / 20
    print(f"per training step, 72 models: {syncs:.2f} host syncs, {ops:.1f} kernel-launching aten ops; "
          f"40-step run: {long['syncs_per_step']:.3f} syncs and {long['ops_per_step']:.1f} ops per step")
    assert syncs == 0
    assert ops <= 120
    assert long["syncs_per_step"] <= 0.2 and long["ops_per_step"] <= 150


@pytest.mark.parametrize("early_stopping", [None, 1])
def test_trainer_torch_path_equals_numba_path(data, early_stopping):
    """The same chunk (every optimizer, a plateau schedule, a diverging model) trained with both optimizer
    implementations on real data: the same history to float32 rounding over the first epochs."""
    from bench.train.batched import TrainConfig, train_chunk
    small = data.head(40 * 128, 2000, 2000)
    configs = []
    for seed in (0, 1):
        for opt, lr in (("sgd", 0.1), ("momentum", 0.01), ("nesterov", 0.01), ("rmsprop", 5e-4), ("adam", 1e-3),
                        ("adamw", 1e-3), ("sgd_schedulefree", 0.5), ("adamw_schedulefree", 2.5e-3)):
            configs.append(TrainConfig(f"{opt}-{seed}", opt, lr, "Cosine(lr=peak, decay_steps=total)", seed))
        configs.append(TrainConfig(f"plateau-{seed}", "adam", 1e-3, "plateau", seed))
    configs.append(TrainConfig("diverges", "sgd", 1e6, "Constant(lr=peak)", 0))
    from bench.train.config import TrainSpec
    spec = TrainSpec(epochs=3, plateau=dict(factor=0.1, patience=0), early_stopping=early_stopping)
    a = train_chunk(configs, small, spec.replace(optim_impl="numba"))
    b = train_chunk(configs, small, spec.replace(optim_impl="torch"))
    for col in ("trained", "diverged", "stopped", "epoch", "model"):
        assert a.history[col].tolist() == b.history[col].tolist(), col
    assert bool(a.summary.loc[a.summary.name == "diverges", "diverged"].iloc[0])
    ok = ~a.history.diverged
    for col in ("lr", "train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose(b.history.loc[ok, col], a.history.loc[ok, col], rtol=2e-3, atol=2e-3, err_msg=col)
    np.testing.assert_allclose(b.summary.test_acc, a.summary.test_acc, atol=5e-3)


def test_period_of_the_stack():
    assert period(list("abcabc")) == 3
    assert period(list("aaaa")) == 1
    assert period(list("abcab")) == 5
    assert period(list("abab" "abaa")) == 8


def test_auto_backend_falls_back_to_numba_with_one_warning(monkeypatch):
    import importlib

    from lrcore.kernels import cuda
    E = importlib.import_module("lrcore.evaluate")  # the module (lrcore.evaluate is also the function)
    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise RuntimeError("NVVM: libnvvm.so not found (a driver older than the NVVM)")
    monkeypatch.setattr(cuda, "auto_uses_cuda", lambda values: True)
    monkeypatch.setattr(cuda, "evaluate_many_cuda", broken)
    monkeypatch.setattr(E, "_CUDA_FAILED", False)
    s = [lrcore.Cosine(0.1, 1000), lrcore.Constant(0.5)]
    with pytest.warns(RuntimeWarning, match="numba") as rec:
        got = lrcore.evaluate_many(s, 1000)
    assert len(rec) == 1 and "libnvvm" in str(rec[0].message)
    np.testing.assert_allclose(got, lrcore.evaluate_many(s, 1000, backend="numpy"), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lrcore.evaluate_many(s, 1000)  # no second warning, no second try
    assert len(calls) == 1


def test_gpu_check_without_a_gpu_skips_the_gpu_steps(tmp_path):
    from bench.speed import gpu_check
    rc = gpu_check.main(["--out", str(tmp_path), "--steps", "versions,evaluator,train-cuda,train-compare"])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "steps.csv").open()))
    status = {r["step"]: r["status"] for r in rows}
    assert status == {"versions": "ok", "evaluator": "skipped", "train-cuda": "skipped", "train-compare": "skipped"}
    assert (tmp_path / "versions.json").exists() and (tmp_path / "nvidia-smi.txt").exists()
    assert all(r["detail"] for r in rows)


def test_cli_has_the_optim_impl_option():
    from click.testing import CliRunner

    from bench.cli import main
    for cmd in ("run", "train-speed"):
        r = CliRunner().invoke(main, [cmd, "--help"])
        assert r.exit_code == 0 and "--optim-impl" in r.output


def test_gpu_check_compares_the_cuda_and_cpu_runs(tmp_path):
    """The comparison step on two summary tables (the runs themselves need a GPU)."""
    import pandas as pd

    from bench.speed import gpu_check
    from bench.train.batched import SUMMARY_COLUMNS
    base = {c: 0 for c in SUMMARY_COLUMNS}
    rows = [dict(base, model=i, name=f"c{i}", optimizer="adam", schedule="constant", seed=0, test_acc=0.8 + i / 100,
                 final_val_acc=0.8, final_train_loss=0.5) for i in range(4)]
    for device, shift in (("cuda", 0.002), ("cpu", 0.0)):
        d = tmp_path / "results" / "runs" / f"gpu-check-{device}"
        d.mkdir(parents=True)
        pd.DataFrame([dict(r, test_acc=r["test_acc"] + shift) for r in rows]).to_csv(d / "summary.csv", index=False)
    text = gpu_check.step_train_compare(tmp_path, None)
    assert "4 configurations" in text and "max 0.0020" in text
    got = pd.read_csv(tmp_path / "train_compare.csv")
    assert len(got) == 4 and abs(got.test_acc_diff - 0.002).max() < 1e-12


def test_gpu_check_precision_step_runs_on_the_cpu(tmp_path):
    """The precision step's code path (make_step, step_time, measure) on the CPU with small models, so a change
    to those signatures shows here and not first on a lent GPU."""
    from bench.speed import gpu_check
    text = gpu_check.step_precisions(tmp_path, None, rounds=1, device="cpu", widths=(784, 16, 10), batch_size=32)
    rows = list(csv.DictReader((tmp_path / "speed" / "precision_cpu.csv").open()))
    assert [r["mode"] for r in rows] == ["fp32", "tf32", "bf16"] and all(float(r["step_ms"]) > 0 for r in rows)
    assert "fp32" in text and "roofline" in text
