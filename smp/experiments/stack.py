"""Chapter 6, stacked blocks: the dense and CNN stack models against per-layer measurement.

Dense ReLU stacks over gains and widths (:func:`dense_stack_sweep`), Conv-ReLU-MaxPool stacks
(:func:`conv_stack_sweep`) and the convergence of the measurement in the number of samples
(:func:`stack_resolution_sweep`); :func:`write_tables` stores them through :mod:`smp.data`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .. import data, networks, signals
from ..measure import stack_measurement
from ..models import conv_stack, dense_stack

__all__ = ["dense_stack_sweep", "conv_stack_sweep", "stack_resolution_sweep", "write_tables"]


def dense_stack_sweep(
    *,
    gains: Sequence[float] = (0.8, 1.0, 1.2),
    widths: Sequence[int] = (256,),
    depth: int = 8,
    in_features: int = 64,
    n_networks: int = 6,
    n_samples: int = 80000,
    max_units: int | None = 64,
    seed: int = 0,
    progress: bool = False,
):
    """Model against measurement for dense ReLU stacks on a great circle, every layer, every (gain, width).

    Networks :func:`smp.networks.dense_net` (seeds ``seed .. seed + n_networks - 1``) are run along
    :func:`smp.signals.great_circle` ``((in_features,), n_samples, seed=seed)`` with
    :func:`stack_measurement`; the model is :func:`smp.models.dense_stack` for the same
    architecture (input coordinates of unit second moment, path length 2 pi).

    Returns a pandas.DataFrame: the columns of :func:`stack_measurement` plus ``gain``, ``width``,
    ``model`` (predicted total SMP), ``model_rms``, ``model_drms`` and ``error`` (model / measured - 1).
    """
    _, dt, path = signals.great_circle((in_features,), n_samples, seed=seed)
    tables = []
    for width in widths:
        for gain in gains:
            nets = [
                networks.dense_net(in_features, width, depth, weight_gain=gain, seed=seed + i)
                for i in range(n_networks)
            ]
            table = stack_measurement(nets, path, dt, max_units=max_units, seed=seed, progress=progress)
            model = dense_stack(in_features, width, depth, weight_gain=gain)
            table.insert(0, "n_networks", n_networks)
            table.insert(0, "width", width)
            table.insert(0, "gain", gain)
            table["model"] = model["smp"].to_numpy()
            table["model_rms"] = model["rms"].to_numpy()
            table["model_drms"] = model["drms"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                table["error"] = table["model"] / table["smp"] - 1
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def conv_stack_sweep(
    *,
    channels: Sequence[int] = (1, 8, 16, 16),
    input_size: int = 16,
    gains: Sequence[float] = (1.0,),
    n_networks: int = 24,
    n_samples: int = 40000,
    max_units: int | None = 128,
    model_draws: int = 20000,
    seed: int = 0,
    progress: bool = False,
):
    """Model against measurement for Conv-ReLU-MaxPool stacks on a great circle in image space.

    Networks :func:`smp.networks.conv_net` ``(channels)`` without a head (seeds ``seed ..``) run
    along :func:`smp.signals.great_circle` ``((channels[0], input_size, input_size), n_samples)``;
    the model is :func:`smp.models.conv_stack` with correlated windows (``model``) and with
    i.i.d. windows (``model_iid``), both with ``model_draws`` Monte Carlo draws.

    Returns a pandas.DataFrame: the columns of :func:`stack_measurement` plus ``gain``, ``block``,
    ``model``, ``model_iid``, ``model_rms``, ``model_drms``, ``model_p_active``, ``window_rho``
    and ``error`` (model / measured - 1).
    """
    shape = (channels[0], input_size, input_size)
    _, dt, path = signals.great_circle(shape, n_samples, seed=seed)
    tables = []
    for gain in gains:
        nets = [networks.conv_net(channels, weight_gain=gain, seed=seed + i) for i in range(n_networks)]
        table = stack_measurement(nets, path, dt, max_units=max_units, seed=seed, progress=progress)
        model = conv_stack(shape, channels, weight_gain=gain, n_draws=model_draws, seed=seed)
        iid = conv_stack(shape, channels, weight_gain=gain, n_draws=model_draws, seed=seed, correlated_windows=False)
        table.insert(0, "n_networks", n_networks)
        table.insert(0, "gain", gain)
        table.insert(2, "block", model["block"].to_numpy())
        table["model"] = model["smp"].to_numpy()
        table["model_iid"] = iid["smp"].to_numpy()
        table["model_rms"] = model["rms"].to_numpy()
        table["model_drms"] = model["drms"].to_numpy()
        table["model_p_active"] = model["p_active"].to_numpy()
        table["window_rho"] = model["window_rho"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            table["error"] = table["model"] / table["smp"] - 1
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def stack_resolution_sweep(
    *,
    architecture: str = "dense",
    n_samples: Sequence[int] = (20000, 40000, 80000, 160000),
    weight_gain: float = 1.2,
    n_networks: int = 2,
    max_units: int | None = 64,
    seed: int = 0,
    progress: bool = False,
):
    """Convergence of the measured per-layer SMP in the number of samples N along the great circle.

    The same networks (``dense``: :func:`smp.networks.dense_net` (64, 256, 8); ``cnn``:
    :func:`smp.networks.conv_net` (1, 8, 16, 16) on 16 x 16 images) and the same measured units are
    run at every N; ``relative`` is the SMP at N over the SMP at the largest N, minus 1 (a deficit:
    kinks closer than a few samples merge or cancel in the second difference).

    Returns a pandas.DataFrame with ``architecture, gain, n_samples, layer, kind, smp, relative,
    dense_warning``.
    """
    if architecture == "dense":
        nets = [networks.dense_net(64, 256, 8, weight_gain=weight_gain, seed=seed + i) for i in range(n_networks)]
        shape = (64,)
    elif architecture == "cnn":
        nets = [networks.conv_net((1, 8, 16, 16), weight_gain=weight_gain, seed=seed + i) for i in range(n_networks)]
        shape = (1, 16, 16)
    else:
        raise ValueError(f"architecture must be 'dense' or 'cnn', got {architecture!r}")
    tables = []
    for n in sorted(n_samples):
        _, dt, path = signals.great_circle(shape, n, seed=seed)
        table = stack_measurement(nets, path, dt, max_units=max_units, seed=seed, progress=progress)
        table.insert(0, "n_samples", n)
        table.insert(0, "gain", weight_gain)
        table.insert(0, "architecture", architecture)
        tables.append(table[["architecture", "gain", "n_samples", "layer", "kind", "smp", "dense_warning"]])
    out = pd.concat(tables, ignore_index=True)
    finest = out[out["n_samples"] == max(n_samples)].set_index("layer")["smp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["relative"] = out["smp"].to_numpy() / finest.loc[out["layer"]].to_numpy() - 1
    return out


def write_tables(*, progress: bool = False, directory: str | None = None) -> dict[str, pd.DataFrame]:
    """Run the chapter-6 sweeps with the book's settings and store them.

    - ``stack_dense``: :func:`dense_stack_sweep` at gains 0.8, 1, 1.2 (width 256, depth 8, 36
      networks: the per-network scatter of a deep layer's SMP is ~10 %);
    - ``stack_width``: :func:`dense_stack_sweep` at widths 64 .. 512 (gain 1, depth 4);
    - ``stack_cnn``: :func:`conv_stack_sweep` (channels 1, 8, 16, 16 on 16 x 16 images);
    - ``stack_resolution``: :func:`stack_resolution_sweep`, dense at gain 1.2 and the CNN.

    Takes 20-30 minutes on 2 cores.

    Stored through :func:`smp.data.write` (``directory`` defaults to the package's ``data/``);
    returns the tables by registry name.
    """
    tables = {
        "stack_dense": dense_stack_sweep(n_networks=36, progress=progress),
        "stack_width": dense_stack_sweep(
            gains=(1.0,), widths=(64, 128, 256, 512), depth=4, n_networks=6, max_units=64, progress=progress
        ),
        "stack_cnn": conv_stack_sweep(progress=progress),
        "stack_resolution": pd.concat(
            [
                stack_resolution_sweep(progress=progress),
                stack_resolution_sweep(
                    architecture="cnn", weight_gain=1.0, n_samples=(20000, 40000, 80000), max_units=256
                ),
            ],
            ignore_index=True,
        ),
    }
    data.write_many(tables, directory)
    return tables
