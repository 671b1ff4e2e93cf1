"""The regression gate (bench.regression) passes on the real code and fails on injected regressions:
a kernel that falls back to the numpy path, a slower batched trainer, an lr schedule bug, a wrong optimizer.

Every case measures for real (no canned numbers) and is judged against the committed baseline
(results/regression/baseline.json), as `.ci/run` does.
"""
import io
import json

import pytest

import lrcore
from bench import regression as R

BASELINE = R.load_baseline(R.DEFAULT_BASELINE)


@pytest.fixture(scope="module")
def data():
    from bench.shortrun import load_data
    try:
        return load_data()
    except (FileNotFoundError, ValueError) as exc:  # pragma: no cover - CI installs the data set
        pytest.skip(f"Fashion-MNIST unavailable: {exc}")


@pytest.fixture(scope="module")
def real(data):
    return R.measure(data=data, repeats=3)


def failed(verdicts):
    return sorted(v.name for v in verdicts if not v.ok)


def table(verdicts) -> str:
    buf = io.StringIO()
    R.render(verdicts, file=buf)
    return buf.getvalue()


def test_baseline_covers_every_metric():
    assert set(BASELINE["metrics"]) == set(R.METRICS)
    for name, m in BASELINE["metrics"].items():
        assert m["kind"] == R.METRICS[name].kind and m["tolerance"] > 0


def test_gate_passes_on_the_real_code(real):
    verdicts = R.judge(real, BASELINE)
    assert len(verdicts) == len(R.METRICS)
    assert failed(verdicts) == [], table(verdicts)
    assert "REGRESSION" not in table(verdicts)


def test_gate_catches_kernels_falling_back_to_numpy(monkeypatch):
    real_eval, real_many = R._evaluate, R._evaluate_many
    monkeypatch.setattr(R, "_evaluate", lambda s, n, *, backend, out=None: real_eval(s, n, backend="numpy"))
    monkeypatch.setattr(R, "_evaluate_many", lambda s, n, *, backend, out=None: real_many(s, n, backend="numpy"))
    measured = R.measure(["numba_vs_lrcore_numpy", "many_numba_vs_numpy"], repeats=3)
    verdicts = R.judge(measured, BASELINE, require_all=False)
    assert failed(verdicts) == ["speedup.many_numba_vs_numpy", "speedup.numba_vs_lrcore_numpy"], table(verdicts)
    assert "REGRESSION" in table(verdicts)


def test_gate_catches_a_slower_batched_trainer(monkeypatch):
    import bench.batched as B
    step = B.train_step

    def slow_step(*args, **kwargs):  # the same update, with three times the forward/backward work
        for _ in range(2):
            args[0].losses(args[2], args[3]).sum().backward()
        return step(*args, **kwargs)

    monkeypatch.setattr(B, "train_step", slow_step)
    measured = {"speedup.batched_vs_sequential": R.measure_batched_vs_sequential(steps=10, repeats=3)}
    verdicts = R.judge(measured, BASELINE, require_all=False)
    assert failed(verdicts) == ["speedup.batched_vs_sequential"], table(verdicts)


def test_gate_catches_a_schedule_bug(monkeypatch, data):
    real_many = lrcore.evaluate_many
    monkeypatch.setattr(lrcore, "evaluate_many", lambda *a, **k: real_many(*a, **k) * 0.01)  # lr off by 100x
    verdicts = R.judge(R.measure(["error_rate"], data=data), BASELINE, require_all=False)
    assert "error_rate.mean" in failed(verdicts), table(verdicts)
    assert len(failed(verdicts)) >= 3


def test_gate_catches_a_wrong_optimizer(monkeypatch, data):
    import bench.trainer as T
    monkeypatch.setitem(T.OPTIMIZERS, "adam", ("sgd", {}))  # "adam" silently trains with plain SGD
    verdicts = R.judge(R.measure(["error_rate"], data=data), BASELINE, require_all=False)
    assert "error_rate.warmup_cosine-adam" in failed(verdicts), table(verdicts)


def test_judge_rules():
    base = {"metrics": {"speedup.x": {"value": 30.0, "kind": "speedup", "tolerance": 3.0},
                        "error_rate.y": {"value": 0.15, "kind": "error", "tolerance": 0.01}}}
    ok = R.judge({"speedup.x": 10.5, "error_rate.y": 0.159}, base)
    assert failed(ok) == [] and [v.limit for v in ok] == [10.0, pytest.approx(0.16)]
    assert failed(R.judge({"speedup.x": 9.9, "error_rate.y": 0.161}, base)) == ["error_rate.y", "speedup.x"]
    assert failed(R.judge({"speedup.x": 100.0, "error_rate.y": 0.01}, base)) == []   # improvements pass
    assert failed(R.judge({"speedup.x": 100.0}, base)) == ["error_rate.y"]          # not measured
    assert failed(R.judge({"speedup.x": 100.0}, base, require_all=False)) == []
    assert failed(R.judge({"speedup.x": float("nan"), "error_rate.y": 0.1}, base)) == ["speedup.x"]
    assert failed(R.judge({"speedup.x": 40.0, "error_rate.y": 0.1, "speedup.new": 1.0}, base)) == ["speedup.new"]


def test_cli_exit_codes(tmp_path, capsys, monkeypatch):
    assert R.main(["--baseline", str(tmp_path / "missing.json")]) == 2
    fake = {"speedup.numba_vs_closed_form": {"value": 20.0}}
    monkeypatch.setattr(R, "measure", lambda *a, **k: dict(fake))
    path = tmp_path / "b.json"
    assert R.main(["--baseline", str(path), "--update", "--only", "closed_form"]) == 0
    doc = json.loads(path.read_text())
    assert doc["metrics"]["speedup.numba_vs_closed_form"]["value"] == 20.0 and doc["git_commit"]
    assert R.main(["--baseline", str(path), "--only", "closed_form"]) == 0
    fake["speedup.numba_vs_closed_form"] = {"value": 2.0}   # 10x slower than the baseline
    assert R.main(["--baseline", str(path), "--only", "closed_form", "--json", str(tmp_path / "v.json")]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "speedup.numba_vs_closed_form" in out
    assert json.loads((tmp_path / "v.json").read_text())["verdicts"][0]["ok"] is False
