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
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

__all__ = [
    "Trace",
    "trace_line",
    "trace_lines",
    "trace_line_walk",
    "evaluate",
    "flatten_layers",
    "activation_patterns",
    "SUPPORTED_LAYERS",
    "DEFAULT_MERGE_TOL",
    "DEFAULT_JUMP_RTOL",
]

#: events closer than this in t (path length 1) are merged into one breakpoint; far above the
#: rounding of a crossing time (a few 1e-16 / |slope| relative), far below any resolution a
#: sampled signal can reach (1e-5 at N = 1e5 samples).
DEFAULT_MERGE_TOL = 1e-12
#: output slope jumps smaller than this times the output's largest |slope| are rounding noise.
DEFAULT_JUMP_RTOL = 1e-10

#: leaf layers both engines trace; the layer-wise engine (:func:`trace_lines`) also reads any
#: forward that ``torch.fx`` resolves into them, sums of tensors and ReLU/LeakyReLU/max-pool
#: functions (residual networks)
SUPPORTED_LAYERS = (
    nn.Linear,
    nn.Conv2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Identity,
    nn.Dropout,
)


class Trace(NamedTuple):
    """Result of :func:`trace_line` (one per segment from :func:`trace_lines`).

    Attributes
    ----------
    t : ndarray, shape (n_events,)
        breakpoints in (0, 1), increasing, in units of the path parameter t.
    jumps : ndarray, shape (n_events, n_outputs)
        slope jump of every output at every breakpoint (slope after minus slope before), in
        output units per unit t; rounding noise below ``jump_rtol`` set to 0.
    smp : ndarray, shape (n_outputs,)
        exact SMP of every output, ``sum_k |jumps[k]|`` (output units per unit t).
    n_regions : int
        number of linear regions (activity patterns) of the whole network crossed by the segment,
        ``n_events + 1``.
    n_pieces : ndarray of int, shape (n_outputs,)
        number of affine pieces of every output along the segment (1 + its nonzero jumps).
    knots : ndarray, shape (n_events + 2,)
        ``[0, t..., 1]``.
    values : ndarray, shape (n_events + 2, n_outputs)
        the outputs at the knots; linear interpolation between knots is the exact output.
    slopes : ndarray, shape (n_events + 1, n_outputs)
        the outputs' slopes in every region.
    layer : ndarray of int, shape (n_events,)
        index (in :func:`flatten_layers` order; for other models, in the order of the
        ``torch.fx`` graph's operations) of the piecewise-linear layer whose unit triggered each
        breakpoint (the earliest of a merged group).
    """

    t: np.ndarray
    jumps: np.ndarray
    smp: np.ndarray
    n_regions: int
    n_pieces: np.ndarray
    knots: np.ndarray
    values: np.ndarray
    slopes: np.ndarray
    layer: np.ndarray


# ----------------------------------------------------------------------------------------------
# layers: each op maps X, a (2, ...) tensor holding (value, slope), to the next such tensor and,
# for piecewise-linear layers, returns the step to its next event (inf if none).


def flatten_layers(model: nn.Module) -> list[nn.Module]:
    """The leaf layers of ``model`` in order (nested ``nn.Sequential`` unrolled).

    Raises ``TypeError`` naming the first layer that is not in :data:`SUPPORTED_LAYERS`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (an nn.Sequential of supported layers), got {type(model).__name__}")
    if isinstance(model, nn.Sequential):
        layers: list[nn.Module] = []
        for child in model:
            layers.extend(flatten_layers(child))
        return layers
    if type(model) not in SUPPORTED_LAYERS:
        names = ", ".join(c.__name__ for c in SUPPORTED_LAYERS)
        raise TypeError(
            f"trace: unsupported layer {type(model).__name__} ({model!r}); the tracer handles nn.Sequential of {names}"
        )
    return [model]


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """Run a block with ``threads`` torch intra-op threads (``None``: unchanged), then restore."""
    saved = torch.get_num_threads()
    if threads is not None:
        if not isinstance(threads, numbers.Integral) or threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _f64(p: torch.Tensor | None) -> torch.Tensor | None:
    return None if p is None else p.detach().to(torch.float64)


def _affine_op(apply_linear: Callable[[torch.Tensor], torch.Tensor], bias_shape_fn) -> Callable:
    def op(X: torch.Tensor, tau: float):
        Y = apply_linear(X)
        b = bias_shape_fn(Y)
        if b is not None:
            Y[0] += b
        return Y, math.inf

    return op


def _linear_op(m: nn.Linear) -> Callable:
    W, b = _f64(m.weight), _f64(m.bias)
    return _affine_op(lambda X: F.linear(X, W), lambda Y: b)


def _conv_op(m: nn.Conv2d) -> Callable:
    W, b = _f64(m.weight), _f64(m.bias)
    if m.padding_mode != "zeros":
        pad = m._reversed_padding_repeated_twice

        def lin(X):
            return F.conv2d(F.pad(X, pad, mode=m.padding_mode), W, None, m.stride, 0, m.dilation, m.groups)
    else:

        def lin(X):
            return F.conv2d(X, W, None, m.stride, m.padding, m.dilation, m.groups)

    return _affine_op(lin, lambda Y: None if b is None else b.view(-1, *([1] * (Y.dim() - 2))))


def _batchnorm_op(m: nn.Module, index: int) -> Callable:
    if m.training:
        raise ValueError(f"trace: layer {index} ({type(m).__name__}) is in training mode; call model.eval() first")
    if m.running_mean is None or m.running_var is None:
        raise ValueError(
            f"trace: layer {index} ({type(m).__name__}) has no running statistics (track_running_stats=False): "
            "it normalises with batch statistics, which is not a function of one sample"
        )
    scale = 1.0 / torch.sqrt(_f64(m.running_var) + m.eps)
    if m.weight is not None:
        scale = scale * _f64(m.weight)
    shift = -_f64(m.running_mean) * scale
    if m.bias is not None:
        shift = shift + _f64(m.bias)

    def op(X: torch.Tensor, tau: float):
        shape = (-1,) + (1,) * (X.dim() - 2)  # channel axis is axis 1 of (2, C, ...)
        Y = X * scale.view(shape)
        Y[0] += shift.view(shape)
        return Y, math.inf

    return op


def _linear_module_op(m: nn.Module, index: int) -> Callable:
    # AvgPool2d and Flatten are linear without offset: apply them to values and slopes alike
    if isinstance(m, nn.Flatten) and m.start_dim == 0:
        raise ValueError(f"trace: layer {index} (Flatten) has start_dim=0, which would flatten the batch axis")

    def op(X: torch.Tensor, tau: float):
        return m(X), math.inf

    return op


def _identity_op(m: nn.Module, index: int) -> Callable:
    if isinstance(m, nn.Dropout) and m.training and m.p > 0:
        raise ValueError(f"trace: layer {index} (Dropout) is in training mode; call model.eval() first")

    def op(X: torch.Tensor, tau: float):
        return X, math.inf

    return op


def _relu_op(negative_slope: float) -> Callable:
    inf = torch.tensor(math.inf, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    leak = torch.tensor(negative_slope, dtype=torch.float64)  # float64: a Python float in where() is float32

    def op(X: torch.Tensor, tau: float):
        v, s = X[0], X[1]
        active = v + s * tau > 0  # activity just after the current point (ties go by slope)
        # next crossing: an active unit heading down, or an inactive one heading up
        heading = torch.where(active, s < 0, s > 0)
        nxt = torch.where(heading, -v / s, inf).min().item() if v.numel() else math.inf
        if negative_slope == 0.0:
            Y = X * active
        else:
            Y = X * torch.where(active, one, leak)
        return Y, nxt

    return op


def _maxpool_op(m: nn.MaxPool2d) -> Callable:
    k = nn.modules.utils._pair(m.kernel_size)
    st = nn.modules.utils._pair(m.stride if m.stride is not None else m.kernel_size)
    pd = nn.modules.utils._pair(m.padding)
    dl = nn.modules.utils._pair(m.dilation)
    # non-overlapping windows tiling the input: a reshape gathers them (no unfold, no padding)
    tiling = st == k and pd == (0, 0) and dl == (1, 1)
    inf = torch.tensor(math.inf, dtype=torch.float64)
    cache: dict = {}

    def geometry(H: int, W: int):
        if (H, W) not in cache:
            Ho, Wo = F.max_pool2d(torch.zeros(1, 1, H, W), k, st, pd, dl, m.ceil_mode).shape[-2:]
            # the padded extent that unfold needs for exactly Ho x Wo windows (ceil_mode adds some)
            need_h = (Ho - 1) * st[0] + dl[0] * (k[0] - 1) + 1
            need_w = (Wo - 1) * st[1] + dl[1] * (k[1] - 1) + 1
            cache[(H, W)] = (Ho, Wo, need_h - H - pd[0], need_w - W - pd[1])
        return cache[(H, W)]

    def windows(X: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(2, C, k*k, Ho*Wo): every window's elements, values first then slopes."""
        _, C, H, W = X.shape
        Ho, Wo, extra_h, extra_w = geometry(H, W)
        if tiling and extra_h <= 0 and extra_w <= 0:
            T = X[:, :, : Ho * k[0], : Wo * k[1]].reshape(2, C, Ho, k[0], Wo, k[1])
            return T.permute(0, 1, 3, 5, 2, 4).reshape(2, C, k[0] * k[1], Ho * Wo), Ho, Wo
        # values padded with -inf (never the max), slopes with 0; a negative extra crops
        Vp = F.pad(X[0:1], (pd[1], extra_w, pd[0], extra_h), value=-math.inf)
        Sp = F.pad(X[1:2], (pd[1], extra_w, pd[0], extra_h), value=0.0)
        P = torch.cat([Vp, Sp]).reshape(2 * C, 1, Vp.shape[-2], Vp.shape[-1])
        return F.unfold(P, k, dilation=dl, stride=st).reshape(2, C, k[0] * k[1], Ho * Wo), Ho, Wo

    def op(X: torch.Tensor, tau: float):
        squeeze = X.dim() == 3  # (2, H, W): an unbatched single-channel input
        if squeeze:
            X = X.unsqueeze(1)
        U, Ho, Wo = windows(X)
        V, S = U[0], U[1]
        idx = (V + S * tau).argmax(dim=1, keepdim=True)  # the argmax just after the current point
        vi = V.gather(1, idx)
        si = S.gather(1, idx)
        # only an element climbing faster than the argmax can overtake it
        nxt = torch.where(S > si, (vi - V) / (S - si), inf).min().item()
        Y = torch.stack([vi, si]).reshape(2, -1, Ho, Wo)
        return (Y.squeeze(1) if squeeze else Y), nxt

    return op


def _build_ops(layers: list[nn.Module]) -> list[Callable]:
    ops = []
    for i, m in enumerate(layers):
        if isinstance(m, nn.Linear):
            ops.append(_linear_op(m))
        elif isinstance(m, nn.Conv2d):
            ops.append(_conv_op(m))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            ops.append(_batchnorm_op(m, i))
        elif isinstance(m, (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten)):
            ops.append(_linear_module_op(m, i))
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            ops.append(_identity_op(m, i))
        elif isinstance(m, nn.ReLU):
            ops.append(_relu_op(0.0))
        elif isinstance(m, nn.LeakyReLU):
            ops.append(_relu_op(float(m.negative_slope)))
        elif isinstance(m, nn.MaxPool2d):
            ops.append(_maxpool_op(m))
        else:  # pragma: no cover - flatten_layers has already refused it
            raise TypeError(f"trace: unsupported layer {type(m).__name__}")
    return ops


def _as_sample(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        out = value.detach().to(torch.float64)
    else:
        try:
            out = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real tensor or array shaped like one input sample, got {type(value).__name__}") from exc
    if out.dim() == 0:
        raise ValueError(f"{name} must be shaped like one input sample ((features,) or (C, H, W)), got a scalar")
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or inf")
    return out


def _forward(ops: list[Callable], x: torch.Tensor, d: torch.Tensor, tau: float) -> tuple[torch.Tensor, float, int]:
    X = torch.stack([x, d])
    best, where = math.inf, -1
    for i, op in enumerate(ops):
        X, nxt = op(X, tau)
        if nxt < best:
            best, where = nxt, i
    return X.reshape(2, -1), best, where


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
        raise ValueError(f"directions must have the shape of x0 {tuple(x0.shape)}, got {tuple(d.shape)}")
    if x0.dim() < 2 or x0.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty batch of samples (n_lines, *sample_shape), got shape {tuple(x0.shape)}")
    _check_tolerances(merge_tol, jump_rtol, max_events)
    graph = compiled_graph(model)
    with _torch_threads(threads):
        lines = trace_pieces(graph, x0, d, merge_tol, jump_rtol, progress)
    traces = []
    for i, p in enumerate(lines):
        if len(p.t) > max_events:
            raise RuntimeError(f"trace: segment {i} has {len(p.t)} breakpoints, more than max_events={max_events}")
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
        raise ValueError(f"direction must have the shape of x0 {tuple(x0.shape)}, got {tuple(d.shape)}")
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


def trace_line_walk(
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

    The event walker, one forward pass per breakpoint (module docstring), kept as the reference
    implementation that :func:`trace_line` (the layer-wise engine) is tested against.  At each breakpoint ``t_k`` the slope of
    every output jumps by ``jumps[k]``; the exact SMP of output ``j`` is ``sum_k |jumps[k, j]|``.

    Parameters
    ----------
    model : nn.Module
        an ``nn.Sequential`` (nested ones allowed) of ``Linear``, ``Conv2d`` (any stride, padding,
        dilation, groups), ``ReLU``, ``LeakyReLU``, ``MaxPool2d``, ``AvgPool2d``, ``Flatten``,
        ``BatchNorm1d/2d`` (eval mode), ``Identity``, ``Dropout`` (eval mode); or one such layer.
        Any float dtype: the tracer copies the parameters to float64 and leaves the model untouched.
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
        safety limit on the number of breakpoints (``RuntimeError`` beyond it).
    threads : int or None
        torch intra-op threads during the walk (restored afterwards); ``None`` keeps the current
        setting.  Default 1: each step is a handful of tiny tensor operations, for which thread
        start-up costs far more than it saves (measured 15 us vs 8 ms per 2x32 matmul on a loaded
        2-core machine).
    progress : bool
        show a tqdm bar over t.

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
    """
    layers = flatten_layers(model)
    ops = _build_ops(layers)
    x0 = _as_sample("x0", x0)
    d = _as_sample("direction", direction)
    if x0.shape != d.shape:
        raise ValueError(f"direction must have the shape of x0 {tuple(x0.shape)}, got {tuple(d.shape)}")
    _check_tolerances(merge_tol, jump_rtol, max_events)
    with _torch_threads(threads):
        return _walk(ops, x0, d, merge_tol, jump_rtol, max_events, progress)


def _check_tolerances(merge_tol: float, jump_rtol: float, max_events: int) -> None:
    for name, val in (("merge_tol", merge_tol), ("jump_rtol", jump_rtol)):
        if not isinstance(val, numbers.Real) or not (0 <= val < 1e-3):
            raise ValueError(f"{name} must be a small non-negative number (< 1e-3), got {val!r}")
    if merge_tol <= 0:
        raise ValueError(f"merge_tol must be > 0 (it guarantees progress), got {merge_tol!r}")
    if not isinstance(max_events, numbers.Integral) or max_events < 0:
        raise ValueError(f"max_events must be a non-negative integer, got {max_events!r}")


def _walk(ops: list[Callable], x0: torch.Tensor, d: torch.Tensor, merge_tol: float, jump_rtol: float, max_events: int, progress: bool) -> Trace:
    events: list[float] = []
    sources: list[int] = []
    values: list[torch.Tensor] = []
    slopes: list[torch.Tensor] = []
    t = 0.0
    bar = tqdm(total=1.0, disable=not progress, desc="trace", unit="t", bar_format="{l_bar}{bar}| t={n:.3f} [{elapsed}]")
    with torch.no_grad():
        while True:
            out, step, where = _forward(ops, x0 + t * d, d, merge_tol)
            values.append(out[0].clone())
            slopes.append(out[1].clone())
            # every candidate step exceeds merge_tol by construction; max() only guards rounding
            t_next = t + max(step, merge_tol)
            if not t_next < 1.0:
                break
            if len(events) >= max_events:
                bar.close()
                raise RuntimeError(f"trace: more than max_events={max_events} breakpoints before t={t:.6g}")
            events.append(t_next)
            sources.append(where)
            bar.update(t_next - t)
            t = t_next
    bar.update(1.0 - t)
    bar.close()

    slope_arr = torch.stack(slopes).numpy()  # (n_events + 1, n_outputs)
    val_arr = torch.stack(values).numpy()  # values at 0 and at every event
    end = val_arr[-1] + slope_arr[-1] * (1.0 - (events[-1] if events else 0.0))
    val_arr = np.vstack([val_arr, end[None, :]])
    jumps = np.diff(slope_arr, axis=0)
    scale = np.abs(slope_arr).max(axis=0)
    jumps[np.abs(jumps) <= jump_rtol * scale] = 0.0
    t_arr = np.asarray(events, dtype=np.float64)
    return Trace(
        t=t_arr,
        jumps=jumps,
        smp=np.abs(jumps).sum(axis=0),
        n_regions=len(events) + 1,
        n_pieces=1 + np.count_nonzero(jumps, axis=0),
        knots=np.concatenate([[0.0], t_arr, [1.0]]),
        values=val_arr,
        slopes=slope_arr,
        layer=np.asarray(sources, dtype=np.int64),
    )


def evaluate(trace: Trace, t: Any) -> np.ndarray:
    """The traced outputs at parameters ``t`` (array), shape ``(len(t), n_outputs)``.

    Linear interpolation between the knots, which is the network's output up to rounding.
    """
    t = np.asarray(t, dtype=np.float64)
    return np.stack([np.interp(t, trace.knots, trace.values[:, j]) for j in range(trace.values.shape[1])], axis=-1)


def activation_patterns(model: nn.Module, x: Any, *, threads: int | None = 1) -> np.ndarray:
    """The activity pattern of every input in the batch ``x`` as one integer id per input.

    The pattern is the tuple of ReLU/LeakyReLU activities (input > 0) and max-pool argmax indices
    of every unit; inputs with equal ids lie in the same linear region of the network.  Used to
    colour the input plane by region.  ``x`` is batched: ``(n, ...)``; ids are ``0 .. n_patterns-1``.
    """
    layers = [copy.deepcopy(m).to(torch.float64) for m in flatten_layers(model)]
    h = x.detach().to(torch.float64) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    feats: list[torch.Tensor] = []
    with torch.no_grad(), _torch_threads(threads):
        for m in layers:
            if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
                feats.append((h > 0).reshape(h.shape[0], -1).to(torch.int64))
            elif isinstance(m, nn.MaxPool2d):
                _, idx = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True)
                feats.append(idx.reshape(h.shape[0], -1))
            h = m(h)
    if not feats:
        return np.zeros(h.shape[0], dtype=np.int64)
    code = np.ascontiguousarray(torch.cat(feats, dim=1).numpy().astype(np.int32))
    # one opaque byte string per row: np.unique on it is much faster than on rows (axis=0)
    rows = code.view(np.dtype((np.void, code.dtype.itemsize * code.shape[1]))).reshape(-1)
    _, ids = np.unique(rows, return_inverse=True)
    return ids.reshape(-1)
