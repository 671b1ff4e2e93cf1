"""``lrcore.parse`` on hostile text: every input gives a schedule or a ValueError/TypeError with a
message, quickly; never a hang, RecursionError, SystemError, MemoryError or crash, and no Numba
compilation (expression strings are checked and folded, and compiled only when first evaluated).

Texts are random characters, valid schedule texts mutated character by character, texts generated
from a grammar of constructor calls, numbers (huge, tiny, overflowing arithmetic), expression
strings and every kind of Python syntax node, and deep nesting. Hangs are caught by pytest-timeout's
watchdog thread, not by reading the clock in an assertion: a test that runs past its limit (the old
``Lambda('9**9**9**9')`` ran 11 s into a SystemError) fails with every thread's stack, even inside C code.
The limits are far above the milliseconds a parse takes, so a loaded machine does not fail them.
"""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lrcore
from lrcore import lambdas
from lrcore.compat import keras as K
from lrcore.compat import torch as T
from strategies import schedules

#: pytest-timeout limits (thread method: works while the main thread is stuck in C): one text, and a
#: hypothesis test of 60 examples (tests/conftest.py's ci profile).
ONE_TEXT_S, PROPERTY_S = 10, 300

NAMES = sorted(lrcore.SCHEDULES) + [f"torch.{n}" for n in T.__all__] + [f"keras.{n}" for n in K.__all__] + [
    "bogus", "torch.bogus", "os.system", "__import__", "eval", "a.b.c"]
KEYWORDS = ["lr", "steps", "decay_steps", "floor", "gamma", "step_size", "milestones", "schedules", "schedule",
            "fn", "period", "t_mul", "m_mul", "max_lr", "total_steps", "pct_start", "three_phase", "base_lr",
            "step_size_up", "mode", "boundaries", "values", "power", "cycle", "T_max", "eta_min", "T_0",
            "schedulers", "lr_lambda", "initial_learning_rate", "decay_rate", "alpha", "warmup_steps",
            "start_factor", "end_factor", "total_iters", "factor", "anneal", "warmup_target", "bogus"]
NUMBERS = ["0", "1", "-1", "0.5", "1e-300", "1e308", "1e309", "-0.0", "2**62", "2**62 - 1", "2**63", "10**400",
           "9**9**9", "9**9**9**9", "1/0", "0**-1", "(-8)**0.5", "1e308*10", "inf", "nan", "-inf", "1" * 400,
           "10**-400", "3 // 0", "5 % 0", "0.1 + 0.2", "1_000", "0x10", "1j", "True", "None", "'cos'", "'linear'",
           "'exp_range'", "99999999999999999999", "1e-320"]
FN_ATOMS = ["t", "0", "1", "0.99", "1e308", "9", "pi", "e", "-t", "1e-320", "123456789"]
FN_FUNCS = ["exp", "log", "log1p", "sqrt", "cos", "sin", "tanh", "floor", "ceil", "min", "max", "abs", "open"]
FN_OPS = [" + ", " - ", " * ", " / ", " // ", " % ", " ** ", " < ", " == ", " >= "]
NODES = ["lambda: 1", "{1: 2}", "{1}", "x[0]", "a.b", "*x", "f'{1}'", "(x := 1)", "[i for i in x]",
         "{i: i for i in x}", "(i for i in x)", "not 1", "1 and 2", "1 or 2", "~1", "1 << 5", "1 | 2", "1 @ 2",
         "b'x'", "...", "1 if 2 else 3", "1 < 2", "print", "__builtins__", "'a' * 10**9", "[1] * 10**9",
         "Constant(0.1).__class__", "Constant(0.1)()", "Constant(0.1)(0)"]


@st.composite
def fn_texts(draw, depth=4):
    """Expression strings in t: valid and not, with huge constants and deep powers."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(FN_ATOMS))
    kind = draw(st.integers(0, 3))
    a = draw(fn_texts(depth - 1))
    if kind == 0:
        return f"{a}{draw(st.sampled_from(FN_OPS))}{draw(fn_texts(depth - 1))}"
    if kind == 1:
        f = draw(st.sampled_from(FN_FUNCS))
        return f"{f}({a}, {draw(fn_texts(depth - 1))})" if f in ("min", "max") else f"{f}({a})"
    if kind == 2:
        return f"({a} if {draw(fn_texts(depth - 1))} < 5 else {draw(fn_texts(depth - 1))})"
    return " ** ".join([a] * draw(st.integers(2, 6)))


@st.composite
def values(draw, depth):
    kind = draw(st.integers(0, 6 if depth > 0 else 3))
    if kind == 0:
        return draw(st.sampled_from(NUMBERS))
    if kind == 1:
        return repr(draw(st.one_of(st.integers(-10 ** 30, 10 ** 30), st.floats(allow_nan=False))))
    if kind == 2:
        return repr(draw(fn_texts()))
    if kind == 3:
        return draw(st.sampled_from(NODES))
    if kind == 4:
        return "[" + ", ".join(draw(st.lists(values(depth - 1), max_size=4))) + "]"
    if kind == 5:
        return f"{draw(values(depth - 1))}{draw(st.sampled_from(FN_OPS))}{draw(values(depth - 1))}"
    return draw(calls(depth - 1))


@st.composite
def calls(draw, depth=3):
    name = draw(st.sampled_from(NAMES))
    args = draw(st.lists(values(depth), max_size=2))
    kwargs = draw(st.lists(st.tuples(st.sampled_from(KEYWORDS), values(depth)), max_size=5,
                           unique_by=lambda kv: kv[0]))
    return f"{name}(" + ", ".join(args + [f"{k}={v}" for k, v in kwargs]) + ")"


@st.composite
def mutated(draw):
    """A valid schedule's text with a few random edits."""
    text = str(draw(schedules(depth=2)))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 4))
        if op == 0:
            text = text[:i] + text[i + 1:]
        elif op == 1:
            text = text[:i] + draw(st.sampled_from(list("()[],=.*-+/%'\"0123456789e_ ") + NUMBERS)) + text[i:]
        elif op == 2:
            j = draw(st.integers(i, len(text)))
            text = text[:i] + text[i:j] * draw(st.integers(2, 50)) + text[j:]
        elif op == 3:
            text = text[:i] + draw(st.sampled_from(NUMBERS + NODES)) + text[i + 1:]
        else:
            j = draw(st.integers(i, len(text)))
            text = text[:i] + text[j:]
    return text


@st.composite
def deep(draw):
    """Nesting far past any limit, or just under it."""
    n = draw(st.one_of(st.integers(1, 120), st.integers(120, 5000)))
    inner = draw(st.sampled_from(["Constant(0.1)", "1", "t", "Cosine(lr=0.1, decay_steps=10)"]))
    left, right = draw(st.sampled_from([("(", ")"), ("[", "]"), ("-", ""), ("Warmup(", ", steps=1)"),
                                        ("Sequence([", "], milestones=[])"), ("Product([", "])"),
                                        ("Constant(1 + ", ")"), ("2 ** ", ""), ("Lambda('", "')")]))
    text = left * n + inner + right * n
    return f"Lambda({text!r})" if draw(st.booleans()) and len(text) < 5000 else text


TEXTS = st.one_of(st.text(max_size=300), st.text(alphabet="()[]{},.=+-*/%<>'\"0123456789e_ tCLambdaosine", max_size=300),
                  mutated(), calls(), deep(), fn_texts().map(lambda f: f"Lambda({f!r})"),
                  fn_texts().map(lambda f: f"torch.LambdaLR(lr=0.1, lr_lambda={f!r})"),
                  fn_texts().map(lambda f: f"Multiplicative({f!r})"))


def check(text):
    compiled = len(lambdas._COMPILED)
    try:
        s = lrcore.parse(text)
    except (ValueError, TypeError) as e:
        assert str(e), f"empty {type(e).__name__} for {text[:300]!r}"
    else:
        assert isinstance(s, lrcore.Schedule)
        assert isinstance(str(s), str)
    assert len(lambdas._COMPILED) == compiled, f"parse compiled a function with Numba: {text[:300]!r}"


@pytest.mark.timeout(PROPERTY_S, method="thread")
@given(TEXTS)
def test_parse_gives_a_schedule_or_a_clear_error(text):
    check(text)


@pytest.mark.timeout(PROPERTY_S, method="thread")
@given(fn_texts(depth=6))
def test_expression_strings_are_checked_and_folded_without_compiling(fn):
    check(f"Lambda({fn!r})")
    compiled = len(lambdas._COMPILED)
    try:
        lrcore.Lambda(fn)
    except (ValueError, TypeError) as e:
        assert str(e)
    assert len(lambdas._COMPILED) == compiled


@pytest.mark.parametrize("text, match", [
    ("Lambda('9**9**9**9')", r"Lambda: fn cannot be computed at '9 \*\* 9 \*\* 9' \(overflows float64\)"),
    ("Lambda('t ** 9 ** 9 ** 9')", r"Lambda: fn cannot be computed at '9 \*\* 9 \*\* 9' \(overflows float64\)"),
    ("Lambda('log(0) + t')", r"Lambda: fn cannot be computed at 'log\(0\)' \(ValueError: math domain error\)"),
    ("Lambda('(-8) ** 0.5 * t')", r"a complex result"),
    ("Lambda('min(t)')", r"Lambda: min takes 2 to 64 arguments, got 1"),
    ("Lambda('exp')", r"Lambda: exp is a function"),
    ("Constant(9 ** 9 ** 9 ** 9)", r"parse: arithmetic error at '9 \*\* 9 \*\* 9' \(overflows float64\)"),
    ("Constant((-8) ** 0.5)", r"a complex result"),
    ("Constant(" + "-" * 5000 + "1)", r"nested too deeply"),
    ("Constant(" + "1 + " * 3000 + "1)", r"nested too deeply"),
    ("Constant(" + "(" * 300 + "1" + ")" * 300 + ")", r"not valid schedule text"),
    ("Constant(" + "1" * 5000 + ")", r"not valid schedule text"),
    ("Constant(" + "0" * 30_000 + ")", r"at most 20000 characters"),
])
@pytest.mark.timeout(ONE_TEXT_S, method="thread")
def test_named_hostile_texts(text, match):
    with pytest.raises(ValueError, match=match):
        lrcore.parse(text)


def test_extreme_chain_scale_is_a_schedule():
    """lr ** (1 - n) overflows for a product of n tiny factors: the chain is then evaluated as a recurrence."""
    step = "torch.StepLR(lr=1e-300, step_size=1)"
    s = lrcore.parse(f"torch.ChainedScheduler([{step}, {step}, {step}], lr=1e-300)")
    assert isinstance(s, lrcore.Chain)


def test_folded_expression_strings_keep_their_values():
    """Folding constants and reading t as a float changes no value."""
    import numpy as np
    steps = np.arange(0, 200, 7)
    for fn, expected in [("2 ** 3 * t + 1", 8.0 * steps + 1), ("0.5 ** (t // 10)", 0.5 ** (steps // 10)),
                         ("t % 7 + 1", steps % 7 + 1.0), ("1.0 if t < 50 else 0.1", np.where(steps < 50, 1.0, 0.1)),
                         ("exp(-0.01 * t) * (2 * pi / pi)", 2 * np.exp(-0.01 * steps)),
                         ("min(1.0, (t + 1) / 100)", np.minimum(1.0, (steps + 1) / 100))]:
        got = lrcore.evaluate(lrcore.Lambda(fn), steps, backend="numpy")
        np.testing.assert_allclose(got, expected, rtol=1e-15, err_msg=fn)
