"""Sequential scan of affine recurrences: x_t = A[j, t] x + B[j, t] applied for j = 0..J-1 in order.

Used by ``lrcore.chain.Chain`` (PyTorch's ChainedScheduler, whose value at step t is each chained
scheduler's update applied to the lr the ones before it left). O(n) per schedule, sequential in t; the
coefficients come per chunk of steps, computed vectorized by the caller.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, error_model="numpy")
def affine_scan(A, B, x, out):
    """out[t] = x after applying, for each step t in order, x <- A[j, t] x + B[j, t] for every j;
    returns the last x (the carry into the next chunk). A, B: (J, n); out: (n,)."""
    J, n = A.shape
    for t in range(n):
        for j in range(J):
            x = A[j, t] * x + B[j, t]
        out[t] = x
    return x



@njit(cache=True, error_model="numpy")
def centered_scan(A, C, B, x, out):
    """As ``affine_scan`` with x <- A[j, t] (x - C[j, t]) + B[j, t]: PyTorch's recursive cosine computes
    ratio * (lr - eta_min) + eta_min in that order, and near a zero of its ratio's denominator only that
    order reproduces its rounding. A, C, B: (J, n); out: (n,)."""
    J, n = A.shape
    for t in range(n):
        for j in range(J):
            x = A[j, t] * (x - C[j, t]) + B[j, t]
        out[t] = x
    return x
