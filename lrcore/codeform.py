"""``from_code``: a package's own constructor call, as its users write it, read into an lrcore schedule.

Each call is bound to the package's real signature (``package_signature``): the optimizer positional or by
keyword (its value ignored; the learning rate comes from ``lr=``), every other argument positional or by
keyword as the package allows, ``last_epoch=-1`` where the package has it. A ``lambda`` (LambdaLR's
``lr_lambda``) becomes an lrcore expression string in ``t``; ``math.``/``np.`` prefixes are dropped. Errors name
the user's own argument: ``StepLR: got multiple values for argument 'step_size'``.
"""
from __future__ import annotations

import ast
import difflib
import inspect

from . import _validate as V
from . import compat

FRAMEWORKS = ("torch", "keras", "hf", "timm", "optax")
OPTIMIZER_FRAMEWORKS = ("torch", "hf", "timm")
OWN_PEAK = ("OneCycleLR", "CyclicLR")  # torch schedulers that set the optimizer's lr themselves


class MissingLR(ValueError):
    """The code builds on an optimizer and no lr (its learning rate) was given."""


def constructors(framework: str) -> list[str]:
    return list(getattr(compat, framework).__all__)


def package_signature(framework: str, name: str) -> inspect.Signature:
    """The package's own signature of ``name``: lrcore.compat's, with the optimizer in place of ``lr``."""
    params = list(inspect.signature(getattr(getattr(compat, framework), name)).parameters.values())
    if framework not in OPTIMIZER_FRAMEWORKS:
        return inspect.Signature(params)
    P = inspect.Parameter
    names = [p.name for p in params]
    at = names.index("lr")
    lr = params.pop(at)
    if lr.default is inspect.Parameter.empty:  # lr stands where the package has its optimizer
        params.insert(at, P("optimizer", P.POSITIONAL_OR_KEYWORD, default=None if name == "ChainedScheduler" else P.empty))
    else:  # CyclicLR, OneCycleLR, SequentialLR: lrcore's optional lr comes last, the optimizer first
        params.insert(0, P("optimizer", P.POSITIONAL_OR_KEYWORD))
    return inspect.Signature(params)


def guess_framework(text: str) -> str | None:
    """The framework whose constructor the text's outer call names ("lrcore" for lrcore's own), if one."""
    from .schedules import SCHEDULES
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(node, ast.Call):
        return None
    dotted = ast.unparse(node.func)
    name = dotted.rpartition(".")[2]
    if name in SCHEDULES and "." not in dotted:
        return "lrcore"
    head = dotted.partition(".")[0]
    owners = [fw for fw in FRAMEWORKS if name in constructors(fw)]
    if len(owners) > 1 and head in ("transformers", "timm", "optax", "keras", "torch", "hf"):
        owners = [fw for fw in owners if {"transformers": "hf"}.get(head, head) == fw] or owners
    return owners[0] if len(owners) == 1 else None


def _unknown(framework: str, name: str) -> ValueError:
    close = difflib.get_close_matches(name, constructors(framework), n=3, cutoff=0.6)
    others = [fw for fw in FRAMEWORKS if fw != framework and name in constructors(fw)]
    if others:
        hint = f"; {name} is {others[0]}'s: read it with framework={others[0]!r} (lrbench translate --from {others[0]})"
    elif close:
        hint = "; did you mean " + " or ".join(map(repr, close)) + "?"
    else:
        hint = f" ({len(constructors(framework))} known: {', '.join(constructors(framework)[:6])}, ...)"
    return ValueError(f"from_code: {framework} has no schedule {name!r}{hint}")


class _Lambda(ast.NodeTransformer):
    """``lambda epoch: 0.95 ** epoch`` -> ``"0.95 ** t"`` (math./np. prefixes dropped)."""

    def __init__(self, arg):
        self.arg = arg

    def visit_Name(self, node):
        return ast.Name("t", ast.Load()) if node.id == self.arg else node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id in ("math", "np", "numpy", "torch"):
            return ast.Name(node.attr, ast.Load())
        return node


class _Reader(ast.NodeTransformer):
    """A package's call text -> lrcore text: each call bound to the package's signature, by keyword."""

    def __init__(self, framework, lr):
        self.framework, self.lr = framework, lr

    def visit_Lambda(self, node):
        a = node.args
        if len(a.args) != 1 or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise ValueError(f"from_code: a lambda of one argument (the step) is expected, got {ast.unparse(node)}")
        return ast.Constant(ast.unparse(_Lambda(a.args[0].arg).visit(node.body)))

    def visit_Attribute(self, node):
        if ast.unparse(node.value).rpartition(".")[2] == "SchedulerType":  # transformers's enum: its value
            return ast.Constant(node.attr.lower())
        return self.generic_visit(node)

    def visit_Dict(self, node):
        self.generic_visit(node)
        return ast.List([ast.List([k, v], ast.Load()) for k, v in zip(node.keys, node.values)], ast.Load())

    def visit_Call(self, node):
        self.generic_visit(node)
        fw = self.framework
        name = ast.unparse(node.func).rpartition(".")[2]
        if name not in constructors(fw):
            raise _unknown(fw, name)
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise ValueError(f"from_code: {name}: *args and **kwargs cannot be read; write the arguments out")
        if fw in OPTIMIZER_FRAMEWORKS and any(k.arg == "lr" for k in node.keywords) and \
                "lr" not in package_signature(fw, name).parameters:
            raise TypeError(f"{name}: lr is not an argument of {name} (the package takes it from the optimizer): "
                            "give the optimizer's learning rate as lr= (lrbench translate --lr)")
        if fw in OPTIMIZER_FRAMEWORKS and self.lr is None and _needs_lr(fw, name):
            raise MissingLR(f"from_code: {name} builds on an optimizer: its learning rate is required (lr=..., "
                            "lrbench translate --lr)")
        params = package_signature(fw, name).parameters
        for k in node.keywords:
            if k.arg not in params:
                close = difflib.get_close_matches(k.arg, list(params), n=1, cutoff=0.6)
                raise TypeError(f"{name}: got an unexpected keyword argument {k.arg!r}" +
                                (f"; did you mean {close[0]!r}?" if close else "") +
                                f" (the package's signature: {name}{_shown(fw, name)})")
        try:
            bound = package_signature(fw, name).bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as e:
            raise TypeError(f"{name}: {e} (the package's signature: {name}{_shown(fw, name)})") from None
        args = dict(bound.arguments)
        opt = args.pop("optimizer", None)
        if isinstance(opt, (ast.Constant, ast.List, ast.Tuple, ast.Dict)) and fw in OPTIMIZER_FRAMEWORKS:
            raise TypeError(f"{name}: the optimizer comes first (its value is ignored; lr= gives its learning "
                            f"rate), got {ast.unparse(opt)}")
        if fw in OPTIMIZER_FRAMEWORKS and self.lr is not None and not (fw == "torch" and name in OWN_PEAK):
            args["lr"] = ast.Constant(self.lr)
        node.func = ast.Name(f"{fw}.{name}", ast.Load())
        node.args, node.keywords = [], [ast.keyword(k, v) for k, v in args.items()]
        return node


def _needs_lr(fw, name) -> bool:
    p = inspect.signature(getattr(getattr(compat, fw), name)).parameters.get("lr")
    return p is not None and p.default is inspect.Parameter.empty


def _shown(fw, name) -> str:
    return str(package_signature(fw, name)).replace("'", "")


def from_code(text: str, framework: str, lr: float | None = None):
    """The schedule of a package's own call text, e.g. ``get_cosine_schedule_with_warmup(optimizer, 100, 1000)``
    with ``lr`` the optimizer's learning rate (module docstring)."""
    from .textform import parse
    V.choice("from_code", "framework", framework, FRAMEWORKS)
    if lr is not None:
        lr = V.rate("from_code", "lr", lr)
    tree = V.expression("from_code", "code", text, max_length=20_000, max_depth=100)
    if not isinstance(tree.body, ast.Call):
        raise ValueError(f"from_code: expected one constructor call, got {V._clip(text)}")
    body = _Reader(framework, lr).visit(tree.body)
    try:
        return parse(ast.unparse(body))
    except TypeError as e:
        if "is required" in str(e) and "lr (the optimizer" in str(e):
            name = str(e).split(":")[0].rpartition(".")[2]
            raise MissingLR(f"from_code: {name} builds on an optimizer: its learning rate is required (lr=..., "
                            "lrbench translate --lr)") from None
        raise


def unknown_hint(text: str) -> str:
    """Why the text's outer constructor is known nowhere, with the nearest names (did you mean ...?)."""
    from .schedules import SCHEDULES
    try:
        node = ast.parse(text.strip(), mode="eval").body
        name = ast.unparse(node.func).rpartition(".")[2] if isinstance(node, ast.Call) else None
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        name = None
    if name is None:
        return f"expected one constructor call, got {V._clip(text)}"
    owners = {n: "lrcore" for n in SCHEDULES}
    for fw in FRAMEWORKS:
        owners.update({n: fw for n in constructors(fw)})
    close = difflib.get_close_matches(name, list(owners), n=3, cutoff=0.6)
    if not close:
        return f"unknown schedule {name!r} (lrcore's own, or torch, keras, hf, timm or optax's: give --from)"
    return f"unknown schedule {name!r}; did you mean " + " or ".join(f"{c!r} ({owners[c]})" for c in close) + "?"
