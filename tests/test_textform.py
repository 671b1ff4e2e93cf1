"""Text and dict forms: ``parse(str(s)) == s``, ``from_dict(s.to_dict()) == s`` (also through JSON),
placeholders, and the parser refusing everything that is not constructor syntax (DESIGN.md: parsed with
``ast``, never ``eval``; nothing in a config runs code)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lrcore
from lrcore import (WSD, Constant, Cosine, Cyclic, Exponential, Lambda, Linear, Multiplicative, OneCycle,
                    Product, Sequence, Step, Warmup)
from strategies import schedule_of, schedules

ROOT = Path(__file__).resolve().parent.parent


def _same(a, b):
    """Equal values, and equal types all the way down (1 == 1.0 == True would hide a lost type)."""
    assert a == b, f"{a} != {b}"
    assert type(a) is type(b)
    assert str(a) == str(b)


@pytest.mark.parametrize("kind", sorted(lrcore.SCHEDULES))
@settings(max_examples=25)
@given(data=st.data())
def test_text_and_dict_round_trip_every_kind(kind, data):
    s = data.draw(schedule_of(kind), label=kind)
    text = str(s)
    assert text.startswith(f"{kind}(") and repr(s) == text
    _same(lrcore.parse(text), s)
    d = s.to_dict()
    assert d["type"] == kind
    _same(lrcore.from_dict(d), s)
    _same(lrcore.from_dict(json.loads(json.dumps(d))), s)


@given(schedules(depth=3))
def test_round_trips_nested(s):
    _same(lrcore.parse(str(s)), s)
    _same(lrcore.from_dict(json.loads(json.dumps(s.to_dict()))), s)
    assert lrcore.parse(str(s)).to_dict() == s.to_dict()


@settings(max_examples=20)
@given(schedules(depth=2))
def test_round_tripped_schedule_evaluates_identically(s):
    steps = np.array([0, 1, 7, 100, 999, 12_345], np.int64)
    np.testing.assert_array_equal(lrcore.evaluate(lrcore.parse(str(s)), steps, backend="numpy"),
                                  lrcore.evaluate(s, steps, backend="numpy"))


def test_text_form_lists_non_default_parameters_only():
    assert str(Cosine(lr=0.1, decay_steps=1000)) == "Cosine(lr=0.1, decay_steps=1000)"
    assert str(Cosine(lr=0.1, decay_steps=1000.0, floor=0.001)) == "Cosine(lr=0.1, decay_steps=1000, floor=0.001)"
    assert str(Step(1.0, 10)) == "Step(lr=1.0, step_size=10)"
    assert str(Cyclic(0.1, 1.0, step_size_up=4, step_size_down=4)) == "Cyclic(base_lr=0.1, max_lr=1.0, step_size_up=4)"
    assert str(Warmup(Constant(0.1), steps=5)) == "Warmup(schedule=Constant(lr=0.1), steps=5)"
    assert str(Lambda("0.99 ** t")) == "Lambda(fn='0.99 ** t')"


def test_dict_form_is_plain_json_types():
    s = Product([Sequence([Linear(0.0, 1.0, 10), Exponential(1.0, 0.9, staircase=True)], milestones=[10]),
                 Lambda("0.99 ** t", lr=2.0)], scale=0.5)
    d = s.to_dict()
    assert d == {"type": "Product", "scale": 0.5, "schedules": [
        {"type": "Sequence", "milestones": [10], "schedules": [
            {"type": "Linear", "start": 0.0, "end": 1.0, "steps": 10},
            {"type": "Exponential", "lr": 1.0, "decay_rate": 0.9, "staircase": True}]},
        {"type": "Lambda", "fn": "0.99 ** t", "lr": 2.0}]}
    assert json.loads(json.dumps(d)) == d


def test_parse_accepts_positional_arguments_whitespace_and_tuples():
    assert lrcore.parse("  Step(1.0, 10, 0.5)\n") == Step(lr=1.0, step_size=10, gamma=0.5)
    assert lrcore.parse("Sequence((Constant(1.0), Constant(0.5)), milestones=(5,))") == \
        Sequence([Constant(1.0), Constant(0.5)], milestones=[5])


def test_parse_with_placeholders_and_arithmetic():
    s = lrcore.parse("Cosine(lr=peak, decay_steps=total - 10)", peak=0.1, total=1000)
    assert s == Cosine(lr=0.1, decay_steps=990)
    s = lrcore.parse("WSD(lr=peak * 2, total_steps=total, warmup_steps=total // 10, decay_steps=total * 0.2)",
                     peak=0.05, total=1000)
    assert s == WSD(lr=0.1, total_steps=1000, warmup_steps=100, decay_steps=200)
    assert lrcore.parse("Constant(lr=(-x) ** 2 / 4 + 7 % 2 - +1)", x=1.0) == Constant(0.25)


@pytest.mark.parametrize("text, exc, match", [
    ("Cosine(lr=peak, decay_steps=10)", ValueError, "unknown name 'peak'"),
    ("Nonexistent(lr=0.1)", ValueError, "unknown schedule 'Nonexistent'"),
    ("print(1)", ValueError, "unknown schedule 'print'"),
    ("abs(-1)", ValueError, "unknown schedule 'abs'"),
    ("eval('Constant(0.1)')", ValueError, "unknown schedule 'eval'"),
    ("__import__('os')", ValueError, "unknown schedule '__import__'"),
    ("os.system('true')", ValueError, "unknown schedule 'os.system'"),
    ("Constant.__init__(0.1)", ValueError, "unknown schedule 'Constant.__init__'"),
    ("a.b.c(1)", ValueError, "only calls of schedule names"),
    ("Constant(0.1).__class__(0.2)", ValueError, "only calls of schedule names"),
    ("Constant(lr=math.pi)", ValueError, "Attribute is not allowed"),
    ("Constant(lr=(1).real)", ValueError, "Attribute is not allowed"),
    ("Lambda(fn=lambda t: 0.5)", ValueError, "Lambda is not allowed"),
    ("Constant(lr=[0.1, 0.2][0])", ValueError, "Subscript is not allowed"),
    ("Sequence([Constant(1.0) for _ in range(2)], milestones=[1])", ValueError, "ListComp is not allowed"),
    ("Product({Constant(1.0) for _ in range(2)})", ValueError, "SetComp is not allowed"),
    ("Product(schedules=[*[Constant(1.0)]])", ValueError, "Starred is not allowed"),
    ("Constant(**{'lr': 0.1})", ValueError, r"\*\* arguments are not allowed"),
    ("Constant(lr=x if 1 else 2)", ValueError, "IfExp is not allowed"),
    ("Constant(lr=(x := 0.1))", ValueError, "NamedExpr is not allowed"),
    ("Constant(lr=f'{1}')", ValueError, "JoinedStr is not allowed"),
    ("Constant(lr={'a': 1})", ValueError, "Dict is not allowed"),
    ("Constant(lr=0.1) + Constant(lr=0.1)", ValueError, "arithmetic needs numbers"),
    ("Constant(lr=1 / 0)", ValueError, "arithmetic error"),
    ("Constant(lr='a' * 3)", ValueError, "arithmetic needs numbers"),
    ("0.1", ValueError, "is a float, not a schedule"),
    ("[Constant(0.1)]", ValueError, "is a list, not a schedule"),
    ("Constant(0.1", ValueError, "not valid schedule text"),
    ("Constant(0.1); import os", ValueError, "not valid schedule text"),
    ("Constant(lr=0.1, bogus=1)", TypeError, "Constant: .*bogus"),
    ("Lambda(fn=\"__import__('os').system('true')\")", ValueError, "Lambda: .*(Attribute|__import__)"),
    ("Multiplicative(fn='open(\"x\").read()')", ValueError, "Multiplicative: "),
])
def test_parse_rejects(text, exc, match):
    with pytest.raises(exc, match=match):
        lrcore.parse(text)


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError, match="parse: text must be a string"):
        lrcore.parse(Constant(0.1))


def test_parse_passes_constructor_errors_through():
    with pytest.raises(ValueError, match="Cosine: decay_steps must be > 0, got 0"):
        lrcore.parse("Cosine(lr=0.1, decay_steps=0)")
    with pytest.raises(ValueError, match="Cosine: lr must be finite, got nan"):
        lrcore.parse("Cosine(lr=nan, decay_steps=10)")


def test_parse_huge_integer_power_is_refused_quickly():
    """Arithmetic in text must not be a way to make the parser compute for minutes: ``9 ** 9 ** 9`` is a
    370-million-digit integer. It must raise ValueError promptly (killed after 10 s here)."""
    code = ("import lrcore\n"
            "try:\n    lrcore.parse('Constant(lr=9 ** 9 ** 9)')\nexcept (ValueError, TypeError) as e:\n    print('REFUSED', e)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=10, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("parse('Constant(lr=9 ** 9 ** 9)') was still computing after 10 s")
    assert "REFUSED" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("fn", [lambda t: 0.9 ** t, math.exp])
def test_to_dict_of_python_callable_raises(fn):
    for s in (Lambda(fn), Multiplicative(fn), Sequence([Constant(1.0), Lambda(fn)], milestones=[3])):
        with pytest.raises(TypeError, match="a Python callable has no dict/text form"):
            s.to_dict()


def test_str_of_python_callable_is_not_parseable():
    s = Lambda(lambda t: 0.9 ** t)
    assert "<callable" in str(s)
    with pytest.raises(ValueError):
        lrcore.parse(str(s))


@pytest.mark.parametrize("d, exc, match", [
    ({"lr": 0.1}, TypeError, "expected a dict with a 'type' key"),
    ([("type", "Constant")], TypeError, "expected a dict with a 'type' key"),
    ({"type": "Nope", "lr": 0.1}, ValueError, "unknown schedule 'Nope'"),
    ({"type": "Constant", "lr": 0.1, "extra": 1}, TypeError, "Constant: .*extra"),
    ({"type": "Constant", "lr": -0.1}, ValueError, "Constant: lr must be >= 0"),
    ({"type": "Warmup", "schedule": 0.1, "steps": 3}, TypeError, "Warmup: schedule must be an lrcore schedule"),
])
def test_from_dict_rejects(d, exc, match):
    with pytest.raises(exc, match=match):
        lrcore.from_dict(d)


def test_one_cycle_and_cyclic_defaults_round_trip():
    for s in (OneCycle(max_lr=0.1, total_steps=100), OneCycle(max_lr=0.1, total_steps=100).momentum,
              Cyclic(0.01, 0.1, mode="exp_range", gamma=0.99), Cyclic(0.01, 0.1, mode="exp_range", scale_mode="cycle"),
              Cyclic(0.01, 0.1).momentum):
        _same(lrcore.parse(str(s)), s)
        _same(lrcore.from_dict(s.to_dict()), s)
