"""What the tracer's two implementations share: the result type, tolerances, supported layers and
input checks (re-exported by :mod:`smp.trace`)."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

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


def flatten_layers(model: nn.Module) -> list[nn.Module]:
    """The leaf layers of ``model`` in order (nested ``nn.Sequential`` unrolled).

    Raises ``TypeError`` naming the first layer that is not in :data:`SUPPORTED_LAYERS`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module (an nn.Sequential of supported layers), got {type(model).__name__}"
        )
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


def _as_sample(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        out = value.detach().to(torch.float64)
    else:
        try:
            out = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be a real tensor or array shaped like one input sample, got {type(value).__name__}"
            ) from exc
    if out.dim() == 0:
        raise ValueError(
            f"{name} must be shaped like one input sample ((features,) or (C, H, W)), got a scalar"
        )
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or inf")
    return out


def _check_tolerances(merge_tol: float, jump_rtol: float, max_events: int) -> None:
    for name, val in (("merge_tol", merge_tol), ("jump_rtol", jump_rtol)):
        if not isinstance(val, numbers.Real) or not (0 <= val < 1e-3):
            raise ValueError(
                f"{name} must be a small non-negative number (< 1e-3), got {val!r}"
            )
    if merge_tol <= 0:
        raise ValueError(
            f"merge_tol must be > 0 (it guarantees progress), got {merge_tol!r}"
        )
    if not isinstance(max_events, numbers.Integral) or max_events < 0:
        raise ValueError(
            f"max_events must be a non-negative integer, got {max_events!r}"
        )
