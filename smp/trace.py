"""The exact kink tracer: every breakpoint of a piecewise-linear torch model along a line segment.

Two engines compute the same :class:`Trace`.  :func:`trace_lines` (and its one-segment form
:func:`trace_line`) is the layer-wise engine of :mod:`smp._trace_pieces`: the pieces of many
segments go through each layer together (a ReLU splits every piece where one of its inputs changes
sign, a max pooling where a window's argmax changes, affine layers map the pieces' end points), and
models are read with ``torch.fx`` (:mod:`smp._trace_graph`), so residual networks are traced too.
:func:`trace_line_walk` is the event walker described below, one forward pass per breakpoint, kept
as the reference implementation the layer-wise engine is tested against.  Both share the
tolerances and the merging rule below.

Along the segment ``x(t) = x0 + t d``, ``t in [0, 1]``, a network built from affine layers
(``Linear``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``BatchNorm`` in eval mode) and piecewise-linear
ones (``ReLU``, ``LeakyReLU``, ``MaxPool2d``) is piecewise affine in ``t``: inside an interval where
no ReLU changes its activity and no pooling window changes its argmax (a *linear region* of the
network crossed by the line), every unit is ``u(t) = v + s (t - t_c)`` for the region's value ``v``
at ``t_c`` and slope ``s = du/dt``.

The walk.  At the current point ``t_c`` (0 to start), one forward pass through the network with the
activity pattern *frozen* propagates the pair (value, slope) of every unit: affine layers map the
value with their bias and the slope without it; a ReLU multiplies both by its 0/1 mask, a LeakyReLU
by ``1`` or ``negative_slope``; a max-pooling window copies both from its argmax.  This is the
forward-mode derivative (``torch.func.jvp``) restricted to the region, written out per layer so that
it is exactly affine.  The pattern of every piecewise-linear layer is decided from its input's
values and slopes *just after* ``t_c``: a unit is active when ``v + s*merge_tol > 0`` and a window's
argmax is the argmax of ``v + s*merge_tol``.  The next event is then the smallest step

* ``-v / s`` of a ReLU input heading for zero (active with ``s < 0``, inactive with ``s > 0``), or
* ``(v_i - v_j) / (s_j - s_i)`` of an element ``j`` of a pooling window overtaking the window's
  argmax ``i`` (``s_j > s_i``),

over all units of all layers.  The walk steps there, recomputes the pattern (which may change in
several layers at once: a deep unit's coefficients change when a shallow unit switches), and records
the *slope jump* of every output, its slope after the event minus its slope before.  It stops at
``t = 1``.  Every step costs one forward pass on a batch of two (values and slopes) plus a few
elementwise operations; the number of steps is the number of breakpoints.

Exactness and ties.  Breakpoints are computed in float64 from the region's own affine coefficients,
so their positions carry only rounding error (about ``eps * |terms| / |s|`` in ``t``).  Events closer
together than ``merge_tol`` (default ``1e-12`` in units of t) are *merged*: they are counted as one
breakpoint whose slope jump is the sum of theirs (so opposite jumps may cancel, as they would in
any sampled signal).  This is also how exact ties are handled -- two units crossing at the same t,
a pooling window whose argmax changes at the moment a ReLU inside it switches, elements tied for
the maximum (the one with the larger slope wins after the tie).  By construction each step advances
t by at least ``merge_tol``, so the walk always ends.

The exact SMP of output ``k`` is ``sum over breakpoints of |jump_k|`` (SCIENCE.md, section 2), where
jumps below ``jump_rtol`` times the output's largest slope magnitude are rounding noise and set to
zero (an event that does not reach an output normally gives an exactly zero jump; the tolerance
only guards against reordered float sums).

The number of linear regions crossed (Hanin & Rolnick 2019) is ``1 + number of breakpoints``: each
activity pattern is a convex polytope in input space (inequalities affine in x), so a line meets it
in a single interval.  Per output, the number of pieces where that output is affine is
``1 + number of breakpoints with a nonzero jump of that output``.

Examples
--------
The names this module re-exports from its private modules: :func:`flatten_layers`
unrolls nested ``nn.Sequential``, the event walker :func:`trace_line_walk` finds the
breakpoints that :func:`trace_line` finds, and a :class:`Trace` holds them.

>>> import numpy as np
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(1, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
>>> [type(layer).__name__ for layer in flatten_layers(net)]
['Linear', 'ReLU', 'Linear']
>>> _ = [p.data.fill_(1.0) for p in net.parameters()]  # y = 2 relu(x + 1) + 1
>>> walk = trace_line_walk(net, np.array([-2.0]), np.array([2.0]))  # x from -2 to 0
>>> walk.t, walk.jumps, walk.smp, walk.n_regions  # the kink at x = -1, slope 0 -> 4
(array([0.5]), array([[4.]]), array([4.]), 2)
>>> layered = trace_line(net, np.array([-2.0]), np.array([2.0]))
>>> bool(np.array_equal(layered.t, walk.t) and np.allclose(layered.values, walk.values))
True
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._threads import torch_threads
from ._trace_common import (
    DEFAULT_JUMP_RTOL,
    DEFAULT_MERGE_TOL,
    SUPPORTED_LAYERS,
    Trace,
    _as_sample,
    _check_tolerances,
    flatten_layers,
)
from ._trace_walk import trace_line_walk

__all__ = [
    "Trace",
    "trace_line",
    "trace_lines",
    "trace_line_walk",
    "evaluate",
    "flatten_layers",
    "activation_patterns",
    "release_buffers",
    "SUPPORTED_LAYERS",
    "DEFAULT_MERGE_TOL",
    "DEFAULT_JUMP_RTOL",
]


# ----------------------------------------------------------------------------------------------
# layers: each op maps X, a (2, ...) tensor holding (value, slope), to the next such tensor and,
# for piecewise-linear layers, returns the step to its next event (inf if none).


def trace_lines(
    model: nn.Module,
    x0: Any,
    directions: Any,
    *,
    merge_tol: float = DEFAULT_MERGE_TOL,
    jump_rtol: float = DEFAULT_JUMP_RTOL,
    max_events: int = 1_000_000,
    threads: int | None = 1,
    progress: bool = False,
) -> list[Trace]:
    """Every breakpoint of every output of ``model`` along many segments ``x0[i] + t*directions[i]``.

    The layer-wise engine (:mod:`smp._trace_pieces`): the pieces of all segments go through each
    layer together; a ReLU splits every piece where one of its inputs changes sign, a max pooling
    where a window's argmax changes, and affine layers map the pieces' end points.  Same result,
    tolerances and merging rule as the event walker :func:`trace_line_walk`.

    Parameters
    ----------
    model : nn.Module
        an ``nn.Sequential`` of the layers in :data:`SUPPORTED_LAYERS`, or any module that
        ``torch.fx`` can trace into such layers, ReLU/LeakyReLU/max-pool functions and sums of
        tensors (residual networks: a block's input added to its output, BatchNorm in eval mode,
        strided 1x1 projection shortcuts).  Any float dtype: traced in float64 on a copy.
    x0 : tensor or array, shape (n_lines, *sample_shape)
        start points, a batch of input samples.
    directions : tensor or array, shape (n_lines, *sample_shape)
        segment ``i`` ends at ``x0[i] + directions[i]``.
    merge_tol, jump_rtol, max_events, threads, progress
        as in :func:`trace_line` (``max_events`` per segment, checked once all layers are done;
        ``progress`` shows a bar over the layers).

    Returns
    -------
    list of Trace
        one per segment.

    Raises
    ------
    TypeError
        an unsupported layer or operation, or data-dependent control flow (named).
    ValueError
        shapes differ, non-finite input, bad tolerances, BatchNorm/Dropout in training mode.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from smp.trace import trace_lines
    >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    >>> traces = trace_lines(net, x0, -2 * x0)  # five segments through the origin
    >>> len(traces), traces[0].n_regions == len(traces[0].t) + 1
    (5, True)
    """
    from ._trace_graph import compiled_graph
    from ._trace_pieces import trace_pieces

    x0 = _as_sample("x0", x0)
    d = _as_sample("directions", directions)
    if x0.shape != d.shape:
        raise ValueError(
            f"directions must have the shape of x0 {tuple(x0.shape)}, got {tuple(d.shape)}"
        )
    if x0.dim() < 2 or x0.shape[0] == 0:
        raise ValueError(
            f"x0 must be a non-empty batch of samples (n_lines, *sample_shape), got shape {tuple(x0.shape)}"
        )
    _check_tolerances(merge_tol, jump_rtol, max_events)
    graph = compiled_graph(model)
    with torch_threads(threads):
        lines = trace_pieces(graph, x0, d, merge_tol, jump_rtol, progress)
    traces = []
    for i, p in enumerate(lines):
        if len(p.t) > max_events:
            raise RuntimeError(
                f"trace: segment {i} has {len(p.t)} breakpoints, more than max_events={max_events}"
            )
        traces.append(
            Trace(
                t=p.t,
                jumps=p.jumps,
                smp=p.smp,
                n_regions=len(p.t) + 1,
                n_pieces=p.n_pieces,
                knots=np.concatenate([[0.0], p.t, [1.0]]),
                values=p.values,
                slopes=p.slopes,
                layer=p.layer,
            )
        )
    return traces


def trace_line(
    model: nn.Module,
    x0: Any,
    direction: Any,
    *,
    merge_tol: float = DEFAULT_MERGE_TOL,
    jump_rtol: float = DEFAULT_JUMP_RTOL,
    max_events: int = 1_000_000,
    threads: int | None = 1,
    progress: bool = False,
) -> Trace:
    """Every breakpoint of every output of ``model`` along ``x(t) = x0 + t*direction``, t in [0, 1].

    At each breakpoint ``t_k`` the slope of every output jumps by ``jumps[k]``; the exact SMP of
    output ``j`` is ``sum_k |jumps[k, j]|``.  The one-segment form of :func:`trace_lines` (the
    layer-wise engine); :func:`trace_line_walk` is the event walker of the module docstring, the
    reference it is tested against.

    Parameters
    ----------
    model : nn.Module
        an ``nn.Sequential`` (nested ones allowed) of ``Linear``, ``Conv2d`` (any stride, padding,
        dilation, groups), ``ReLU``, ``LeakyReLU``, ``MaxPool2d``, ``AvgPool2d``,
        ``AdaptiveAvgPool2d``, ``Flatten``, ``BatchNorm1d/2d`` (eval mode), ``Identity``,
        ``Dropout`` (eval mode); or one such layer; or a module ``torch.fx`` traces into them and
        sums of tensors (residual networks).  Any float dtype: the tracer copies the model to
        float64 and leaves it untouched.
    x0 : tensor or array
        the start point, shaped like ONE input sample without batch axis: ``(features,)`` for a
        dense net, ``(C, H, W)`` for a CNN.
    direction : tensor or array
        ``d``, same shape as ``x0``; the segment ends at ``x0 + d`` (t is in units of the segment).
    merge_tol : float
        events closer than this in t are merged into one breakpoint (their jumps add).
    jump_rtol : float
        output jumps below ``jump_rtol * max_region |slope|`` of that output are set to 0.
    max_events : int
        limit on the number of breakpoints (``RuntimeError`` beyond it).
    threads : int or None
        torch intra-op threads (restored afterwards); ``None`` keeps the current setting.
    progress : bool
        show a tqdm bar over the layers.

    Returns
    -------
    Trace
        breakpoints, jumps, exact SMP, region counts, the exact output at the knots.

    Raises
    ------
    TypeError
        an unsupported layer (named), or non-numeric ``x0``/``direction``.
    ValueError
        shapes differ, non-finite input, bad tolerances, BatchNorm/Dropout in training mode.

    Examples
    --------
    >>> import numpy as np
    >>> from torch import nn
    >>> from smp.trace import trace_line
    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> _ = [p.data.fill_(1.0) for p in net.parameters()]  # y = 2 relu(x + 1) + 1
    >>> tr = trace_line(net, np.array([-2.0]), np.array([2.0]))  # x from -2 to 0
    >>> tr.t, tr.jumps  # the kink at x = -1, slope 0 -> 4 (dy/dt = 2 * dx/dt)
    (array([0.5]), array([[4.]]))
    """
    x0 = _as_sample("x0", x0)
    d = _as_sample("direction", direction)
    if x0.shape != d.shape:
        raise ValueError(
            f"direction must have the shape of x0 {tuple(x0.shape)}, got {tuple(d.shape)}"
        )
    return trace_lines(
        model,
        x0[None],
        d[None],
        merge_tol=merge_tol,
        jump_rtol=jump_rtol,
        max_events=max_events,
        threads=threads,
        progress=progress,
    )[0]


def evaluate(trace: Trace, t: Any) -> np.ndarray:
    """The traced outputs at parameters ``t`` (array), shape ``(len(t), n_outputs)``.

    Linear interpolation between the knots, which is the network's output up to rounding.

    Parameters
    ----------
    trace : Trace
        the result of :func:`trace_line` (or one entry of :func:`trace_lines`).
    t : array_like, shape (M,)
        path parameters, in units of the segment (0 at ``x0``, 1 at ``x0 + direction``);
        outside [0, 1] the end values are repeated.

    Returns
    -------
    ndarray, shape (M, n_outputs), float64
        the outputs at ``t``.

    Example
    -------
    >>> import numpy as np
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> _ = [p.data.fill_(1.0) for p in net.parameters()]  # y = 2 relu(x + 1) + 1
    >>> tr = trace_line(net, np.array([-2.0]), np.array([2.0]))  # x from -2 to 0
    >>> evaluate(tr, [0.0, 0.5, 0.75, 1.0]).ravel()  # 1 until x = -1, then 4 t - 1
    array([1., 1., 2., 3.])
    """
    t = np.asarray(t, dtype=np.float64)
    return np.stack(
        [
            np.interp(t, trace.knots, trace.values[:, j])
            for j in range(trace.values.shape[1])
        ],
        axis=-1,
    )


def activation_patterns(
    model: nn.Module, x: Any, *, threads: int | None = 1
) -> np.ndarray:
    """The activity pattern of every input in the batch ``x`` as one integer id per input.

    The pattern is the tuple of ReLU/LeakyReLU activities (input > 0) and max-pool argmax indices
    of every unit; inputs with equal ids lie in the same linear region of the network.  Used to
    colour the input plane by region.  ``x`` is batched: ``(n, ...)``; ids are ``0 .. n_patterns-1``.

    Parameters
    ----------
    model : nn.Module
        an ``nn.Sequential`` of the layers in :data:`SUPPORTED_LAYERS` (nested ones
        allowed); evaluated in float64 on a copy.
    x : tensor or array, shape (n, *sample_shape)
        the inputs, one per row.
    threads : int or None
        torch intra-op threads (restored afterwards); ``None`` keeps the current one.

    Returns
    -------
    ndarray of int64, shape (n,)
        the pattern id of every input, numbered in the sorted order of the patterns
        (all 0 for a model without piecewise-linear layers).

    Example
    -------
    Five points of the segment that :func:`trace_line` splits at x = -1 fall in its two
    regions:

    >>> import numpy as np
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    >>> _ = [p.data.fill_(1.0) for p in net.parameters()]  # y = 2 relu(x + 1) + 1
    >>> activation_patterns(net, np.linspace(-2.0, 0.0, 5)[:, None])  # x + 1 > 0 or not
    array([0, 0, 0, 1, 1])
    >>> trace_line(net, np.array([-2.0]), np.array([2.0])).n_regions
    2
    """
    layers = [copy.deepcopy(m).to(torch.float64) for m in flatten_layers(model)]
    h = (
        x.detach().to(torch.float64)
        if isinstance(x, torch.Tensor)
        else torch.as_tensor(np.asarray(x, dtype=np.float64))
    )
    feats: list[torch.Tensor] = []
    with torch.no_grad(), torch_threads(threads):
        for m in layers:
            if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
                feats.append((h > 0).reshape(h.shape[0], -1).to(torch.int64))
            elif isinstance(m, nn.MaxPool2d):
                _, idx = F.max_pool2d(
                    h,
                    m.kernel_size,
                    m.stride,
                    m.padding,
                    m.dilation,
                    m.ceil_mode,
                    return_indices=True,
                )
                feats.append(idx.reshape(h.shape[0], -1))
            h = m(h)
    if not feats:
        return np.zeros(h.shape[0], dtype=np.int64)
    code = np.ascontiguousarray(torch.cat(feats, dim=1).numpy().astype(np.int32))
    # one opaque byte string per row: np.unique on it is much faster than on rows (axis=0)
    rows = code.view(np.dtype((np.void, code.dtype.itemsize * code.shape[1]))).reshape(
        -1
    )
    _, ids = np.unique(rows, return_inverse=True)
    return ids.reshape(-1)


def release_buffers() -> int:
    """Free the float64 work buffers :func:`trace_lines` keeps from one call to the next.

    The layer-wise engine keeps its large scratch buffers (at most 256 MB in all) after a call:
    a fresh buffer costs a page fault per 4 KiB page on first touch, as much as a layer's matrix
    product on wide MLPs.  Call this after the last trace of a session to return the memory;
    the next call allocates again.  Results never share memory with the buffers.

    Returns
    -------
    int
        bytes freed.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from smp.trace import release_buffers, trace_lines
    >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> _ = trace_lines(net, torch.ones(3, 2), -2 * torch.ones(3, 2))
    >>> release_buffers() >= 0
    True
    """
    from ._trace_pieces import release_buffers as release

    return release()
