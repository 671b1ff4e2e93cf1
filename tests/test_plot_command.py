"""``lrbench plot``: schedules drawn from their text form, momentum where they cycle it, long ranges sampled,
clear errors."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

import lrcore
from bench.cli import plot_cmd
from bench.report.schedules import MAX_POINTS, ScheduleTextError, figure, parse_schedule, plot_steps

COSINE = "Cosine(lr=0.1, decay_steps=1000)"
ONECYCLE = "torch.OneCycleLR(max_lr=0.1, total_steps=1000)"
COSINE_TOTAL = "Cosine(lr=0.1, decay_steps=total)"
ONECYCLE_TOTAL = "torch.OneCycleLR(max_lr=0.1, total_steps=total)"


def _invoke(*args):
    return CliRunner().invoke(plot_cmd, list(args))


def test_lines_are_the_schedules_values():
    fig = figure([COSINE, ONECYCLE], 1000)
    lr_ax, mom_ax = fig.axes
    lines = lr_ax.get_lines()
    assert [ln.get_label() for ln in lines] == [COSINE, ONECYCLE]
    np.testing.assert_array_equal(lines[0].get_ydata(), lrcore.evaluate(lrcore.parse(COSINE), 1000))
    np.testing.assert_array_equal(lines[1].get_ydata(), lrcore.evaluate(lrcore.parse(ONECYCLE), 1000))
    (mom,) = mom_ax.get_lines()  # only OneCycle cycles momentum, drawn in its colour
    np.testing.assert_array_equal(mom.get_ydata(), lrcore.evaluate(lrcore.parse(ONECYCLE).momentum, 1000))
    assert mom.get_color() == lines[1].get_color() and mom_ax.get_ylabel() == "momentum / beta1"
    assert len(figure([COSINE], 10).axes) == 1  # no momentum panel without a cycling schedule


def test_placeholders_total_and_peak():
    text = "Warmup(Cosine(lr=peak, decay_steps=total - 10), steps=10)"
    s = parse_schedule(text, 100, peak=0.5)
    assert s == lrcore.parse(text, peak=0.5, total=100)
    assert parse_schedule("keras-native:" + "keras.CosineDecay(initial_learning_rate=0.1, decay_steps=total)",
                          50) == lrcore.parse("keras.CosineDecay(initial_learning_rate=0.1, decay_steps=50)")


def test_cli_writes_image(tmp_path):
    out = tmp_path / "sub" / "s.png"
    r = _invoke(COSINE, ONECYCLE, "Constant(lr=peak)", "--steps", "1000", "--peak", "0.05", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert f"written: {out}" in r.output
    img = matplotlib.image.imread(out)
    assert img.shape[0] > 500 and img.shape[1] > 700  # two panels (OneCycle cycles momentum)
    r = _invoke(COSINE, "--steps", "1000", "--log", "-o", str(tmp_path / "s.svg"))
    assert r.exit_code == 0 and (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("texts, expected", [
    (["Cosine(lr=0.1, decay_steps=1000"], "schedule 1 ('Cosine(lr=0.1, decay_steps=1000'): parse: not valid "
                                          "schedule text"),
    ([COSINE, "Cosin(lr=0.1, decay_steps=10)"], "schedule 2 ('Cosin(lr=0.1, decay_steps=10)'): unknown schedule "
                                                "'Cosin'; known:"),
    (["Cosine(lr=0.1, decay_steps=0)"], "Cosine: decay_steps must be > 0, got 0"),
    (["Cosine(lr=peak, decay_steps=total)"], "unknown name 'peak'"),
    (["plateau"], "'plateau' is reactive"),
    (["__import__('os').system('true')"], "only calls of schedule names are allowed"),
    (["Constant(lr=-1)"], "Constant: lr must be >= 0, got -1"),
    (["  "], "empty text"),
    (["0.1"], "is a float, not a schedule"),
    (["Cosine(lr=0.1, decay_step=10)"], "Cosine: unknown parameter 'decay_step'; known: lr, decay_steps, floor, "
                                        "periodic"),
    (["Warmup(Cosine(lr=0.1, decay_step=10), steps=3)"], "Cosine: unknown parameter 'decay_step'; known: lr,"),
    (["torch.StepLR(lr=0.1, step=3)"], "torch.StepLR: unknown parameter 'step'; known: lr, step_size, gamma"),
    (["Cosine(lr=0.1)"], "Cosine: missing parameter 'decay_steps'; known: lr, decay_steps"),
    (["Cosine(0.1, 10, lr=0.2)"], "Cosine: parameter 'lr' given twice"),
    (["Cosine(lr=0.1, decay_steps=10**100)"], "schedule 1 ('Cosine(lr=0.1, decay_steps=10**100)'): Cosine: "
                                              "decay_steps must be < 2**62, got 1e+100"),
    (["Warmup(Cosine(lr=0.1, decay_steps=2**70), steps=5)"], "Cosine: decay_steps must be < 2**62"),
])
def test_bad_text_names_the_problem(tmp_path, texts, expected):
    r = _invoke(*texts, "--steps", "100", "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2, r.output
    assert expected in " ".join(r.output.split())
    assert "Traceback" not in r.output and not (tmp_path / "x.png").exists()


def test_long_ranges_are_sampled():
    """Above MAX_POINTS steps the curves are evaluated at MAX_POINTS evenly spaced steps, first and last included."""
    assert (plot_steps(MAX_POINTS) == np.arange(MAX_POINTS)).all()
    for steps in (MAX_POINTS + 1, 10 ** 12, 2 ** 62):
        x = plot_steps(steps)
        assert len(x) == MAX_POINTS and x[0] == 0 and x[-1] == steps - 1 and (np.diff(x) > 0).all()
        gaps = np.diff(x)
        assert gaps.max() - gaps.min() <= max(1, 1e-9 * steps)  # even spacing, up to rounding
    with pytest.raises(ValueError, match=r"steps must be in \[1, 2\*\*62\], got 0"):
        plot_steps(0)
    fig = figure([COSINE_TOTAL, ONECYCLE_TOTAL], 10 ** 12)
    lr_ax, mom_ax = fig.axes
    line = lr_ax.get_lines()[0]
    x = line.get_xdata()
    assert len(x) == MAX_POINTS and x[-1] == 10 ** 12 - 1
    s = lrcore.parse(COSINE_TOTAL, total=10 ** 12)
    np.testing.assert_array_equal(line.get_ydata(), lrcore.evaluate(s, x))
    assert line.get_ydata()[-1] < 1e-3 * line.get_ydata()[0]  # the cosine reaches its end at the last step
    assert len(mom_ax.get_lines()[0].get_xdata()) == MAX_POINTS
    assert "drawn at 100,000 evenly spaced steps" in lr_ax.get_title()
    assert "evenly spaced" not in figure([COSINE], 1000).axes[0].get_title()


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "x.png"  # a path under a regular file: no folder can be made there
    r = _invoke(COSINE, "--steps", "10", "-o", str(out))
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "Invalid value for --out: cannot write" in text and str(out) in text and "Traceback" not in r.output
    r = _invoke(COSINE, "--steps", "10", "-o", str(blocker / "sub" / "x.png"))
    assert r.exit_code == 2 and "cannot write" in r.output and "Traceback" not in r.output


def test_bad_options(tmp_path):
    r = _invoke(COSINE, "--steps", "0", "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2 and "--steps" in r.output
    r = _invoke(COSINE, "--steps", str(2 ** 62 + 1), "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2 and "--steps" in r.output and "Traceback" not in r.output
    r = _invoke(COSINE, "--steps", "10", "-o", str(tmp_path / "x.txt"))
    assert r.exit_code == 2 and "must end in .png, .svg or .pdf" in r.output
    r = _invoke(COSINE, "--steps", "10", "--peak", "-1", "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2 and "must be > 0" in r.output
    with pytest.raises(ScheduleTextError, match="pass --peak"):
        parse_schedule("Constant(lr=peak)", 10)
    r = _invoke("--steps", "10", "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2 and "Missing argument" in r.output
