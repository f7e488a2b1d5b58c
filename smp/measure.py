"""Measurement along paths: run torch modules along a path (the batch axis) and measure SMP.

The batch axis *is* the path: feeding ``x(t_0 .. t_{N-1})`` as one batch through real torch modules
turns every unit of every layer into a 1-D signal along t.  Everything runs in float64.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from ._exact_smp import (
    FrozenLayer,
    LayerSMP,
    PathLayerSMP,
    exact_layer_smp,
    exact_path_smp,
    iter_frozen,
    propagate_frozen,
)
from ._stack_measurement import stack_measurement, summarise_networks
from ._validation import _as_path, check_int, check_real
from .feature import smp as _smp

__all__ = [
    "along_path",
    "layer_smp",
    "UnitStatistics",
    "unit_statistics",
    "mean_sem",
    "stack_measurement",
    "summarise_networks",
    # exact per-layer SMP by frozen activation patterns (smp._exact_smp)
    "exact_layer_smp",
    "exact_path_smp",
    "iter_frozen",
    "propagate_frozen",
    "FrozenLayer",
    "LayerSMP",
    "PathLayerSMP",
]


def along_path(
    network: nn.Module,
    path: Any,
    *,
    batch_size: int = 4096,
    progress: bool = False,
    keep: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Outputs of every child of ``network`` (or of the module itself) along ``path``.

    Parameters
    ----------
    network : nn.Module
        an ``nn.Sequential`` (every child's output is returned) or any module (its
        output).  Its parameters must be float64: the path is converted to float64.
    path : ndarray or torch.Tensor, shape (N, ...)
        samples of the input path, floating point, N >= 3; N is the batch axis.
    batch_size : int
        samples per forward pass (memory bound, the result is the same).
    progress : bool
        show a tqdm progress bar over the batches.
    keep : sequence of int or None
        indices of the children whose outputs are returned (default: all); memory is
        only spent on these (``keep=[-1]``: the network's output on a long path).

    Returns
    -------
    list of ndarray
        float64 arrays of shape (N, units), one per kept child (each output flattened
        past the batch axis), each unit a signal along t.

    Example
    -------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    >>> path = np.linspace(0.0, 1.0, 101)[:, None] * np.ones(3)  # 101 points of a line
    >>> [out.shape for out in along_path(net, path)]
    [(101, 5), (101, 5), (101, 2)]
    >>> [out.shape for out in along_path(net, path, keep=[-1])]
    [(101, 2)]
    """
    path = _as_path(path)
    check_int("batch_size", batch_size)
    children = list(network) if isinstance(network, nn.Sequential) else [network]
    if keep is None:
        kept = list(range(len(children)))
    else:
        try:
            kept = [range(len(children))[i] for i in keep]
        except (IndexError, TypeError) as err:
            raise ValueError(
                f"keep must list child indices in [-{len(children)}, {len(children)}), got {keep!r}"
            ) from err
    chunks: dict[int, list[torch.Tensor]] = {i: [] for i in kept}
    starts = range(0, path.shape[0], batch_size)
    with torch.no_grad():
        for start in tqdm(
            starts, disable=not progress, desc="forward along path", leave=False
        ):
            h = path[start : start + batch_size]
            for i, child in enumerate(children):
                h = child(h)
                if i in chunks:
                    chunks[i].append(h.reshape(h.shape[0], -1))
    # pop: each child's chunks are freed as soon as they are joined (peak memory of a chapter)
    return [torch.cat(chunks.pop(i)).numpy() for i in kept]


def layer_smp(
    network: nn.Module,
    path: Any,
    dt: float,
    *,
    batch_size: int = 4096,
    progress: bool = False,
    **detector_options,
) -> list[np.ndarray]:
    """SMP of every unit of every child's output along ``path`` (list of arrays of shape (units,)).

    ``dt`` is the path's step in t, so each value is a total absolute slope jump (units per unit t).
    One child at a time over the whole path: only one layer's outputs are held in memory (a
    40000-sample path through a width-256 layer is 80 MB in float64).

    Parameters
    ----------
    network : nn.Module
        an ``nn.Sequential`` (every child is measured) or any module (its output);
        float64 parameters.
    path : ndarray or torch.Tensor, shape (N, ...)
        samples of the input path, floating point, N >= 3; N is the batch axis.
    dt : float
        the path's grid step in t.
    batch_size : int
        samples per forward pass (memory only).
    progress : bool
        tqdm progress bar over the children.
    **detector_options
        passed to :func:`smp.smp` (``kappa``, ``window``, ``floor_eps``, ``warn``).

    Returns
    -------
    list of ndarray
        one float64 array of shape (units,) per child: the SMP of each of its units.

    Example
    -------
    A ReLU of the path ``(t, -t)``, t from -1 to 1: each unit bends once, by a slope
    jump of 1.

    >>> from torch import nn
    >>> t = np.linspace(-1.0, 1.0, 401)
    >>> net = nn.Sequential(nn.Identity(), nn.ReLU())
    >>> path = np.stack([t, -t], axis=1)
    >>> [np.round(v, 6) for v in layer_smp(net, path, dt=t[1] - t[0])]
    [array([0., 0.]), array([1., 1.])]
    """
    path = _as_path(path)
    check_int("batch_size", batch_size)
    children = list(network) if isinstance(network, nn.Sequential) else [network]
    out, h = [], path
    with torch.no_grad():
        for child in tqdm(children, disable=not progress, desc="layers", leave=False):
            h = torch.cat(
                [child(h[s : s + batch_size]) for s in range(0, h.shape[0], batch_size)]
            )
            out.append(
                _smp(h.reshape(h.shape[0], -1).numpy(), dt, axis=0, **detector_options)
            )
    return out


class UnitStatistics(NamedTuple):
    """Per-unit statistics over time along one path: ``mean`` (mu), ``std`` (sigma), ``dstd`` (sigma').

    Attributes
    ----------
    mean, std, dstd : ndarray, shape (units,)
        the time average of each unit, its standard deviation, and the standard
        deviation of its slope (units per unit t).

    Example
    -------
    >>> stats = unit_statistics(np.array([[0.0], [1.0], [2.0]]), dt=1.0)
    >>> stats._fields, float(stats.dstd[0])  # a straight line: its slope does not vary
    (('mean', 'std', 'dstd'), 0.0)
    """

    mean: np.ndarray
    std: np.ndarray
    dstd: np.ndarray


def unit_statistics(signals: np.ndarray, dt: float) -> UnitStatistics:
    """Time averages along axis 0 of (N, units) signals: ``mu``, ``sigma`` and ``sigma'``.

    ``sigma'`` is the root mean square of the centred first difference ``(y[n+1]-y[n])/dt`` (its
    error is ``O(dt * |y''| / |y'|)``, and kinks affect it only at the samples they fall in).

    Parameters
    ----------
    signals : array_like, shape (N, ...)
        N >= 3 samples along t of any number of units (converted to float64).
    dt : float
        the grid step in t, positive.

    Returns
    -------
    UnitStatistics
        ``mean``, ``std`` and ``dstd``, each shaped like ``signals`` without axis 0.

    Example
    -------
    One period of ``sin(2 pi t)``: sigma = 1/sqrt(2), sigma' = 2 pi / sqrt(2) = 4.443.

    >>> t = np.linspace(0.0, 1.0, 1001)
    >>> stats = unit_statistics(np.sin(2 * np.pi * t)[:, None], dt=t[1])
    >>> bool(abs(stats.mean[0]) < 1e-12), np.round([stats.std[0], stats.dstd[0]], 3)
    (True, array([0.707, 4.443]))
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim < 1 or signals.shape[0] < 3:
        raise ValueError(f"signals must have shape (N >= 3, ...), got {signals.shape}")
    check_real("dt", dt, minimum=0)
    slope = np.diff(signals, axis=0) / dt
    return UnitStatistics(signals.mean(axis=0), signals.std(axis=0), slope.std(axis=0))


def mean_sem(
    values: Sequence[float] | np.ndarray, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (``std(ddof=1)/sqrt(n)``) along ``axis``; needs n >= 2.

    Parameters
    ----------
    values : array_like
        the measurements, n >= 2 of them along ``axis`` (converted to float64).
    axis : int
        the axis of repeats.

    Returns
    -------
    (ndarray, ndarray)
        the mean and its standard error, each shaped like ``values`` without ``axis``.

    Example
    -------
    >>> mean, sem = mean_sem([1.0, 2.0, 3.0, 4.0])  # std(ddof=1) = 1.291, over sqrt(4)
    >>> float(mean), round(float(sem), 6)
    (2.5, 0.645497)
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n < 2:
        raise ValueError(
            f"mean_sem needs at least 2 values along axis {axis} for a standard error, got {n}"
        )
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / np.sqrt(n)
