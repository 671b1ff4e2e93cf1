"""lrbench train-speed: both trainers measured in one process, rates and ratios consistent."""
import csv
import dataclasses
import textwrap

import pytest

from bench.speed import trainer as trainer_speed
from bench.train.data import load_fashion_mnist
from bench.matrix.spec import load_matrix


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "s.toml"
    p.write_text(textwrap.dedent("""
        epochs = 1
        seeds = [0, 1]
        [model]
        widths = [784, 64, 10]
        [peak_lr]
        sgd = 0.1
        adam = 0.001
        [schedules]
        constant = "Constant(lr=peak)"
        cosine = "Cosine(lr=peak, decay_steps=total)"
    """))
    d = load_fashion_mnist("cpu")
    d = dataclasses.replace(d, x_train=d.x_train[:2000], y_train=d.y_train[:2000], x_val=d.x_val[:500],
                            y_val=d.y_val[:500])
    return load_matrix(p), d


def test_measure_and_write(small, tmp_path):
    matrix, data = small
    rows = trainer_speed.measure(matrix, data, sequential_models=4, keras_models=2, log=lambda m: None)
    by = {r["trainer"]: r for r in rows}
    assert by["batched"]["n_models"] == 8 and by["sequential"]["n_models"] == 4 and by["keras"]["n_models"] == 2
    assert by["keras"]["device"] == "cpu"
    assert by["sequential"]["speedup_vs_sequential"] == 1.0
    for r in rows:
        assert r["model_epochs_per_s"] > 0 and r["matmul_flop_per_s"] > 0
        assert r["samples_per_s"] == pytest.approx(r["model_epochs_per_s"] * 2000)
        assert 0 < r["flop_fraction_of_matmul"] < 5
    assert by["batched"]["speedup_vs_sequential"] == pytest.approx(
        by["batched"]["model_epochs_per_s"] / by["sequential"]["model_epochs_per_s"])
    path = trainer_speed.write(rows, tmp_path)
    assert path.name == "trainer_cpu.csv"
    got = list(csv.DictReader(path.open()))
    assert [g["trainer"] for g in got] == ["batched", "sequential", "keras"] and list(got[0]) == trainer_speed.COLUMNS


def test_precisions_side_by_side_with_roofline_and_profile(small, tmp_path):
    matrix, data = small
    profile = []
    rows = trainer_speed.measure(matrix, data, sequential_models=2, precisions=["fp32", "bf16"], log=lambda m: None,
                                 profile=profile)
    by = {(r["trainer"], r["precision"]): r for r in rows}
    assert set(by) == {("batched", "fp32"), ("sequential", "fp32"), ("batched", "bf16"), ("sequential", "bf16")}
    for prec in ("fp32", "bf16"):
        b = by[("batched", prec)]
        assert b["n_models"] == 8 and b["step_ms"] > 0 and b["roofline_ms"] > 0 and b["optimizer_bytes"] > 0
        assert b["step_over_roofline"] == pytest.approx(b["step_ms"] / b["roofline_ms"])
        assert {p["part"] for p in profile if p["precision"] == prec} >= {"matmuls", "optimizer update"}
    assert by[("batched", "bf16")]["speedup_vs_fp32"] == pytest.approx(
        by[("batched", "bf16")]["model_epochs_per_s"] / by[("batched", "fp32")]["model_epochs_per_s"])
    assert "speedup_vs_fp32" not in by[("batched", "fp32")]
    trainer_speed.write(rows, tmp_path, profile)
    got = list(csv.DictReader((tmp_path / "step_profile_cpu.csv").open()))
    assert list(got[0]) == trainer_speed.PROFILE_COLUMNS and len(got) == len(profile)
