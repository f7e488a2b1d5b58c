"""Chapter 3, the convolutional layer: model against measurement on inputs with known kinks.

Sweeps of fan-in and weight std with independent kink times (:func:`conv_sweep`), kinks shared
across channels (:func:`conv_shared_sweep`) and kinks closer than the grid resolves
(:func:`conv_resolution`); :func:`write_tables` stores them through :mod:`smp.data`.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import data, models
from .._validation import check_int
from ..feature import DenseKinksWarning, SMPWarning, diagnose
from ..feature import smp as _smp
from ..measure import along_path
from ..networks import random_conv2d
from ..signals import KINK_SLOT_SAMPLES, gaussian_process, kinked_feature_map
from ._parallel import run_units
from ._sweep import ratio_summary, run_until_ratio_sem

__all__ = [
    "CONV_SWEEP_POINTS",
    "conv_sweep",
    "conv_shared_sweep",
    "conv_resolution",
    "write_tables",
]


#: the chapter's fan-in sweep: (C_in, kernel size) giving fan-in C_in k^2 = 1, 4, 9, 16, 36, 64 at sw = 1,
#: then the weight-std sweep at fan-in 16.
CONV_SWEEP_POINTS = (
    (1, 1, 1.0),
    (1, 2, 1.0),
    (1, 3, 1.0),
    (4, 2, 1.0),
    (4, 3, 1.0),
    (4, 4, 1.0),
    (4, 2, 0.1),
    (4, 2, 0.3),
    (4, 2, 3.0),
)


def conv_sweep(
    points: Sequence[tuple[int, int, float]] = CONV_SWEEP_POINTS,
    *,
    n_kinks: int = 2,
    size: int = 8,
    out_channels: int = 64,
    min_samples: int = 256,
    min_repeats: int = 10,
    max_repeats: int = 200,
    target_rel_sem: float = 0.015,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """Expected SMP of a real ``nn.Conv2d`` output unit: model :func:`smp.models.conv` vs measurement.

    For each point ``(C_in, k, sw)``: inputs from :func:`kinked_feature_map` (``C_in`` channels,
    ``size x size`` pixels, ``n_kinks`` kinks per unit at distinct resolvable times inside every
    receptive field, jumps ``N(0, 1)``), a :func:`random_conv2d` with ``out_channels`` channels and
    weights ``N(0, sw**2)``; the path has ``max(min_samples, 16 * fan_in * n_kinks + 5)`` samples
    (one output kink per 16 samples at most).  Each repeat draws new inputs and weights (seeded by
    ``(seed, point, repeat)``) and gives the mean measured SMP over all output units (``smp.smp``
    along the path) and the model ``fan_in * sw * sqrt(2/pi) * smp_in`` with ``smp_in`` the mean
    measured SMP of that repeat's input units.  The comparison is made on the per-repeat ratios
    measured / model (the input SMP's fluctuation from repeat to repeat cancels in them); repeats
    continue (at least ``min_repeats``) until the ratio's standard error is below ``target_rel_sem``.

    Returns
    -------
    pandas.DataFrame, one row per point: ``c_in, kernel_size, fan_in, weight_std, n_samples, repeats,
    smp_in, model, measured`` (means over repeats), ``ratio`` and ``ratio_sem`` (mean and s.e. of
    measured / model over repeats), ``rel_error`` (``1/ratio - 1``: the model's error relative to the
    measurement), ``z`` (``(1 - ratio) / ratio_sem``: the miss in standard errors),
    ``estimator_error`` (largest relative difference, over all output units and repeats, between ``smp.smp`` and the exact SMP of the identity ``sum_i |w_i| SMP(x_i)``
    computed from the known jumps), ``dense_warning`` (fraction of repeats in which
    :class:`smp.DenseKinksWarning` was raised, for any unit) and ``flagged_units`` (largest fraction,
    over repeats, of output units that :func:`smp.feature.diagnose` marks unreliable).

    ``workers`` and ``scheduler`` say where the repeats run (local processes or a ``dask.distributed``
    scheduler's address, :func:`smp.experiments._parallel.run_units`); the table does not depend on
    them.
    """
    points = [(int(c_in), int(k), float(sw)) for c_in, k, sw in points]
    n_samples = [
        max(int(min_samples), 2 * KINK_SLOT_SAMPLES * c_in * k * k * n_kinks + 5)
        for c_in, k, _ in points
    ]
    repeat = partial(
        _conv_repeat,
        points=points,
        n_samples=n_samples,
        n_kinks=n_kinks,
        size=size,
        out_channels=out_channels,
        seed=seed,
    )
    runs_per_point = run_until_ratio_sem(
        repeat,
        len(points),
        target_rel_sem,
        min_repeats=min_repeats,
        max_repeats=max_repeats,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="conv sweep",
    )
    table = []
    for (c_in, k, sw), n, rows in zip(points, n_samples, runs_per_point):
        runs = np.asarray(rows)
        measured, model, smp_in = runs[:, :3].mean(axis=0)
        table.append(
            dict(
                c_in=c_in,
                kernel_size=k,
                fan_in=c_in * k * k,
                weight_std=sw,
                n_samples=n,
                repeats=len(runs),
                smp_in=smp_in,
                model=model,
                measured=measured,
                **ratio_summary(runs[:, 0], runs[:, 1]),
                estimator_error=runs[:, 3].max(),
                dense_warning=runs[:, 4].mean(),
                flagged_units=runs[:, 5].max(),
            )
        )
    return pd.DataFrame(table)


def _conv_repeat(
    index: int, r: int, *, points, n_samples, n_kinks, size, out_channels, seed
) -> tuple:
    """Repeat ``r`` of point ``index`` of :func:`conv_sweep`, seeded by ``(seed, index, r)``."""
    c_in, k, sw = points[index]
    n_samples = n_samples[index]
    # two words of the unit's seed sequence (unit_seed is its first): inputs, then weights
    seeds = np.random.SeedSequence([seed, index, r]).generate_state(2)
    maps = kinked_feature_map(n_samples, c_in, size, k, n_kinks, seed=int(seeds[0]))
    layer = random_conv2d(c_in, out_channels, k, sw, seed=int(seeds[1]))
    (y,) = along_path(layer, maps.x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DenseKinksWarning)
        smp_in = _smp(maps.x.reshape(n_samples, -1), maps.h, axis=0).mean()
        smp_y = _smp(y, maps.h, axis=0)
    # the identity SMP(y) = sum_i |w_i| SMP(x_i) is itself a convolution of the exact input
    # SMP map with |w| (kink times are distinct in every receptive field by construction)
    exact_in = torch.from_numpy(np.abs(maps.slope_jumps).sum(axis=-1))[None]
    exact_y = (
        nn.functional.conv2d(exact_in, layer.weight.detach().abs()).numpy().ravel()
    )
    estimator_error = np.abs(smp_y / exact_y - 1).max()
    warned = any(issubclass(w.category, DenseKinksWarning) for w in caught)
    # which output units the warning is about (diagnose repeats the detector: only when warned)
    flagged = diagnose(y, axis=0).unreliable.mean() if warned else 0.0
    fan_in = c_in * k * k
    return (
        smp_y.mean(),
        models.conv(sw, fan_in, smp_in),
        smp_in,
        estimator_error,
        warned,
        flagged,
    )


def conv_shared_sweep(
    in_channels: Sequence[int] = (1, 2, 4, 8, 16),
    *,
    kernel_size: int = 3,
    weight_std: float = 1.0,
    upstream_channels: int = 1,
    size: int = 8,
    out_channels: int = 32,
    n_samples: int = 2048,
    std: float = 1.0,
    dstd: float = 5.0,
    min_repeats: int = 10,
    max_repeats: int = 200,
    target_rel_sem: float = 0.015,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """Kinks shared by the channels of a pixel, as after a common upstream ReLU: both models vs measurement.

    Real modules: ``u`` is ``upstream_channels`` maps of independent stationary Gaussian processes
    (``std``, ``dstd``, :func:`smp.signals.gaussian_process`), ``z = ReLU(u)`` kinks at u's zero
    crossings, a 1x1 ``nn.Conv2d`` with ``N(0, 1)`` weights ``V`` (C_in x upstream_channels) mixes
    ``z`` into ``C_in`` channels that all kink when one ``z`` unit does, with jump vector
    ``J = V[:, c0] * s`` (``s`` the ReLU's slope jump); then the tested ``nn.Conv2d(C_in,
    out_channels, kernel_size)`` with weights ``N(0, weight_std**2)``.  Per repeat:

    - independent-times model :func:`smp.models.conv` with ``fan_in = C_in k^2`` and the measured
      mean SMP of the C_in input units (it assumes every input kinks alone);
    - shared-kink model :func:`smp.models.conv_shared`: ``k^2 * sw sqrt(2/pi) sum_c0 ||V[:, c0]||_2
      SMP(z_c0)`` with the measured mean SMP of the ReLU units (events of different pixels and
      upstream channels at distinct times);
    - measured: mean ``smp.smp`` over the tested layer's output units.

    Returns a pandas.DataFrame, one row per ``C_in``: ``c_in, kernel_size, fan_in, weight_std,
    repeats, smp_in, model_independent, model_shared, measured`` (means over repeats), ``warned``
    (fraction of repeats in which the detector warned on some output unit: two opposite kinks
    within a grid step, see :class:`smp.CloseKinksWarning`) and, for each
    model (suffix ``_shared``, ``_independent``), ``ratio``, ``ratio_sem``, ``rel_error``, ``z`` as in
    :func:`conv_sweep` (per-repeat ratios measured / model; repeats continue until the shared model's
    ratio has a relative s.e. below ``target_rel_sem``).  ``workers``, ``scheduler``: where the repeats
    run, as in :func:`conv_sweep`.
    """
    k = check_int("kernel_size", kernel_size)
    in_channels = [check_int("in_channels", c_in) for c_in in in_channels]
    repeat = partial(
        _shared_repeat,
        in_channels=in_channels,
        kernel_size=k,
        weight_std=weight_std,
        upstream_channels=upstream_channels,
        size=size,
        out_channels=out_channels,
        n_samples=n_samples,
        std=std,
        dstd=dstd,
        seed=seed,
    )
    runs_per_point = run_until_ratio_sem(
        repeat,
        len(in_channels),
        target_rel_sem,
        min_repeats=min_repeats,
        max_repeats=max_repeats,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="conv shared sweep",
    )
    table = []
    for c_in, rows in zip(in_channels, runs_per_point):
        runs = np.asarray(rows)
        measured, shared, independent, smp_in, warned = runs.mean(axis=0)
        table.append(
            dict(
                c_in=c_in,
                kernel_size=k,
                fan_in=c_in * k * k,
                weight_std=float(weight_std),
                repeats=len(runs),
                smp_in=smp_in,
                model_independent=independent,
                model_shared=shared,
                measured=measured,
                warned=warned,
                **ratio_summary(runs[:, 0], runs[:, 1], "_shared"),
                **ratio_summary(runs[:, 0], runs[:, 2], "_independent"),
            )
        )
    return pd.DataFrame(table)


def _shared_repeat(
    index: int,
    r: int,
    *,
    in_channels,
    kernel_size,
    weight_std,
    upstream_channels,
    size,
    out_channels,
    n_samples,
    std,
    dstd,
    seed,
) -> tuple:
    """Repeat ``r`` of point ``index`` of :func:`conv_shared_sweep`, seeded by ``(seed, index, r)``."""
    c_in, k = in_channels[index], kernel_size
    # three words of the unit's seed sequence (unit_seed is its first): process, mixing, layer
    seeds = np.random.SeedSequence([seed, index, r]).generate_state(3)
    gp = gaussian_process(
        upstream_channels * size * size,
        n_samples,
        std=std,
        dstd=dstd,
        seed=int(seeds[0]),
    )
    u = gp.y.T.reshape(n_samples, upstream_channels, size, size)
    mix = random_conv2d(
        upstream_channels, c_in, 1, 1.0, bias_std=0.0, seed=int(seeds[1])
    )
    tested = random_conv2d(c_in, out_channels, k, weight_std, seed=int(seeds[2]))
    z, x, y = along_path(nn.Sequential(nn.ReLU(), mix, tested), u)
    # a few of the 1152 outputs get two opposite kinks within a grid step (the detector warns):
    # record it per repeat (column "warned") instead of printing it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SMPWarning)
        smp_z = (
            _smp(z, gp.h, axis=0).reshape(upstream_channels, size * size).mean(axis=1)
        )
        smp_in = _smp(x, gp.h, axis=0).mean()
        measured = _smp(y, gp.h, axis=0).mean()
    warned = float(any(issubclass(w.category, SMPWarning) for w in caught))
    v = mix.weight.detach().numpy()[:, :, 0, 0]  # (C_in, upstream_channels)
    shared = (
        k * k * models.conv_shared(weight_std, (v * smp_z).T)
    )  # one row per upstream channel
    return (
        measured,
        shared,
        models.conv(weight_std, c_in * k * k, smp_in),
        smp_in,
        warned,
    )


def conv_resolution(
    n_samples: Sequence[int] = (256, 512, 1024, 2048, 4096),
    *,
    in_channels: int = 4,
    kernel_size: int = 4,
    n_kinks: int = 2,
    weight_std: float = 1.0,
    size: int = 8,
    out_channels: int = 16,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """When kinks fall closer than the grid resolves: ``smp.smp`` of a conv output against the identity.

    Inputs from :func:`kinked_feature_map` with ``layout="uniform"`` (every unit's kink times drawn
    independently, so kinks seen by one output unit may fall within a few samples of each other), a
    :func:`random_conv2d`; the same continuous-time signals (same seed) sampled with each of
    ``n_samples``.  The exact SMP of every output unit is the identity ``sum_i |w_i| SMP(x_i)`` (kink
    times are distinct with probability 1).  Returns a pandas.DataFrame, one row per grid:
    ``n_samples``, ``kinks_per_output`` (fan_in * n_kinks), ``spacing`` (mean samples between
    output kinks), ``measured``, ``exact`` (means over output units), ``ratio`` (measured / exact),
    ``worst_ratio`` (smallest unit-wise ratio) and ``dense_warning`` (whether ``smp.smp`` raised
    :class:`smp.DenseKinksWarning` for any unit).  ``workers``, ``scheduler``: where the grids run, as
    in :func:`conv_sweep`.
    """
    grid = partial(
        _resolution_grid,
        in_channels=in_channels,
        kernel_size=kernel_size,
        n_kinks=n_kinks,
        weight_std=weight_std,
        size=size,
        out_channels=out_channels,
        seed=seed,
    )
    table = run_units(
        grid,
        [int(n) for n in n_samples],
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="conv resolution",
    )
    return pd.DataFrame(table)


def _resolution_grid(
    n: int, *, in_channels, kernel_size, n_kinks, weight_std, size, out_channels, seed
) -> dict:
    """One row of :func:`conv_resolution`: the grid of ``n`` samples (same layer, same signals)."""
    fan_in = in_channels * kernel_size * kernel_size
    layer = random_conv2d(
        in_channels, out_channels, kernel_size, weight_std, seed=seed + 1
    )
    maps = kinked_feature_map(
        n, in_channels, size, kernel_size, n_kinks, layout="uniform", seed=seed
    )
    (y,) = along_path(layer, maps.x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DenseKinksWarning)
        measured = _smp(y, maps.h, axis=0)
    exact_in = torch.from_numpy(np.abs(maps.slope_jumps).sum(axis=-1))[None]
    exact = nn.functional.conv2d(exact_in, layer.weight.detach().abs()).numpy().ravel()
    return dict(
        n_samples=n,
        kinks_per_output=fan_in * n_kinks,
        spacing=(n - 1) / (fan_in * n_kinks),
        measured=measured.mean(),
        exact=exact.mean(),
        ratio=measured.mean() / exact.mean(),
        worst_ratio=(measured / exact).min(),
        dense_warning=any(issubclass(w.category, DenseKinksWarning) for w in caught),
    )


def write_tables(
    *,
    progress: bool = False,
    directory: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run chapter 3's three measurements with their published settings and store them.

    ``conv_sweep`` (independent kink times), ``conv_shared`` (kinks shared after an upstream ReLU),
    ``conv_resolution`` (kinks closer than the grid resolves).  ``workers`` and ``scheduler`` say
    where the units run (:func:`smp.experiments._parallel.run_units`); the tables do not depend on
    them.

    Stored through :func:`smp.data.write` (``directory`` defaults to the package's ``data/``);
    returns the tables by registry name.
    """
    where = dict(progress=progress, workers=workers, scheduler=scheduler)
    tables = {
        "conv_sweep": conv_sweep(**where),
        "conv_shared": conv_shared_sweep(**where),
        "conv_resolution": conv_resolution(**where),
    }
    data.write_many(tables, directory)
    return tables
