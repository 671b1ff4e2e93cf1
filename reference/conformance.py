"""The conformance suite: lrcore.compat against the real PyTorch, Keras, transformers, timm and optax.

This module draws cases (``draw_case``, ``draw_momentum_case``), compares lrcore with the framework on one
(``check``) and runs the whole suite behind ``lrbench conformance`` (``run``). Its parts, re-exported here:
``draws`` (RandomDraw, HypothesisDraw), the generators beside each framework's oracle (``torch_cases``,
``keras_cases``, ``hf_cases``, ``timm_cases``, ``optax_cases``), ``case`` (Case, both sides' values, the
tolerances), ``edge_cases`` (EDGE_CASES, data) and ``explained`` (EXPLAINED).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .case import (KERAS_ATOL, KERAS_RTOL, TORCH_RTOL, Case, ecosystem_schedule, ecosystem_values, errors,
                   framework_values, limit, lrcore_schedule)
from .draws import HypothesisDraw, RandomDraw
from .edge_cases import EDGE_CASES
from .explained import EXPLAINED, chained_cosine_torch, keras_polynomial_float32, keras_restarts_float32, rules
from .hf_cases import HF
from .keras_cases import KERAS, keras_values
from .optax_cases import OPTAX
from .timm_cases import TIMM
from .torch_cases import (LAMBDAS, MOMENTUM, MULT_LAMBDAS, SCALE_FNS, TORCH, momentum_params, torch_factory,
                          torch_values)

__all__ = [  # the suite's own names and its parts' (re-exported)
    "GENERATORS", "Result", "all_labels", "check", "describe", "draw_case", "draw_momentum_case", "run",
    "KERAS_ATOL", "KERAS_RTOL", "TORCH_RTOL", "Case", "ecosystem_schedule", "ecosystem_values", "errors",
    "framework_values", "limit", "lrcore_schedule", "HypothesisDraw", "RandomDraw", "EDGE_CASES", "EXPLAINED",
    "chained_cosine_torch", "keras_polynomial_float32", "keras_restarts_float32", "HF", "KERAS", "keras_values",
    "OPTAX", "TIMM", "LAMBDAS", "MOMENTUM", "MULT_LAMBDAS", "SCALE_FNS", "TORCH", "torch_factory", "torch_values",
]

GENERATORS = {"hf": HF, "timm": TIMM, "optax": OPTAX}


def draw_case(d, framework: str, name: str) -> Case:
    kw, steps = {"torch": TORCH, "keras": KERAS, **GENERATORS}[framework][name](d)
    return Case(framework, name, kw, max(1, steps))


def draw_momentum_case(d, name: str) -> Case:
    kw, steps = momentum_params(d, name)
    return Case("torch", name, kw, max(1, steps), "momentum", d.choice(["sgd", "adam"]))


def all_labels() -> list[tuple[str, str]]:
    return ([("torch", n) for n in TORCH] + [("torch", f"{n}.momentum") for n in MOMENTUM]
            + [("keras", n) for n in KERAS] + [(fw, n) for fw, gen in GENERATORS.items() for n in gen])


@dataclasses.dataclass
class Result:
    case: Case
    err: float                 # torch: max relative error; keras: max normalized error (<= 1 passes)
    bad: list                  # steps over tolerance and not explained
    explained: list            # steps over tolerance, explained (see EXPLAINED)
    got: np.ndarray
    want: np.ndarray
    reasons: list = dataclasses.field(default_factory=list)  # why the explained steps differ

    @property
    def ok(self) -> bool:
        return not self.bad


def check(case: Case, want: np.ndarray | None = None) -> Result:
    """Run the framework (unless ``want`` is given) and lrcore (numpy and numba) on one case."""
    import lrcore
    refused = None
    if want is None:
        try:
            want = framework_values(case)
        except (ValueError, TypeError, ArithmeticError, AssertionError, KeyError) as e:  # the framework's own validation decides
            refused = e
    try:
        schedule = lrcore_schedule(case)
    except (ValueError, TypeError) as e:
        empty = np.zeros(0)
        if refused is not None:  # both refuse
            return Result(case, 0.0, [], [], empty, empty, [f"both refuse: {type(refused).__name__}"])
        return Result(case, math.inf, [f"lrcore refuses what the framework accepts: {e}"], [], empty, want)
    if refused is not None and case.framework in GENERATORS:
        # transformers, timm, optax: what the package refuses (when built or at a step), lrcore refuses too
        try:
            lrcore.evaluate(schedule, case.steps, backend="numpy")
        except ValueError:
            empty = np.zeros(0)
            return Result(case, 0.0, [], [], empty, empty, [f"both refuse at a step: {type(refused).__name__}"])
        return Result(case, math.inf, [f"lrcore accepts what {case.framework} refuses: {type(refused).__name__}: "
                                       f"{refused}"], [], np.zeros(0), np.zeros(0))
    if refused is not None:  # lrcore is defined where the framework raises: nothing to compare
        empty = np.zeros(0)
        return Result(case, 0.0, [], [], empty, empty, [f"framework refuses: {type(refused).__name__}: {refused}"])
    err = np.zeros(case.steps)
    got = None
    for backend in ("numpy", "numba"):
        try:
            g = lrcore.evaluate(schedule, case.steps, backend=backend)
        except ValueError as e:
            return Result(case, math.inf, [f"lrcore refuses a step the framework computes: {e}"], [], np.zeros(0), want)
        got = g if got is None else got
        err = np.maximum(err, errors(case.framework, g, want))
    bad = np.flatnonzero(~(err <= limit(case.framework)))
    explained = np.zeros(0, np.int64)
    reasons = []
    for reason, applies, explain in rules(case):
        if bad.size and applies(case):
            ok = explain(case, got, want, bad)
            if ok.any():
                reasons.append(reason)
            explained, bad = np.concatenate([explained, bad[ok]]), bad[~ok]
    shown = np.delete(err, explained)
    return Result(case, float(shown.max()) if shown.size else 0.0, bad.tolist(), sorted(explained.tolist()), got, want,
                  reasons)


def describe(r: Result, k: int = 5) -> str:
    c = r.case
    s = r.bad[:k]
    if s and isinstance(s[0], str):
        return f"{c.framework} {c.label} {c.params} steps={c.steps}: {s[0]}"
    opt = f" ({c.optimizer})" if c.quantity == "momentum" else ""
    return (f"{c.framework} {c.label}{opt} {c.params} steps={c.steps}: error {r.err:.3g} at steps {s}; "
            f"lrcore {r.got[s].tolist()} vs framework {r.want[s].tolist()}")


def run(examples: int = 20, seed: int = 0, frameworks=("torch", "keras", "hf", "timm", "optax"), log=None) -> list[dict]:
    """The whole suite: ``examples`` random cases per constructor (and per momentum schedule).
    Returns one summary row per (framework, schedule) and, in each row, the failing results."""
    rows = []
    for fw, label in all_labels():
        if fw not in frameworks:
            continue
        name, _, mom = label.partition(".")
        results = [check(c) for c in EDGE_CASES if (c.framework, c.label) == (fw, label)]
        for i in range(examples):
            d = RandomDraw(_seed(seed, fw, label, i))
            case = draw_momentum_case(d, name) if mom else draw_case(d, fw, name)
            results.append(check(case))
        fails = [r for r in results if not r.ok]
        row = dict(framework=fw, schedule=label, cases=len(results),
                   max_err=max(r.err for r in results),
                   err_measure="relative" if fw != "keras" else "|diff| / (2e-6|ref| + 1e-6 max|ref|)",
                   limit=limit(fw),
                   explained_steps=sum(len(r.explained) for r in results),
                   verdict="pass" if not fails else f"FAIL ({len(fails)} cases)", failures=fails)
        rows.append(row)
        if log:
            log(row)
    return rows


def _seed(seed: int, fw: str, label: str, i: int) -> int:
    import zlib
    return zlib.crc32(f"{seed}/{fw}/{label}/{i}".encode())

