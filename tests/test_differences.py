"""Every example in reference/DIFFERENCES.md, checked against the real PyTorch and Keras (and lrcore).

The tables are parsed from the page, so a number that stops being true fails here.
"""
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("keras")

from reference.keras_oracle import keras_lrs, keras_lrs_graph  # noqa: E402  (first: quiets TensorFlow)
from keras.optimizers import schedules as KS  # noqa: E402
from torch.optim import lr_scheduler as L  # noqa: E402

import lrcore  # noqa: E402
from lrcore.compat import keras as K  # noqa: E402
from lrcore.compat import torch as T  # noqa: E402
from reference.torch_oracle import torch_lrs  # noqa: E402

PAGE = Path(__file__).resolve().parent.parent / "reference" / "DIFFERENCES.md"
LR = 0.1
RTOL, ATOL = 1e-5, 1e-12  # the page shows 6 significant digits


def _sections():
    """{section title: [row cells]} for the tables of the page."""
    out, title = {}, None
    for line in PAGE.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        elif line.startswith("| ") and title and not line.startswith("| #"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out.setdefault(title, []).append(cells)
    return out


SECTIONS = _sections()
FRAMEWORKS = SECTIONS["PyTorch vs Keras"]
GRAPH = SECTIONS["Keras: eager `schedule(t)` vs a compiled train step"]
LRCORE = SECTIONS["Where lrcore does not reproduce the framework"]
SURPRISES = SECTIONS["Surprising framework values that lrcore reproduces"]
ECOSYSTEMS = [r for r in SECTIONS["Across ecosystems: one recipe in PyTorch, Keras, transformers, timm and optax"]
              if r[0] != "recipe"]


def _code(cell):
    return re.fullmatch(r"`(.*)`", cell).group(1)


def _numbers(cell):
    return [float(x) for x in cell.split(",")]


def _torch(code, steps):
    def make(opt):
        ns = {n: (lambda cls: (lambda *a, **k: cls(opt, *a, **k)))(getattr(L, n)) for n in dir(L) if n[0].isupper()}
        ns["SequentialLR"] = lambda schedulers, milestones: L.SequentialLR(opt, schedulers, milestones=milestones)
        ns["ChainedScheduler"] = lambda schedulers: L.ChainedScheduler(schedulers)
        return eval(code, ns)  # the page's own constructor calls
    return torch_lrs(make, max(steps) + 1, lr=LR)[steps]


def _lrcore_torch(code, steps):
    ns = {n: (lambda f: (lambda *a, **k: f(*a, **{"lr": LR, **k})))(getattr(T, n)) for n in T.__all__}
    return lrcore.evaluate(eval(code, ns), np.array(steps))


def _keras(code, steps):
    return keras_lrs(eval(code, vars(KS)), steps)


def _lrcore_keras(code, steps):
    return lrcore.evaluate(eval(code, {n: getattr(K, n) for n in K.__all__}), np.array(steps))


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def _keras_close(got, want):
    """lrcore (float64) against Keras's float32 numbers: DESIGN.md's Keras tolerance, max|ref| over the row."""
    want = np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=2e-6 + RTOL, atol=1e-6 * np.abs(want).max())


def test_the_page_has_its_tables():
    assert len(ECOSYSTEMS) >= 20 and {r[1] for r in ECOSYSTEMS} == {"torch", "keras", "hf", "timm", "optax"}
    assert len(FRAMEWORKS) >= 12 and len(GRAPH) == 2 and len(LRCORE) == 3 and len(SURPRISES) >= 8


@pytest.mark.parametrize("row", FRAMEWORKS, ids=[r[0] for r in FRAMEWORKS])
def test_pytorch_vs_keras(row):
    _, _, torch_code, keras_code, steps, torch_values, keras_values = row
    steps = [int(s) for s in _numbers(steps)]
    torch_code, keras_code = _code(torch_code), _code(keras_code)
    _close(_torch(torch_code, steps), _numbers(torch_values))
    _close(_keras(keras_code, steps), _numbers(keras_values))
    # lrcore reproduces both sides
    _close(_lrcore_torch(torch_code, steps), _numbers(torch_values))
    _keras_close(_lrcore_keras(keras_code, steps), _numbers(keras_values))


@pytest.mark.parametrize("row", GRAPH, ids=[r[0] for r in GRAPH])
def test_keras_eager_vs_compiled(row):
    _, code, steps, eager, graph = row
    steps = [int(s) for s in _numbers(steps)]
    schedule = eval(_code(code), vars(KS))
    _close(keras_lrs(schedule, steps), _numbers(eager))
    _close(keras_lrs_graph(schedule, steps), _numbers(graph))
    _keras_close(_lrcore_keras(_code(code), steps), _numbers(eager))


@pytest.mark.parametrize("row", LRCORE, ids=[r[0] for r in LRCORE])
def test_where_lrcore_differs(row):
    _, _, framework, code, steps, framework_values, lrcore_values = row
    steps = [int(s) for s in _numbers(steps)]
    code = _code(code)
    if framework == "torch":
        _close(_torch(code, steps), _numbers(framework_values))
        _close(_lrcore_torch(code, steps), _numbers(lrcore_values))
    else:
        want, got = _keras(code, steps), _lrcore_keras(code, steps)
        _close(want, _numbers(framework_values))
        _close(got, _numbers(lrcore_values))
        peak = np.abs(_keras(code, range(max(steps) + 1))).max()
        assert np.all(np.abs(got - want) > 2e-6 * np.abs(want) + 1e-6 * peak)  # beyond the Keras tolerance
        return
    assert not np.allclose(_numbers(framework_values), _numbers(lrcore_values), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("row", SURPRISES, ids=[r[0] for r in SURPRISES])
def test_surprising_values_are_the_frameworks_and_lrcores(row):
    _, _, framework, code, steps, values = row
    steps = [int(s) for s in _numbers(steps)]
    code = _code(code)
    if framework == "torch":
        _close(_torch(code, steps), _numbers(values))
        _close(_lrcore_torch(code, steps), _numbers(values))
    else:
        _close(_keras(code, steps), _numbers(values))
        _keras_close(_lrcore_keras(code, steps), _numbers(values))


@pytest.mark.parametrize("row", ECOSYSTEMS, ids=[f"{r[0]}-{r[1]}" for r in ECOSYSTEMS])
def test_across_ecosystems(row):
    """Each recipe in its real package (transformers, timm, optax too) and in lrcore, against the page."""
    import importlib.util
    recipe, framework, code, steps, values = row
    package = {"hf": "transformers", "timm": "timm", "optax": "optax"}.get(framework)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    from reference import ecosystem_table as E
    steps, code = [int(s) for s in _numbers(steps)], _code(code)
    _close(E.values(framework, code, steps), _numbers(values))
    got = lrcore.evaluate(lrcore.parse(code), np.array(steps))
    (_keras_close if framework == "keras" else _close)(got, _numbers(values))
