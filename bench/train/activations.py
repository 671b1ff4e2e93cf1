"""The MLP's activations and their backward formulas (the ATen kernels autograd calls), shared by the float32
path (``bench.train.model``) and the bfloat16 one (``bench.train.mixed``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "activation_backward"]

#: name -> (function, torch.nn module class)
ACTIVATIONS = {"relu": (torch.relu, torch.nn.ReLU), "gelu": (F.gelu, torch.nn.GELU),
               "tanh": (torch.tanh, torch.nn.Tanh)}


def activation_backward(name: str, grad: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """d loss / d z from d loss / d a for ``a = act(z)``: the ATen kernels autograd calls."""
    if name == "relu":
        return torch.ops.aten.threshold_backward(grad, a, 0)
    if name == "tanh":
        return torch.ops.aten.tanh_backward(grad, a)
    return torch.ops.aten.gelu_backward(grad, z)
