"""Monte-Carlo measurement: run torch modules along a path (the batch axis) and measure SMP.

The batch axis *is* the path: feeding ``x(t_0 .. t_{N-1})`` as one batch through real torch modules
turns every unit of every layer into a 1-D signal along t.  Everything runs in float64.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .feature import smp as _smp

__all__ = ["along_path", "layer_smp", "unit_statistics", "UnitStatistics", "mean_sem"]


def _as_path(path: Any) -> torch.Tensor:
    if isinstance(path, np.ndarray):
        path = torch.from_numpy(path)
    if not isinstance(path, torch.Tensor):
        raise TypeError(f"path must be a numpy array or torch tensor of shape (N, ...), got {type(path).__name__}")
    if path.ndim < 1 or path.shape[0] < 3:
        raise ValueError(f"path needs at least 3 samples along its first (batch) axis, got shape {tuple(path.shape)}")
    if not torch.is_floating_point(path):
        raise TypeError(f"path must be floating point, got dtype {path.dtype}")
    return path.to(torch.float64)


def along_path(
    network: nn.Module,
    path: Any,
    *,
    batch_size: int = 4096,
    progress: bool = False,
) -> list[np.ndarray]:
    """Outputs of every child of ``network`` (or of the module itself) along ``path``.

    Parameters
    ----------
    network : an ``nn.Sequential`` (every child's output is returned) or any module (its output).
    path : (N, ...) samples of the input path; N is the batch axis.
    batch_size : samples per forward pass (memory bound, the result is the same).
    progress : show a tqdm progress bar over the batches.

    Returns
    -------
    list of float64 arrays of shape (N, units), one per child, each unit a signal along t.
    """
    path = _as_path(path)
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    children = list(network) if isinstance(network, nn.Sequential) else [network]
    chunks: list[list[torch.Tensor]] = [[] for _ in children]
    starts = range(0, path.shape[0], batch_size)
    with torch.no_grad():
        for start in tqdm(starts, disable=not progress, desc="forward along path", leave=False):
            h = path[start : start + batch_size]
            for i, child in enumerate(children):
                h = child(h)
                chunks[i].append(h.reshape(h.shape[0], -1))
    return [torch.cat(c).numpy() for c in chunks]


def layer_smp(
    network: nn.Module, path: Any, dt: float, *, batch_size: int = 4096, progress: bool = False, **detector_options
) -> list[np.ndarray]:
    """SMP of every unit of every child's output along ``path`` (list of arrays of shape (units,)).

    ``dt`` is the path's step in t, so each value is a total absolute slope jump (units per unit t).
    """
    return [
        _smp(signals, dt, axis=0, **detector_options)
        for signals in along_path(network, path, batch_size=batch_size, progress=progress)
    ]


class UnitStatistics(NamedTuple):
    """Per-unit statistics over time along one path: ``mean`` (mu), ``std`` (sigma), ``dstd`` (sigma')."""

    mean: np.ndarray
    std: np.ndarray
    dstd: np.ndarray


def unit_statistics(signals: np.ndarray, dt: float) -> UnitStatistics:
    """Time averages along axis 0 of (N, units) signals: ``mu``, ``sigma`` and ``sigma'``.

    ``sigma'`` is the root mean square of the centred first difference ``(y[n+1]-y[n])/dt`` (its
    error is ``O(dt * |y''| / |y'|)``, and kinks affect it only at the samples they fall in).
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim < 1 or signals.shape[0] < 3:
        raise ValueError(f"signals must have shape (N >= 3, ...), got {signals.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt!r}")
    slope = np.diff(signals, axis=0) / dt
    return UnitStatistics(signals.mean(axis=0), signals.std(axis=0), slope.std(axis=0))


def mean_sem(values: Sequence[float] | np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (``std(ddof=1)/sqrt(n)``) along ``axis``; needs n >= 2."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n < 2:
        raise ValueError(f"mean_sem needs at least 2 values along axis {axis} for a standard error, got {n}")
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / np.sqrt(n)
