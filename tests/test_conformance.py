"""The conformance suite (reference/conformance.py): lrcore.compat against the real PyTorch, Keras,
transformers, timm and optax.

Hypothesis draws the parameters through ``HypothesisDraw``, from the same generators (same ranges and
edge cases) that ``lrbench conformance`` draws from with a seeded ``RandomDraw``. Each constructor runs a
bounded number of examples here (``HYPOTHESIS_PROFILE=thorough`` runs the profile's count); the command
runs more. Tolerances: PyTorch relative error <= 1e-10 per step; Keras |diff| <= 2e-6 |ref| + 1e-6 max|ref|;
steps that differ for a documented framework reason are identified exactly (``conformance.EXPLAINED``).
"""
import importlib.util
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")
pytest.importorskip("keras")

from reference import conformance as C  # noqa: E402

EXAMPLES = settings().max_examples if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 20
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _assert_conforms(case):
    r = C.check(case)
    assert r.ok, C.describe(r)
    return r


@pytest.mark.parametrize("name", list(C.TORCH))
@SETTINGS
@given(data=st.data())
def test_torch(name, data):
    _assert_conforms(C.draw_case(C.HypothesisDraw(data), "torch", name))


@pytest.mark.parametrize("name", ["CyclicLR", "OneCycleLR"])
@SETTINGS
@given(data=st.data())
def test_torch_momentum(name, data):
    """SGD momentum or Adam beta1, cycled by the scheduler."""
    _assert_conforms(C.draw_momentum_case(C.HypothesisDraw(data), name))


@pytest.mark.parametrize("name", list(C.KERAS))
@SETTINGS
@given(data=st.data())
def test_keras(name, data):
    _assert_conforms(C.draw_case(C.HypothesisDraw(data), "keras", name))


PACKAGES = {"hf": "transformers", "timm": "timm", "optax": "optax"}


def _needs(framework):
    """Skip where the package is missing (found, not imported: timm's __init__ needs torchvision)."""
    if framework in PACKAGES and importlib.util.find_spec(PACKAGES[framework]) is None:
        pytest.skip(f"{PACKAGES[framework]} is not installed (pip install 'lrbench[{framework}]')")


@pytest.mark.parametrize("framework,name", [(fw, n) for fw, gen in C.GENERATORS.items() for n in gen],
                         ids=[f"{fw}-{n}" for fw, gen in C.GENERATORS.items() for n in gen])
@SETTINGS
@given(data=st.data())
def test_ecosystem(framework, name, data):
    """transformers, timm and optax, run for real, against lrcore.compat.hf / timm / optax: 1e-10 relative."""
    _needs(framework)
    _assert_conforms(C.draw_case(C.HypothesisDraw(data), framework, name))


@pytest.mark.parametrize("case", C.EDGE_CASES, ids=[f"{c.framework}-{c.label}-{i}" for i, c in enumerate(C.EDGE_CASES)])
def test_edge_cases(case):
    _needs(case.framework)
    _assert_conforms(case)


@pytest.mark.parametrize("framework", ["hf", "timm", "optax"])
def test_the_suite_catches_an_ecosystem_mismatch(framework):
    """A 1e-9 relative change of a transformers, timm or optax reference fails the check."""
    _needs(framework)
    case = {"hf": C.Case("hf", "get_cosine_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=5,
                                                                        num_training_steps=40), 50),
            "timm": C.Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=30, warmup_t=5), 50),
            "optax": C.Case("optax", "warmup_cosine_decay_schedule", dict(init_value=0.0, peak_value=0.1,
                                                                          warmup_steps=5, decay_steps=40), 50)}[framework]
    want = C.framework_values(case)
    assert C.check(case, want).ok
    want[20] *= 1 + 1e-9
    assert C.check(case, want).bad == [20]


def test_keras_restart_boundary_at_70_is_exact():
    """first_decay_steps=10, t_mul=2: restarts at 10, 30, 70, 150; Keras's float32 log lands on the right
    cycle there (no step needs explaining) and lrcore restarts at exactly those steps."""
    case = C.Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2.0), 160)
    r = _assert_conforms(case)
    assert r.explained == []
    for t in (10, 30, 70, 150):
        assert r.got[t] == pytest.approx(0.1, rel=1e-15) and r.want[t] == pytest.approx(0.1, rel=1e-6)


def test_the_suite_catches_a_mismatch():
    """A 1e-9 relative change of the PyTorch reference, or 1e-4 of the Keras one, fails the check."""
    case = C.Case("torch", "ExponentialLR", dict(lr=0.1, gamma=0.97), 50)
    want = C.torch_values(case)
    assert C.check(case, want).ok
    assert not C.check(case, want * (1 + 1e-9)).ok
    case = C.Case("keras", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=40), 50)
    want = C.keras_values(case)
    assert C.check(case, want).ok
    assert not C.check(case, want * (1 + 1e-4)).ok


def test_explained_steps_are_narrow():
    """The explanations never cover a real difference: a chained cosine needs none (lrcore.Chain is
    PyTorch's recurrence, past T_max too), the recursive-form residue only far below the peak, the Keras
    restart rules only where Keras's own float32 arithmetic reproduces the reference."""
    chained = C.Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.9)], ["CosineAnnealingLR", dict(lr=0.1, T_max=10)]]), 40)
    r = _assert_conforms(chained)
    assert r.explained == []
    want = C.torch_values(chained)
    want[5] *= 1 + 1e-8
    assert C.check(chained, want).bad == [5]
    restarts = C.Case("keras", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=3.0,
                                                           t_mul=1.136), 80)
    want = C.keras_values(restarts)
    want[40] *= 1 + 1e-3
    assert 40 in C.check(restarts, want).bad


def test_sequential_multiplicative_continues_from_the_previous_child():
    """PyTorch 2.13's SequentialLR restarts MultiplicativeLR with _update_lr(0): lr_lambda(0) times the
    current lr (fixed in lrcore.compat.torch.SequentialLR; it used to restart from lr)."""
    case = C.Case("torch", "SequentialLR", dict(lr=0.1, milestones=[10], schedulers=[
        ["ExponentialLR", dict(lr=0.1, gamma=0.8)], ["MultiplicativeLR", dict(lr=0.1, lr_lambda="0.9 until 10")]]), 30)
    r = _assert_conforms(case)
    assert r.got[10] == pytest.approx(0.1 * 0.8 ** 9 * 0.9, rel=1e-12)


def test_run_summary_rows():
    rows = C.run(examples=1, frameworks=("keras",))
    assert [r["schedule"] for r in rows] == list(C.KERAS)
    assert all(r["verdict"] == "pass" and r["cases"] >= 1 for r in rows)


def test_chained_cosine_formula_is_exact():
    """The closed form of chained cosines past T_max (``chained_cosine_torch``) is PyTorch's value to
    1e-10, and so is lrcore's recurrence."""
    case = C.Case("torch", "ChainedScheduler", dict(lr=0.1, schedulers=[
        ["PolynomialLR", dict(lr=0.1, total_iters=4, power=2.0)], ["CosineAnnealingLR", dict(lr=0.1, T_max=5)],
        ["ExponentialLR", dict(lr=0.1, gamma=0.9)]]), 40)
    want = C.torch_values(case)
    steps = np.arange(6, 40)
    assert (C.errors("torch", C.chained_cosine_torch(case, steps), want[steps]) <= 1e-10).all()
    assert (C.errors("torch", C.check(case).got, want) <= 1e-10).all()


@pytest.mark.parametrize("eta_min", [1e-10, 0.0, 0.03])
def test_chained_cosine_with_the_schedulers_pytorch_tests_chain(eta_min):
    """PyTorch's own tests step a cosine (eta_min=1e-10) with StepLR, MultiStepLR, LinearLR and ExponentialLR
    on one optimizer: PyTorch applies its recursive cosine to the lr the others already changed."""
    case = C.Case("torch", "ChainedScheduler", dict(lr=0.05, schedulers=[
        ["StepLR", dict(lr=0.05, step_size=3, gamma=0.5)], ["MultiStepLR", dict(lr=0.05, milestones=[2, 7], gamma=0.3)],
        ["LinearLR", dict(lr=0.05, start_factor=0.25, total_iters=4)], ["ExponentialLR", dict(lr=0.05, gamma=0.97)],
        ["CosineAnnealingLR", dict(lr=0.05, T_max=6, eta_min=eta_min)]]), 60)
    r = _assert_conforms(case)
    assert r.explained == [] and r.err <= 1e-10


def test_conformance_command(tmp_path):
    from click.testing import CliRunner

    from bench.cli import main
    out = tmp_path / "conformance.csv"
    result = CliRunner().invoke(main, ["conformance", "--examples", "1", "--framework", "keras", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "framework,schedule,cases,max_err,err_measure,limit,explained_steps,verdict"
    assert len(lines) == 1 + len(C.KERAS) and all(line.endswith(",pass") for line in lines[1:])
    assert "CosineDecayRestarts" in result.output
