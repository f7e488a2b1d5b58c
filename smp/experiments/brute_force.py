"""An independent brute force for the exact tracer's breakpoints: sample densely, then bisect.

The real torch modules are run on a dense grid of the line; wherever a ReLU input changes sign or a
max-pooling window's argmax changes between two grid points, the event time is refined by
bisection on the same modules.  It shares no code with :mod:`smp.trace`, so agreement between the
two (:func:`breakpoint_gap`) is a real check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._threads import torch_threads
from ..networks import float64_model
from ..trace import _as_sample

__all__ = ["brute_force_breakpoints", "breakpoint_gap"]


def _captured_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every ReLU / LeakyReLU / MaxPool2d of ``model`` (in order) for the batch ``x``."""
    store: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out: store.append(inp[0].detach().clone())
        )
        for m in model.modules()
        if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d))
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return store


def _on_line(x0: torch.Tensor, d: torch.Tensor, t: np.ndarray) -> torch.Tensor:
    return x0[None] + torch.as_tensor(t).reshape((-1,) + (1,) * x0.dim()) * d[None]


def _bisect(
    model,
    x0,
    d,
    layer: int,
    lo: np.ndarray,
    hi: np.ndarray,
    value_fn,
    iterations: int = 64,
) -> np.ndarray:
    """Bisection of ``value_fn(captured input of layer)`` (one scalar per bracket), all brackets at once."""
    f_lo = value_fn(_captured_inputs(model, _on_line(x0, d, lo))[layer])
    for _ in range(
        iterations
    ):  # 64 halvings take a bracket of 1e-4 below float resolution
        mid = 0.5 * (lo + hi)
        f_mid = value_fn(_captured_inputs(model, _on_line(x0, d, mid))[layer])
        same = np.sign(f_mid) == np.sign(f_lo)
        lo, f_lo, hi = (
            np.where(same, mid, lo),
            np.where(same, f_mid, f_lo),
            np.where(same, hi, mid),
        )
    return 0.5 * (lo + hi)


def brute_force_breakpoints(
    model: nn.Module,
    x0: Any,
    direction: Any,
    n_grid: int = 20_001,
    *,
    threads: int | None = 1,
) -> np.ndarray:
    """Every t in (0, 1) where a ReLU input crosses 0 or a max-pool argmax changes, by brute force.

    Independent of :func:`smp.trace.trace_line`: the real torch modules (hooked) run on
    a grid of ``n_grid`` points; a sign change of a ReLU/LeakyReLU input between
    neighbours, or a change of a max-pool window's argmax from ``a`` to ``b`` with
    ``x_a - x_b`` strictly changing sign, brackets an event, and vectorised bisection on
    the network itself refines it to float resolution.  A change of argmax between
    exactly tied elements (zeros of inactive ReLUs) is left to the ReLU that causes it.
    Events closer than 1e-10 are reported once.  Misses a unit that crosses 0 twice
    within one grid step (choose ``n_grid`` accordingly).  Costs about ``65 * n_layers``
    forward passes of batches as large as the number of events, plus one of ``n_grid``
    points; ``threads`` torch threads.

    Parameters
    ----------
    model : torch.nn.Module
        the network (ReLU, LeakyReLU and MaxPool2d are the piecewise-linear layers
        seen).
    x0, direction : array or tensor
        the segment ``x0 + t*direction``, t in [0, 1].
    n_grid : int
        grid points of the bracketing search.
    threads : int or None
        torch intra-op threads; ``None`` keeps the current setting.

    Returns
    -------
    ndarray
        the breakpoints, sorted.

    Example
    -------
    The brute force finds the tracer's breakpoints to rounding:

    >>> from smp.experiments.tracer import quarter_arc_line
    >>> from smp.networks import dense_net
    >>> from smp.trace import trace_line
    >>> net = dense_net(4, 8, 2, seed=0)
    >>> x0, d = quarter_arc_line(4, seed=0)
    >>> brute = brute_force_breakpoints(net, x0, d, n_grid=2001)
    >>> traced = trace_line(net, x0, d).t
    >>> len(brute), len(traced), bool(breakpoint_gap(traced, brute) < 1e-9)
    (15, 15, True)
    """
    with torch_threads(threads):
        return _brute_force(model, x0, direction, n_grid)


def _brute_force(model: nn.Module, x0: Any, direction: Any, n_grid: int) -> np.ndarray:
    net = float64_model(model)
    x0 = _as_sample("x0", x0)
    d = _as_sample("direction", direction)
    t = np.linspace(0.0, 1.0, n_grid)
    layers = [
        m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d))
    ]
    inputs = _captured_inputs(net, _on_line(x0, d, t))
    roots = []
    for j, (m, h) in enumerate(zip(layers, inputs)):
        n = h.shape[0]
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            z = h.reshape(n, -1).numpy()
            i, unit = np.nonzero(z[:-1] * z[1:] < 0)
            if len(i):

                def unit_value(H, unit=unit):
                    return H.reshape(len(unit), -1).numpy()[np.arange(len(unit)), unit]

                roots.append(_bisect(net, x0, d, j, t[i], t[i + 1], unit_value))
        else:
            _, idx = F.max_pool2d(
                h,
                m.kernel_size,
                m.stride,
                m.padding,
                m.dilation,
                m.ceil_mode,
                return_indices=True,
            )
            C = h.shape[1]
            hv = h.reshape(n, C, -1).numpy()
            idx = idx.reshape(n, C, -1).numpy()
            i, c, o = np.nonzero(idx[:-1] != idx[1:])
            a, b = idx[i, c, o], idx[i + 1, c, o]
            keep = (hv[i, c, a] - hv[i, c, b] > 0) & (
                hv[i + 1, c, a] - hv[i + 1, c, b] < 0
            )
            i, c, a, b = i[keep], c[keep], a[keep], b[keep]
            if len(i):

                def difference(H, c=c, a=a, b=b):
                    Hv = H.reshape(len(c), H.shape[1], -1).numpy()
                    k = np.arange(len(c))
                    return Hv[k, c, a] - Hv[k, c, b]

                roots.append(_bisect(net, x0, d, j, t[i], t[i + 1], difference))
    if not roots:
        return np.empty(0)
    r = np.sort(np.concatenate(roots))
    return r[np.concatenate([[True], np.diff(r) > 1e-10])]


def breakpoint_gap(traced: np.ndarray, brute: np.ndarray) -> float:
    """Largest distance from a breakpoint of either set to the nearest one of the other.

    A symmetric (Hausdorff) distance: 0 for two empty sets, ``inf`` if exactly one is
    empty.

    Parameters
    ----------
    traced, brute : array_like
        two sets of breakpoints.

    Returns
    -------
    float
        the distance (units of t).

    Example
    -------
    >>> round(breakpoint_gap([0.1, 0.5], [0.1, 0.52]), 6)
    0.02
    >>> breakpoint_gap([], []), breakpoint_gap([0.5], [])
    (0.0, inf)
    """
    traced, brute = np.asarray(traced), np.asarray(brute)
    if traced.size == 0 and brute.size == 0:
        return 0.0
    if traced.size == 0 or brute.size == 0:
        return math.inf
    gaps = np.abs(traced[:, None] - brute[None, :])
    return float(max(gaps.min(axis=1).max(), gaps.min(axis=0).max()))
