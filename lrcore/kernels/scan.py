"""Sequential scan of affine recurrences: x_t = A[j, t] x + B[j, t] applied for j = 0..J-1 in order.

Used by ``lrcore.schedules.Chain`` (PyTorch's ChainedScheduler, whose value at step t is each chained
scheduler's update applied to the lr the ones before it left). O(n) per schedule; many schedules'
recurrences run side by side (``prange`` over rows), each row sequential in t.
"""
from __future__ import annotations

from numba import njit, prange


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


@njit(parallel=True, cache=True, error_model="numpy")
def affine_scan_many(A, B, x0, out):
    """``affine_scan`` of every row s of A, B: (S, J, n) from x0[s] into out[s] (rows in parallel)."""
    for s in prange(A.shape[0]):
        affine_scan(A[s], B[s], x0[s], out[s])
