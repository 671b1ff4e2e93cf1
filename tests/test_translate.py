"""lrcore.to_code round-trips through the real frameworks; lrcore.from_code reads their call text.

Every schedule that the five compat modules build from random parameters (reference/conformance.py's
generators) is written in every framework; where ``to_code`` gives text, that text is run in the real
framework and compared with lrcore at every step (1e-10 relative; Keras: its float32 tolerance); where it
does not, the error names the closest exact alternative.
"""
import importlib.util
import math
import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")
for _package in ("transformers", "timm", "optax"):  # found, not imported: timm's __init__ needs torchvision
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} is not installed (pip install 'lrbench[all]')", allow_module_level=True)

from reference import conformance as C  # noqa: E402
from reference.keras_oracle import import_keras, keras_lrs  # noqa: E402
from reference.optax_oracle import import_optax, schedule_values  # noqa: E402
from reference.timm_oracle import import_timm_scheduler  # noqa: E402
from reference.torch_oracle import make_optimizer, torch_lrs  # noqa: E402

import lrcore  # noqa: E402
from lrcore.translate import FRAMEWORKS  # noqa: E402


def _namespace():
    import types

    import torch
    import transformers
    timm = types.SimpleNamespace(scheduler=import_timm_scheduler())
    return {"torch": torch, "transformers": transformers, "timm": timm, "keras": import_keras(),
            "optax": import_optax(), "math": math}


def run_code(code: str, framework: str, n: int) -> np.ndarray:
    """The values of the framework code that to_code wrote, run for real (steps 0..n-1)."""
    ns = _namespace()
    if framework == "keras":
        return keras_lrs(eval(code, ns), n)
    if framework == "optax":
        return schedule_values(eval(code, ns), n)
    lr = float(re.search(r"# optimizer lr=(\S+)", code).group(1))
    if framework == "timm":
        opt = make_optimizer(lr)
        sched = eval(code, {**ns, "optimizer": opt})
        out = np.empty(n)
        step = sched.step_update if "t_in_epochs=False" in code else sched.step
        for t in range(n):
            step(t)
            out[t] = opt.param_groups[0]["lr"]
        return out
    return torch_lrs(lambda opt: eval(code, {**ns, "optimizer": opt}), n, lr=lr)


def _sources():
    """(label, schedule, steps): every generator of the five frameworks, two seeds each, and the usual recipes."""
    out = []
    for fw, label in C.all_labels():
        if "." in label:
            continue
        for i in range(2):
            case = C.draw_case(C.RandomDraw(C._seed(7, fw, label, i)), fw, label)
            try:
                out.append((f"{fw}.{label}#{i}", C.lrcore_schedule(case), case.steps))
            except (ValueError, TypeError):
                pass
    return out


SOURCES = _sources()


def _close(framework, got, want):
    err = C.errors("keras" if framework == "keras" else "torch", got, want)
    if framework != "keras":
        peak = np.abs(want).max()
        err = np.where((np.abs(got - want) <= 1e-14 * peak) & (np.abs(want) <= 1e-4 * peak), 0.0, err)
    return float(err.max(initial=0.0)) <= C.limit(framework)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_to_code_round_trips_through_the_real_framework(framework):
    written = 0
    for label, schedule, steps in SOURCES:
        try:
            code = lrcore.to_code(schedule, framework)
        except ValueError as e:
            assert "closest exact alternative" in str(e) and framework in str(e), str(e)
            continue
        steps = min(steps, 300)
        got, want = lrcore.evaluate(schedule, steps), run_code(code, framework, steps)
        assert _close(framework, got, want), f"{label}: {schedule}\n{code}\nlrcore {got[:8]}\n{framework} {want[:8]}"
        written += 1
    assert written >= 10, f"only {written} of {len(SOURCES)} schedules written in {framework}"


RECIPES = [
    "Sequence([Linear(0.0, 0.1, 10), Cosine(0.1, 90)], [10])",   # warmup + cosine to 0
    "Step(0.1, step_size=30, gamma=0.1)",
    "Polynomial(0.1, decay_steps=100, power=2.0)",
    "Sequence([Linear(0.0, 0.1, 10), Linear(0.1, 0.0, 90)], [10])",
]


@pytest.mark.parametrize("text", RECIPES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_usual_recipes(text, framework):
    schedule = lrcore.parse(text)
    try:
        code = lrcore.to_code(schedule, framework)
    except ValueError as e:
        assert "closest exact alternative" in str(e)
        return
    assert _close(framework, lrcore.evaluate(schedule, 130), run_code(code, framework, 130)), code


def test_warmup_cosine_is_written_in_all_five_frameworks():
    s = lrcore.parse(RECIPES[0])
    assert lrcore.to_code(s, "optax").startswith("optax.warmup_cosine_decay_schedule(")
    assert lrcore.to_code(s, "keras").startswith("keras.optimizers.schedules.CosineDecay(")
    assert lrcore.to_code(s, "timm").startswith("timm.scheduler.CosineLRScheduler(")
    assert lrcore.to_code(s, "hf").startswith("transformers.get_cosine_with_hard_restarts_schedule_with_warmup(")
    # LinearLR cannot start from 0: a flat SequentialLR of a LambdaLR warmup, CosineAnnealingLR and ConstantLR
    assert lrcore.to_code(s, "torch") == (
        "torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers=[torch.optim.lr_scheduler.LambdaLR(optimizer, "
        "lr_lambda=lambda t: ((0.0 * ((10.0 - min(t, 10.0)) / 10.0) + 0.1 * (min(t, 10.0) / 10.0))) / 0.1), "
        "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=90, eta_min=0.0), torch.optim.lr_scheduler."
        "ConstantLR(optimizer, factor=0.0, total_iters=4611686018427387904)], milestones=[10, 100])  # optimizer lr=0.1")


def test_from_code_reads_each_packages_call_text():
    hf = lrcore.from_code("transformers.get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=10, "
                          "num_training_steps=100)", "hf", lr=0.1)
    timm = lrcore.from_code("CosineLRScheduler(optimizer, t_initial=90, warmup_t=10, warmup_prefix=True)", "timm", lr=0.1)
    optax = lrcore.from_code("optax.piecewise_constant_schedule(0.1, {10: 0.5})", "optax")
    torch = lrcore.from_code("StepLR(optimizer, step_size=10)", "torch", lr=0.1)
    assert lrcore.evaluate(hf, 120)[110] > 0 and lrcore.evaluate(timm, 120)[110] == 0  # hf rises again after T
    assert lrcore.evaluate(optax, 12).tolist()[9:11] == [0.1, 0.05]
    assert lrcore.evaluate(torch, 12)[10] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="StepLR builds on an optimizer: its learning rate is required"):
        lrcore.from_code("StepLR(optimizer, step_size=10)", "torch")


def test_to_code_rejects_bad_input():
    with pytest.raises(ValueError, match="framework must be one of"):
        lrcore.to_code(lrcore.Constant(0.1), "jax")
    with pytest.raises(TypeError, match="schedule must be an lrcore schedule"):
        lrcore.to_code("Constant(0.1)", "optax")


def test_translate_command():
    from click.testing import CliRunner

    from bench.cli import main
    r = CliRunner().invoke(main, ["translate", "timm.scheduler.CosineLRScheduler(optimizer, t_initial=900, warmup_t=100,"
                                  " warmup_prefix=True)", "--from", "timm", "--lr", "3e-4", "--to", "optax"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == ("optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=0.0003, warmup_steps=100, "
                                "decay_steps=1000, end_value=0.0)")
    r = CliRunner().invoke(main, ["translate", "get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=100, "
                                  "num_training_steps=1000)", "--from", "hf", "--lr", "3e-4", "--to", "optax"])
    assert r.exit_code == 1 and "rise again" in r.output and "closest exact alternative" in r.output
