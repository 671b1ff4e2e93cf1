"""The report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Learning-rate curves, validation curves, the accuracy heatmap, performance profiles and throughput bars;
one colour, line style and marker per schedule in every figure. Details: docs/BENCH.md, "bench/report/plots.py".
"""
from __future__ import annotations

import io
import math

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats as RS  # noqa: E402
from .answer import label as _words  # noqa: E402

__all__ = ["png", "style", "lr_curves", "curves", "heatmap", "heatmap_layout", "profile", "sensitivity", "throughput",
           "throughput_title", "schedule_steps", "DPI"]

DPI = 110
_LINESTYLES = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_TRAINER_NAMES = {"batched": "batched", "sequential": "sequential", "keras": "Keras"}


def png(fig) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # every figure uses the constrained layout: no tight bbox pass
    plt.close(fig)
    return buf.getvalue()


def style(i: int) -> dict:
    """Colour, line style and marker of the ``i``-th schedule (the same in every figure)."""
    return dict(color=f"C{i % 10}", ls=_LINESTYLES[i % len(_LINESTYLES)], marker=_MARKERS[i % len(_MARKERS)])


def _panels(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _label(name: str, limit: int = 40) -> str:
    """A legend label: matplotlib mathtext off ($ escaped), long names cut."""
    name = name.replace("$", r"\$")
    return name if len(name) <= limit else name[:limit - 1] + "…"


def schedule_steps(run: RS.Run) -> tuple[int, int]:
    """(total steps, steps per epoch) of the run: ``ceil(n_train / batch_size)`` per epoch."""
    spe = run.steps_per_epoch
    return run.epochs * spe, spe


def _schedule_values(text: str, peak: float, total: int, spe: int, epochs: int):
    import lrcore
    t = text.strip()
    if t.lower() == "plateau":
        return None
    if t.startswith("keras-native:"):
        t = t[len("keras-native:"):].strip()
    try:
        s = lrcore.parse(t, peak=float(peak), total=int(total), steps_per_epoch=int(spe), epochs=int(epochs))
        return lrcore.evaluate(s, int(total))
    except (ValueError, TypeError, OverflowError):  # drawn from the recorded per-epoch lr instead
        return None


def _config_peak(rows: pd.DataFrame, name: str, default: float) -> float:
    """The peak learning rate a configuration ran at (its summary rows: a tuned run's selected peak)."""
    sub = rows[rows["name"] == name]
    if len(sub) and "peak_lr" in sub and np.isfinite(float(sub["peak_lr"].iloc[0])):
        return float(sub["peak_lr"].iloc[0])
    return default


def lr_curves(run: RS.Run) -> bytes:
    """Every schedule at its own peak (its evaluation models' ``peak_lr``: in a tuned run, each configuration's
    selected peak; the legend names it when the peaks of a panel differ), one panel per optimizer."""
    total, spe = schedule_steps(run)
    texts = (run.matrix.get("schedules") or {})
    if not texts:
        texts = dict(zip(run.summary["name"], run.summary.get("schedule", pd.Series(dtype=str))))
    peaks = run.meta.get("peak_lr") or run.matrix.get("peak_lr") or {}
    fig, axes = _panels(len(run.optimizers))
    seed0 = min(run.seeds)
    for ax, opt in zip(axes, run.optimizers):
        rows = run.summary[run.summary["optimizer"] == opt]
        peak = peaks.get(opt)
        if not isinstance(peak, (int, float)):
            peak = float(rows["peak_lr"].iloc[0]) if "peak_lr" in rows else math.nan
        own = {name: _config_peak(rows, name, peak) for name in run.schedules if (rows["name"] == name).any()}
        several = len({round(math.log10(v), 6) for v in own.values() if v > 0}) > 1
        for k, name in enumerate(run.schedules):
            st = style(k)
            if name not in own:
                continue
            text = texts.get(name)
            if text is None:
                sub = rows[rows["name"] == name]
                text = str(sub["schedule"].iloc[0]) if len(sub) and "schedule" in sub else ""
            label = _label(name) + (f" ({own[name]:.2g})" if several else "")
            v = _schedule_values(text, own[name], total, spe, run.epochs) if total > run.epochs else None
            if v is not None:  # markers spread along the curve, staggered so twins do not cover each other
                ax.plot(np.arange(total) / spe, v, label=label, lw=1.4, ms=4,
                        markevery=(0.013 * k % 0.1, 0.1), **st)
            else:
                h = run.history[(run.history["optimizer"] == opt) & (run.history["name"] == name)
                                & (run.history["seed"] == seed0)].sort_values("epoch")
                if len(h):
                    ax.step(h["epoch"].to_numpy(), h["lr"].to_numpy(), where="post", lw=1.4, ms=4,
                            label=label + " (recorded)", **st)
        pk = [v for v in own.values() if v > 0]
        ax.set_title(f"{opt} (tuned peaks {min(pk):.2g} to {max(pk):.2g})" if several else
                     f"{opt} ({'tuned peak' if run.tuned else 'peak'} {pk[0] if pk else peak:.3g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        tops = np.array([np.nanmax(np.asarray(ln.get_ydata(), float)) for ln in ax.get_lines()] or [1.0])
        tops = tops[np.isfinite(tops) & (tops > 0)]
        if tops.size and tops.max() > 50 * tops.min():  # peaks decades apart: log scale, 3 decades below
            ax.set_yscale("log")
            ax.set_ylim(tops.min() / 1e3, tops.max() * 2)
        else:
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("learning rate per step")
    return png(fig)


def curves(run: RS.Run, column: str) -> bytes:
    """``column`` = "val_loss" or "val_acc": mean over seeds, band min..max (non-finite values dropped)."""
    h = run.history.copy()
    h[column] = h[column].where(np.isfinite(h[column]))
    if "diverged" in h:  # a diverged model is frozen: its later epochs say nothing about the schedule
        h.loc[h["diverged"].astype(bool), column] = np.nan
    fig, axes = _panels(len(run.optimizers))
    for ax, opt in zip(axes, run.optimizers):
        firsts = []
        for k, name in enumerate(run.schedules):
            g = h[(h["optimizer"] == opt) & (h["name"] == name)]
            if g.empty:
                continue
            agg = g.groupby("epoch")[column].agg(["mean", "min", "max"])
            x = agg.index.to_numpy() + 1
            label = _label(name) + (" (diverged)" if agg["mean"].isna().all() else "")
            st = style(k)
            ax.plot(x, agg["mean"].to_numpy(), ms=4, lw=1.4, label=label, mfc="none", **st)
            ax.fill_between(x, agg["min"].to_numpy(), agg["max"].to_numpy(), color=st["color"], alpha=0.12, lw=0)
            if agg["mean"].notna().any():
                firsts.append(float(agg["mean"].dropna().iloc[0]))
        ax.set_title(opt)
        ax.set_xlabel("epoch")
        ax.set_ylabel(column.replace("_", " "))
        if column == "val_loss" and firsts:
            # a schedule whose loss explodes would flatten the others: cap the axis at 2.5x the median start
            lo = np.nanmin(h.loc[h["optimizer"] == opt, column].to_numpy(dtype=float))
            top = 2.5 * float(np.median(firsts))
            if np.isfinite(lo) and top > lo and np.nanmax(h.loc[h["optimizer"] == opt, column]) > top:
                ax.set_ylim(0.95 * lo, top)
                ax.text(0.99, 0.98, "axis capped: higher curves leave the plot", ha="right", va="top",
                        fontsize=7, color="0.4", transform=ax.transAxes)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{column.replace('_', ' ')}: mean over seeds\nband: min to max; diverged models left out",
                 fontsize="small")
    return png(fig)


def heatmap_layout(table: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray, list[tuple[str, float, list[int]]]]:
    """(optimizer columns, schedule rows, mean test accuracy in % of the scheduled configurations (rows x columns),
    schedule-free rows): each schedule-free configuration is ``(label, accuracy in %, columns it spans)``, spanning
    its family's scheduled optimizers (:mod:`bench.report.families`; its own column when the run has none of them).
    Columns are grouped by family; schedule-free optimizers never become columns of the scheduled block."""
    from . import families as F
    free = table["optimizer"].map(F.is_schedule_free)
    main, sf = table[~free], table[free]
    cols = F.order_optimizers(dict.fromkeys(main["optimizer"]))
    spans = []
    for (opt, sched), g in sf.groupby(["optimizer", "schedule"], sort=False):
        fam = F.family_of(opt)
        span = [j for j, c in enumerate(cols) if fam is not None and c in fam.members]
        if not span:
            cols.append(opt)
            span = [len(cols) - 1]
        label = (fam.twin_label if fam is not None else opt) + f" ({_words(sched)})"
        spans.append((label, 100 * float(g["test_acc"].iloc[0]), span))
    rows = list(dict.fromkeys(main["schedule"]))
    wide = main.pivot_table(index="schedule", columns="optimizer", values="test_acc", aggfunc="first", sort=False)
    wide = wide.reindex(index=rows, columns=cols)
    return cols, rows, 100 * wide.to_numpy(dtype=float).reshape(len(rows), len(cols)), spans


def heatmap(table: pd.DataFrame, untuned=frozenset(), collapsed=frozenset(), tied=frozenset()) -> bytes:
    """Mean test accuracy in %, rows = schedules, columns = optimizers; below a line, one row per schedule-free
    configuration, its cell spanning the columns of its family (see :func:`heatmap_layout`). ``untuned``:
    (optimizer, schedule) pairs whose tuned learning rate sits on the grid's edge (a star); ``collapsed``: pairs
    with a collapsed seed, hatched grey and left out of the colour scale (which spans the other cells only);
    ``tied``: pairs not significantly worse than the best of their optimizer (a schedule-free one: than the best
    overall), drawn with a black frame."""
    from . import families as F
    cols, rows, a, spans = heatmap_layout(table)
    sf = table[table["optimizer"].map(F.is_schedule_free)]
    span_keys = list(sf.groupby(["optimizer", "schedule"], sort=False).groups)  # heatmap_layout's order
    R, C = len(rows), len(cols)
    dead = np.array([[(cols[j], rows[i]) in collapsed for j in range(C)] for i in range(R)], dtype=bool).reshape(R, C)
    gap = 0.5 if spans and R else 0.0
    ys = [R + gap + k for k in range(len(spans))]
    bottom = (ys[-1] if ys else R - 1) + 0.5
    fig, ax = plt.subplots(figsize=(1.3 * C + 3.5, 0.5 * bottom + 2.4), layout="constrained")
    values = np.r_[a[np.isfinite(a) & ~dead], [v for (_, v, _), k in zip(spans, span_keys)
                                                if np.isfinite(v) and k not in collapsed]]
    lo = float(values.min()) if values.size else 0.0
    hi = float(values.max()) if values.size else 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e6e6e6")
    norm = matplotlib.colors.Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1e-7)
    mid = (lo + hi) / 2

    def write(x, y, v, star=False, gone=False):
        text = "n/a" if not np.isfinite(v) else f"{v:.1f}" + ("*" if star else "")
        ax.text(x, y, text + ("\ncollapsed" if gone else ""), ha="center", va="center", fontsize=7 if gone else 8,
                color="#555" if gone or not np.isfinite(v) else ("white" if v < mid else "black"))

    def hatch(x0, x1, y):
        ax.add_patch(matplotlib.patches.Rectangle((x0, y - 0.5), x1 - x0, 1.0, facecolor="#eeeeee", hatch="///",
                                                  edgecolor="#bbbbbb", lw=0))

    if R:
        im = ax.imshow(np.ma.masked_array(a, mask=~np.isfinite(a) | dead), cmap=cmap, norm=norm, aspect="auto",
                       extent=(-0.5, C - 0.5, R - 0.5, -0.5))
        for i in range(R):
            for j in range(C):
                if dead[i, j]:
                    hatch(j - 0.5, j + 0.5, i)
                if (cols[j], rows[i]) in tied:
                    ax.add_patch(matplotlib.patches.Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False,
                                                              edgecolor="black", lw=1.8))
                write(j, i, a[i, j], (cols[j], rows[i]) in untuned, bool(dead[i, j]))
    else:
        im = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    for y, (label, v, span), key in zip(ys, spans, span_keys):
        x0, x1 = min(span) - 0.5, max(span) + 0.5
        if key in collapsed:
            hatch(x0, x1, y)
        else:
            ax.add_patch(matplotlib.patches.Rectangle((x0, y - 0.5), x1 - x0, 1.0, facecolor=cmap(norm(v))
                                                      if np.isfinite(v) else "#e6e6e6", edgecolor="white", lw=1))
        if key in tied:
            ax.add_patch(matplotlib.patches.Rectangle((x0 + 0.04, y - 0.46), x1 - x0 - 0.08, 0.92, fill=False,
                                                      edgecolor="black", lw=1.8))
        write((x0 + x1) / 2, y, v, key in untuned, key in collapsed)
    if spans and R:
        ax.axhline(R - 0.5 + gap / 2, color="black", lw=1.2)
        ax.text(C - 0.5, R - 0.5 + gap / 2, "schedule-free (warmup only), one cell per family ",
                ha="right", va="center", fontsize=7, style="italic", backgroundcolor="white")
    ax.set_xlim(-0.5, C - 0.5)
    ax.set_ylim(bottom, -0.5)
    plain = lambda n: _words(n).removeprefix("a ")  # noqa: E731 - "a constant LR" -> "constant LR"
    ax.set_xticks(range(C), [_label(plain(c), 20) for c in cols], rotation=30, ha="right")
    ax.set_yticks(list(range(R)) + ys, [_label(plain(r), 28) for r in rows] + [_label(s[0], 40) for s in spans])
    for t in ax.get_yticklabels()[R:]:
        t.set_fontstyle("italic")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    ax.set_title("test accuracy (%), mean over seeds"
                 + ("\nframed: not significantly worse than the best of its optimizer"
                    + (" (schedule-free: than the best overall)" if spans else "") + ", Holm-corrected" if tied else "")
                 + ("\nhatched: a seed collapsed (not coloured; the scale spans the other cells)" if collapsed else "")
                 + ("\nbelow the line: schedule-free optimizers, each spanning its family's optimizers" if spans else "")
                 + ("\n* untuned: its tuned learning rate sits on the grid's edge" if untuned else ""))
    return png(fig)


def profile(run: RS.Run) -> bytes:
    """Performance profiles (:func:`bench.report.stats.performance_profile`): epochs to target (within a workload,
    one optimizer, the ratio of times at its measured cost per step) and test error."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for ax, metric, title in ((axes[0], "time", f"epochs (= time) to {100 * run.target:g}% val. accuracy"),
                              (axes[1], "error", "test error")):
        ratios, kept, total = RS.performance_profile(run, metric)
        if kept == 0:
            ax.text(0.5, 0.5, "no workload where some schedule\nhas a finite value", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            ax.set_title(title)
            continue
        finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
        biggest = float(finite.max())
        log = biggest >= 10
        top = biggest * (1.25 if log else 1.05) if biggest > 1 else 1.1
        # rho steps only at the ratios themselves: evaluate there (and at the ends) to draw it exactly
        taus = np.unique(np.r_[1.0, finite[finite <= top], top])
        for name in ratios.columns:
            r = ratios[name].to_numpy()
            rho = (r[None, :] <= taus[:, None]).mean(axis=1)
            st = style(run.schedules.index(name))
            ax.step(taus, rho, where="post", label=_label(name), color=st["color"], ls=st["ls"], lw=1.6)
        ax.set_xlim(0.95 if log else 1 - 0.02 * (top - 1), top)  # a small margin keeps jumps at tau = 1 visible
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10))
            ax.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=(2, 3, 5)))
            fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.xaxis.set_major_formatter(fmt)
            ax.xaxis.set_minor_formatter(fmt)
            ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("tau (ratio to the best schedule)")
        ax.set_ylabel("share of workloads with ratio <= tau")
        ax.set_title(f"{title} ({kept}/{total} workloads)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("performance profiles over (optimizer, seed) workloads")
    return png(fig)


def throughput_title(rows: pd.DataFrame) -> str:
    """"Training throughput: batched vs sequential vs Keras", naming only the trainers in ``rows``."""
    names = list(dict.fromkeys(_TRAINER_NAMES.get(str(t), str(t)) for t in rows["trainer"]))
    return "Training throughput: " + " vs ".join(names) if names else "Training throughput"


def throughput(rows: pd.DataFrame) -> bytes:
    """``rows``: trainer, label, model_epochs_per_s, source ("speed table" | "this run"); horizontal bars on a
    linear axis from 0, each with its value written at its end."""
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5), layout="constrained")
    colors = ["tab:orange" if s == "this run" else "tab:blue" for s in rows["source"]]
    y = np.arange(len(rows))
    v = rows["model_epochs_per_s"].to_numpy(dtype=float)
    ax.barh(y, v, color=colors)
    for yi, vi in zip(y, v):
        ax.text(vi, yi, f" {vi:.3g}", va="center", ha="left", fontsize=8)
    ax.set_yticks(y, [_label(str(x), 60) for x in rows["label"]], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15 * float(np.nanmax(v)) if len(v) and np.nanmax(v) > 0 else 1)
    ax.set_xlabel("model-epochs per second (higher is faster)")
    ax.set_title(throughput_title(rows) + ("\n(orange: this run)" if "this run" in set(rows["source"]) else ""),
                 fontsize="medium")
    ax.grid(alpha=0.3, axis="x")
    return png(fig)


def sensitivity(run: RS.Run) -> bytes:
    """LR sensitivity of a tuned run: the tuning metric (mean over the tuning seeds, %) against the peak learning
    rate (log axis), a panel per optimizer, a line per schedule (tuning.csv, edge extensions included). Ringed:
    each configuration's selected point (a red square: selected on the edge of what it tried, i.e. untuned);
    crosses on the panel's floor: diverged points; points below the floor are drawn on it as triangles; dashed
    vertical line: the LR range test's suggestion for that optimizer (find_lr.csv)."""
    from matplotlib.lines import Line2D

    from . import tuning as RT
    t = RT.grid(run)
    opts = [o for o in run.optimizers if o in set(t["optimizer"])] + [o for o in dict.fromkeys(t["optimizer"])
                                                                      if o not in run.optimizers]
    names = run.schedules + [n for n in dict.fromkeys(t["schedule"]) if n not in run.schedules]
    sugg = {}
    if run.find_lr is not None and {"optimizer", "suggested"} <= set(run.find_lr.columns):
        sugg = {str(o): float(v) for o, v in zip(run.find_lr["optimizer"], run.find_lr["suggested"])}
    metric = {"final_val_acc": "validation accuracy at the end", "best_val_acc": "best validation accuracy"}.get(
        str(run.tuning_spec.get("metric") or "final_val_acc"), str(run.tuning_spec.get("metric")).replace("_", " "))
    fig, axes = _panels(len(opts), 4.4, 3.3)
    for ax, opt in zip(axes, opts):
        g = t[t["optimizer"] == opt]
        ok = g[(g["diverged"] == 0) & np.isfinite(g["mean"].astype(float))]
        top = 100 * float(ok["mean"].max()) if len(ok) else 100.0
        low = 100 * float(ok["mean"].min()) if len(ok) else 0.0
        floor = max(low - 1.0, top - 15.0)  # a flat floor: the interesting part is near the best
        for name, h in g.groupby("schedule", sort=False):
            st = style(names.index(name))
            h = h.sort_values("lr")
            x, y = h["lr"].to_numpy(float), 100 * h["mean"].to_numpy(float)
            bad = (h["diverged"].to_numpy() > 0) | ~np.isfinite(y)
            shown = np.where(bad, np.nan, np.maximum(y, floor))
            ax.plot(x, shown, color=st["color"], ls=st["ls"], lw=1.3, marker=st["marker"], ms=4,
                    label=_label(_words(name).removeprefix("a ")))
            under = ~bad & (y < floor)
            ax.plot(x[under], np.full(under.sum(), floor), ls="none", marker="v", ms=6, color=st["color"])
            ax.plot(x[bad], np.full(bad.sum(), floor), ls="none", marker="x", ms=7, mew=1.6, color=st["color"])
            for r in h[h["selected"]].itertuples():
                edge = bool(r.on_edge)
                ax.plot([r.lr], [max(100 * r.mean, floor)], ls="none", marker="s" if edge else "o", ms=11,
                        mfc="none", mec="red" if edge else "black", mew=1.4)
        if opt in sugg and np.isfinite(sugg[opt]):
            ax.axvline(sugg[opt], color="0.35", ls="--", lw=1.1)
            ax.text(sugg[opt], 0.02, f" find-lr {sugg[opt]:.2g}", rotation=90, fontsize=7, color="0.3",
                    va="bottom", ha="right", transform=ax.get_xaxis_transform())
        ax.set_xscale("log")
        ax.set_ylim(floor - 0.4, top + 0.6 + 0.05 * (top - floor))
        ax.set_title(_words(opt))
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3, which="both", lw=0.5)
    handles = [Line2D([], [], **{k: v for k, v in style(names.index(n)).items()}, lw=1.3, ms=4,
                      label=_label(_words(n).removeprefix("a ")))
               for n in names if n in set(t["schedule"])]
    handles += [Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="black", label="selected"),
                Line2D([], [], ls="none", marker="s", ms=10, mfc="none", mec="red",
                       label="selected on the edge (untuned)"),
                Line2D([], [], ls="none", marker="x", ms=7, mew=1.6, color="0.3", label="collapsed"),
                Line2D([], [], ls="none", marker="v", ms=6, color="0.3", label="below the panel"),
                Line2D([], [], color="0.35", ls="--", label="LR range test suggestion")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
    seeds = run.tuning_spec.get("tuning_seeds") or sorted({int(s) for s in run.tuning_summary.get("seed", [])})
    fig.suptitle(f"LR sensitivity: {metric} vs peak learning rate, mean over the tuning seeds that trained each "
                 f"point (of {list(seeds)})")
    return png(fig)
