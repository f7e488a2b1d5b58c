"""Exact per-layer SMP along a sampled path by frozen activation patterns (no peak detector).

Along a smooth path ``x(t)`` sampled at ``t_0 < t_1 < ... < t_{N-1}`` with its derivative
``x'(t_n)``, every unit of a piecewise-linear network carries a value ``z(t_n)`` and a slope
``z'(t_n)`` (forward-mode derivative: a linear layer maps slopes by its weight without the bias, a
ReLU multiplies them by its activity mask, max pooling picks the argmax entry).  A second slope is
propagated beside it, the *frozen slope* ``f(t_n)``: the same input derivative ``x'(t_n)``, pushed
through the network with every activity pattern (ReLU masks, pooling argmaxes) taken from the
previous sample ``t_{n-1}``.  The difference

    jump(t_n) = z'(t_n) - f(t_n)

is, for every unit, the sum of the slope jumps of that unit inside ``(t_{n-1}, t_n]``: both slopes
use the same input derivative at the same point, so the smooth part cancels and only the change of
patterns remains.  On a straight line (``x'`` constant) this is exact; on a curved path a jump at
``t*`` is evaluated with ``x'(t_n)`` instead of ``x'(t*)``, an error ``O(h)`` per kink.  Summing
``|jump|`` over intervals gives the unit's SMP (units of the activation per unit t); it differs
from the truth only where two kinks of one unit fall into the same interval (their jumps add
before the absolute value).

Births and pass-through.  At a ReLU (or max pooling) layer, an interval in which the unit's own
pattern changed (its input crossed 0, or its window's argmax switched) holds a *birth*; an interval
in which it did not holds only input jumps *passed through* (``mask * input jump``, exactly 0 for an
inactive unit).  The two parts add up to the total.  An interval holding both a crossing and an
input jump counts wholly as a birth: rare at fine sampling (the two happen independently).

The path is the batch axis: ``x`` holds ``P`` paths of ``N`` samples, pushed through the network
in one batch of ``P*N`` rows, in float64.  Supported layers: ``Linear``, ``Conv2d``, ``ReLU``,
``MaxPool2d``, ``Flatten`` (inside an ``nn.Sequential``, nested allowed).
"""

from __future__ import annotations

import copy
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrozenLayer", "LayerSMP", "iter_frozen", "propagate_frozen", "exact_layer_smp"]

_SUPPORTED = (nn.Linear, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten)


class FrozenLayer(NamedTuple):
    """One layer's signals along the paths (all float64 tensors of shape ``(P, N, *unit_shape)``).

    Attributes
    ----------
    index : position of the layer in the flattened ``nn.Sequential``.
    name : the layer's class name (``"Linear"``, ``"ReLU"``, ...).
    value : the layer's output ``z(t_n)``.
    slope : its t-derivative ``z'(t_n)`` (output units per unit t).
    jump : ``z'(t_n) - f(t_n)``, the summed slope jumps in ``(t_{n-1}, t_n]``; 0 at ``n = 0``.
    changed : bool, the unit's own pattern changed in ``(t_{n-1}, t_n]`` (ReLU / MaxPool2d);
        all False for the other layers.
    """

    index: int
    name: str
    value: torch.Tensor
    slope: torch.Tensor
    jump: torch.Tensor
    changed: torch.Tensor


class LayerSMP(NamedTuple):
    """Exact SMP of one layer, per path and unit (float64 arrays of shape ``(P, n_units)``).

    ``smp = births + pass_through``; ``births`` is 0 for layers other than ReLU and MaxPool2d.
    Units: the layer's activation per unit t.
    """

    index: int
    name: str
    smp: np.ndarray
    births: np.ndarray
    pass_through: np.ndarray


def _flatten(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in _flatten(child)]
    if not isinstance(model, _SUPPORTED):
        names = ", ".join(c.__name__ for c in _SUPPORTED)
        raise TypeError(f"model must be an nn.Sequential of {names}; got a {type(model).__name__} layer")
    return [model]


def _as_paths(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not np.issubdtype(value.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array or tensor, got dtype {value.dtype}")
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a numeric array or tensor, got {type(value).__name__}") from err
    if tensor.dtype == torch.bool or not (torch.is_floating_point(tensor) or tensor.dtype.is_signed
                                          or tensor.dtype == torch.uint8):
        raise TypeError(f"{name} must be a real numeric array or tensor, got dtype {tensor.dtype}")
    tensor = tensor.to(torch.float64)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return tensor


def _previous(t: torch.Tensor, paths: int) -> torch.Tensor:
    """Row ``n-1`` of the same path for every row ``n`` (row 0 keeps itself), on ``(P*N, ...)``."""
    shaped = t.reshape(paths, -1, *t.shape[1:])
    return torch.cat([shaped[:, :1], shaped[:, :-1]], dim=1).reshape(t.shape)


def propagate_frozen(model: nn.Module, x: Any, dx: Any) -> list[FrozenLayer]:
    """Value, slope and frozen-pattern slope jump of every layer along sampled paths.

    Parameters
    ----------
    model : an ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``ReLU``, ``MaxPool2d``, ``Flatten``;
        any float dtype (a float64 copy is used, the model is left untouched).
    x : ``(P, N, *input_shape)`` paths (P paths of N samples), or ``(N, *input_shape)`` for one.
    dx : the path's derivative ``dx/dt`` at the same samples, same shape as ``x``
        (``x1 - x0`` for a line ``x0 + t (x1 - x0)``).

    Returns
    -------
    list of :class:`FrozenLayer`, one per layer, tensors ``(P, N, *unit_shape)`` in float64
    (``P = 1`` kept for a single path).

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.ReLU()).double()
    >>> with torch.no_grad():
    ...     _ = net[0].weight.fill_(1.0), net[0].bias.fill_(-0.5)
    >>> t = torch.linspace(0, 1, 11, dtype=torch.float64)[:, None]
    >>> layers = propagate_frozen(net, t, torch.ones_like(t))
    >>> float(layers[1].jump.abs().sum())   # one kink of slope jump 1 at t = 0.5
    1.0
    """
    return list(iter_frozen(model, x, dx))


def iter_frozen(model: nn.Module, x: Any, dx: Any) -> Iterator[FrozenLayer]:
    """:func:`propagate_frozen` one layer at a time (a generator): only the current layer is held,
    so a caller that reduces each layer as it comes needs a fraction of the memory."""
    layers = _flatten(model)
    x = _as_paths("x", x)
    dx = _as_paths("dx", dx)
    if x.shape != dx.shape:
        raise ValueError(f"dx must have the shape of x {tuple(x.shape)}, got {tuple(dx.shape)}")
    input_ndim = {nn.Linear: 1, nn.Conv2d: 3}.get(type(layers[0]), None) if layers else None
    if input_ndim is not None and x.ndim == input_ndim + 1:
        x, dx = x[None], dx[None]
    if x.ndim < 3:
        raise ValueError(f"x must have shape (P, N, *input_shape) or (N, *input_shape), got {tuple(x.shape)}")
    paths, n = x.shape[:2]
    if n < 2:
        raise ValueError(f"x must hold at least 2 samples per path, got {n}")
    v = x.reshape(paths * n, *x.shape[2:])
    s = dx.reshape(v.shape)
    f = s.clone()  # the input path is smooth: frozen and true input slopes agree
    with torch.no_grad():
        for index, layer in enumerate(layers):
            changed = None
            if isinstance(layer, nn.Linear):
                w = layer.weight.to(torch.float64)
                b = None if layer.bias is None else layer.bias.to(torch.float64)
                v, s, f = F.linear(v, w, b), F.linear(s, w), F.linear(f, w)
            elif isinstance(layer, nn.Conv2d):
                w = layer.weight.to(torch.float64)
                b = None if layer.bias is None else layer.bias.to(torch.float64)
                if layer.padding_mode != "zeros":
                    raise TypeError("Conv2d with padding_mode other than 'zeros' is not supported")
                conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                            groups=layer.groups)
                v, s, f = F.conv2d(v, w, b, **conv), F.conv2d(s, w, None, **conv), F.conv2d(f, w, None, **conv)
            elif isinstance(layer, nn.ReLU):
                mask = v > 0
                before = _previous(mask, paths)
                changed = mask != before
                v, s, f = v * mask, s * mask, f * before
            elif isinstance(layer, nn.MaxPool2d):
                pool = copy.copy(layer)
                pool.return_indices = True
                v, idx = pool(v)
                before = _previous(idx, paths)
                changed = idx != before
                flat = (s.flatten(2), f.flatten(2))
                s = flat[0].gather(2, idx.flatten(2)).reshape(v.shape)
                f = flat[1].gather(2, before.flatten(2)).reshape(v.shape)
            else:  # Flatten: keep the batch axis (P*N rows)
                v, s, f = v.flatten(1), s.flatten(1), f.flatten(1)
            jump = s - f
            if changed is None:
                changed = torch.zeros(v.shape, dtype=torch.bool)
            shape = (paths, n, *v.shape[1:])
            yield FrozenLayer(index, type(layer).__name__, v.reshape(shape), s.reshape(shape),
                              jump.reshape(shape), changed.reshape(shape))


def exact_layer_smp(model: nn.Module, x: Any, dx: Any) -> list[LayerSMP]:
    """Exact SMP of every unit of every layer along sampled paths, births and pass-through apart.

    ``SMP = sum over intervals of |z'(t_n) - f(t_n)|`` (module docstring), in the layer's
    activation per unit t: the time step is built into the slopes, so the result does not depend
    on the sampling as long as no unit kinks twice within one interval.

    Parameters
    ----------
    model, x, dx : as :func:`propagate_frozen`.

    Returns
    -------
    list of :class:`LayerSMP`, one per layer, arrays ``(P, n_units)`` (units flattened).

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.ReLU()).double()
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0], [-2.0]])), net[0].bias.fill_(0.25)
    >>> t = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    >>> relu = exact_layer_smp(net, t, torch.ones_like(t))[1]
    >>> relu.births.round(12).tolist(), relu.pass_through.tolist()
    ([[1.0, 2.0]], [[0.0, 0.0]])
    """
    out = []
    for layer in iter_frozen(model, x, dx):
        paths, n = layer.jump.shape[:2]
        size = layer.jump.abs().reshape(paths, n, -1)
        changed = layer.changed.reshape(paths, n, -1)
        births = (size * changed).sum(1).numpy()
        passed = (size * ~changed).sum(1).numpy()
        out.append(LayerSMP(layer.index, layer.name, births + passed, births, passed))
    return out
