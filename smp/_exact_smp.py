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
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FrozenLayer",
    "LayerSMP",
    "PathLayerSMP",
    "exact_layer_smp",
    "exact_path_smp",
    "iter_frozen",
    "propagate_frozen",
]

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
        raise TypeError(
            f"model must be an nn.Sequential of {names}; got a {type(model).__name__} layer"
        )
    return [model]


def _as_paths(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not np.issubdtype(value.dtype, np.number):
        raise TypeError(
            f"{name} must be a numeric array or tensor, got dtype {value.dtype}"
        )
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a numeric array or tensor, got {type(value).__name__}"
        ) from err
    if tensor.dtype == torch.bool or not (
        torch.is_floating_point(tensor)
        or tensor.dtype.is_signed
        or tensor.dtype == torch.uint8
    ):
        raise TypeError(
            f"{name} must be a real numeric array or tensor, got dtype {tensor.dtype}"
        )
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
        raise ValueError(
            f"dx must have the shape of x {tuple(x.shape)}, got {tuple(dx.shape)}"
        )
    input_ndim = (
        {nn.Linear: 1, nn.Conv2d: 3}.get(type(layers[0]), None) if layers else None
    )
    if input_ndim is not None and x.ndim == input_ndim + 1:
        x, dx = x[None], dx[None]
    if x.ndim < 3:
        raise ValueError(
            f"x must have shape (P, N, *input_shape) or (N, *input_shape), got {tuple(x.shape)}"
        )
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
                    raise TypeError(
                        "Conv2d with padding_mode other than 'zeros' is not supported"
                    )
                conv = {
                    "stride": layer.stride,
                    "padding": layer.padding,
                    "dilation": layer.dilation,
                    "groups": layer.groups,
                }
                v, s, f = (
                    F.conv2d(v, w, b, **conv),
                    F.conv2d(s, w, None, **conv),
                    F.conv2d(f, w, None, **conv),
                )
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
            yield FrozenLayer(
                index,
                type(layer).__name__,
                v.reshape(shape),
                s.reshape(shape),
                jump.reshape(shape),
                changed.reshape(shape),
            )


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


# ----------------------------------------------------------------------------------------------
# Event-resolved measurement: refine every interval that holds more than one pattern change
# ----------------------------------------------------------------------------------------------


class PathLayerSMP(NamedTuple):
    """Event-resolved exact SMP of one layer (:func:`exact_path_smp`).

    Attributes
    ----------
    index, name : the layer's position and class name.
    smp, births, pass_through : ``(P, n_units)``, summed over the path (activation per unit t);
        ``smp = births + pass_through``.
    event_l2 : ``(P,)``, the sum over kink events of the 2-norm of the event's jump vector over
        the layer's units (the quantity chapter 6's bookkeeping propagates).
    mean_abs_jump : ``(N, n_units)``, the mean over paths of the summed ``|jump|`` in the grid
        interval ending at ``t_n`` (0 at ``n = 0``).
    """

    index: int
    name: str
    smp: np.ndarray
    births: np.ndarray
    pass_through: np.ndarray
    event_l2: np.ndarray
    mean_abs_jump: np.ndarray


def _pattern_changes(
    layers: list[nn.Module], x: torch.Tensor, paths: int
) -> torch.Tensor:
    """Number of units (all ReLU and MaxPool2d layers) whose pattern changed in each interval,
    ``(P, N)``; a values-only forward pass.

    A pooling switch to or from a window maximum of exactly 0 is not counted: after a ReLU it is
    the same event as the zero crossing of the unit below (same t), and counting it would send
    the interval into refinement down to ``max_depth`` for nothing."""
    v, count = x, torch.zeros(x.shape[0], dtype=torch.int64)
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.ReLU):
                mask = v > 0
                count += (mask != _previous(mask, paths)).flatten(1).sum(1)
                v = v * mask
            elif isinstance(layer, nn.MaxPool2d):
                pool = copy.copy(layer)
                pool.return_indices = True
                v, idx = pool(v)
                switched = idx != _previous(idx, paths)
                separate = switched & (v != 0) & (_previous(v, paths) != 0)
                count += separate.flatten(1).sum(1)
            elif isinstance(layer, nn.Flatten):
                v = v.flatten(1)
            else:
                v = _affine(layer, v)
    return count.reshape(paths, -1)


def _affine(layer: nn.Module, v: torch.Tensor) -> torch.Tensor:
    w = layer.weight.to(torch.float64)
    b = None if layer.bias is None else layer.bias.to(torch.float64)
    if isinstance(layer, nn.Linear):
        return F.linear(v, w, b)
    return F.conv2d(
        v,
        w,
        b,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
    )


def _resolve(
    model,
    path_fn,
    path_index,
    t0,
    t1,
    n_sub: int,
    depth: int,
    max_depth: int,
    chunk: int,
):
    """Per layer ``(births (M, U), passed (M, U), l2 (M,))`` of the intervals ``(t0, t1]``, each
    split into ``n_sub`` sub-intervals and recursively refined while a sub-interval holds more
    than one pattern change (up to ``max_depth`` levels; below that, coincident changes are
    accepted as one event)."""
    out = None
    for start in range(0, len(t0), chunk):
        sl = slice(start, start + chunk)
        part = _resolve_chunk(
            model,
            path_fn,
            path_index[sl],
            t0[sl],
            t1[sl],
            n_sub,
            depth,
            max_depth,
            chunk,
        )
        out = (
            part
            if out is None
            else [
                tuple(torch.cat([a, b]) for a, b in zip(o, p))
                for o, p in zip(out, part)
            ]
        )
    return out


def _resolve_chunk(model, path_fn, path_index, t0, t1, n_sub, depth, max_depth, chunk):
    m = len(t0)
    frac = torch.linspace(0, 1, n_sub + 1, dtype=torch.float64)
    t = t0[:, None] + (t1 - t0)[:, None] * frac[None]
    x, dx = path_fn(path_index, t)
    layers = _flatten(model)
    changes = _pattern_changes(layers, x.reshape(m * (n_sub + 1), *x.shape[2:]), m)[
        :, 1:
    ]  # (M, n_sub)
    split = (changes > 1) & (depth < max_depth)
    result = []
    for layer in iter_frozen(model, x, dx):
        size = layer.jump.abs().reshape(m, n_sub + 1, -1)[:, 1:]
        changed = layer.changed.reshape(m, n_sub + 1, -1)[:, 1:]
        keep = ~split[:, :, None]
        births = (size * changed * keep).sum(1)
        passed = (size * ~changed * keep).sum(1)
        l2 = (size.pow(2).sum(2).sqrt() * ~split).sum(1)
        result.append((births, passed, l2))
    if split.any():
        rows, cols = split.nonzero(as_tuple=True)
        sub = _resolve(
            model,
            path_fn,
            path_index[rows],
            t[rows, cols],
            t[rows, cols + 1],
            n_sub,
            depth + 1,
            max_depth,
            chunk,
        )
        for (births, passed, l2), (b2, p2, l22) in zip(result, sub):
            births.index_add_(0, rows, b2)
            passed.index_add_(0, rows, p2)
            l2.index_add_(0, rows, l22)
    return result


def exact_path_smp(
    model: nn.Module,
    path_fn,
    t: Any,
    n_paths: int,
    *,
    n_sub: int = 8,
    max_depth: int = 8,
    chunk: int = 2048,
    on_layer=None,
) -> list[PathLayerSMP]:
    """Exact per-layer SMP along paths, every kink event resolved into its own interval.

    The frozen-pattern jump of an interval (module docstring) is exact for a unit unless two of
    its kinks fall into the interval; in a wide network a linear unit kinks whenever any unit
    below it does, so on a coarse grid coincidences are common (their jumps add before the
    absolute value and the SMP comes out low).  Here every grid interval in which more than one
    unit of the network changes pattern is split into ``n_sub`` sub-intervals, recursively, until
    each holds at most one change: one kink event, whose jump vector is then known exactly at
    every layer.  Only ``max_depth`` levels are made: changes closer than
    ``h / n_sub**max_depth`` (e.g. a pooling switch caused by a ReLU crossing, at the same t) count
    as one event.

    Parameters
    ----------
    model : as :func:`propagate_frozen`.
    path_fn : callable ``(path_index (M,), t (M, K)) -> (x, dx)``, each ``(M, K, *input_shape)``:
        the path ``path_index[m]`` and its t-derivative at the times ``t[m]`` (float64 tensors).
    t : ``(N,)`` increasing grid of t.
    n_paths : number of paths ``P`` (path indices ``0..P-1``).
    n_sub, max_depth : refinement factor and depth.  chunk : intervals refined per batch (memory).
    on_layer : optional callable receiving each grid-level :class:`FrozenLayer` (``(P, N, ...)``
        tensors) as it is computed, for statistics on the grid.

    Returns
    -------
    list of :class:`PathLayerSMP`, one per layer.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    >>> net = net.double()
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1.0], [1.0]])), net[0].bias.copy_(torch.tensor([0.0, 1e-4]))
    ...     _ = net[2].weight.fill_(1.0)
    >>> line = lambda i, t: (t[..., None] - 0.5, torch.ones_like(t)[..., None])
    >>> grid = torch.linspace(0, 1, 11, dtype=torch.float64)
    >>> float(exact_path_smp(net, line, grid, 1)[2].smp.sum())  # two kinks 1e-4 apart, 1 each
    2.0
    """
    layers = _flatten(model)
    t = _as_paths("t", t)
    if t.ndim != 1 or len(t) < 2 or not bool((t[1:] > t[:-1]).all()):
        raise ValueError("t must be a 1-D increasing grid of at least 2 times")
    if isinstance(n_paths, bool) or not isinstance(n_paths, int) or n_paths < 1:
        raise ValueError(f"n_paths must be a positive integer, got {n_paths!r}")
    for name, val, lo in (
        ("n_sub", n_sub, 2),
        ("max_depth", max_depth, 0),
        ("chunk", chunk, 1),
    ):
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {val!r}")
    n = len(t)
    index = torch.arange(n_paths)
    x, dx = path_fn(index, t[None].expand(n_paths, n))
    x, dx = _as_paths("path_fn's x", x), _as_paths("path_fn's dx", dx)
    changes = _pattern_changes(layers, x.reshape(n_paths * n, *x.shape[2:]), n_paths)
    changes[:, 0] = 0
    split = changes > 1
    out = []
    for layer in iter_frozen(model, x, dx):
        if on_layer is not None:
            on_layer(layer)
        size = layer.jump.abs().reshape(n_paths, n, -1)
        changed = layer.changed.reshape(n_paths, n, -1)
        keep = ~split[:, :, None]
        births = (size * changed * keep).sum(1)
        passed = (size * ~changed * keep).sum(1)
        l2 = (size.pow(2).sum(2).sqrt() * ~split).sum(1)
        mean_abs = (size * keep).sum(0) / n_paths
        out.append([layer.index, layer.name, births, passed, l2, mean_abs])
    del x, dx
    if split.any():
        rows, cols = split.nonzero(as_tuple=True)
        parts = _resolve(
            model, path_fn, rows, t[cols - 1], t[cols], n_sub, 1, max_depth, chunk
        )
        for entry, (b2, p2, l22) in zip(out, parts):
            entry[2].index_add_(0, rows, b2)
            entry[3].index_add_(0, rows, p2)
            entry[4].index_add_(0, rows, l22)
            entry[5].index_add_(0, cols, (b2 + p2) / n_paths)
    return [
        PathLayerSMP(
            i, name, (b + p).numpy(), b.numpy(), p.numpy(), l2.numpy(), m.numpy()
        )
        for i, name, b, p, l2, m in out
    ]
