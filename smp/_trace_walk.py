"""The event walker: the exact tracer's reference implementation, one forward pass per breakpoint.

:func:`smp.trace.trace_line` uses the layer-wise engine (``smp._trace_pieces``); this walker is
kept, re-exported as :func:`smp.trace.trace_line_walk`, as an independent implementation the
tests compare it with.  The method is described in :mod:`smp.trace`'s docstring.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from ._threads import torch_threads
from ._trace_common import (
    DEFAULT_JUMP_RTOL,
    DEFAULT_MERGE_TOL,
    Trace,
    _as_sample,
    _check_tolerances,
    flatten_layers,
)

__all__ = ["trace_line_walk"]


def _f64(p: torch.Tensor | None) -> torch.Tensor | None:
    return None if p is None else p.detach().to(torch.float64)


def _affine_op(
    apply_linear: Callable[[torch.Tensor], torch.Tensor], bias_shape_fn
) -> Callable:
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
            return F.conv2d(
                F.pad(X, pad, mode=m.padding_mode),
                W,
                None,
                m.stride,
                0,
                m.dilation,
                m.groups,
            )
    else:

        def lin(X):
            return F.conv2d(X, W, None, m.stride, m.padding, m.dilation, m.groups)

    return _affine_op(
        lin, lambda Y: None if b is None else b.view(-1, *([1] * (Y.dim() - 2)))
    )


def _batchnorm_op(m: nn.Module, index: int) -> Callable:
    if m.training:
        raise ValueError(
            f"trace: layer {index} ({type(m).__name__}) is in training mode; call model.eval() first"
        )
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
        raise ValueError(
            f"trace: layer {index} (Flatten) has start_dim=0, which would flatten the batch axis"
        )

    def op(X: torch.Tensor, tau: float):
        return m(X), math.inf

    return op


def _identity_op(m: nn.Module, index: int) -> Callable:
    if isinstance(m, nn.Dropout) and m.training and m.p > 0:
        raise ValueError(
            f"trace: layer {index} (Dropout) is in training mode; call model.eval() first"
        )

    def op(X: torch.Tensor, tau: float):
        return X, math.inf

    return op


def _relu_op(negative_slope: float) -> Callable:
    inf = torch.tensor(math.inf, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    leak = torch.tensor(
        negative_slope, dtype=torch.float64
    )  # float64: a Python float in where() is float32

    def op(X: torch.Tensor, tau: float):
        v, s = X[0], X[1]
        active = (
            v + s * tau > 0
        )  # activity just after the current point (ties go by slope)
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
            Ho, Wo = F.max_pool2d(
                torch.zeros(1, 1, H, W), k, st, pd, dl, m.ceil_mode
            ).shape[-2:]
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
            return (
                T.permute(0, 1, 3, 5, 2, 4).reshape(2, C, k[0] * k[1], Ho * Wo),
                Ho,
                Wo,
            )
        # values padded with -inf (never the max), slopes with 0; a negative extra crops
        Vp = F.pad(X[0:1], (pd[1], extra_w, pd[0], extra_h), value=-math.inf)
        Sp = F.pad(X[1:2], (pd[1], extra_w, pd[0], extra_h), value=0.0)
        P = torch.cat([Vp, Sp]).reshape(2 * C, 1, Vp.shape[-2], Vp.shape[-1])
        return (
            F.unfold(P, k, dilation=dl, stride=st).reshape(2, C, k[0] * k[1], Ho * Wo),
            Ho,
            Wo,
        )

    def op(X: torch.Tensor, tau: float):
        squeeze = X.dim() == 3  # (2, H, W): an unbatched single-channel input
        if squeeze:
            X = X.unsqueeze(1)
        U, Ho, Wo = windows(X)
        V, S = U[0], U[1]
        idx = (V + S * tau).argmax(
            dim=1, keepdim=True
        )  # the argmax just after the current point
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


def _forward(
    ops: list[Callable], x: torch.Tensor, d: torch.Tensor, tau: float
) -> tuple[torch.Tensor, float, int]:
    X = torch.stack([x, d])
    best, where = math.inf, -1
    for i, op in enumerate(ops):
        X, nxt = op(X, tau)
        if nxt < best:
            best, where = nxt, i
    return X.reshape(2, -1), best, where


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
        raise ValueError(
            f"direction must have the shape of x0 {tuple(x0.shape)}, got {tuple(d.shape)}"
        )
    _check_tolerances(merge_tol, jump_rtol, max_events)
    with torch_threads(threads):
        return _walk(ops, x0, d, merge_tol, jump_rtol, max_events, progress)


def _walk(
    ops: list[Callable],
    x0: torch.Tensor,
    d: torch.Tensor,
    merge_tol: float,
    jump_rtol: float,
    max_events: int,
    progress: bool,
) -> Trace:
    events: list[float] = []
    sources: list[int] = []
    values: list[torch.Tensor] = []
    slopes: list[torch.Tensor] = []
    t = 0.0
    bar = tqdm(
        total=1.0,
        disable=not progress,
        desc="trace",
        unit="t",
        bar_format="{l_bar}{bar}| t={n:.3f} [{elapsed}]",
    )
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
                raise RuntimeError(
                    f"trace: more than max_events={max_events} breakpoints before t={t:.6g}"
                )
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
