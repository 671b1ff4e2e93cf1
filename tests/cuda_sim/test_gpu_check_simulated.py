"""``make gpu-check``'s evaluator step (every schedule family on CUDA against numpy) on the simulator."""
import csv
import types


def test_gpu_check_evaluator_step_runs(tmp_path):
    from bench.speed import gpu_check
    detail = gpu_check.step_evaluator(tmp_path, types.SimpleNamespace(), n=400, n_schedules=14, stride=37)
    rows = list(csv.DictReader((tmp_path / "evaluator_check.csv").open()))
    assert rows and all(r["ok"] == "True" for r in rows)
    assert {r["dtype"] for r in rows} == {"float64", "float32"}
    assert "families" in detail
