"""The cross-ecosystem rows of reference/DIFFERENCES.md: one recipe written the natural way in each package.

``ROWS``: (recipe, framework, code, steps), the code in lrcore's text form of the package's call
(``hf.get_cosine_schedule_with_warmup(lr=0.1, ...)``). ``case(framework, code, steps)`` turns the text into a
``conformance.Case`` so that the real package computes the row (``conformance.framework_values``);
``lrcore.parse(code)`` computes lrcore's. ``python -m reference.ecosystem_table`` prints the table.
"""
from __future__ import annotations

import ast

from .conformance import Case, framework_values

ROWS = [
    ("warmup + cosine", "torch", "torch.SequentialLR(lr=0.1, schedulers=[torch.LinearLR(lr=0.1, start_factor=0.01, "
     "total_iters=10), torch.CosineAnnealingLR(lr=0.1, T_max=90)], milestones=[10])", [0, 9, 10, 11, 99, 100, 110]),
    ("warmup + cosine", "keras", "keras.CosineDecay(initial_learning_rate=0.0, decay_steps=90, warmup_target=0.1, "
     "warmup_steps=10)", [0, 9, 10, 11, 99, 100, 110]),
    ("warmup + cosine", "hf", "hf.get_cosine_schedule_with_warmup(lr=0.1, num_warmup_steps=10, num_training_steps=100)",
     [0, 9, 10, 11, 99, 100, 110]),
    ("warmup + cosine", "timm", "timm.CosineLRScheduler(lr=0.1, t_initial=100, warmup_t=10)", [0, 9, 10, 11, 99, 100, 110]),
    ("warmup + cosine", "optax", "optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=0.1, warmup_steps=10, "
     "decay_steps=100)", [0, 9, 10, 11, 99, 100, 110]),
    ("warmup + linear decay", "torch", "torch.SequentialLR(lr=0.1, schedulers=[torch.LinearLR(lr=0.1, start_factor=0.01, "
     "total_iters=10), torch.LinearLR(lr=0.1, start_factor=1.0, end_factor=0.0, total_iters=90)], milestones=[10])",
     [0, 9, 10, 50, 99, 100]),
    ("warmup + linear decay", "keras", "keras.PolynomialDecay(initial_learning_rate=0.1, decay_steps=100)",
     [0, 9, 10, 50, 99, 100]),
    ("warmup + linear decay", "hf", "hf.get_linear_schedule_with_warmup(lr=0.1, num_warmup_steps=10, "
     "num_training_steps=100)", [0, 9, 10, 50, 99, 100]),
    ("warmup + linear decay", "timm", "timm.PolyLRScheduler(lr=0.1, t_initial=100, power=1.0, warmup_t=10)",
     [0, 9, 10, 50, 99, 100]),
    ("warmup + linear decay", "optax", "optax.join_schedules(schedules=[optax.linear_schedule(init_value=0.0, "
     "end_value=0.1, transition_steps=10), optax.linear_schedule(init_value=0.1, end_value=0.0, transition_steps=90)], "
     "boundaries=[10])", [0, 9, 10, 50, 99, 100]),
    ("step decay", "torch", "torch.MultiStepLR(lr=0.1, milestones=[30], gamma=0.1)", [29, 30, 31]),
    ("step decay", "keras", "keras.PiecewiseConstantDecay(boundaries=[30], values=[0.1, 0.01])", [29, 30, 31]),
    ("step decay", "timm", "timm.MultiStepLRScheduler(lr=0.1, decay_t=[30], decay_rate=0.1)", [28, 29, 30, 31]),
    ("step decay", "optax", "optax.piecewise_constant_schedule(init_value=0.1, boundaries_and_scales=[[30, 0.1]])",
     [29, 30, 31]),
    ("polynomial", "torch", "torch.PolynomialLR(lr=0.1, total_iters=100, power=2.0)", [0, 50, 99, 100, 150]),
    ("polynomial", "keras", "keras.PolynomialDecay(initial_learning_rate=0.1, decay_steps=100, power=2.0)",
     [0, 50, 99, 100, 150]),
    ("polynomial", "hf", "hf.get_polynomial_decay_schedule_with_warmup(lr=0.1, num_warmup_steps=0, "
     "num_training_steps=100, power=2.0)", [0, 50, 99, 100, 150]),
    ("polynomial", "timm", "timm.PolyLRScheduler(lr=0.1, t_initial=100, power=2.0)", [0, 50, 99, 100, 150]),
    ("polynomial", "optax", "optax.polynomial_schedule(init_value=0.1, end_value=0.0, power=2.0, transition_steps=100)",
     [0, 50, 99, 100, 150]),
    ("inverse square root", "hf", "hf.get_inverse_sqrt_schedule(lr=0.1, num_warmup_steps=10)", [0, 9, 10, 40, 90]),
    ("WSD", "hf", "hf.get_wsd_schedule(lr=0.1, num_warmup_steps=10, num_decay_steps=20, num_training_steps=100, "
     "decay_type='linear')", [0, 9, 10, 79, 80, 90, 99, 100]),
    ("WSD", "timm", "timm.WSDLRScheduler(lr=0.1, t_initial=90, decay_t=20, decay_fn='linear', warmup_t=10)",
     [0, 9, 10, 79, 80, 90, 99, 100]),
    ("WSD", "optax", "optax.join_schedules(schedules=[optax.linear_schedule(init_value=0.0, end_value=0.1, "
     "transition_steps=10), optax.linear_schedule(init_value=0.1, end_value=0.0, transition_steps=20, "
     "transition_begin=70)], boundaries=[10])", [0, 9, 10, 79, 80, 90, 99, 100]),
    ("one-cycle", "torch", "torch.OneCycleLR(max_lr=0.1, total_steps=100)", [0, 29, 30, 99]),
    ("one-cycle", "optax", "optax.cosine_onecycle_schedule(transition_steps=100, peak_value=0.1)", [0, 29, 30, 99, 100]),
]


def _value(node):
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func).rpartition(".")[2]
        return [name, {k.arg: _value(k.value) for k in node.keywords}]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(x) for x in node.elts]
    return ast.literal_eval(node)


def case(framework: str, code: str, steps) -> Case:
    """The conformance Case of a row's code (nested calls as [name, kwargs], as the generators write them)."""
    name, kwargs = _value(ast.parse(code, mode="eval").body)
    return Case(framework, name, kwargs, max(steps) + 1)


def values(framework: str, code: str, steps):
    return framework_values(case(framework, code, steps))[list(steps)]


def _fmt(x) -> str:
    return f"{x:.6g}"


if __name__ == "__main__":
    for recipe, fw, code, steps in ROWS:
        print(f"| {recipe} | {fw} | `{code}` | {', '.join(map(str, steps))} | {', '.join(_fmt(v) for v in values(fw, code, steps))} |")
