"""PyTorch ``torch.optim.lr_scheduler`` schedulers as lrcore schedules (torch is never imported).

``X(lr=..., **kwargs)`` takes the scheduler's own keyword names and defaults; ``lr`` is the
optimizer's initial learning rate (OneCycleLR and CyclicLR set theirs from ``max_lr``/``base_lr``).
The value at step t is ``optimizer.param_groups[0]["lr"]`` used by the (t+1)-th ``optimizer.step()``
when ``scheduler.step()`` is called once after every optimizer step. Where PyTorch's behaviour is
not its documented formula, the schedule follows PyTorch:

* MultiStepLR switches at the milestone (t >= m); unsorted milestones are sorted and a repeated
  milestone multiplies by gamma once per repeat (PyTorch keeps a Counter); a negative or fractional
  milestone is never reached.
* CosineAnnealingLR does not stop at T_max: the cosine rises again (period 2 * T_max); a fractional
  T_max (PyTorch checks none) is PyTorch's recursive form (``lrcore.Chain`` of the cosine alone): it
  drifts from the closed form near an integer T_max, and divides by zero where (t - 1) / T_max is odd.
* OneCycleLR's first phase ends at step ``pct_start * total_steps - 1`` (a float), the last one at
  ``total_steps - 1``; a step is in the first phase whose end it does not pass, so with
  ``three_phase=True`` and ``pct_start`` above ~0.5 the steps anneal through the second phase and never
  reach the third (its end comes first); PyTorch refuses to step past ``total_steps``, lrcore holds the
  value of ``total_steps - 1``.
* CyclicLR with a built-in ``mode`` ignores ``scale_mode`` (PyTorch overrides it per mode); with a
  ``scale_fn`` (a callable or an expression string in t) PyTorch ignores ``mode`` and uses ``scale_mode``.
* ConstantLR, LinearLR and PolynomialLR with ``total_iters <= 0`` keep their initial value forever
  (PyTorch's recursive ``step()`` form never reaches the closed form's value); not reproduced: as a
  later SequentialLR child PyTorch's closed form gives ``lr`` (ConstantLR) or divides by zero.
* SequentialLR restarts each child at its milestone, except MultiplicativeLR (no closed form): PyTorch's
  ``_update_lr(0)`` multiplies the optimizer's current lr by ``lr_lambda(0)``, so from a milestone m on
  it is (previous child's value at m - 1) * prod_{k=0..t-m} lr_lambda(k). With a CyclicLR or OneCycleLR
  child (which set the optimizer's lr and initial_lr when built, changing the other children's base
  rate) it is built as a ChainedScheduler of itself alone, in PyTorch's construction order; ``lr`` is
  then required.
* ChainedScheduler applies each scheduler's recursive (chainable) form to the lr the ones before it
  left, in list order (``lrcore.Chain``, a recurrence evaluated by a sequential scan). For StepLR,
  MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR and MultiplicativeLR alone that is
  the product of their closed forms (``lrcore.Product``, used then). A CosineAnnealingLR in the chain
  is not a factor: it anneals the lr the others left towards eta_min, and past T_max it adds
  ``(lr - eta_min)(1 - cos(pi / T_max)) / 2`` once per period, which drops the product accumulated so
  far; LambdaLR, CosineAnnealingWarmRestarts, CyclicLR and OneCycleLR set the lr outright (CyclicLR and
  OneCycleLR their momentum too: the last one in the list wins). A SequentialLR in a chain resets the
  lr to the optimizer's initial lr when built and sets it to its next child's first value at each
  milestone, dropping what the other schedulers had multiplied in. Built in order, a CyclicLR first
  makes its base_lr the optimizer's ``initial_lr`` and every OneCycleLR makes it max_lr / div_factor, the
  base rate of the schedulers built after it; a OneCycleLR reads its rates and momenta from the
  optimizer, so the last one built (and the last momentum-cycling scheduler) decides them for all.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

from .. import _validate as V
from .. import schedules as S

MAX_STEP = V.MAX_STEP

__all__ = ["StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
           "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "SequentialLR",
           "ChainedScheduler", "LambdaLR", "MultiplicativeLR"]


def _epoch(owner: str, last_epoch) -> str:
    """PyTorch's ``last_epoch``: -1 (a fresh scheduler) is its default; another value resumes a run and needs
    ``initial_lr`` in the optimizer's param groups, which lrcore does not model."""
    if isinstance(last_epoch, bool) or last_epoch != -1:
        raise ValueError(f"{owner}: last_epoch must be -1 (a fresh scheduler; another value resumes a run from the "
                         f"optimizer's state), got {last_epoch!r}")
    return owner


def _lr(owner: str, lr) -> float:
    if lr is None:
        raise TypeError(f"{owner}: lr (the optimizer's initial learning rate) is required")
    return V.rate(owner, "lr", lr)


def StepLR(lr: float, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> S.Schedule:
    """lr * gamma ** (t // step_size)."""
    o = _epoch("StepLR", last_epoch)
    return S.Step(_lr(o, lr), V.integer(o, "step_size", step_size, low=1), V.real(o, "gamma", gamma, low=0.0))


def MultiStepLR(lr: float, milestones, gamma: float = 0.1, last_epoch: int = -1) -> S.Schedule:
    """lr * gamma ** (number of milestones <= t), repeats counted."""
    o = _epoch("MultiStepLR", last_epoch)
    ms = [V.real(o, f"milestones[{i}]", m) for i, m in enumerate(V.sequence(o, "milestones", milestones))]
    # PyTorch multiplies when the step equals a milestone: a negative or fractional one is never reached
    ms = sorted(V.integer(o, "milestones", m, low=0) for m in ms if m >= 0 and float(m).is_integer())
    return S.MultiStep(_lr(o, lr), ms, V.real(o, "gamma", gamma, low=0.0))


def ConstantLR(lr: float, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1) -> S.Schedule:
    """lr * factor for t < total_iters, then lr."""
    o = _epoch("ConstantLR", last_epoch)
    lr, factor = _lr(o, lr), V.real(o, "factor", factor, low=0.0, high=1.0)
    total_iters = V.integer(o, "total_iters", total_iters, low=-MAX_STEP)
    if total_iters <= 0:  # PyTorch checks no sign: a negative total_iters is never reached, as 0
        return S.Constant(lr * factor)
    return S.PiecewiseConstant([total_iters], [lr * factor, lr])


def LinearLR(lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
             last_epoch: int = -1) -> S.Schedule:
    """lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters)."""
    o = _epoch("LinearLR", last_epoch)
    lr = _lr(o, lr)
    start_factor = V.real(o, "start_factor", start_factor, low=0.0, low_open=True, high=1.0)
    end_factor = V.real(o, "end_factor", end_factor, low=0.0, high=1.0)
    total_iters = V.integer(o, "total_iters", total_iters, low=-MAX_STEP)
    if total_iters <= 0:  # PyTorch checks no sign: a negative total_iters is never reached, as 0
        return S.Constant(lr * start_factor)
    return S.Linear(lr * start_factor, lr * end_factor, total_iters)


def ExponentialLR(lr: float, gamma: float, last_epoch: int = -1) -> S.Schedule:
    """lr * gamma ** t."""
    _epoch("ExponentialLR", last_epoch)
    return S.Exponential(_lr("ExponentialLR", lr), V.real("ExponentialLR", "gamma", gamma, low=0.0), 1)


def PolynomialLR(lr: float, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> S.Schedule:
    """lr * (1 - min(t, total_iters) / total_iters) ** power."""
    o = _epoch("PolynomialLR", last_epoch)
    lr, power = _lr(o, lr), V.real(o, "power", power, low=0.0)
    total_iters = V.integer(o, "total_iters", total_iters, low=-MAX_STEP)
    if total_iters <= 0:  # PyTorch checks no sign: a negative total_iters is never reached, as 0
        return S.Constant(lr)
    return S.Polynomial(lr, total_iters, end=0.0, power=power)


def CosineAnnealingLR(lr: float, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> S.Schedule:
    """eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 for every t (rises again past T_max)."""
    o = _epoch("CosineAnnealingLR", last_epoch)
    # PyTorch takes a fractional T_max too (its recursive form is the closed form, period 2 T_max)
    whole = isinstance(T_max, numbers.Real) and not isinstance(T_max, bool) and math.isfinite(T_max) \
        and float(T_max).is_integer()
    T_max = V.integer(o, "T_max", T_max, low=1) if whole else V.duration(o, "T_max", T_max)
    cosine = S.Cosine(_lr(o, lr), T_max, floor=V.rate(o, "eta_min", eta_min), periodic=True)
    if whole:
        return cosine
    # a fractional T_max: PyTorch's recursive form never reaches eta_min exactly, and near an integer T_max
    # its ratios amplify the rounding of lr - eta_min beyond 1e-10 of the closed form: the recurrence itself
    return S.Chain([cosine], cosine.lr)


def CosineAnnealingWarmRestarts(lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                                last_epoch: int = -1) -> S.Schedule:
    """SGDR: cycles of T_0 * T_mult**i steps, each a cosine from lr to eta_min."""
    o = _epoch("CosineAnnealingWarmRestarts", last_epoch)
    return S.CosineRestarts(_lr(o, lr), V.integer(o, "T_0", T_0, low=1), t_mul=float(V.integer(o, "T_mult", T_mult, low=1)),
                            floor=V.rate(o, "eta_min", eta_min))


def CyclicLR(base_lr: float, max_lr: float, step_size_up: int = 2000, step_size_down: int | None = None,
             mode: str = "triangular", gamma: float = 1.0, scale_fn=None, scale_mode: str = "cycle",
             cycle_momentum: bool = True, base_momentum: float = 0.8, max_momentum: float = 0.9,
             last_epoch: int = -1, lr: float | None = None) -> S.Schedule:
    """Cyclical learning rate (``lr`` is ignored: PyTorch sets the optimizer's lr to base_lr)."""
    o = _epoch("CyclicLR", last_epoch)
    V.choice(o, "scale_mode", scale_mode, ("cycle", "iterations"))
    if scale_fn is not None:  # PyTorch ignores mode then, and honours scale_mode
        mode = mode if mode in ("triangular", "triangular2", "exp_range") else "triangular"
    else:
        V.choice(o, "mode", mode, ("triangular", "triangular2", "exp_range"))
    return S.Cyclic(V.rate(o, "base_lr", base_lr), V.rate(o, "max_lr", max_lr),
                    V.real(o, "step_size_up", step_size_up, low=0.0, low_open=True),
                    None if step_size_down is None else V.real(o, "step_size_down", step_size_down, low=0.0, low_open=True),
                    mode=mode, gamma=V.real(o, "gamma", gamma, low=0.0),
                    scale_mode=scale_mode if scale_fn is not None else ("iterations" if mode == "exp_range" else "cycle"),
                    scale_fn=scale_fn,
                    cycle_momentum=V.flag(o, "cycle_momentum", cycle_momentum),
                    base_momentum=V.rate(o, "base_momentum", base_momentum),
                    max_momentum=V.rate(o, "max_momentum", max_momentum))


def OneCycleLR(max_lr: float, total_steps: int | None = None, epochs: int | None = None,
               steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
               cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
               div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
               last_epoch: int = -1, lr: float | None = None) -> S.Schedule:
    """One-cycle policy (``lr`` is ignored: PyTorch starts from max_lr / div_factor)."""
    o = _epoch("OneCycleLR", last_epoch)
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise ValueError(f"{o}: give total_steps, or both epochs and steps_per_epoch")
        total_steps = V.integer(o, "epochs", epochs, low=1) * V.integer(o, "steps_per_epoch", steps_per_epoch, low=1)
    return S.OneCycle(V.rate(o, "max_lr", max_lr), V.integer(o, "total_steps", total_steps, low=1),
                      pct_start=V.real(o, "pct_start", pct_start, low=0.0, high=1.0),
                      anneal=V.choice(o, "anneal_strategy", anneal_strategy, ("cos", "linear")),
                      div_factor=div_factor, final_div_factor=final_div_factor, three_phase=three_phase,
                      cycle_momentum=cycle_momentum, base_momentum=base_momentum, max_momentum=max_momentum)


def SequentialLR(schedulers, milestones, last_epoch: int = -1, lr: float | None = None) -> S.Schedule:
    """schedulers[j] from milestone j-1 on, restarted at its own step 0."""
    o = _epoch("SequentialLR", last_epoch)
    schedulers = V.sequence(o, "schedulers", schedulers)
    milestones = V.sequence(o, "milestones", milestones)
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(f"{o}: milestones must have one entry fewer than schedulers, got "
                         f"{len(milestones)} milestones for {len(schedulers)} schedulers")
    schedulers = [S._check_schedule(o, f"schedulers[{i}]", x) for i, x in enumerate(schedulers)]
    milestones = V.sorted_integers(o, "milestones", milestones)
    if any(_sets_lr(x) for x in schedulers):
        # a CyclicLR or OneCycleLR child changes the optimizer's lr and initial_lr when built, which the
        # SequentialLR then restarts from: PyTorch's construction order, as in a chain of this one scheduler
        if lr is None:
            raise TypeError(f"{o}: lr (the optimizer's initial learning rate) is required with a CyclicLR or "
                            "OneCycleLR child")
        return ChainedScheduler([S.Sequence(schedulers, milestones)], lr)
    for j in range(1, len(schedulers)):
        m = milestones[j - 1]
        if isinstance(schedulers[j], S.Multiplicative) and m > 0:
            # PyTorch restarts a child at its milestone with ``_update_lr(0)``; MultiplicativeLR has no
            # closed form, so it multiplies the optimizer's current lr (the previous child's last value)
            # by lr_lambda(0) there, then by lr_lambda(k) at its step k
            before = S.Sequence(schedulers[:j], milestones[:j - 1])
            fn = schedulers[j].fn
            schedulers[j] = S.Multiplicative(fn, before(m - 1) * S.Lambda(fn, 1.0)(0))
    return S.Sequence(schedulers, milestones)


_MULTIPLICATIVE = (S.Step, S.MultiStep, S.PiecewiseConstant, S.Constant, S.Linear, S.Exponential, S.Polynomial,
                   S.Multiplicative)


def ChainedScheduler(schedulers, lr: float) -> S.Schedule:
    """Every scheduler updates the shared lr in list order at each step (``lrcore.Chain``); when all of
    them only multiply it (no CosineAnnealingLR, LambdaLR, CosineAnnealingWarmRestarts, CyclicLR,
    OneCycleLR, SequentialLR), that is the product lr * prod_j (schedulers[j](t) / lr) of their closed
    forms (``lrcore.Product``). Each scheduler is given PyTorch's ``initial_lr`` as it was built (see
    ``_built_in_order``)."""
    o = "ChainedScheduler"
    lr = _lr(o, lr)
    schedulers = [S._check_schedule(o, f"schedulers[{i}]", x) for i, x in enumerate(V.sequence(o, "schedulers", schedulers))]
    if not schedulers:
        raise ValueError(f"{o}: schedulers must not be empty")
    schedulers, bases = _built_in_order(schedulers, lr)
    if lr == 0.0 and all(b == 0.0 for b in _flat(bases)) and not any(_sets_lr(s) for s in schedulers):
        return S.Constant(0.0)
    # (a ConstantLR with factor=0 is left to the recurrence: PyTorch divides by 0 at its total_iters)
    zero_factor = any(isinstance(s, S.PiecewiseConstant) and len(s.boundaries) == 1 and s.values[0] == 0.0 < s.values[1]
                      for s in schedulers)
    if all(isinstance(s, _MULTIPLICATIVE) for s in schedulers) and all(b == lr for b in bases) and not zero_factor:
        try:
            scale = lr ** (1 - len(schedulers))
        except (OverflowError, ZeroDivisionError):
            scale = None
        if scale is not None and scale < float("inf"):
            return S.Product(schedulers, scale=scale)
    if all(b == lr for b in _flat(bases)):
        bases = ()
    try:
        return S.Chain(schedulers, lr, bases=bases)
    except ValueError as e:
        raise ValueError(str(e).replace("Chain:", f"{o}:", 1)) from None


def _flat(bases):
    for b in bases:
        if isinstance(b, tuple):
            yield from _flat(b)
        else:
            yield b


def _sets_lr(s) -> bool:
    """Whether the scheduler sets lr from its own rates (CyclicLR, OneCycleLR), also inside a SequentialLR."""
    if isinstance(s, S.Sequence):
        return any(_sets_lr(c) for c in s.schedules)
    return isinstance(s, (S.Cyclic, S.OneCycle))


def _built_in_order(schedulers, lr):
    """PyTorch's optimizer state while the chained schedulers are built in list order (a SequentialLR's
    children before it), as ``(schedulers, bases)``. Each scheduler's base rate is ``group["initial_lr"]``
    when it is built: the lr of the first scheduler built (a CyclicLR first sets it to its base_lr), reset
    by every OneCycleLR to max_lr / div_factor (lrcore.Chain rescales the schedulers given with ``lr`` to
    it). A OneCycleLR reads its rates (and momenta) from the optimizer's param group when it steps, so
    the last OneCycleLR built (and the last CyclicLR or OneCycleLR that cycles momentum) sets them for
    every OneCycleLR in the chain."""
    state = {"initial_lr": None, "onecycle": None, "momentum": None}

    def build(s):
        if isinstance(s, S.Chain) and s.quantity == "lr" and len(s.schedules) == 1 \
                and isinstance(s.schedules[0], S.Sequence):
            s = s.schedules[0]  # a SequentialLR with a CyclicLR or OneCycleLR child (see SequentialLR)
        if isinstance(s, S.Sequence):
            kids = [build(c) for c in s.schedules]
            return S.Sequence([k for k, _ in kids], s.milestones), (state["initial_lr"], *(b for _, b in kids))
        if isinstance(s, S.Cyclic):
            if state["initial_lr"] is None:
                state["initial_lr"] = s.base_lr
            if s.cycle_momentum:
                state["momentum"] = (s.base_momentum, s.max_momentum)
            return s, state["initial_lr"]
        if isinstance(s, S.OneCycle):
            state["initial_lr"] = s.max_lr / s.div_factor
            state["onecycle"] = s
            if s.cycle_momentum:
                state["momentum"] = (s.base_momentum, s.max_momentum)
            return s, state["initial_lr"]
        if state["initial_lr"] is None:
            state["initial_lr"] = lr
        return s, state["initial_lr"]

    built = [build(s) for s in schedulers]

    def shared(s):  # OneCycleLR's rates from the param group
        if isinstance(s, S.Sequence):
            return S.Sequence([shared(c) for c in s.schedules], s.milestones)
        if isinstance(s, S.OneCycle):
            last = state["onecycle"]
            s = dataclasses.replace(s, max_lr=last.max_lr, div_factor=last.div_factor,
                                    final_div_factor=last.final_div_factor)
            if s.cycle_momentum:
                s = dataclasses.replace(s, base_momentum=state["momentum"][0], max_momentum=state["momentum"][1])
        return s

    return [shared(s) for s, _ in built], tuple(b for _, b in built)


def LambdaLR(lr: float, lr_lambda, last_epoch: int = -1) -> S.Schedule:
    """lr * lr_lambda(t) (a callable, or an expression string in t)."""
    _epoch("LambdaLR", last_epoch)
    return S.Lambda(lr_lambda, _lr("LambdaLR", lr))


def MultiplicativeLR(lr: float, lr_lambda, last_epoch: int = -1) -> S.Schedule:
    """lr * prod_{k=1..t} lr_lambda(k)."""
    _epoch("MultiplicativeLR", last_epoch)
    return S.Multiplicative(lr_lambda, _lr("MultiplicativeLR", lr))


from ._origin import record  # noqa: E402

record("torch", globals())
