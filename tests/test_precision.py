"""Precision end to end: the matrix key and the CLI option, meta.json and every results row, the report, the
paired bf16-vs-fp32 comparison (lrbench cross-check) and the rule that runs of different precision are never
pooled. Real training of a tiny matrix on a slice of Fashion-MNIST."""
import json
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main, write_run_report
from bench.matrix.runner import RunError, run_matrix
from bench.matrix.spec import MatrixError, from_dict, load_matrix
from bench.report import crossframework as CF
from bench.report import precision as PR
from bench.report.stats import ReportError, load_run
from bench.train.data import load_fashion_mnist

TINY = """
name = "tiny"
epochs = 2
seeds = [0, 1, 2]
batch_size = 100
[model]
widths = [784, 32, 10]
[peak_lr]
momentum = 0.02
adam = 0.002
adamw_schedulefree = 0.0025
[schedules]
constant = "Constant(lr=peak)"
warmup_cosine = "Warmup(Cosine(lr=peak, decay_steps=total - steps_per_epoch), steps=steps_per_epoch)"
"""


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist("cpu").head(2000, 1000, 1000)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    res = tmp_path_factory.mktemp("res")
    p = res / "tiny.toml"
    p.write_text(textwrap.dedent(TINY))
    m = load_matrix(p)
    out = {}
    for prec in ("fp32", "bf16"):
        out[prec] = run_matrix(m.replace(precision=prec), results_dir=res, run_id=f"tiny-{prec}", device="cpu",
                               data=data, progress=False)
    return res, out


def test_matrix_precision_key():
    base = dict(epochs=1, peak_lr={"sgd": 0.1}, schedules={"constant": "Constant(lr=peak)"})
    assert from_dict(base).precision == "fp32"
    m = from_dict({**base, "precision": "bf16"})
    assert m.precision == "bf16" and m.to_dict()["precision"] == "bf16" and from_dict(m.to_dict()).precision == "bf16"
    with pytest.raises(MatrixError, match="precision must be one of"):
        from_dict({**base, "precision": "fp16"})
    with pytest.raises(MatrixError, match="PyTorch trainers only"):
        from_dict({**base, "precision": "bf16", "framework": "keras"})
    assert load_matrix("precision").epochs >= 20 and load_matrix("precision").n_configs == 21


def test_meta_and_every_row_record_the_precision(runs):
    _, out = runs
    for prec, run_dir in out.items():
        meta = json.loads((run_dir / "meta.json").read_text())
        assert meta["precision"] == meta["matrix"]["precision"] == prec
        for name in ("summary.csv", "throughput.csv"):
            assert set(pd.read_csv(run_dir / name)["precision"]) == {prec}
        assert set(pd.read_parquet(run_dir / "epochs.parquet")["precision"]) == {prec}
        assert meta["throughput"]["train_s"] > 0


def test_same_seeds_same_start_and_close_accuracy(runs):
    """bf16 starts from the same weights and batches (its first epoch's losses are close to fp32's) and ends
    within a few points of fp32's accuracy on this tiny run."""
    _, out = runs
    s = {p: pd.read_csv(d / "summary.csv").set_index("model") for p, d in out.items()}
    assert (s["bf16"][["name", "optimizer", "seed"]] == s["fp32"][["name", "optimizer", "seed"]]).all().all()
    assert (s["bf16"]["test_acc"] - s["fp32"]["test_acc"]).abs().max() < 0.05
    h = {p: pd.read_parquet(d / "epochs.parquet") for p, d in out.items()}
    first = [h[p][h[p]["epoch"] == 0].set_index("model")["train_loss"] for p in out]
    assert (first[0] - first[1]).abs().max() < 0.05


def test_cross_check_pairs_the_precisions_and_the_report_says_whether_a_verdict_changes(runs):
    res, out = runs
    r = CliRunner().invoke(main, ["cross-check", str(out["fp32"]), str(out["bf16"])])  # either order
    assert r.exit_code == 0, r.output
    assert "verdict" in r.output
    paired = pd.read_csv(out["bf16"] / "precision.csv")
    table = pd.read_csv(out["bf16"] / "precision_verdicts.csv")
    assert list(paired.columns) == CF.COLUMNS and list(table.columns) == PR.VERDICT_COLUMNS
    assert (paired["n_pairs"][paired["config"] != "all"] == 3).all()
    assert set(table["kind"]) == {"schedule vs baseline", "schedule-free"}
    html_path, md_path = write_run_report(out["bf16"], res)
    md = md_path.read_text()
    line = PR.verdict_line(paired, table)
    assert line.split(":")[0] in md and "bf16 vs fp32" in md and "in bf16 on cpu" in md
    assert ("changes no verdict" in line) == bool(table["same"].all())


def test_different_precisions_are_never_pooled(runs, tmp_path):
    res, out = runs
    with pytest.raises(ValueError, match="never pooled"):  # a framework check across precisions
        CF.compare(out["fp32"], out["bf16"], write=False)
    with pytest.raises(ValueError, match="bf16 run and an fp32 run"):
        PR.compare(out["fp32"], out["fp32"], write=False)
    # a run folder whose rows mix precisions is refused by the report
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("meta.json", "epochs.parquet"):
        (mixed / name).write_bytes((out["fp32"] / name).read_bytes())
    s = pd.concat([pd.read_csv(out["fp32"] / "summary.csv"), pd.read_csv(out["bf16"] / "summary.csv")])
    s.to_csv(mixed / "summary.csv", index=False)
    with pytest.raises(ReportError, match="never pooled"):
        load_run(mixed)


def test_older_runs_without_precision_read_as_fp32(runs, tmp_path):
    _, out = runs
    old = tmp_path / "old"
    old.mkdir()
    meta = json.loads((out["fp32"] / "meta.json").read_text())
    meta.pop("precision")
    meta["matrix"].pop("precision")
    (old / "meta.json").write_text(json.dumps(meta))
    pd.read_csv(out["fp32"] / "summary.csv").drop(columns="precision").to_csv(old / "summary.csv", index=False)
    pd.read_parquet(out["fp32"] / "epochs.parquet").drop(columns="precision").to_parquet(old / "epochs.parquet")
    assert load_run(old).precision == "fp32" and CF.run_precision(old) == "fp32"


def test_cli_precision_option_and_the_slow_hardware_warning(data, tmp_path, monkeypatch):
    """--precision bf16 says before it starts when the machine has no bfloat16 arithmetic; --resume refuses it;
    Keras refuses bf16."""
    import bench.machine
    monkeypatch.setattr(bench.machine, "bf16_slow_reason", lambda device: "no AVX512_BF16 or AMX-BF16 flag")
    r = CliRunner().invoke(main, ["find-lr", "--precision", "bf16", "--optimizers", "sgd", "--steps", "3",
                                  "--out", str(tmp_path / "f"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "slower than fp32" in r.output and "no AVX512_BF16" in r.output
    assert (tmp_path / "f" / "find_lr.png").is_file()
    assert set(pd.read_csv(tmp_path / "f" / "find_lr.csv")["precision"]) == {"bf16"}
    r = CliRunner().invoke(main, ["run", "--resume", "x", "--precision", "bf16", "--results", str(tmp_path)])
    assert r.exit_code != 0 and "--precision" in r.output
    with pytest.raises(RunError, match="PyTorch trainers only"):
        m = from_dict(dict(epochs=1, peak_lr={"sgd": 0.1}, schedules={"constant": "Constant(lr=peak)"},
                           precision="bf16"))
        run_matrix(m, results_dir=tmp_path, trainer="keras", device="cpu", data=data, progress=False)
