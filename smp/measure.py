"""Measurement along paths: run torch modules along a path (the batch axis) and measure SMP.

The batch axis *is* the path: feeding ``x(t_0 .. t_{N-1})`` as one batch through real torch modules
turns every unit of every layer into a 1-D signal along t.  Everything runs in float64.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
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
from ._validation import check_int, check_real
from .feature import DenseKinksWarning
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


def _as_path(path: Any) -> torch.Tensor:
    if isinstance(path, np.ndarray):
        path = torch.from_numpy(path)
    if not isinstance(path, torch.Tensor):
        raise TypeError(
            f"path must be a numpy array or torch tensor of shape (N, ...), got {type(path).__name__}"
        )
    if path.ndim < 1 or path.shape[0] < 3:
        raise ValueError(
            f"path needs at least 3 samples along its first (batch) axis, got shape {tuple(path.shape)}"
        )
    if not torch.is_floating_point(path):
        raise TypeError(f"path must be floating point, got dtype {path.dtype}")
    return path.to(torch.float64)


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


def stack_measurement(
    networks: Sequence[nn.Module],
    path: Any,
    dt: float,
    *,
    max_units: int | None = None,
    seed: int = 0,
    batch_size: int = 8192,
    progress: bool = False,
    per_network: bool = False,
    **detector_options,
):
    """Per-layer total SMP and statistics of real networks along one path, over an ensemble of networks.

    Every child of each ``nn.Sequential`` in ``networks`` (e.g. ``Linear, ReLU, Linear, ...`` or
    ``Conv2d, ReLU, MaxPool2d, ...``) is run along ``path`` (the batch axis is t); its output units
    become signals along t.  For every layer and network this measures

    - ``smp``: the layer's total SMP, the sum over all its units of ``smp.smp(y, dt)`` (units of the
      activation per unit t).  With ``max_units`` only a seeded random subset of that many units is
      measured and the sum is estimated as ``units * mean(subset)`` (unbiased; it saves time on wide
      layers, at the cost of a larger standard error);
    - ``ms`` and ``dms``: mean square of the activation and of the slope ``(y[n+1] - y[n]) / dt``
      over units and t (not centred, because a ReLU output has a positive mean);
    - ``p_positive``: the fraction of (unit, t) with a positive activation (P(active) after a ReLU);
    - ``dense_warning``: whether :class:`smp.DenseKinksWarning` was raised for the layer (kinks too
      dense for the grid: increase the number of samples).

    Over the networks the table reports means and standard errors (``std(ddof=1) / sqrt(n)``), and
    ``rms = sqrt(mean over networks of ms)``: the root of the ensemble mean square, which is what the
    mean-field models predict (the mean of per-network rms is lower by Jensen's inequality, by 2-4 %
    on the CNN of chapter 6).  Its standard error is the delta method's ``sem(ms) / (2 rms)``;
    ``drms`` likewise.

    Parameters
    ----------
    networks : two or more networks of the same architecture (e.g. different seeds); the
        standard errors are across them.  One network is enough with ``per_network=True``.
    path : (N, ...) samples of the input path, N the batch axis.
    dt : the path's grid step in t.
    max_units : measure SMP on at most this many units per layer (None: all).
    seed : seed of the unit subsets (drawn network after network from one generator).
    batch_size : samples per forward pass (memory only).
    progress : tqdm progress bar over networks and layers.
    per_network : return one row per (network, layer) with ``smp, ms, dms, p_positive,
        dense_warning`` instead of the summary (e.g. to pool networks measured on separate paths
        with :func:`summarise_networks`).
    detector_options : passed to :func:`smp.smp` (``kappa``, ``window``, ``floor_eps``).

    Returns
    -------
    pandas.DataFrame, one row per layer: ``layer`` (1-based), ``kind`` (the module's class name in
    lower case), ``units``, ``n_networks``, and ``smp, smp_sem, rms, rms_sem, drms, drms_sem,
    p_positive, p_positive_sem`` (ensemble estimates and standard errors over networks),
    ``dense_warning`` (fraction of networks that raised the warning).

    Example
    -------
    >>> from smp import networks, signals
    >>> _, dt, path = signals.great_circle((4,), 2000, seed=0)
    >>> nets = [networks.dense_net(4, 8, 2, seed=s) for s in range(3)]
    >>> table = stack_measurement(nets, path, dt)
    >>> list(table["kind"]), int(table["n_networks"].iloc[0])
    (['linear', 'relu', 'linear', 'relu'], 3)
    """
    networks = list(networks)
    if len(networks) < (1 if per_network else 2):
        raise ValueError(
            f"networks must hold at least 2 networks for a standard error, got {len(networks)}"
        )
    if not all(isinstance(net, nn.Sequential) for net in networks):
        raise TypeError(
            "networks must be nn.Sequential modules (each child is one measured layer)"
        )
    n_layers = len(networks[0])
    if any(len(net) != n_layers for net in networks):
        raise ValueError("all networks must have the same number of children (layers)")
    if max_units is not None:
        check_int("max_units", max_units)
    check_int("batch_size", batch_size)
    check_real("dt", dt, minimum=0)
    path = _as_path(path)
    keys = ("smp", "ms", "dms", "p_positive", "dense_warning")
    values = {key: np.zeros((len(networks), n_layers)) for key in keys}
    units = np.zeros(n_layers, dtype=int)
    kinds = [type(child).__name__.lower() for child in networks[0]]
    rng = np.random.default_rng(seed)
    bar = tqdm(
        total=len(networks) * n_layers, disable=not progress, desc="layers", leave=False
    )
    for i, net in enumerate(networks):
        h = path
        for j, child in enumerate(net):
            with torch.no_grad():
                # one child at a time over the whole path: only two layers are ever held in memory
                h = torch.cat(
                    [
                        child(h[s : s + batch_size])
                        for s in range(0, h.shape[0], batch_size)
                    ]
                )
            y = h.reshape(h.shape[0], -1).numpy()
            units[j] = y.shape[1]
            flat = y.ravel()
            values["ms"][i, j] = np.dot(flat, flat) / flat.size  # BLAS: no squared copy
            slope = np.diff(y, axis=0).ravel() / dt
            values["dms"][i, j] = np.dot(slope, slope) / slope.size
            values["p_positive"][i, j] = np.count_nonzero(flat > 0) / flat.size
            chosen = y
            if max_units is not None and y.shape[1] > max_units:
                chosen = y[
                    :, np.sort(rng.choice(y.shape[1], size=max_units, replace=False))
                ]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DenseKinksWarning)
                per_unit = _smp(chosen, dt, axis=0, **detector_options)
            values["dense_warning"][i, j] = any(
                issubclass(w.category, DenseKinksWarning) for w in caught
            )
            values["smp"][i, j] = y.shape[1] * per_unit.mean()
            bar.update()
    bar.close()
    rows = pd.DataFrame(
        {
            "network": np.repeat(np.arange(len(networks)), n_layers),
            "layer": np.tile(np.arange(1, n_layers + 1), len(networks)),
            "kind": kinds * len(networks),
            "units": np.tile(units, len(networks)),
            **{key: values[key].ravel() for key in keys},
        }
    )
    return rows if per_network else summarise_networks(rows)


def summarise_networks(rows: pd.DataFrame) -> pd.DataFrame:
    """Pool per-network rows of :func:`stack_measurement` (``per_network=True``) into its summary.

    Means and standard errors over networks for ``smp`` and ``p_positive``; ``rms = sqrt(mean ms)``
    with the delta-method error ``sem(ms) / (2 rms)`` (``drms`` from ``dms`` alike);
    ``dense_warning`` is the fraction of networks that warned.  Needs at least 2 networks.
    """
    groups = rows.groupby("layer", sort=True)
    first = groups.first()
    n = groups.size().to_numpy()
    if n.min() < 2:
        raise ValueError(
            f"rows must hold at least 2 networks per layer for a standard error, got {n.min()}"
        )
    table = {
        "layer": first.index.to_numpy(),
        "kind": first["kind"].to_numpy(),
        "units": first["units"].to_numpy(),
        "n_networks": n,
    }

    def mean_and_sem(key):
        return groups[key].mean().to_numpy(), (
            groups[key].std(ddof=1) / np.sqrt(n)
        ).to_numpy()

    table["smp"], table["smp_sem"] = mean_and_sem("smp")
    for name, key in (("rms", "ms"), ("drms", "dms")):
        mean_square, sem = mean_and_sem(key)
        table[name] = np.sqrt(mean_square)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[name + "_sem"] = np.where(
                mean_square > 0, sem / (2 * np.sqrt(mean_square)), 0.0
            )
    table["p_positive"], table["p_positive_sem"] = mean_and_sem("p_positive")
    table["dense_warning"] = groups["dense_warning"].mean().to_numpy()
    return pd.DataFrame(table)
