"""The LR range test (bench.train.find_lr, ``lrbench find-lr``) on a Fashion-MNIST subset: the sweep, the smoothing
and stopping rules recomputed from the curve it returns, the batched stack against single runs, the suggestions."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from bench.train import find_lr as F
from bench.train.config import TrainSpec
from bench.cli import find_lr_cmd

OPTS = ["sgd", "adam", "momentum"]  # kinds interleaved on purpose: the stack reorders them, the curve must not
SPEC = TrainSpec(widths=(784, 32, 10), batch_size=128)
KW = dict(lr_min=1e-5, lr_max=10.0, steps=150)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is several times faster on a shared machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    from bench.train.data import load_fashion_mnist
    full = load_fashion_mnist()
    return dataclasses.replace(full, x_train=full.x_train[:2000], y_train=full.y_train[:2000])


@pytest.fixture(scope="module")
def curve(data):
    return F.range_test(OPTS, data, SPEC, **KW)


def test_sweep_and_smoothing(curve):
    assert list(curve.columns) == F.CURVE_COLUMNS
    assert list(dict.fromkeys(curve["optimizer"])) == OPTS
    for name, g in curve.groupby("optimizer"):
        t = g["step"].to_numpy()
        assert (t == np.arange(len(t))).all()
        np.testing.assert_allclose(g["lr"], 1e-5 * (10.0 / 1e-5) ** (t / 149), rtol=1e-12)
        a, expected = 0.0, []
        for k, loss in enumerate(g["loss"]):
            a = 0.98 * a + 0.02 * loss
            expected.append(a / (1 - 0.98 ** (k + 1)))
        np.testing.assert_allclose(g["smoothed_loss"], expected, rtol=1e-9)
        assert g["loss"].iloc[0] == pytest.approx(math.log(10), rel=0.1)  # an untrained 10-class model


def test_stopping_rule(curve):
    stopped = 0
    for name, g in curve.groupby("optimizer"):
        sm = g["smoothed_loss"].to_numpy()
        running = np.minimum.accumulate(sm)
        assert (sm[:-1] <= 4 * running[:-1]).all()  # nothing stopped early
        if len(sm) < KW["steps"]:
            stopped += 1
            assert sm[-1] > 4 * running[-2]  # stopped on the first step past 4x its best
    by = curve.groupby("optimizer")["lr"].max()
    assert by["sgd"] < 10 and by["momentum"] < 10 and stopped >= 2  # SGD cannot survive lr 10


def test_each_model_is_its_own(curve, data):
    """The stack changes nothing: an optimizer alone gives the same curve (same weights, same batches)."""
    for name in ("adam", "momentum"):
        alone = F.range_test([name], data, SPEC, **KW)
        together = curve[curve["optimizer"] == name]
        assert len(alone) == len(together)
        np.testing.assert_allclose(alone["loss"], together["loss"], rtol=1e-5, atol=1e-6)


def test_suggest_on_a_known_curve():
    x = np.linspace(-5, 1, 601)  # log10 lr
    sm = 2.3 - 1.3 / (1 + np.exp(-3 * (x + 2))) + 5 * np.maximum(x, 0) ** 2
    curve = pd.DataFrame(dict(optimizer="o", step=np.arange(601), lr=10 ** x, loss=sm, smoothed_loss=sm))
    s = F.suggest(curve)["o"]
    assert s["min_loss_lr"] == pytest.approx(1.0, rel=0.03)  # the minimum sits just past x = 0
    assert s["min_over_10"] == pytest.approx(s["min_loss_lr"] / 10)
    assert s["steepest"] == pytest.approx(1e-2, rel=0.03)  # the sigmoid's centre
    assert s["suggested"] == pytest.approx(math.sqrt(s["steepest"] * s["min_over_10"]))
    with pytest.raises(ValueError, match="lacks column"):
        F.suggest(curve.drop(columns="smoothed_loss"))


def test_suggestions_on_the_real_curve(curve):
    sug = F.suggest(curve)
    for name, g in curve.groupby("optimizer"):
        s = sug[name]
        i = int(np.argmin(g["smoothed_loss"]))
        assert s["min_loss_lr"] == g["lr"].iloc[i]
        assert KW["lr_min"] <= s["steepest"] <= s["min_loss_lr"]
        assert s["suggested"] < s["min_loss_lr"]
    assert sug["adam"]["suggested"] < sug["sgd"]["suggested"]  # Adam wants a far smaller step than SGD


def test_plot_limits_include_the_raw_loss(tmp_path):
    """The y axis spans the raw loss too: its noisy dips below the smoothed curve stay in the plot."""
    x = np.linspace(-5, 1, 300)
    smooth = 2.3 - 1.3 / (1 + np.exp(-3 * (x + 2))) + 5 * np.maximum(x, 0) ** 2
    raw = smooth + 0.4 * np.sin(np.arange(300))  # dips to 0.6 where the smoothed loss bottoms at 1.0
    raw[-1] = np.nan  # the step that diverged
    curve = pd.DataFrame(dict(optimizer="o", step=np.arange(300), lr=10 ** x, loss=raw, smoothed_loss=smooth))
    sug = F.suggest(curve)
    fig = F._figure(curve, sug, "t")
    lo, hi = fig.axes[0].get_ylim()
    raw_min = np.nanmin(raw)
    assert raw_min < smooth.min() - 0.3
    assert lo <= raw_min and lo > raw_min - 0.1 * abs(raw_min)
    assert hi == pytest.approx(1.3 * max(smooth[0], raw[0]))  # the diverging tail is cut, as before
    data = F.plot(curve, sug, tmp_path / "p.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "p.png").read_bytes() == data


def test_find_peaks(data):
    peaks = F.find_peaks(["adam", "sgd"], data, TrainSpec(widths=(784, 32, 10), activation="relu", dropout=0.0,
                                                           batch_size=128), device="cpu", seed=0)
    assert list(peaks) == ["adam", "sgd"]
    assert 1e-5 < peaks["adam"] < 0.05 and 1e-3 < peaks["sgd"] < 3, peaks


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="unknown optimizer.*'lion'.*known: sgd"):
        F.range_test(["lion"], data)
    with pytest.raises(ValueError, match="need 0 < lr_min < lr_max"):
        F.range_test(["sgd"], data, lr_min=1.0, lr_max=0.1)
    with pytest.raises(ValueError, match="distinct"):
        F.range_test(["sgd", "sgd"], data)
    with pytest.raises(ValueError, match="larger than the training set"):
        F.range_test(["sgd"], dataclasses.replace(data, x_train=data.x_train[:10], y_train=data.y_train[:10]))


def test_cli(tmp_path):
    out = tmp_path / "find"
    r = CliRunner().invoke(find_lr_cmd, ["--optimizers", "sgd,adam", "--steps", "40", "--widths", "784,32,10",
                                         "--device", "cpu", "--out", str(out)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "find_lr.csv")
    assert list(table["optimizer"]) == ["sgd", "adam"]
    assert {"steepest", "min_over_10", "suggested", "steps_run", "stopped"} <= set(table.columns)
    curve = pd.read_csv(out / "find_lr_curve.csv")
    assert list(curve.columns) == F.CURVE_COLUMNS and curve["step"].max() <= 39
    assert (out / "find_lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = CliRunner().invoke(find_lr_cmd, ["--optimizers", "sgd,lion", "--out", str(out)])
    assert r.exit_code == 2 and "unknown optimizer(s) lion; known: sgd, momentum" in r.output
    r = CliRunner().invoke(find_lr_cmd, ["--lr-min", "1", "--lr-max", "0.5", "--out", str(out)])
    assert r.exit_code == 2 and "must be below --lr-max" in r.output
    r = CliRunner().invoke(find_lr_cmd, ["--widths", "784,x,10", "--out", str(out)])
    assert r.exit_code == 2 and "comma-separated integers" in r.output


def test_schedule_free_optimizers(data):
    """The range test runs the schedule-free optimizers (loss at their gradient point y, as they train) beside
    the others in one stack; each curve equals the one it gives alone, and the suggestions are in range."""
    opts = ["adamw_schedulefree", "adam", "sgd_schedulefree"]
    curve = F.range_test(opts, data, SPEC, **KW)
    alone = F.range_test(["sgd_schedulefree"], data, SPEC, **KW)
    mine = curve[curve["optimizer"] == "sgd_schedulefree"].reset_index(drop=True)
    np.testing.assert_allclose(mine["loss"], alone["loss"], rtol=1e-4)
    sug = F.suggest(curve)
    assert 1e-5 < sug["adamw_schedulefree"]["suggested"] < 0.1
    assert sug["adamw_schedulefree"]["suggested"] < sug["sgd_schedulefree"]["suggested"] < 10
    for name, g in curve.groupby("optimizer"):
        assert np.isfinite(g["loss"].iloc[:20]).all(), name
