"""Evaluate a real optax schedule in float64 at every step.

``optax_lrs(name, kwargs, n)``: ``optax.schedules.<name>(**kwargs)`` (nested ``[name, kwargs]`` pairs in
``join_schedules``'s ``schedules`` built first), evaluated at the int64 steps 0..n-1 with jax's
``jax_enable_x64`` on: one eager call on the array of steps (optax's schedules are elementwise; the scalar call
``schedule(t)`` gives the same float64 values to the last bits of ``cos``/``pow``, far below the 1e-10
tolerance), or one call per step where the schedule needs a scalar step.
"""
from __future__ import annotations

import numpy as np


def import_optax():
    import jax
    jax.config.update("jax_enable_x64", True)
    import optax
    return optax


def build(name: str, kwargs: dict):
    """The real optax schedule of ``name`` (``boundaries_and_scales`` pairs become the dict optax takes)."""
    optax = import_optax()
    kw = dict(kwargs)
    if "boundaries_and_scales" in kw and isinstance(kw["boundaries_and_scales"], list):
        kw["boundaries_and_scales"] = {b: s for b, s in kw["boundaries_and_scales"]}
    if name == "join_schedules":
        kw["schedules"] = [build(n, k) for n, k in kw["schedules"]]
    return getattr(optax.schedules, name)(**kw)


def optax_lrs(name: str, kwargs: dict, n: int) -> np.ndarray:
    """schedule(steps) on the int64 array of steps 0..n-1, eagerly (optax's schedules are elementwise), or
    ``schedule(t)`` step by step where a schedule needs a scalar (piecewise_interpolate_schedule's dot product)."""
    return schedule_values(build(name, kwargs), n)


def schedule_values(schedule, n: int) -> np.ndarray:
    """``schedule(t)`` for t = 0..n-1 in float64 (see ``optax_lrs``)."""
    import jax.numpy as jnp
    import_optax()
    size = 1 << max(6, (n - 1).bit_length())  # a few array shapes, so that jax's eager ops compile once each
    steps = jnp.arange(size, dtype=jnp.int64)
    def one(t):
        return float(jnp.asarray(schedule(steps[t]), jnp.float64))

    try:
        values = np.asarray(jnp.broadcast_to(jnp.asarray(schedule(steps), jnp.float64), (size,)))[:n]
        # a schedule that is not elementwise can still broadcast (one boundary: a dot product of shape ())
        vectorized = all(values[t] == one(t) or abs(values[t] - one(t)) <= 1e-15 * abs(one(t)) for t in {0, n // 2, n - 1})
    except (TypeError, ValueError):
        vectorized = False
    if not vectorized:
        values = np.array([one(t) for t in range(n)])
    return values.astype(np.float64)
