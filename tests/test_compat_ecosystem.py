"""lrcore.compat.hf / timm / optax: their rules, text forms and reactive schedules (the values against the real
packages are tests/test_conformance.py's)."""
import importlib.util

import numpy as np
import pytest

import lrcore
from lrcore.compat import hf, optax, timm
from reference import conformance as C

PACKAGES = {"hf": "transformers", "timm": "timm", "optax": "optax"}


def _needs(*frameworks):
    for fw in frameworks:
        if importlib.util.find_spec(PACKAGES.get(fw, fw)) is None:
            pytest.skip(f"{PACKAGES.get(fw, fw)} is not installed")


BAD = [
    (hf.get_polynomial_decay_schedule_with_warmup, dict(lr=0.1, num_warmup_steps=10, num_training_steps=100, lr_end=0.2),
     ValueError, r"get_polynomial_decay_schedule_with_warmup: lr_end must be smaller than lr"),
    (hf.get_cosine_with_min_lr_schedule_with_warmup, dict(lr=0.1, num_warmup_steps=10, num_training_steps=100),
     ValueError, r"one of min_lr or min_lr_rate must be set"),
    (hf.get_cosine_with_min_lr_schedule_with_warmup, dict(lr=0.1, num_warmup_steps=10, num_training_steps=100,
                                                          min_lr=0.01, min_lr_rate=0.1), ValueError, "only one of"),
    (hf.get_wsd_schedule, dict(lr=0.1, num_warmup_steps=1, num_decay_steps=1), ValueError,
     "either num_training_steps or num_stable_steps"),
    (hf.get_wsd_schedule, dict(lr=0.1, num_warmup_steps=1, num_decay_steps=1, num_stable_steps=3, warmup_type="exp"),
     ValueError, "get_wsd_schedule: warmup_type must be one of"),
    (hf.get_scheduler, dict(name="nope", lr=0.1), ValueError, "get_scheduler: name must be one of"),
    (hf.get_scheduler, dict(name="linear", lr=0.1, num_warmup_steps=3), ValueError, "linear requires num_training_steps"),
    (hf.get_scheduler, dict(name="greedy", lr=0.1), ValueError, "GreedyLR"),
    (hf.get_linear_schedule_with_warmup, dict(lr=None, num_warmup_steps=1, num_training_steps=3), TypeError,
     "lr .* is required"),
    (hf.get_constant_schedule, dict(lr=0.1, last_epoch=3), ValueError, "last_epoch must be -1"),
    (hf.get_linear_schedule_with_warmup, dict(lr=0.1, num_warmup_steps=1.5, num_training_steps=3), ValueError,
     "num_warmup_steps must be an integer"),
    (timm.CosineLRScheduler, dict(lr=0.1, t_initial=0), ValueError, "CosineLRScheduler: t_initial must be a positive"),
    (timm.CosineLRScheduler, dict(lr=0.1, t_initial=10, noise_range_t=5), ValueError,
     "noise_range_t must be None: timm's noise draws from torch's random generator"),
    (timm.CosineLRScheduler, dict(lr=0.1, t_initial=10, lr_min=-1.0), ValueError, "lr_min must be >= 0"),
    (timm.TanhLRScheduler, dict(lr=0.1, t_initial=10, lb=3.0, ub=1.0), ValueError, "lb must be < ub"),
    (timm.StepLRScheduler, dict(lr=0.1, decay_t=0), ValueError, "StepLRScheduler: decay_t must be > 0"),
    (timm.MultiStepLRScheduler, dict(lr=0.1, decay_t=5), TypeError, "decay_t must be a list"),
    (optax.cosine_decay_schedule, dict(init_value=0.1, decay_steps=0), ValueError, "decay_steps must be > 0"),
    (optax.piecewise_constant_schedule, dict(init_value=0.1, boundaries_and_scales={10: -1.0}), ValueError,
     "non-negative scale factors"),
    (optax.piecewise_interpolate_schedule, dict(interpolate_type="quad", init_value=0.1), ValueError,
     "interpolate_type must be either"),
    (optax.linear_onecycle_schedule, dict(transition_steps=0, peak_value=0.1), ValueError, "transition_steps must be > 0"),
    (optax.join_schedules, dict(schedules=[lrcore.Constant(0.1)], boundaries=[5]), ValueError, "one entry fewer"),
    (optax.join_schedules, dict(schedules=[lrcore.Constant(0.1)] * 3, boundaries=[10, 5]), ValueError, "sorted"),
    (optax.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=0.1, warmup_steps=10, decay_steps=10),
     ValueError, "decay_steps must be > warmup_steps"),
    (optax.exponential_decay, dict(init_value=0.1, transition_steps=5, decay_rate=0.5, transition_begin=2.5),
     ValueError, "transition_begin must be an integer"),
]


@pytest.mark.parametrize("fn,kwargs,exc,match", BAD, ids=[f"{f.__name__}-{i}" for i, (f, *_) in enumerate(BAD)])
def test_bad_input_names_the_constructor_and_parameter(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fn(**kwargs)


# what the packages refuse (at construction or at the step they cannot compute), lrcore refuses too
REFUSED = [
    C.Case("hf", "get_polynomial_decay_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=2, num_training_steps=9,
                                                                   lr_end=0.5), 5),
    C.Case("hf", "get_cosine_with_min_lr_schedule_with_warmup", dict(lr=0.1, num_warmup_steps=2,
                                                                     num_training_steps=9), 5),
    C.Case("hf", "get_wsd_schedule", dict(lr=0.1, num_warmup_steps=2, num_decay_steps=3, warmup_type="x",
                                          num_stable_steps=1), 5),
    C.Case("hf", "get_scheduler", dict(name="cosine", lr=0.1, num_warmup_steps=2), 5),
    C.Case("hf", "get_scheduler", dict(name="nope", lr=0.1), 5),
    C.Case("hf", "get_constant_schedule", dict(lr=0.1, last_epoch=4), 5),
    C.Case("timm", "CosineLRScheduler", dict(lr=0.1, t_initial=0), 5),
    C.Case("timm", "TanhLRScheduler", dict(lr=0.1, t_initial=10, lb=1.0, ub=0.0), 5),
    C.Case("timm", "StepLRScheduler", dict(lr=0.1, decay_t=0), 5),
    C.Case("optax", "cosine_decay_schedule", dict(init_value=0.1, decay_steps=-1), 5),
    C.Case("optax", "piecewise_interpolate_schedule", dict(interpolate_type="quad", init_value=0.1), 5),
    C.Case("optax", "piecewise_constant_schedule", dict(init_value=0.1, boundaries_and_scales=[[3, -0.5]]), 5),
    C.Case("optax", "cosine_onecycle_schedule", dict(transition_steps=0, peak_value=0.1), 5),
]


@pytest.mark.parametrize("case", REFUSED, ids=[f"{c.framework}-{c.name}-{i}" for i, c in enumerate(REFUSED)])
def test_refuses_what_the_package_refuses(case):
    _needs(case.framework)
    r = C.check(case)
    assert r.ok and r.reasons and r.reasons[0].startswith("both refuse"), (r.reasons, C.describe(r))


@pytest.mark.parametrize("framework", ["hf", "timm", "optax"])
def test_text_and_dict_forms_round_trip(framework):
    for name in C.GENERATORS[framework]:
        for i in range(6):
            case = C.draw_case(C.RandomDraw(C._seed(3, framework, name, i)), framework, name)
            try:
                s = C.lrcore_schedule(case)
            except (ValueError, TypeError):
                continue
            assert lrcore.parse(str(s)) == s, (name, s)
            assert lrcore.from_dict(s.to_dict()) == s, (name, s)


def test_the_package_call_text_parses():
    s = lrcore.parse("hf.get_cosine_schedule_with_warmup(lr=0.1, num_warmup_steps=10, num_training_steps=100)")
    assert s == hf.get_cosine_schedule_with_warmup(lr=0.1, num_warmup_steps=10, num_training_steps=100)
    assert lrcore.parse("optax.join_schedules([optax.constant_schedule(0.1), optax.linear_schedule(0.1, 0.0, 10)], "
                        "[5])")(10) == pytest.approx(0.05)
    assert lrcore.parse("timm.StepLRScheduler(lr=0.1, decay_t=3, decay_rate=0.5)")(3) == pytest.approx(0.05)


def test_the_usual_recipes_use_canonical_schedules():
    """Warmup + cosine / linear / steps are lrcore's own schedules (fast kernels, translatable), not Lambdas."""
    for s in (hf.get_cosine_schedule_with_warmup(lr=0.1, num_warmup_steps=10, num_training_steps=100),
              hf.get_linear_schedule_with_warmup(lr=0.1, num_warmup_steps=10, num_training_steps=100),
              timm.CosineLRScheduler(lr=0.1, t_initial=100, warmup_t=10, cycle_limit=3),
              timm.StepLRScheduler(lr=0.1, decay_t=30), optax.warmup_cosine_decay_schedule(0.0, 0.1, 10, 100)):
        assert "Lambda" not in str(s), s


def _metrics(rng, n):
    return np.round(1.0 + np.cumsum(rng.normal(0.0, 0.05, n)) + rng.choice([0.0, 0.3], n, p=[0.9, 0.1]), 2)


@pytest.mark.parametrize("seed", range(4))
def test_hf_plateau_is_pytorchs(seed):
    _needs("hf", "torch")
    import torch
    from transformers.optimization import get_reduce_on_plateau_schedule
    rng = np.random.default_rng(seed)
    kwargs = dict(factor=float(rng.choice([0.1, 0.5])), patience=int(rng.integers(0, 4)),
                  cooldown=int(rng.integers(0, 3)), mode=str(rng.choice(["min", "max"])), min_lr=1e-4)
    metrics = _metrics(rng, 40)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    real = get_reduce_on_plateau_schedule(opt, **kwargs)
    ours = hf.get_reduce_on_plateau_schedule(0.1, **kwargs)
    for m in metrics:
        real.step(float(m))
        assert ours.step([m])[0] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_timm_plateau_is_timms(seed):
    _needs("timm", "torch")
    from reference.timm_oracle import import_timm_scheduler
    from reference.torch_oracle import make_optimizer
    rng = np.random.default_rng(seed)
    kwargs = dict(decay_rate=float(rng.choice([0.1, 0.5])), patience_t=int(rng.integers(0, 4)),
                  cooldown_t=int(rng.integers(0, 3)), warmup_t=int(rng.choice([0, 3])), warmup_lr_init=0.01,
                  mode=str(rng.choice(["min", "max"])), lr_min=1e-4)
    opt = make_optimizer(0.1)
    with pytest.warns(FutureWarning):
        real = import_timm_scheduler().PlateauLRScheduler(opt, **kwargs)
    ours = timm.PlateauLRScheduler(0.1, **kwargs)
    for epoch, m in enumerate(_metrics(rng, 40)):
        real.step(epoch, float(m))
        assert ours.step(epoch, [m])[0] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), epoch
