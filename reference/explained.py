"""Explained steps: where a framework's own arithmetic is documented to differ from lrcore's (``EXPLAINED``;
reference/DIFFERENCES.md). Such steps are not tolerated in bulk: each is identified exactly and listed with
its reason. Also the formulas the rules check against (Keras's float32 arithmetic emulated op by op, PyTorch's
chained cosine past T_max).
"""
from __future__ import annotations

import math

import numpy as np

from .case import KERAS_ATOL, KERAS_RTOL, TORCH_RTOL, Case, errors, lrcore_schedule


def _restart_explained(case: Case, got: np.ndarray, want: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Keras CosineDecayRestarts finds the restart index i with a float32 log (and float32 t / first):
    next to a restart it can put step t in the previous or the next cycle. A step is explained when
    it is within one step of an exact restart and Keras's value is the float64 formula of cycle i - 1
    or i + 1 at that step (the fraction of the cycle then lies just outside [0, 1))."""
    p = case.params
    lr, first = p["initial_learning_rate"], p["first_decay_steps"]
    t_mul, m_mul, alpha = p.get("t_mul", 2.0), p.get("m_mul", 1.0), p.get("alpha", 0.0)

    def start(i):
        return first * i if t_mul == 1.0 else first * (t_mul ** i - 1.0) / (t_mul - 1.0)

    def value(t, i):
        frac = (t - start(i)) / (first * t_mul ** i)
        return lr * ((1 - alpha) * m_mul ** i * 0.5 * (1 + math.cos(math.pi * frac)) + alpha)

    scale = np.abs(want).max()
    ok = np.zeros(bad.shape, bool)
    for k, t in enumerate(bad):
        i = 0
        while start(i + 1) <= t:
            i += 1
        near = min(abs(t - start(i)), abs(start(i + 1) - t)) <= 1.0
        for j in (i - 1, i + 1):
            if near and j >= 0 and abs(value(t, j) - want[t]) <= KERAS_RTOL * abs(want[t]) + KERAS_ATOL * scale:
                ok[k] = True
    return ok


def chained_cosine_torch(case: Case, steps: np.ndarray) -> np.ndarray:
    """PyTorch's value of a ChainedScheduler holding one CosineAnnealingLR (eta_min = 0, period T) at steps
    t > T. Its chainable form reaches 0 at T + 2kT and then *adds* lr (1 - cos(pi / T)) / 2 at
    r = T + 1 + 2kT, which drops the factors the other schedulers had accumulated; after that they
    multiply again. With c the cosine's own value and f_j the other schedulers' values, stepped in list
    order: c(t) * prod_{j before the cosine} f_j(t) / f_j(r) * prod_{j after it} f_j(t) / f_j(r - 1)
    (a ratio is 1 where f_j has not changed: PyTorch's recursive forms stop multiplying after total_iters,
    even when their factor reached 0)."""
    import lrcore
    children = case.params["schedulers"]
    pos = [i for i, (n, _) in enumerate(children) if n == "CosineAnnealingLR"][0]
    T = children[pos][1]["T_max"]
    t = np.asarray(steps, np.int64)
    r = T + 1 + 2 * T * ((t - T - 1) // (2 * T))
    sched = [lrcore_schedule(Case("torch", n, k, 1)) for n, k in children]
    out = lrcore.evaluate(sched[pos], t)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, s in enumerate(sched):
            if j != pos:  # a factor that has not changed since the reset has not multiplied (0 / 0 included)
                now, then = lrcore.evaluate(s, t), lrcore.evaluate(s, r if j < pos else r - 1)
                out = out * np.where(now == then, 1.0, now / then)
    return out


def _chained_cosine_explained(case: Case, got, want, bad) -> np.ndarray:
    """(No longer in ``EXPLAINED``: lrcore's ChainedScheduler is now PyTorch's recurrence, ``lrcore.Chain``.)
    Past T_max, PyTorch's chained CosineAnnealingLR is not a product of factors (see
    ``chained_cosine_torch``); a product of closed forms differs there. A step is explained when it is
    past T_max and PyTorch's value is ``chained_cosine_torch``'s to the PyTorch tolerance."""
    T = [k["T_max"] for n, k in case.params["schedulers"] if n == "CosineAnnealingLR"][0]
    ok = bad > T
    if ok.any():
        formula = chained_cosine_torch(case, bad[ok])
        ok[ok] = errors("torch", formula, want[bad[ok]]) <= TORCH_RTOL
    return ok


def keras_restarts_float32(params: dict, steps: np.ndarray) -> np.ndarray:
    """Keras CosineDecayRestarts's own arithmetic, op by op, in numpy float32 (an emulation: numpy's
    float32 log/cos may differ from TensorFlow's by an ulp)."""
    f = np.float32
    t = np.asarray(steps).astype(f)
    lr, first = f(params["initial_learning_rate"]), f(params["first_decay_steps"])
    t_mul, m_mul, alpha = f(params.get("t_mul", 2.0)), f(params.get("m_mul", 1.0)), f(params.get("alpha", 0.0))
    cf = t / first
    if t_mul == f(1.0):
        i = np.floor(cf)
        cf = cf - i
    else:
        i = np.floor(np.log(f(1.0) - cf * (f(1.0) - t_mul)) / np.log(t_mul))
        sum_r = (f(1.0) - t_mul ** i) / (f(1.0) - t_mul)
        cf = (cf - sum_r) / t_mul ** i
    cosine = f(0.5) * m_mul ** i * (f(1.0) + np.cos(f(math.pi) * cf))
    return (lr * ((f(1.0) - alpha) * cosine + alpha)).astype(np.float64)


def keras_polynomial_float32(params: dict, steps: np.ndarray) -> np.ndarray:
    """Keras PolynomialDecay's own arithmetic, op by op, in numpy float32."""
    f = np.float32
    t = np.asarray(steps).astype(f)
    lr, end = f(params["initial_learning_rate"]), f(params.get("end_learning_rate", 0.0001))
    power, ds = f(params.get("power", 1.0)), f(params["decay_steps"])
    if params.get("cycle", False):
        ds = ds * np.where(t == 0, f(1.0), np.ceil(t / ds))
    else:
        t = np.minimum(t, ds)
    return ((lr - end) * (f(1.0) - t / ds) ** power + end).astype(np.float64)


def _float32_explained(emulate):
    def explain(case: Case, got, want, bad) -> np.ndarray:
        """Keras's float32 arithmetic: explained where Keras's value is reproduced (within the Keras
        tolerance) by the same formula evaluated op by op in float32 while lrcore's float64 value is not
        (e.g. PolynomialDecay near the end of a fractional decay_steps with power < 1: 1 - t / D cancels)."""
        emu = emulate(case.params, bad)
        tol = KERAS_RTOL * np.abs(want[bad]) + KERAS_ATOL * np.abs(want).max()
        return np.abs(emu - want[bad]) <= tol
    return explain


def _restarts_explained(case: Case, got, want, bad) -> np.ndarray:
    """Keras's float32 arithmetic in CosineDecayRestarts: (a) the restart index comes from a float32 log,
    so next to a restart a step can land in the neighbouring cycle (``_restart_explained``); (b) with
    t_mul != 1 the fraction of the cycle is (t / first - (1 - t_mul**i) / (1 - t_mul)) / t_mul**i, a
    float32 cancellation whose error grows with the cycle index (t_mul near 1 is worst). A step is
    explained by (b) when Keras's value is reproduced (within the Keras tolerance) by the same formula
    evaluated op by op in float32 (``keras_restarts_float32``) while lrcore's float64 value is not."""
    emu = keras_restarts_float32(case.params, bad)
    tol = KERAS_RTOL * np.abs(want[bad]) + KERAS_ATOL * np.abs(want).max()
    float32_noise = np.abs(emu - want[bad]) <= tol
    return float32_noise | _restart_explained(case, got, want, bad)


def _residue_explained(case: Case, got, want, bad) -> np.ndarray:
    """PyTorch's recursive forms compute each step's factor from the previous lr, e.g. LinearLR's
    ``lr * (1 + (end - start) / (start * total_iters + (t - 1) * (end - start)))``: the cancellation in
    ``1 + ...`` leaves an absolute error of a few ulp of the peak, e.g. -9.3e-18 where the value is 0, or
    5.960464476941381e-08 for 5.960464477539063e-08 (LinearLR end_factor=2**-24 * ...). Relative to a value
    far below the peak that exceeds 1e-10. Explained: |lrcore - PyTorch| <= 1e-14 max|PyTorch| (45 ulp of
    the peak) at a step where the value is below 1e-4 of the peak."""
    peak = np.abs(want).max()
    return (np.abs(got[bad] - want[bad]) <= 1e-14 * peak) & (np.abs(want[bad]) <= 1e-4 * peak)


def _uses_chained_cosine(case: Case) -> bool:
    names = [n for n, _ in case.params["schedulers"]]
    return names.count("CosineAnnealingLR") == 1 and len(names) > 1


# (framework, constructor or None for all) -> [(reason, applies(case), explain(case, got, want, bad) -> mask)]
EXPLAINED: dict[tuple, list] = {
    ("torch", None): [("PyTorch's recursive form: an absolute rounding residue (<= 1e-14 of the peak) on values "
                       "far below the peak", lambda c: True, _residue_explained)],
    **{(fw, None): [("the package's (1 + cos) / 2 (or 1 - p) cancels near the floor: an absolute rounding residue "
                     "(<= 1e-14 of the peak) on values far below the peak", lambda c: True, _residue_explained)]
       for fw in ("hf", "timm", "optax")},
    ("keras", "PolynomialDecay"): [("Keras's float32 arithmetic: 1 - t / decay_steps cancels near the end of the "
                                    "decay", lambda c: True, _float32_explained(keras_polynomial_float32))],
    ("keras", "CosineDecayRestarts"): [("Keras's float32 arithmetic: restart index from a float32 log, float32 "
                                        "cancellation in the fraction of the cycle", lambda c: True, _restarts_explained)],
}


def rules(case: Case) -> list:
    """The (reason, applies, explain) rules of a case's framework and constructor."""
    return EXPLAINED.get((case.framework, None), []) + EXPLAINED.get((case.framework, case.name), [])
