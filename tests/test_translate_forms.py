"""Issue 34: from_code reads the packages' real call signatures; to_code finds every exact native form (home
framework round trips, steps=N), and a refusal names the obstacle, the nearest native form and an exact
alternative that runs as printed; compat.optax takes negative values as optax does.

The real packages run here: the text from_code reads is run in its package (reference/ oracles), and the text
to_code writes is run in its package (tests/test_translate.run_code).
"""
import importlib.util
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")
for _package in ("transformers", "timm", "optax"):
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} is not installed (pip install 'lrbench[all]')", allow_module_level=True)

from reference import conformance as C  # noqa: E402

import lrcore  # noqa: E402
from lrcore.codeform import OPTIMIZER_FRAMEWORKS, package_signature  # noqa: E402
from lrcore.compat import hf, keras as K, optax as O, timm, torch as T  # noqa: E402
from tests.test_translate import _close, _namespace, run_code  # noqa: E402

FRAMEWORK_PACKAGE = {"torch": "torch.optim.lr_scheduler", "hf": "transformers.optimization"}


# ------------------------------------------------------------------------------------------ signatures

def _real_signature(fw, name):
    import inspect
    if fw == "timm":
        from reference.timm_oracle import import_timm_scheduler
        return inspect.signature(getattr(import_timm_scheduler(), name))
    if fw == "keras":
        return inspect.signature(getattr(_namespace()["keras"].optimizers.schedules, name).__init__)
    if fw == "optax":
        return inspect.signature(getattr(_namespace()["optax"].schedules, name))
    return inspect.signature(getattr(importlib.import_module(FRAMEWORK_PACKAGE[fw]), name))


CONSTRUCTORS = [(fw, n) for fw in ("torch", "keras", "hf", "timm", "optax") for n in getattr(lrcore.compat, fw).__all__
                if n not in ("get_reduce_on_plateau_schedule", "PlateauLRScheduler")]


@pytest.mark.parametrize("fw,name", CONSTRUCTORS, ids=[f"{f}.{n}" for f, n in CONSTRUCTORS])
def test_package_signature_is_the_real_one(fw, name):
    """Parameter names and order (positional use) are the package's own."""
    real = [p for p in _real_signature(fw, name).parameters if p not in ("self", "kwargs", "args")]
    if fw == "torch" and name == "ChainedScheduler":
        assert list(package_signature(fw, name).parameters) == real
        return
    ours = list(package_signature(fw, name).parameters)
    assert ours[:len(real)] == real, (ours, real)


# ------------------------------------------------------------------------------------------ from_code

def _render(fw, name, params, positional):
    """The package's own call text for a conformance case's parameters (None if it holds a Python callable)."""
    sig = package_signature(fw, name)
    given = {k: v for k, v in params.items() if k in sig.parameters and k != "optimizer"}
    if "lr_lambda" in given or "scale_fn" in given:
        return None

    def value(k, v):
        if k in ("schedulers", "schedules"):
            kids = [_render(fw, n, p, positional) for n, p in v]
            return None if None in kids else "[" + ", ".join(kids) + "]"
        if k == "boundaries_and_scales" and isinstance(v, list):
            return "{" + ", ".join(f"{b!r}: {x!r}" for b, x in v) + "}"
        return repr(v)

    parts, open_positional = [], positional
    for p in sig.parameters:
        if p == "optimizer":
            if name == "ChainedScheduler" or (parts and "=" in parts[-1]):
                parts.append("optimizer=optimizer")
            else:
                parts.append("optimizer")
            continue
        if p not in given:
            open_positional = False
            continue
        text = value(p, given[p])
        if text is None:
            return None
        parts.append(text if open_positional else f"{p}={text}")
    return f"{name}(" + ", ".join(parts) + ")"


def _cases():
    out = []
    for fw, name in CONSTRUCTORS:
        for i in range(3):
            case = C.draw_case(C.RandomDraw(C._seed(34, fw, name, i)), fw, name)
            try:
                C.lrcore_schedule(case)
            except (ValueError, TypeError):
                continue
            out.append(case)
    return out


CASES = _cases()


@pytest.mark.parametrize("positional", [True, False], ids=["positional", "keyword"])
def test_from_code_reads_the_real_call_of_every_constructor(positional):
    """Every constructor, positional and by keyword: the same schedule as the compat constructor (which
    tests/test_conformance.py holds against the package)."""
    read = set()
    for case in CASES:
        text = _render(case.framework, case.name, case.params, positional)
        if text is None:
            continue
        lr = case.params.get("lr")
        got = lrcore.from_code(text, case.framework, lr=lr)
        assert got == C.lrcore_schedule(case), text
        read.add((case.framework, case.name))
    missing = {(fw, n) for fw, n in CONSTRUCTORS} - read - {("torch", "LambdaLR"), ("torch", "MultiplicativeLR")}
    assert not missing, missing


def _real_values(text, fw, lr, n):
    """The text run in the real package (as tests/test_translate.run_code runs to_code's text)."""
    prefix = {"torch": "torch.optim.lr_scheduler.", "keras": "keras.optimizers.schedules.", "hf": "transformers.",
              "timm": "timm.scheduler.", "optax": "optax.schedules."}[fw]
    import re
    code = re.sub(r"(?<![\w.])([A-Za-z_]\w*)\(", lambda m: m.group(0) if m.group(1) == "lambda" else
                  prefix + m.group(0), text)
    return run_code(code + (f"  # optimizer lr={lr!r}" if lr is not None else ""), fw, n)


@pytest.mark.parametrize("fw,name", [c for c in CONSTRUCTORS if c[1] not in ("LambdaLR", "MultiplicativeLR")],
                         ids=[f"{f}.{n}" for f, n in CONSTRUCTORS if n not in ("LambdaLR", "MultiplicativeLR")])
def test_from_code_text_runs_in_the_real_package(fw, name):
    """The positional text, run in the package itself, gives what lrcore reads from it."""
    for case in [c for c in CASES if (c.framework, c.name) == (fw, name)][:1]:
        text = _render(fw, name, case.params, True)
        if text is None or "t_in_epochs=False" in text or (fw == "hf" and name == "get_scheduler"):
            continue
        lr = case.params.get("lr") if fw in OPTIMIZER_FRAMEWORKS else None
        if fw == "torch" and name in ("OneCycleLR", "CyclicLR"):
            lr = 0.1
        n = min(case.steps, 120)
        got = lrcore.evaluate(lrcore.from_code(text, fw, lr=lr), n)
        assert _close(fw, got, _real_values(text, fw, lr, n)), text


ISSUE_EXAMPLES = [
    ("StepLR(optimizer, 30)", "torch", T.StepLR(0.1, step_size=30)),
    ("get_linear_schedule_with_warmup(optimizer, 500, 10000)", "hf",
     hf.get_linear_schedule_with_warmup(0.1, num_warmup_steps=500, num_training_steps=10000)),
    ("get_scheduler('linear', optimizer, 0, 345)", "hf", hf.get_scheduler("linear", 0.1, 0, 345)),
    ("get_scheduler(SchedulerType.COSINE, optimizer=opt, num_warmup_steps=10, num_training_steps=100)", "hf",
     hf.get_scheduler("cosine", 0.1, 10, 100)),
    ("CosineLRScheduler(optimizer, 300)", "timm", timm.CosineLRScheduler(0.1, t_initial=300)),
    ("MultiStepLR(optimizer, [30, 80], 0.1)", "torch", T.MultiStepLR(0.1, milestones=[30, 80], gamma=0.1)),
    ("torch.optim.lr_scheduler.StepLR(optimizer=opt, step_size=30, last_epoch=-1)", "torch", T.StepLR(0.1, 30)),
    ("LambdaLR(self.optimizer, lambda epoch: 0.95 ** epoch)", "torch", T.LambdaLR(0.1, "0.95 ** t")),
    ("LambdaLR(optimizer, lr_lambda=lambda s: math.cos(s / 10) ** 2)", "torch", T.LambdaLR(0.1, "cos(t / 10) ** 2")),
    ("get_cosine_schedule_with_warmup(optimizer, 10, 100, 0.5, -1)", "hf",
     hf.get_cosine_schedule_with_warmup(0.1, 10, 100)),
    ("optax.schedules.piecewise_constant_schedule(0.1, {10: 0.5})", "optax",
     O.piecewise_constant_schedule(0.1, {10: 0.5})),
]


@pytest.mark.parametrize("text,fw,want", ISSUE_EXAMPLES, ids=[t for t, *_ in ISSUE_EXAMPLES])
def test_from_code_issue_examples(text, fw, want):
    assert lrcore.from_code(text, fw, lr=0.1) == want


@pytest.mark.parametrize("text,fw,error,match", [
    ("StepLR(optimizer, 30, step_size=3)", "torch", TypeError, "StepLR: multiple values for argument 'step_size'"),
    ("StepLR(optimizer, 30, 0.1, -1, 5)", "torch", TypeError, "StepLR: too many positional arguments"),
    ("StepLR(optimizer, 30, lr=0.1)", "torch", TypeError, "lr is not an argument of StepLR"),
    ("StepLR(optimizer, 30, last_epoch=4)", "torch", ValueError, "StepLR: last_epoch must be -1"),
    ("StepLR(optimizer, stepsize=30)", "torch", TypeError, "unexpected keyword argument 'stepsize'"),
    ("CosineAnealingLR(optimizer, 30)", "torch", ValueError, "did you mean 'CosineAnnealingLR'"),
    ("CosineDecay(0.1, 1000)", "torch", ValueError, "CosineDecay is keras's"),
    ("StepLR(optimizer, 0)", "torch", ValueError, "StepLR: step_size must be"),
])
def test_from_code_errors_name_the_users_argument(text, fw, error, match):
    with pytest.raises(error, match=match):
        lrcore.from_code(text, fw, lr=0.1)


def test_from_code_lr_is_required_only_where_the_optimizer_sets_it():
    with pytest.raises(ValueError, match="StepLR builds on an optimizer: its learning rate is required"):
        lrcore.from_code("StepLR(optimizer, 30)", "torch")
    assert lrcore.from_code("OneCycleLR(optimizer, 0.1, 100)", "torch") == T.OneCycleLR(0.1, 100)
    assert lrcore.from_code("CyclicLR(optimizer, 0.01, 0.1, 20)", "torch") == T.CyclicLR(0.01, 0.1, 20)


# ------------------------------------------------------------------------------------------ to_code

def _runs_exactly(schedule, fw, code, n):
    return _close(fw, lrcore.evaluate(schedule, n), run_code(code, fw, n))


@pytest.mark.parametrize("fw", ["torch", "keras", "hf", "timm", "optax"])
def test_every_compat_constructor_round_trips_to_its_home_framework(fw):
    """to_code(s, home) is written for every constructor's schedules (but a Python callable's), and runs exactly."""
    for case in [c for c in CASES if c.framework == fw]:
        s = C.lrcore_schedule(case)
        if case.params.get("lr_lambda") or case.params.get("scale_fn") or "lr_lambda" in str(case.params):
            continue
        code = lrcore.to_code(s, fw)
        assert _runs_exactly(s, fw, code, min(case.steps, 200)), (case, code)


NATIVE = [  # (lrcore schedule, framework, start of the expected text) -- the exact forms of the issue
    (lrcore.Sequence([lrcore.Linear(0.01, 0.1, 10), lrcore.Cosine(0.1, 80, floor=0.01)], [10]), "torch",
     "torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers=[torch.optim.lr_scheduler.LinearLR("),
    (hf.get_linear_schedule_with_warmup(0.1, 0, 100), "keras", "keras.optimizers.schedules.PolynomialDecay("),
    (hf.get_linear_schedule_with_warmup(0.1, 0, 100), "timm", "timm.scheduler.PolyLRScheduler("),
    (hf.get_linear_schedule_with_warmup(0.1, 10, 100), "timm", "timm.scheduler.PolyLRScheduler("),
    (lrcore.Sequence([lrcore.Linear(0.0, 0.1, 10), lrcore.Exponential(0.1, 0.9, 7.5)], [10]), "torch",
     "torch.optim.lr_scheduler.SequentialLR(optimizer, schedulers=[torch.optim.lr_scheduler.LambdaLR("),
    (timm.CosineLRScheduler(0.1, t_initial=100, warmup_t=10), "torch", "torch.optim.lr_scheduler.SequentialLR("),
    (O.warmup_cosine_decay_schedule(0.0, 0.1, 10, 100), "keras", "keras.optimizers.schedules.CosineDecay("),
    (O.warmup_cosine_decay_schedule(0.0, 0.1, 10, 100), "hf",
     "transformers.get_cosine_with_hard_restarts_schedule_with_warmup("),
    (O.warmup_cosine_decay_schedule(0.0, 0.1, 10, 100), "timm", "timm.scheduler.CosineLRScheduler("),
    (K.PiecewiseConstantDecay([9, 19], [0.1, 0.05, 0.01]), "optax", "optax.piecewise_constant_schedule("),
    (K.ExponentialDecay(0.1, 30, 0.5, staircase=True), "timm", "timm.scheduler.StepLRScheduler("),
    (lrcore.Sequence([lrcore.Linear(0.0, 0.1, 10), lrcore.Linear(0.09, 0.0, 90)], [10]), "optax",
     "optax.join_schedules(schedules=[optax.linear_schedule("),
    (timm.PolyLRScheduler(0.1, t_initial=100, power=1.0, warmup_t=10), "timm", "timm.scheduler.PolyLRScheduler("),
    (timm.StepLRScheduler(0.1, decay_t=2.4, decay_rate=0.5), "timm", "timm.scheduler.StepLRScheduler("),
    (hf.get_inverse_sqrt_schedule(0.1, 10), "hf", "transformers.get_inverse_sqrt_schedule("),
    # the same from their text form (no record of the constructor: found by search)
    (lrcore.parse(str(hf.get_inverse_sqrt_schedule(0.1, 10, timescale=50))), "hf",
     "transformers.get_inverse_sqrt_schedule("),
    (lrcore.parse(str(timm.StepLRScheduler(0.1, decay_t=2.4, decay_rate=0.5, warmup_t=3, warmup_lr_init=0.01,
                                           warmup_prefix=False))), "timm", "timm.scheduler.StepLRScheduler("),
    (lrcore.parse(str(timm.PolyLRScheduler(0.1, t_initial=100, power=2.0, warmup_t=10, lr_min=0.001))), "timm",
     "timm.scheduler.PolyLRScheduler("),
]


@pytest.mark.parametrize("schedule,fw,start", NATIVE, ids=[f"{fw}-{i}" for i, (_, fw, _) in enumerate(NATIVE)])
def test_exact_native_forms(schedule, fw, start):
    code = lrcore.to_code(schedule, fw)
    assert code.startswith(start), code
    assert "lrcore" not in code
    assert _runs_exactly(schedule, fw, code, 250), code


def test_bert_unshifted_decay_as_timm_poly_and_optax_join():
    bert = timm.PolyLRScheduler(1e-4, t_initial=1000, power=1.0, warmup_t=100)  # decay counted from step 0
    for fw in ("timm", "optax", "torch"):
        code = lrcore.to_code(lrcore.parse(str(bert)), fw)
        assert _runs_exactly(bert, fw, code, 1100), code


@pytest.mark.parametrize("fw", ["keras", "timm", "optax"])
def test_steps_writes_a_form_exact_on_the_trained_steps(fw):
    s = hf.get_cosine_schedule_with_warmup(0.1, 10, 100)  # rises again after step 100
    with pytest.raises(ValueError, match=r"rise again.*nearest native form.*exact on steps 0\.\.100: "
                                         r"to_code\(\.\.\., steps=101\)"):
        lrcore.to_code(s, fw)
    code = lrcore.to_code(s, fw, steps=101)
    assert "# exact on steps 0..100 only" in code
    assert _runs_exactly(s, fw, code, 101)
    with pytest.raises(ValueError, match="cannot be written exactly in .* on steps 0..149"):
        lrcore.to_code(s, fw, steps=150)


REFUSED = [
    (timm.CosineLRScheduler(0.1, t_initial=100, warmup_t=10), "optax", "starts part-way through its cycle"),
    (timm.CosineLRScheduler(0.1, t_initial=100, warmup_t=10), "keras", "starts part-way through its cycle"),
    (hf.get_cosine_schedule_with_warmup(0.1, 10, 100), "keras", "rise again"),
    (lrcore.Sequence([lrcore.Constant(0.1), lrcore.Linear(0.1, 0.0, 10), lrcore.Constant(0.0)], [5, 15]), "keras",
     "Keras joins no schedules"),
    (hf.get_inverse_sqrt_schedule(0.1, 10), "timm", "transformers|timm"),
]


@pytest.mark.parametrize("schedule,fw,why", REFUSED, ids=[f"{fw}-{i}" for i, (_, fw, _) in enumerate(REFUSED)])
def test_refusal_names_the_obstacle_and_an_alternative_that_runs_as_printed(schedule, fw, why):
    with pytest.raises(ValueError) as e:
        lrcore.to_code(schedule, fw)
    message = str(e.value)
    assert why.split("|")[0] in message or why.split("|")[-1] in message, message
    alternative = message.split("closest exact alternative: ")[1]
    assert "lrcore" not in alternative, alternative
    n = 150
    if fw == "optax":
        import jax.numpy as jnp
        values = np.asarray(eval(alternative, {**_namespace(), "jnp": jnp})(jnp.arange(n)))
    elif fw == "keras":
        from reference.keras_oracle import keras_lrs
        values = keras_lrs(eval(alternative, _namespace()), n)
    else:
        values = run_code(alternative.replace(f" ({fw} trains with any torch scheduler)", ""), "torch", n)
    assert _close("keras" if fw == "keras" else "torch", lrcore.evaluate(schedule, n), values), alternative


# ------------------------------------------------------------------------------------------ optax's own tests

def test_optax_negative_values_as_optaxs_own_tests_expect():
    s = O.piecewise_constant_schedule(-0.1, {3: 2.0, 6: 0.5})
    assert np.allclose(lrcore.evaluate(s, 10), -np.array([0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1]))
    w = O.warmup_cosine_decay_schedule(init_value=0.2, peak_value=1.21, end_value=-3.0, warmup_steps=50,
                                       decay_steps=100, exponent=2)
    steps = np.array([0, 10, 50, 75, 100])
    want = [0.20000004768371582, 0.4020000100135803, 1.2100000381469727, -1.947500228881836, -3.000000238418579]
    for backend in ("numpy", "numba"):
        assert np.allclose(lrcore.evaluate(w, steps, backend=backend), want, rtol=1e-6, atol=1e-6)
    z = O.warmup_cosine_decay_schedule(init_value=0.2, peak_value=0, end_value=-3.0, warmup_steps=50,
                                       decay_steps=100, exponent=2)
    assert np.allclose(lrcore.evaluate(z, steps), [0.2, 0.16, 0.0, 0.0, 0.0])
    assert lrcore.evaluate(O.linear_schedule(-1.0, 1.0, 4), 6).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("make", [
    lambda: O.piecewise_constant_schedule(-0.1, {3: 2.0, 6: 0.5}),
    lambda: O.warmup_cosine_decay_schedule(0.2, 1.21, 50, 100, end_value=-3.0, exponent=2),
    lambda: O.polynomial_schedule(-0.5, 0.25, 2.0, 40, 5),
    lambda: O.cosine_decay_schedule(-0.3, 60, alpha=0.1),
    lambda: O.exponential_decay(-0.2, 10, 0.5),
    lambda: O.exponential_decay(-1.0, 10, 2.0, transition_begin=5, staircase=True, end_value=-3.0),
    lambda: O.constant_schedule(-1e-3),
    lambda: O.linear_onecycle_schedule(100, -0.5),
], ids=["piecewise", "warmup_cosine", "polynomial", "cosine", "exponential", "exponential_clipped", "constant",
        "onecycle"])
def test_negative_optax_schedules_match_optax_and_round_trip(make):
    s = make()
    values = lrcore.evaluate(s, 200)
    assert np.isfinite(values).all() and (values < 0).any()
    assert np.allclose(lrcore.evaluate(s, 200, backend="numba"), values, rtol=1e-12, atol=0)
    assert lrcore.parse(str(s)) == s and lrcore.from_dict(s.to_dict()) == s
    code = lrcore.to_code(s, "optax")
    assert _close("optax", values, run_code(code, "optax", 200)), code
    call = str(s) if str(s).startswith("optax.") and "boundaries" not in str(s) else None  # optax's own call
    if call:
        assert _close("optax", values, run_code(call, "optax", 200)), call
    torch_code = lrcore.to_code(s, "torch")
    assert _close("torch", values, run_code(torch_code, "torch", 200)), torch_code


def test_canonical_schedules_keep_their_rules():
    for make in (lambda: lrcore.Constant(-0.1), lambda: lrcore.Cosine(-0.1, 10), lambda: lrcore.Linear(-1.0, 0.0, 3)):
        with pytest.raises(ValueError, match=">= 0"):
            make()
    with pytest.raises(ValueError, match="non-negative scale factors"):
        O.piecewise_constant_schedule(0.1, {3: -1.0})


# ------------------------------------------------------------------------------------------ lrbench translate

def _translate(*args):
    from click.testing import CliRunner

    from bench.cli import main
    return CliRunner().invoke(main, ["translate", *args])


def test_translate_guesses_the_framework_and_names_lr():
    r = _translate("keras.optimizers.schedules.CosineDecay(0.1, 1000)", "--to", "optax")
    assert r.exit_code == 0, r.output
    assert "optax.cosine_decay_schedule(init_value=0.1, decay_steps=1000, alpha=0.0)" in r.output
    r = _translate("StepLR(optimizer, 30)", "--to", "keras")
    assert r.exit_code == 1 and "--lr is required" in r.output
    r = _translate("OneCycleLR(optimizer, max_lr=0.1, total_steps=100)", "--to", "torch")
    assert r.exit_code == 0 and "OneCycleLR(optimizer, max_lr=0.1, total_steps=100)" in r.output


def test_translate_did_you_mean_is_short():
    r = _translate("CosineAnealingLR(optimizer, 30)", "--to", "keras", "--lr", "0.1")
    assert r.exit_code == 1 and "did you mean 'CosineAnnealingLR' (torch)" in r.output and len(r.output) < 250
    r = _translate("Cosin(lr=0.1, decay_steps=10)", "--from", "lrcore", "--to", "keras")
    assert r.exit_code == 1 and "did you mean 'Cosine' (lrcore)" in r.output and len(r.output) < 250


def test_translate_steps():
    r = _translate("get_cosine_schedule_with_warmup(optimizer, 100, 1000)", "--lr", "3e-4", "--to", "keras",
                   "--steps", "1000")
    assert r.exit_code == 0, r.output
    assert "CosineDecay(" in r.output and "exact on steps 0..999 only" in r.output
