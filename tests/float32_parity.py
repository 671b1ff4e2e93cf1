"""What float32 training can promise on any CPU, shared by the parity tests (tests/test_batched.py,
tests/test_schedulefree.py; their module docstrings give the reasons): parameters element by element for
the first SHORT steps, before rounding is amplified, and the training-loss trajectory over the whole run."""
from __future__ import annotations

import numpy as np
import torch

SHORT = 10        #: steps compared element by element in float32
WINDOW = 50       #: steps per window of the loss trajectory
LOSS_RTOL = 0.01  #: window means within 1% (+ twice the reference's own spread across kernel families)


def window_means(losses) -> torch.Tensor:
    """Mean loss per WINDOW consecutive steps (one window when there are fewer steps)."""
    v = torch.as_tensor(np.asarray(losses, dtype=np.float64))
    w = min(WINDOW, len(v))
    n = len(v) // w * w
    return v[:n].reshape(-1, w).mean(dim=1)


def compare_losses(mine, ref, spread=None) -> float:
    """The loss trajectories (one value per step) agree per window: |mean diff| <= LOSS_RTOL |ref mean| +
    2 * spread (``spread``: per window, how far the reference moves under the other kernel families);
    returns the worst relative difference."""
    a, b = window_means(mine), window_means(ref)
    tol = LOSS_RTOL * b.abs() + (0 if spread is None else 2 * spread)
    d = (a - b).abs()
    assert bool((d <= tol).all()), (f"loss trajectories differ: window means {[round(v, 5) for v in a.tolist()]} "
                                    f"vs the reference's {[round(v, 5) for v in b.tolist()]} (allowed differences "
                                    f"{[round(v, 5) for v in tol.tolist()]})")
    return float((d / b.abs()).max())
