"""`lrbench speed` at small sizes: it runs every method, measures accuracy honestly and writes its table."""
import csv
import json

import numpy as np
from click.testing import CliRunner

from bench.speed import evaluator as sp
from bench.cli import main


def test_speed_command_writes_a_complete_table(tmp_path):
    result = CliRunner().invoke(main, ["speed", "--steps", "20000", "--many", "30", "--many-steps", "2000",
                                       "--repeats", "1", "--torch-steps", "500", "--keras-steps", "50",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "evaluate_cpu.csv")))
    methods = {r["method"] for r in rows}
    assert {"lrcore numba", "lrcore numpy", "numpy closed form", "PyTorch SequentialLR loop",
            "Keras CosineDecay calls", "lrcore numba evaluate_many"} <= methods
    by = {r["method"]: r for r in rows}
    assert float(by["lrcore numba"]["max_rel_err"]) <= 1e-12      # against 40-digit mpmath values
    assert float(by["PyTorch SequentialLR loop"]["max_rel_err"]) <= 1e-10
    assert float(by["Keras CosineDecay calls"]["max_rel_err"]) <= 1e-5   # float32
    assert float(by["lrcore numba evaluate_many"]["max_rel_err"]) <= 1e-12
    assert all(float(r["values_per_second"]) > 0 for r in rows)
    meta = json.loads((tmp_path / "evaluate_cpu.json").read_text())
    assert meta["machine"]["threads"] >= 1 and meta["rows"]
    fam = list(csv.DictReader(open(tmp_path / "evaluate_families_cpu.csv")))
    from bench.speed import families as family_speed
    assert {r["family"] for r in fam} >= set(family_speed.families(1000)) and any("evaluate_many" in r["family"] for r in fam)
    for r in fam:
        assert float(r["values_per_second"]) > 0 and float(r["share"]) > 0 and float(r["max_rel_err"]) <= 1e-12
        assert "cores" in r["machine"] and meta["machine"]["cpu"] in r["machine"]
    assert "share" in result.output or "write limit" in result.output


def test_naive_closed_form_loses_relative_precision_where_lrcore_keeps_it():
    n = 1_000_000
    t = np.arange(n - 50, n)
    exact = sp.exact_values(t, n)
    assert sp.rel_err(sp.numpy_closed_form(t, n), exact) > 1e-8
    import lrcore
    assert sp.rel_err(lrcore.evaluate(sp.warmup_cosine(n)[0], t, backend="numba"), exact) < 1e-14


def test_speed_rejects_bad_sizes():
    result = CliRunner().invoke(main, ["speed", "--steps", "1.5"])
    assert result.exit_code != 0 and "positive integer" in result.output
