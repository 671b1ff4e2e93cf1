"""lrcore.reactive against the real ReduceLROnPlateau of PyTorch and Keras and Keras's EarlyStopping."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrcore.reactive import EarlyStopping, Plateau

pytest.importorskip("torch")
pytest.importorskip("keras")
from reference.plateau_oracle import keras_early_stopping, keras_plateau_lrs, torch_plateau_lrs  # noqa: E402

M, T = 3, 24
# metric values chosen to make ties, near-ties at the 1e-4 thresholds and float32 rounding edges common
SPECIAL = [1.0, 1.0, 0.9999, 0.99989, 0.9998999, 1.0001, 1.00010001, 0.5, 0.5000000001, 2.0, 0.0, -1.0, 1 + 1e-9]
metric = st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 3, allow_nan=False, width=64))
metrics_2d = st.lists(st.lists(metric, min_size=M, max_size=M), min_size=1, max_size=T).map(np.array)


def per_model(elements):
    return st.lists(elements, min_size=M, max_size=M).map(np.array)


def active_mask(n, seed):
    rng = np.random.default_rng(seed)
    return rng.random((n, M)) < 0.8


@st.composite
def plateau_case(draw, semantics):
    kw = dict(mode=draw(st.sampled_from(["min", "max"])),
              factor=draw(per_model(st.sampled_from([0.1, 0.5, 0.3, 0.9]))),
              patience=draw(per_model(st.integers(0, 3))),
              cooldown=draw(per_model(st.integers(0, 3))),
              min_lr=draw(per_model(st.sampled_from([0.0, 1e-3, 0.05, 0.0100000001]))))
    if semantics == "torch":
        kw["threshold_mode"] = draw(st.sampled_from(["rel", "abs"]))
        kw["threshold"] = draw(per_model(st.sampled_from([1e-4, 0.0, 0.1, 1e-12])))
        kw["eps"] = draw(per_model(st.sampled_from([1e-8, 0.0, 0.05])))
    else:
        kw["min_delta"] = draw(per_model(st.sampled_from([1e-4, 0.0, 0.1, 1e-9])))
    lr = draw(per_model(st.sampled_from([0.1, 1.0, 0.3, 0.0123])))
    return lr, kw, draw(metrics_2d), draw(st.integers(0, 2 ** 32 - 1))


def run_ours(ctrl, metrics, active, split):
    """lr after every epoch (NaN where inactive), with a JSON state round trip after ``split`` epochs."""
    out = np.full(metrics.shape, np.nan)
    for e, (m, a) in enumerate(zip(metrics, active)):
        if e == split:
            state = json.loads(json.dumps(ctrl.state_dict()))
            fresh = type(ctrl).__new__(type(ctrl))
            fresh.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in ctrl.__dict__.items()})
            for k in ctrl._STATE:  # scramble, then restore
                getattr(fresh, k)[...] = 0
            fresh.load_state_dict(state)
            ctrl = fresh
        lr = ctrl.step(m, active=a)
        out[e, a] = lr[a]
    return out


def oracle_kwargs(kw, i):
    return {k: (v[i].item() if isinstance(v, np.ndarray) else v) for k, v in kw.items()}


@given(plateau_case("torch"))
def test_plateau_matches_torch(case):
    lr, kw, metrics, seed = case
    active = active_mask(len(metrics), seed)
    got = run_ours(Plateau(M, lr, semantics="torch", **kw), metrics, active, split=len(metrics) // 2)
    for i in range(M):
        want = torch_plateau_lrs(metrics[active[:, i], i], lr[i], **oracle_kwargs(kw, i))
        np.testing.assert_allclose(got[active[:, i], i], want, rtol=1e-12, atol=0)


@given(plateau_case("keras"))
def test_plateau_matches_keras(case):
    lr, kw, metrics, seed = case
    active = active_mask(len(metrics), seed)
    got = run_ours(Plateau(M, lr, semantics="keras", **kw), metrics, active, split=len(metrics) // 2)
    for i in range(M):
        want = keras_plateau_lrs(metrics[active[:, i], i], lr[i], **oracle_kwargs(kw, i))
        # Keras keeps lr in a float32 variable; so does semantics="keras": equal, not just close
        assert np.array_equal(got[active[:, i], i].astype(np.float32), want.astype(np.float32))


def test_plateau_semantics_differ_on_patience_and_threshold():
    m = np.array([[1.0], [1.0], [1.0], [1.0]])
    p, k = Plateau(1, 0.1, patience=2), Plateau(1, 0.1, patience=2, semantics="keras")
    tl = [p.step(x)[0] for x in m]
    kl = [k.step(x)[0] for x in m]
    assert tl[2] == 0.1 and tl[3] < 0.1  # torch: num_bad > patience
    assert kl[2] < 0.1  # keras: wait >= patience (the first epoch counts as an improvement)


@st.composite
def stopping_case(draw):
    kw = dict(mode=draw(st.sampled_from(["min", "max"])),
              min_delta=draw(per_model(st.sampled_from([0.0, 1e-4, 0.1, -0.1]))),
              patience=draw(per_model(st.integers(0, 4))),
              baseline=draw(st.sampled_from([None, 1.0, 0.0, 0.5])),
              restore_best_weights=draw(st.booleans()),
              start_from_epoch=draw(per_model(st.integers(0, 3))))
    return kw, draw(metrics_2d)


@given(stopping_case())
def test_early_stopping_matches_keras(case):
    kw, metrics = case
    es = EarlyStopping(M, **kw)
    ran = np.zeros(M, np.int64)
    for m in metrics:
        ran += ~es.stopped
        es.step(m)
    for i in range(M):
        want = keras_early_stopping(metrics[:, i], **oracle_kwargs(kw, i))
        assert bool(es.stopped[i]) == want["stopped"]
        assert es.stopped_epoch[i] == want["stopped_epoch"]
        assert ran[i] == want["epochs"] == es.epoch[i]
        if want["best"] is None:
            assert not es.has_best[i] and math.isnan(es.best[i]) and es.best_epoch[i] == -1
        else:
            assert es.best[i] == want["best"] or (math.isnan(want["best"]) and math.isnan(es.best[i]))
            assert es.best_epoch[i] == want["best_epoch"]
        assert es.restore_epoch[i] == (-1 if want["restored"] is None else want["restored"])


def test_early_stopping_active_mask_and_state():
    es = EarlyStopping(2, patience=1)
    es.step(np.array([1.0, 1.0]))
    es.step(np.array([2.0, 2.0]), active=np.array([True, False]))
    assert es.stopped.tolist() == [True, False] and es.epoch.tolist() == [2, 1]
    state = json.loads(json.dumps(es.state_dict()))
    es2 = EarlyStopping(2, patience=1)
    es2.load_state_dict(state)
    assert es2.step(np.array([2.0, 2.0])).tolist() == [True, True]
    assert es2.stopped_epoch.tolist() == [1, 1] and es2.epoch.tolist() == [2, 2]


def test_bad_input():
    with pytest.raises(ValueError, match="M \\(the number of models\\) must be a positive integer"):
        Plateau(0, 0.1)
    with pytest.raises(ValueError, match="factor must be >= 0 and < 1"):
        Plateau(2, 0.1, factor=1.0)
    with pytest.raises(ValueError, match="lr must be a scalar or an array of shape \\(2,\\)"):
        Plateau(2, np.ones(3))
    with pytest.raises(TypeError, match="patience must be an integer"):
        Plateau(2, 0.1, patience=2.5)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'.*auto"):
        Plateau(2, 0.1, mode="auto")
    with pytest.raises(ValueError, match="threshold_mode must be 'abs'"):
        Plateau(2, 0.1, semantics="keras", threshold_mode="rel")
    with pytest.raises(ValueError, match="eps is a PyTorch parameter"):
        Plateau(2, 0.1, semantics="keras", eps=1e-8)
    with pytest.raises(ValueError, match="semantics must be"):
        Plateau(2, 0.1, semantics="jax")
    with pytest.raises(ValueError, match="not both"):
        Plateau(2, 0.1, threshold=0.1, min_delta=0.1)
    with pytest.raises(ValueError, match="min_lr must be finite"):
        Plateau(2, 0.1, min_lr=math.nan)
    p = Plateau(2, 0.1)
    with pytest.raises(ValueError, match="metrics must have shape \\(2,\\)"):
        p.step(np.ones(3))
    with pytest.raises(ValueError, match="active must be a boolean array"):
        p.step(np.ones(2), active=np.ones(2))
    with pytest.raises(ValueError, match="state_dict is for M=3"):
        p.load_state_dict(Plateau(3, 0.1).state_dict())
    with pytest.raises(ValueError, match="made by 'EarlyStopping'"):
        p.load_state_dict(EarlyStopping(2).state_dict())
    with pytest.raises(TypeError, match="restore_best_weights must be a bool"):
        EarlyStopping(2, restore_best_weights="yes")
    with pytest.raises(ValueError, match="patience must be >= 0"):
        EarlyStopping(2, patience=-1)
