"""Smith's learning-rate range test, every optimizer at once in one BatchedMLP stack.

``range_test`` sweeps the lr exponentially and records the smoothed loss; ``suggest`` turns the curve into
peak learning rates (what a matrix's ``peak_lr = "find"`` uses, via ``find_peaks``). The rules:
docs/BENCH.md, "bench/train/find_lr.py".
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .config import TrainSpec

__all__ = ["range_test", "suggest", "find_peaks", "plot", "CURVE_COLUMNS"]

CURVE_COLUMNS = ["optimizer", "step", "lr", "loss", "smoothed_loss"]


SWEEP_STEPS = 300  #: default length of the exponential sweep


def _check(optimizers, lr_min, lr_max, steps, smoothing, diverge_factor, batch_size):
    from .config import OPTIMIZERS
    opts = list(optimizers)
    if not opts:
        raise ValueError("range_test: optimizers must name at least one optimizer")
    bad = [o for o in opts if o not in OPTIMIZERS]
    if bad:
        raise ValueError(f"range_test: unknown optimizer(s) {bad}; known: {', '.join(OPTIMIZERS)}")
    if len(set(opts)) != len(opts):
        raise ValueError(f"range_test: optimizers must be distinct, got {opts}")
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise ValueError(f"range_test: need 0 < lr_min < lr_max (finite), got lr_min={lr_min}, lr_max={lr_max}")
    if int(steps) < 2:
        raise ValueError(f"range_test: steps must be >= 2, got {steps}")
    if not (0 <= smoothing < 1):
        raise ValueError(f"range_test: smoothing must be in [0, 1), got {smoothing}")
    if not diverge_factor > 1:
        raise ValueError(f"range_test: diverge_factor must be > 1, got {diverge_factor}")
    if int(batch_size) < 1:
        raise ValueError(f"range_test: batch_size must be >= 1, got {batch_size}")
    return opts


def range_test(optimizers: Sequence[str], data, spec: TrainSpec | None = None, *, device="cpu", seed: int = 0,
               lr_min: float = 1e-7, lr_max: float = 10.0, steps: int = SWEEP_STEPS, smoothing: float = 0.98,
               diverge_factor: float = 4.0) -> pd.DataFrame:
    """The range test's curves: one row per optimizer per step it ran (columns :data:`CURVE_COLUMNS`), on the
    model, batch size and precision of ``spec`` (default: ``TrainSpec()``)."""
    from .batched import batch_permutation
    from .config import OPTIMIZERS
    from .model import OPTIMIZER_DEFAULTS, BatchedMLP, BatchedOptimizer, train_step
    spec = spec or TrainSpec()
    widths, activation, dropout, precision = spec.widths, spec.activation, spec.dropout, spec.precision
    opts = _check(optimizers, lr_min, lr_max, steps, smoothing, diverge_factor, spec.batch_size)
    steps, B, M = int(steps), int(spec.batch_size), len(opts)
    dev = torch.device(device)
    order = sorted(range(M), key=lambda m: OPTIMIZERS[opts[m]][0])  # each optimizer kind contiguous
    names = [opts[m] for m in order]
    kinds = [OPTIMIZERS[n][0] for n in names]
    hyper: dict[str, list] = {}
    for h in {h for n in names for h in OPTIMIZERS[n][1]}:
        hyper[h] = [OPTIMIZERS[n][1].get(h, OPTIMIZER_DEFAULTS[k].get(h, 0.0)) for n, k in zip(names, kinds)]
    model = BatchedMLP([int(seed)] * M, widths, activation, dropout, device=dev, precision=precision)
    opt = BatchedOptimizer(model.params, kinds, lr=lr_min, **hyper)
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    N = len(x)
    if N < B:
        raise ValueError(f"range_test: batch_size {B} is larger than the training set ({N})")
    spe = N // B  # full batches only: every step sees batch_size examples
    lrs = lr_min * (lr_max / lr_min) ** (np.arange(steps) / (steps - 1))
    active = torch.ones(M, dtype=torch.bool, device=dev)
    alive = np.ones(M, bool)
    avg = np.zeros(M)
    best = np.full(M, np.inf)
    rows = []
    perm = None
    for t in range(steps):
        epoch, k = divmod(t, spe)
        if k == 0:
            perm = batch_permutation(int(seed), epoch, N).to(dev)
        idx = perm[k * B:(k + 1) * B]
        lr = torch.full((M,), float(lrs[t]), dtype=torch.float64)
        losses, active = train_step(model, opt, x[idx], y[idx], lr=lr, active=active)
        loss = losses.double().cpu().numpy()
        finite = np.isfinite(loss)
        avg = np.where(alive & finite, smoothing * avg + (1 - smoothing) * np.where(finite, loss, 0.0), avg)
        smooth = avg / (1 - smoothing ** (t + 1))
        for j in np.flatnonzero(alive & finite):
            rows.append((names[j], t, float(lrs[t]), float(loss[j]), float(smooth[j])))
        best = np.where(alive & finite, np.minimum(best, smooth), best)
        stop = alive & (~finite | (smooth > diverge_factor * best))
        if stop.any():
            alive &= ~stop
            active = active & torch.as_tensor(alive, device=dev)
        if not alive.any():
            break
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    curve["optimizer"] = pd.Categorical(curve["optimizer"], categories=opts, ordered=True)
    curve = curve.sort_values(["optimizer", "step"], kind="stable").reset_index(drop=True)
    curve["optimizer"] = curve["optimizer"].astype(str)
    return curve


def suggest(curve: pd.DataFrame) -> dict[str, dict[str, float]]:
    """optimizer -> {steepest, min_over_10, suggested, min_loss_lr, last_lr} (see the module docstring)."""
    missing = [c for c in CURVE_COLUMNS if c not in curve.columns]
    if missing:
        raise ValueError(f"suggest: curve lacks column(s) {missing}; expected {CURVE_COLUMNS}")
    out = {}
    for name, g in curve.groupby("optimizer", sort=False):
        g = g.sort_values("step")
        lr, sm = g["lr"].to_numpy(float), g["smoothed_loss"].to_numpy(float)
        i_min = int(np.nanargmin(sm)) if np.isfinite(sm).any() else -1
        min_lr = float(lr[i_min]) if i_min >= 0 else math.nan
        steep = math.nan
        if i_min >= 2:
            i0 = min(len(sm) // 10, i_min // 2)
            seg_lr, seg = np.log(lr[i0:i_min + 1]), sm[i0:i_min + 1]
            if len(seg) >= 2:
                steep = float(lr[i0 + int(np.argmin(np.gradient(seg, seg_lr)))])
        m10 = min_lr / 10
        both = [v for v in (steep, m10) if np.isfinite(v)]
        sugg = float(np.exp(np.mean(np.log(both)))) if both else math.nan
        out[str(name)] = dict(steepest=steep, min_over_10=m10, suggested=sugg, min_loss_lr=min_lr,
                              last_lr=float(lr[-1]) if len(lr) else math.nan)
    return out


def write_results(curve: pd.DataFrame, suggestions: dict, out_dir, *, steps: int, title: str,
                  precision: str = "fp32") -> pd.DataFrame:
    """``find_lr_curve.csv`` (the curves), ``find_lr.csv`` (one row per optimizer: the suggestions, steps
    run, whether the loss passed ``diverge_factor`` x its best, the training precision) and ``find_lr.png``
    into ``out_dir``."""
    from pathlib import Path

    from ..results import atomic_write
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "find_lr_curve.csv", lambda p: curve.to_csv(p, index=False))
    stopped = curve.groupby("optimizer")["step"].max()
    names = list(dict.fromkeys(curve["optimizer"]))
    table = pd.DataFrame([dict(optimizer=o, **suggestions[o], steps_run=int(stopped[o]) + 1,
                               stopped=bool(stopped[o] + 1 < steps), precision=precision)
                          for o in names if o in suggestions])
    atomic_write(out / "find_lr.csv", lambda p: table.to_csv(p, index=False))
    plot(curve, suggestions, out / "find_lr.png", title=title)
    return table


def find_peaks(optimizers: Sequence[str], data, spec: TrainSpec | None = None, *, device="cpu", seed: int = 0,
               out_dir=None, required: Sequence[str] | None = None) -> dict[str, float]:
    """optimizer -> suggested peak lr (a matrix's ``peak_lr = "find"``), from one :func:`range_test`; its
    curves, table and plot go to ``out_dir`` (:func:`write_results`) when given. An optimizer of ``required``
    (default: all) without a suggestion is an error; the others are left out of the result."""
    spec = spec or TrainSpec()
    curve = range_test(list(optimizers), data, spec, device=device, seed=seed)
    sug = suggest(curve)
    if out_dir is not None:
        write_results(curve, sug, out_dir, steps=SWEEP_STEPS, title=f"LR range test for the matrix's peaks ("
                      f"{title_of(spec, seed)})", precision=spec.precision)
    out = {}
    for o in optimizers:
        v = sug.get(o, {}).get("suggested", math.nan)
        if (not np.isfinite(v) or v <= 0) and required is not None and o not in required:
            continue
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"find_peaks: the range test found no learning rate for {o!r} (its loss never fell); "
                             "give its peak_lr in the matrix")
        out[o] = float(v)
    return out


def title_of(spec: TrainSpec, seed: int) -> str:
    """What a range test ran, for its plot's title: model, batch size, seed, precision."""
    return f"{'-'.join(map(str, spec.widths))} {spec.activation}, batch {spec.batch_size}, seed {seed}, {spec.precision}"


def plot(curve: pd.DataFrame, suggestions: dict, path=None, title: str = "LR range test") -> bytes:
    """Smoothed (and raw, faint) loss against lr, log x, one panel per optimizer, suggestions marked; the PNG
    bytes (also written to ``path`` when given)."""
    import io

    fig = _figure(curve, suggestions, title)
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        from ..results import atomic_write
        atomic_write(path, lambda p: p.write_bytes(data))
    return data


def _figure(curve: pd.DataFrame, suggestions: dict, title: str):
    """The figure of :func:`plot`. The y axis spans the raw and the smoothed loss from their lowest value to
    1.3 x the starting loss (a diverging tail leaves the plot)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(curve["optimizer"]))
    cols = min(3, max(1, len(names)))
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.3 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        g = curve[curve["optimizer"] == name].sort_values("step")
        ax.plot(g["lr"], g["loss"], color="0.75", lw=0.8, label="loss")
        ax.plot(g["lr"], g["smoothed_loss"], color="tab:blue", lw=1.6, label="smoothed")
        s = suggestions.get(name, {})
        for key, marker, color in (("steepest", "v", "tab:green"), ("min_over_10", "o", "tab:orange"),
                                   ("suggested", "*", "tab:red")):
            v = s.get(key, math.nan)
            if np.isfinite(v):
                ax.axvline(v, color=color, ls="--", lw=1, label=f"{key.replace('_', ' ')} {v:.2g}")
        both = np.r_[g["smoothed_loss"].to_numpy(float), g["loss"].to_numpy(float)]
        both = both[np.isfinite(both)]
        if both.size:
            lo = float(both.min())
            starts = [float(c.iloc[0]) for c in (g["smoothed_loss"], g["loss"]) if np.isfinite(c.iloc[0])]
            top = max(max(starts) * 1.3 if starts else -math.inf, lo * 1.5, lo + 0.1)
            ax.set_ylim(lo - 0.05 * abs(lo), top)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig
