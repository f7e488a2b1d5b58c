"""Per-layer measurement of a stack of real networks along one path (chapter 6 and its tests),
re-exported by :mod:`smp.measure`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from ._validation import _as_path, check_int, check_real
from .feature import DenseKinksWarning
from .feature import smp as _smp

__all__ = [
    "stack_measurement",
    "summarise_networks",
]


def stack_measurement(
    networks: Sequence[nn.Module],
    path: Any,
    dt: float,
    *,
    max_units: int | None = None,
    seed: int | np.random.Generator = 0,
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
    seed : seed of the unit subsets (drawn network after network from one generator), or that
        generator itself (advanced in place; a unit of a parallel sweep measuring one network of
        an ensemble passes the generator as the ensemble's earlier networks left it).
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
