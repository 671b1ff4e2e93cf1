"""The regression gate (bench.speed.regression): the candidate tree is timed against a reference tree in the same
run, and passes on unchanged code; real code faults written into a copy of the project fail it (lrcore's
numba backend taking the numpy path, a batched training step doing its work three times); the error-rate
half catches a schedule bug and a wrong optimizer; the gate says when it cannot judge.

Every timing here is real, and nothing asserts a wall time: the verdicts are ratios of two trees measured
side by side.
"""
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import lrcore
from bench.speed import probes as P
from bench.speed import regression as R

ROOT = Path(__file__).resolve().parent.parent
BASELINE = R.load_baseline(R.DEFAULT_BASELINE)
SOURCES = ("lrcore", "bench", "reference")

#: Code faults written into a copy of the project: (file, the text replaced, the text put in its place).
NUMBA_ON_THE_NUMPY_PATH = ("lrcore/evaluate.py", '    if backend == "numpy":\n',
                           '    if backend in ("numpy", "numba"):  # injected: the kernel is bypassed\n')
STEP_THREE_TIMES = ("bench/train/model.py", "    losses = model.loss_and_grad(x, y, groups)\n",
                    "    model.loss_and_grad(x, y, groups)  # injected: the same work three times\n"
                    "    model.loss_and_grad(x, y, groups)\n"
                    "    losses = model.loss_and_grad(x, y, groups)\n")


def copy_of_the_project(dest: Path, *faults) -> Path:
    """The project's source folders copied to ``dest`` with ``faults`` written in (each must apply once).

    ``__pycache__`` is copied too: Numba's on-disk cache there is keyed by each source file's modification time
    and size, which the copy keeps, so the copy loads the kernels compiled here instead of compiling them again
    (~150 s of the first probe call on a cold tree, ~1 s warm). A file a fault rewrites gets a new stamp, so its
    kernels compile afresh. No timed round includes compilation either way (the first call is untimed)."""
    for name in SOURCES:
        shutil.copytree(ROOT / name, dest / name)
    for rel, old, new in faults:
        text = (dest / rel).read_text()
        assert text.count(old) == 1, f"the fault no longer applies to {rel}: update it to the code"
        (dest / rel).write_text(text.replace(old, new))
    return dest


def failed(verdicts):
    return sorted(v.name for v in verdicts if not v.ok)


def table(verdicts) -> str:
    buf = io.StringIO()
    R.render(verdicts, file=buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def warm_root():
    """Every probe called once in this tree before any copy is made, so the Numba kernels the probes use are
    compiled and cached here (a fresh clone has compiled only what earlier tests used): each copy then loads
    them (see :func:`copy_of_the_project`) instead of compiling them again."""
    w = R.Worker(ROOT, "warm-up")
    try:
        for name in P.PROBES:
            w.time(name, inner=1)
    finally:
        w.close()


@pytest.fixture(scope="module")
def data():
    from bench.speed.shortrun import load_data
    try:
        return load_data()
    except (FileNotFoundError, ValueError) as exc:  # pragma: no cover - CI installs the data set
        pytest.skip(f"Fashion-MNIST unavailable: {exc}")

# ------------------------------------------------------------------------------------------------ speed


def test_unchanged_code_passes(tmp_path, warm_root):
    """Every probe, the working tree against a copy of itself: ratios near 1, all within tolerance."""
    timings = R.compare(ROOT, copy_of_the_project(tmp_path), rounds=3)
    verdicts = R.judge_speed(timings)
    assert [v.name for v in verdicts] == list(P.PROBES)
    assert failed(verdicts) == [], table(verdicts)
    assert all(0.6 < v.ratio for v in verdicts), table(verdicts)  # and below the limit: no side favoured


def test_gate_catches_the_numba_backend_on_the_numpy_path(tmp_path, warm_root):
    faulty = copy_of_the_project(tmp_path / "faulty", NUMBA_ON_THE_NUMPY_PATH)
    timings = R.compare(faulty, ROOT, ["evaluate.warmup_cosine", "evaluate_many.mixed"], rounds=3)
    verdicts = R.judge_speed(timings)
    assert failed(verdicts) == ["evaluate.warmup_cosine", "evaluate_many.mixed"], table(verdicts)
    assert "REGRESSION" in table(verdicts)


def test_gate_catches_a_batched_step_doing_its_work_three_times(tmp_path, warm_root):
    faulty = copy_of_the_project(tmp_path / "faulty", STEP_THREE_TIMES)
    verdicts = R.judge_speed(R.compare(faulty, ROOT, ["train.batched_step"], rounds=3))
    assert failed(verdicts) == ["train.batched_step"], table(verdicts)
    # Tripled forward/backward is not a tripled step (the optimizer update and the batch gather stay once):
    # the ratio is 1 + 2 f, with f the forward/backward's share (1.98x on CI, above 2 on a quiet machine).
    # What the gate must show is a clear call: every round's ratio beyond the limit, not the median alone.
    assert verdicts[0].spread[0] > verdicts[0].limit, table(verdicts)


def test_the_faults_keep_the_values(tmp_path, warm_root):
    """The injected numba fault is a pure slowdown: the faulty tree computes the same learning rates."""
    faulty = copy_of_the_project(tmp_path, NUMBA_ON_THE_NUMPY_PATH)
    code = ("import json, lrcore, numpy as np; from bench.speed.probes import mixed_schedules; "
            "print(json.dumps(lrcore.evaluate_many(mixed_schedules(14, 3000), 3000, backend='numba').tolist()))")
    run = subprocess.run([R.sys.executable, "-c", code], cwd=faulty, capture_output=True, text=True,
                         env={**R.os.environ, "PYTHONPATH": str(faulty)}, check=True)
    ref = lrcore.evaluate_many(P.mixed_schedules(14, 3000), 3000, backend="numba")
    assert np.allclose(json.loads(run.stdout), ref, rtol=1e-12, atol=0)  # DESIGN.md: numpy vs numba


def test_a_worker_measures_its_own_tree(tmp_path, warm_root):
    copy = copy_of_the_project(tmp_path)
    w = R.Worker(copy, "candidate")
    try:
        got = w.time("evaluate.warmup_cosine", inner=1)
        assert got["seconds"] > 0
        assert "error" in w.time("no.such.probe")
    finally:
        w.close()


def test_a_probe_the_reference_lacks_is_not_judged_and_a_broken_candidate_fails():
    timings = {"evaluate.warmup_cosine": {"candidate": [1.0, 1.1, 0.9], "reference": [1.0, 1.0, 1.0]},
               "train.batched_step": {"error": "ImportError: no bench.batched", "side": "reference"},
               "train.sequential_step": {"error": "TypeError: boom", "side": "candidate"}}
    ok, new, broken = R.judge_speed(timings)
    assert ok.ok and ok.ratio == pytest.approx(1.0)
    assert not new.ok and not new.judged and "reference tree failed" in new.note
    assert not broken.ok and broken.judged and "candidate tree failed" in broken.note
    slow = R.judge_speed({"evaluate.warmup_cosine": {"candidate": [2.0, 2.1, 1.9], "reference": [1.0] * 3}})[0]
    assert not slow.ok and slow.judged and slow.ratio == pytest.approx(2.0)


def test_cli_against_a_commit_uses_a_worktree(capsys):
    """The CLI checks out the reference commit in a temporary git worktree and removes it afterwards."""
    before = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout
    code = R.main(["--against", "HEAD", "--only", "evaluate.warmup_cosine", "--no-accuracy"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "evaluate.warmup_cosine" in out and "(--against)" in out
    assert subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True).stdout == before


def test_the_recorded_reference_is_in_the_history():
    sha, source = R.reference_commit()
    assert source.startswith("recorded") and len(sha) == 40


def test_cannot_judge_without_the_reference_commit(tmp_path, capsys):
    assert R.main(["--against", "0" * 40, "--no-accuracy"]) == 2
    assert "is not in this clone" in capsys.readouterr().err
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(shallow)], check=True)
    old = json.loads(R.DEFAULT_REFERENCE.read_text())["commit"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if old == head:  # pragma: no cover - the reference is HEAD itself: a depth-1 clone has it
        pytest.skip("the recorded reference is HEAD")
    with pytest.raises(R.CannotJudge, match="shallow clone.*git fetch --unshallow"):
        R.reference_commit(repo=shallow, record=shallow / "results" / "regression" / "reference.json")

# --------------------------------------------------------------------------------------------- accuracy


def test_baseline_covers_every_error_metric():
    assert set(BASELINE["metrics"]) == set(R.METRICS)
    for name, m in BASELINE["metrics"].items():
        assert m["kind"] == "error" and m["tolerance"] > 0 and m.get("revision", 1) == R.METRICS[name].revision


def test_error_rates_pass_on_the_real_code(data):
    verdicts = R.judge(R.measure(data=data), BASELINE)
    assert len(verdicts) == len(R.METRICS) and failed(verdicts) == [], table(verdicts)


def test_gate_catches_a_schedule_bug(monkeypatch, data):
    real_many = lrcore.evaluate_many
    monkeypatch.setattr(lrcore, "evaluate_many", lambda *a, **k: real_many(*a, **k) * 0.01)  # lr off by 100x
    verdicts = R.judge(R.measure(["error_rate"], data=data), BASELINE, require_all=False)
    assert "error_rate.mean" in failed(verdicts), table(verdicts)
    assert len(failed(verdicts)) >= 3


def test_gate_catches_a_wrong_optimizer(monkeypatch, data):
    import bench.train.batched as T
    monkeypatch.setitem(T.OPTIMIZERS, "adam", ("sgd", {}))  # "adam" silently trains with plain SGD
    verdicts = R.judge(R.measure(["error_rate"], data=data), BASELINE, require_all=False)
    assert "error_rate.warmup_cosine-adam" in failed(verdicts), table(verdicts)


def test_judge_rules():
    base = {"metrics": {"error_rate.y": {"value": 0.15, "kind": "error", "tolerance": 0.01}}}
    [ok] = R.judge({"error_rate.y": 0.159}, base)
    assert ok.ok and ok.limit == pytest.approx(0.16)
    assert failed(R.judge({"error_rate.y": 0.161}, base)) == ["error_rate.y"]
    assert failed(R.judge({"error_rate.y": 0.01}, base)) == []                    # improvements pass
    assert failed(R.judge({}, base)) == ["error_rate.y"]                            # not measured
    assert failed(R.judge({}, base, require_all=False)) == []
    assert failed(R.judge({"error_rate.y": float("nan")}, base)) == ["error_rate.y"]
    [_, new] = R.judge({"error_rate.y": 0.1, "error_rate.new": 0.2}, base)
    assert not new.ok and not new.judged and "no baseline" in new.note


def test_update_writes_the_error_baseline(tmp_path, monkeypatch, capsys):
    fake = {"error_rate.mean": {"value": 0.2}}
    monkeypatch.setattr(R, "measure", lambda only=None, **k: dict(fake))
    path = tmp_path / "b.json"
    assert R.main(["--baseline", str(path), "--update", "--only", "mean"]) == 0
    doc = json.loads(path.read_text())
    assert doc["metrics"]["error_rate.mean"]["value"] == 0.2 and doc["git_commit"]
    assert R.main(["--baseline", str(path), "--only", "mean", "--no-speed"]) == 0
    fake["error_rate.mean"] = {"value": 0.25}
    assert R.main(["--baseline", str(path), "--only", "mean", "--no-speed", "--json", str(tmp_path / "v.json")]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert json.loads((tmp_path / "v.json").read_text())["verdicts"][0]["ok"] is False
    assert R.main(["--baseline", str(tmp_path / "missing.json"), "--no-speed"]) == 2

# ---------------------------------------------------------------------------------------- the probes


def test_training_pair_is_the_trainers_set_up():
    """Batched side: the trainer's stack order, seed groups and default optimizer implementation;
    sequential side: torch.optim + LrcoreScheduler following the same lr table."""
    from lrcore.integrations.torch import LrcoreScheduler
    pair = P.TrainingPair(8, 2, n_train=512)
    assert pair.opt.impl == "numba" and pair.groups == [4, 4]
    assert [c.seed for c in pair.configs] == sorted(c.seed for c in pair.configs)
    assert isinstance(pair.models[0][2], LrcoreScheduler)
    pair.batched(2)
    pair.sequential(2)
    for m, (net, opt, sched, t) in enumerate(pair.models):
        assert t == 2 and opt.param_groups[0]["lr"] == pytest.approx(float(pair.lr_table[m, 2]), rel=1e-6)
    assert pair.t_batched == 2 and bool(pair.active.all()) and bool(torch.isfinite(pair.loss_sum).all())
