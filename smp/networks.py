"""Small seeded torch networks used across the book (float64, random He-style initialisation)."""

from __future__ import annotations

import numbers
from typing import Sequence

import torch
from torch import nn

__all__ = ["conv_net", "dense_net", "ACTIVATIONS", "POOLINGS"]

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "gelu": nn.GELU, "identity": nn.Identity}
POOLINGS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _choice(name: str, value: str, options: dict) -> type:
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return options[value]


def _init(layer: nn.Module, fan_in: int, weight_gain: float, bias_std: float, gen: torch.Generator) -> None:
    """``w ~ N(0, weight_gain**2 * 2 / fan_in)`` (He init at gain 1), ``b ~ N(0, bias_std**2)``."""
    with torch.no_grad():
        layer.weight.normal_(0.0, weight_gain * (2.0 / fan_in) ** 0.5, generator=gen)
        if bias_std > 0:
            layer.bias.normal_(0.0, bias_std, generator=gen)
        else:
            layer.bias.zero_()


def _check_common(weight_gain: float, bias_std: float) -> None:
    if not isinstance(weight_gain, numbers.Real) or not weight_gain > 0:
        raise ValueError(f"weight_gain must be > 0 (1 is He initialisation), got {weight_gain!r}")
    if not isinstance(bias_std, numbers.Real) or bias_std < 0:
        raise ValueError(f"bias_std must be >= 0, got {bias_std!r}")


def conv_net(
    channels: Sequence[int] = (1, 8, 16, 16),
    *,
    kernel_size: int = 3,
    pool_size: int = 2,
    activation: str = "relu",
    pooling: str = "max",
    head: int | None = None,
    input_size: int | None = None,
    weight_gain: float = 1.0,
    bias_std: float = 0.0,
    seed: int = 0,
) -> nn.Sequential:
    """Blocks ``Conv2d(k, padding=k//2) -> activation -> pool`` for each pair of ``channels``.

    With ``head`` outputs (and ``input_size``, the square input's side) a ``Flatten -> Linear`` head
    is appended.  Weights ``N(0, weight_gain**2 * 2 / fan_in)``, ``fan_in = C_in k k``; biases
    ``N(0, bias_std**2)``.  float64, eval mode.
    """
    act = _choice("activation", activation, ACTIVATIONS)
    pool = _choice("pooling", pooling, POOLINGS)
    _check_common(weight_gain, bias_std)
    if len(channels) < 2 or any(not isinstance(c, numbers.Integral) or c < 1 for c in channels):
        raise ValueError(f"channels must list >= 2 positive integers (input first), got {channels!r}")
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, dtype=torch.float64)
        _init(conv, c_in * kernel_size**2, weight_gain, bias_std, gen)
        layers += [conv, act(), pool(pool_size)]
    if head is not None:
        if input_size is None:
            raise ValueError("input_size (the side of the square input) is needed to size the linear head")
        side = input_size // pool_size ** (len(channels) - 1)
        fan_in = channels[-1] * side * side
        linear = nn.Linear(fan_in, head, dtype=torch.float64)
        # the head has no ReLU after it: variance-preserving (gain 1/2 of He) would also do; keep He
        _init(linear, fan_in, weight_gain, bias_std, gen)
        layers += [nn.Flatten(), linear]
    return nn.Sequential(*layers).eval()


def dense_net(
    in_features: int = 64,
    width: int = 256,
    depth: int = 6,
    *,
    activation: str = "relu",
    weight_gain: float = 1.0,
    bias_std: float = 0.0,
    seed: int = 0,
) -> nn.Sequential:
    """``depth`` blocks ``Linear(width) -> activation``; weights ``N(0, weight_gain**2 * 2 / fan_in)``."""
    act = _choice("activation", activation, ACTIVATIONS)
    _check_common(weight_gain, bias_std)
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth):
        linear = nn.Linear(fan_in, width, dtype=torch.float64)
        _init(linear, fan_in, weight_gain, bias_std, gen)
        layers += [linear, act()]
        fan_in = width
    return nn.Sequential(*layers).eval()
