"""Chapter 5, max pooling: window models against measurement on Gaussian processes and in a CNN.

i.i.d. and equicorrelated windows of Gaussian processes (:func:`maxpool_sweep`) and the 2x2 pool
inside a real Conv-ReLU stack with the window models of :mod:`smp.models` (:func:`maxpool_cnn`);
:func:`write_tables` stores both through :mod:`smp.data`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import data
from .._validation import check_int, pool_windows
from ..feature import smp as _smp
from ..measure import along_path, mean_sem, unit_statistics
from ..models import (
    maxpool_correlated,
    maxpool_identity,
    maxpool_window,
    relu_maxpool_parts,
    relu_maxpool_window,
)
from ..networks import conv_net
from ..signals import gaussian_process, great_circle, piecewise_linear
from ._maxpool_summary import (
    CNN_MODELS,
    cnn_summary,
    cnn_tables,
    sweep_summary,
    sweep_table,
)
from ._parallel import run_units, unit_seed

__all__ = [
    "MAXPOOL_SWEEP_POINTS",
    "IdentityExample",
    "identity_example",
    "identity_check",
    "maxpool_sweep",
    "sweep_summary",
    "sweep_table",
    "CNN_MODELS",
    "maxpool_cnn",
    "cnn_summary",
    "cnn_tables",
    "write_tables",
]


class IdentityExample(NamedTuple):
    """Three piecewise-linear inputs through ``nn.MaxPool1d(3)`` (:func:`identity_example`)."""

    t: np.ndarray  # (N,) sample times
    h: float  # grid step
    x: np.ndarray  # (3, N) inputs, linear trend removed
    y: np.ndarray  # (N,) pooled output of the real nn.MaxPool1d
    kink_times: np.ndarray  # (3, M) the inputs' kinks
    slope_jumps: np.ndarray  # (3, M) their slope jumps
    on_top: np.ndarray  # (3, M) True where the kink's input is the argmax (it passes)
    switch_times: np.ndarray  # (S,) argmax switches (exact: both pieces are linear)
    switch_sizes: np.ndarray  # (S,) |x_i' - x_j'| there (value per unit t)
    measured: float  # smp.smp of the output
    exact: float  # right side of the identity: births + passed
    ambiguous: int  # input kinks in an interval where the argmax also switches


def identity_example(seed: int = 21) -> IdentityExample:
    """Three piecewise-linear signals (1500 samples, 8 kinks each >= 40 samples apart,
    :func:`smp.signals.piecewise_linear`, linear trend removed so that they cross) through a
    real ``nn.MaxPool1d(3)``, with the exact bookkeeping of :func:`smp.models.maxpool_identity`.

    Example
    -------
    >>> ex = identity_example(21)
    >>> int(ex.switch_times.size) > 0, abs(ex.measured / ex.exact - 1) < 1e-9
    (True, True)
    """
    pl = piecewise_linear(3, 1500, 8, min_separation=40.0, seed=seed)
    trend = np.array([np.polyval(np.polyfit(pl.t, yy, 1), pl.t) for yy in pl.y])
    x = pl.y - trend  # a line adds no kink
    with torch.no_grad():
        y = nn.MaxPool1d(3)(torch.from_numpy(np.ascontiguousarray(x.T[:, None, :])))
    y = y.numpy()[:, 0, 0]
    ident = maxpool_identity(
        pl.t, x[None], None, pl.kink_times[None], pl.slope_jumps[None]
    )
    arg = x.argmax(axis=0)
    n = np.nonzero(arg[1:] != arg[:-1])[0]
    i, j = arg[n], arg[n + 1]
    d0, d1 = x[i, n] - x[j, n], x[i, n + 1] - x[j, n + 1]
    # slopes one interval after the switch: both inputs are linear there (kinks are apart)
    sizes = np.abs((x[i, n + 2] - x[i, n + 1]) - (x[j, n + 2] - x[j, n + 1])) / pl.h
    cell = np.clip(np.searchsorted(pl.t, pl.kink_times, side="right") - 1, 0, None)
    return IdentityExample(
        pl.t,
        float(pl.h),
        x,
        y,
        pl.kink_times,
        pl.slope_jumps,
        arg[cell] == np.arange(3)[:, None],
        pl.t[n] + pl.h * d0 / (d0 - d1),
        sizes,
        # no detector warning: identity_check keeps only seeds whose kinks are resolved
        float(_smp(y, pl.h, warn=False)),
        float(ident.born[0] + ident.passed[0]),
        int(ident.ambiguous[0]),
    )


def identity_check(seeds: Sequence[int] = range(30), min_gap: float = 5.0):
    """|measured / exact - 1| of :func:`identity_example` over ``seeds``, keeping the seeds
    whose output kinks (switches and input kinks) are at least ``min_gap`` samples apart
    (the detector resolves each kink on its own only then).

    Example
    -------
    >>> errors = identity_check(range(3))
    >>> bool((errors < 1e-9).all())
    True
    """
    errors = []
    for seed in seeds:
        ex = identity_example(seed)
        arg = ex.x.argmax(axis=0)
        switches = np.nonzero(arg[1:] != arg[:-1])[0] + 0.5
        events = np.sort(np.concatenate([switches, ex.kink_times.ravel() / ex.h]))
        if np.diff(events).min() >= min_gap and ex.ambiguous == 0:
            errors.append(abs(ex.measured / ex.exact - 1))
    return np.array(errors)


MAXPOOL_SWEEP_POINTS: tuple[tuple[int, float], ...] = (
    (2, 0.0),
    (3, 0.0),
    (4, 0.0),
    (9, 0.0),
    (4, 0.3),
    (4, 0.6),
    (4, 0.9),
)


def maxpool_sweep(
    points: Sequence[tuple[int, float]] = MAXPOOL_SWEEP_POINTS,
    *,
    n_paths: int = 200,
    n_samples: int = 20001,
    length: float = 10.0,
    dstd: float = 10.0,
    batch_paths: int = 50,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """Expected SMP of a real ``nn.MaxPool2d`` on Gaussian windows: model vs measurement.

    For each point ``(k, rho)``: ``n_paths`` windows of K inputs ``x_i = sqrt(rho) g_0 + sqrt(1-rho) g_i``
    with ``g_0, g_i`` independent unit Gaussian processes (:func:`smp.signals.gaussian_process`,
    ``std = 1``, ``dstd``; derivative correlation ``drho = rho``) over ``length``, with ``n_samples``
    samples (defaults: 200 samples per ``ell = 1/dstd``; at 100 per ell and rho = 0.9 the small
    switch kinks of ``sqrt(1-rho)``-scaled differences fall below the detector's threshold, -8 %).
    The window is the tensor ``(N, paths, 1, K)`` (batch axis = t) through
    ``nn.MaxPool2d((1, K))`` in float64; ``smp.smp`` of every output (``dt`` = grid step) is the
    measurement.  Model: :func:`smp.models.maxpool_correlated` ``(k, 1, dstd, rho, rho, length)``
    (no input kinks, births only).  ``exact`` is the mean of the exact identity
    (:func:`smp.models.maxpool_identity` with exact derivatives), ``estimator_error`` = measured /
    exact - 1.  Batches of ``batch_paths`` paths are seeded by ``(seed, point, batch)``.

    Returns
    -------
    pandas.DataFrame, one row per point: ``k, rho, length, dstd, n_samples, paths, switches`` (mean per
    path), ``model, measured, measured_sem, rel_sem, rel_error`` (model / measured - 1), ``z``
    ((model - measured) / sem), ``exact, estimator_error``.

    ``workers`` and ``scheduler`` say where the batches run (local processes or a
    ``dask.distributed`` scheduler's address, :func:`smp.experiments._parallel.run_units`); the
    table does not depend on them.
    """
    points = [(check_int("k", k), rho) for k, rho in points]
    for _, rho in points:
        if not 0 <= rho < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
    units = [
        (index, batch)
        for index in range(len(points))
        for batch in range(-(-n_paths // batch_paths))
    ]
    batch = partial(
        _maxpool_batch,
        points=points,
        n_paths=n_paths,
        n_samples=n_samples,
        length=length,
        dstd=dstd,
        batch_paths=batch_paths,
        seed=seed,
    )
    batches = run_units(
        batch,
        units,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="maxpool sweep",
    )
    rows = []
    for index, (k, rho) in enumerate(points):
        mine = [b for (i, _), b in zip(units, batches) if i == index]
        values = np.concatenate([b[0] for b in mine])
        mean, sem = mean_sem(values)
        model = float(maxpool_correlated(k, 1.0, dstd, rho, rho, length))
        ex = float(np.concatenate([b[1] for b in mine]).mean())
        rows.append(
            dict(
                k=k,
                rho=float(rho),
                length=float(length),
                dstd=float(dstd),
                n_samples=int(n_samples),
                paths=int(values.size),
                switches=float(np.concatenate([b[2] for b in mine]).mean()),
                model=model,
                measured=float(mean),
                measured_sem=float(sem),
                rel_sem=float(sem / mean),
                rel_error=model / float(mean) - 1,
                z=(model - float(mean)) / float(sem),
                exact=ex,
                estimator_error=float(mean) / ex - 1,
            )
        )
    return pd.DataFrame(rows)


def _maxpool_batch(
    unit: tuple[int, int],
    *,
    points,
    n_paths,
    n_samples,
    length,
    dstd,
    batch_paths,
    seed,
) -> tuple:
    """Batch ``batch`` of point ``index`` of :func:`maxpool_sweep`, seeded by ``(seed, index, batch)``:
    per window the measured SMP, the identity's births and its switches."""
    index, batch = unit
    k, rho = points[index]
    pool = nn.MaxPool2d((1, k))
    start = batch * batch_paths
    p = min(batch_paths, n_paths - start)
    bseed = unit_seed(seed, index, batch)
    t, h, y, dy = gaussian_process(
        p * (k + 1), n_samples, length=length, std=1.0, dstd=dstd, seed=bseed
    )
    y, dy = y.reshape(p, k + 1, -1), dy.reshape(p, k + 1, -1)
    a, b = np.sqrt(rho), np.sqrt(1.0 - rho)
    x, dx = a * y[:, :1] + b * y[:, 1:], a * dy[:, :1] + b * dy[:, 1:]
    with torch.no_grad():
        out = pool(
            torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[:, :, None, :]))
        )
    out = out.numpy().reshape(n_samples, p)
    ident = maxpool_identity(t, x, dx)
    return _smp(out, h, axis=0, warn=False), ident.born, ident.switches


def maxpool_cnn(
    channels: Sequence[int] = (1, 8, 16, 16),
    *,
    input_size: int = 16,
    n_samples: int = 20000,
    n_networks: int = 4,
    seed: int = 0,
    full_draws: int = 2000,
    progress: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """The 2x2 max pools of a real Conv-ReLU-MaxPool stack on a great circle: window models vs measurement.

    Networks :func:`smp.networks.conv_net` ``(channels, input_size=input_size, seed=seed + r)``, path
    :func:`smp.signals.great_circle` ``((C_0, S, S), n_samples, seed=seed + r)`` (length ``2 pi``).  At
    every block the conv output (pre-ReLU) of each 2x2 window gives, *measured from the activations*:
    per input ``mu, sigma, sigma'`` (:func:`unit_statistics`), ``smp_in`` (``smp.smp``), and the
    window's mean pairwise correlation of values ``rho`` and of slopes ``drho``.  The ReLU + pool is
    ``max(0, x_1..x_4)``; per window the prediction is :func:`smp.models.relu_maxpool` with the
    window's mean ``mu``, root-mean-square ``sigma, sigma'``, mean ``smp_in`` and either ``rho = drho =
    0`` (``iid``) or the measured ``rho, drho`` (``corr``; clipped to [0, 0.999]); third,
    :func:`smp.models.relu_maxpool_window` with every input's own ``mu_i, sigma_i, sigma_i', smp_in_i``
    (``window``: independent inputs, unequal statistics); fourth, :func:`smp.models.maxpool_window`
    with ``relu=True``, every input's own mean and ``smp_in`` and the window's measured 4x4 covariance of
    values and of slopes (``full``: correlated inputs, unequal statistics; ``full_draws`` Monte-Carlo
    draws per window and pair, seeded); fifth, the same with the window's measured 4x4
    value-derivative cross-covariance ``E[(x_i - m_i) x_j']`` (``full_cross``; value at each
    interval's midpoint against the interval's slope; the same draws, so the difference from
    ``full`` is the term alone).  The measurement is
    ``smp.smp`` of the real ``nn.MaxPool2d`` output units.  Also recorded: the births counted by the
    exact identity (:func:`smp.models.maxpool_identity` with interval slopes, argmax of
    ``(0, x_1..x_4)``) against the two models' births.  Totals over the windows of a block; mean and
    s.e. over networks.

    Returns
    -------
    pandas.DataFrame, one row per block: ``block, windows, networks, n_samples, rho, drho`` (mean over
    windows), ``measured, measured_sem`` (total SMP of the pool output, mean over networks),
    ``iid, corr, window, full, full_cross`` (predicted totals), ``*_error`` (prediction / measured - 1, mean over networks
    of the ratios) and ``*_error_sem``, ``births_counted, births_iid, births_corr, births_window,
    births_full, births_full_cross`` (mean totals over networks), ``zero_full,
    zero_full_cross`` (the zero-crossing part of those births), ``xcorr`` (median over
    windows and pairs i != j of |corr(x_i, x_j')|, mean over networks), ``smp_in`` (total measured input SMP over windows) and ``mean_spread``
    (mean over windows of the std of the 4 inputs' means over their rms sigma).

    ``workers`` and ``scheduler`` say where the networks run, as in :func:`maxpool_sweep`.
    """
    network = partial(
        _maxpool_network,
        channels=tuple(channels),
        input_size=input_size,
        n_samples=n_samples,
        seed=seed,
        full_draws=full_draws,
    )
    per_net = [
        row
        for rows in run_units(
            network,
            range(n_networks),
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            desc="maxpool cnn",
        )
        for row in rows
    ]
    frame = pd.DataFrame(per_net)
    rows = []
    for b, g in frame.groupby("block"):
        m, s = (
            mean_sem(g.measured.to_numpy())
            if len(g) > 1
            else (g.measured.iloc[0], np.nan)
        )
        row = dict(
            block=int(b),
            windows=int(g.windows.iloc[0]),
            networks=len(g),
            n_samples=int(n_samples),
            rho=float(g.rho.mean()),
            drho=float(g.drho.mean()),
            measured=float(m),
            measured_sem=float(s),
        )
        for name in ("iid", "corr", "window", "full", "full_cross"):
            ratio = g[name].to_numpy() / g.measured.to_numpy() - 1
            row[name] = float(g[name].mean())
            row[f"{name}_error"] = float(ratio.mean())
            row[f"{name}_error_sem"] = (
                float(ratio.std(ddof=1) / np.sqrt(len(g))) if len(g) > 1 else np.nan
            )
        for name in (
            "births_counted",
            "births_iid",
            "births_corr",
            "births_window",
            "births_full",
            "births_full_cross",
            "zero_full",
            "zero_full_cross",
            "xcorr",
            "smp_in",
            "mean_spread",
        ):
            row[name] = float(g[name].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _maxpool_network(
    r: int, *, channels, input_size, n_samples, seed, full_draws
) -> list[dict]:
    """Network ``r`` of :func:`maxpool_cnn` (seeds ``seed + r``): one row per block."""
    n_blocks = len(channels) - 1
    per_net = []
    net = conv_net(tuple(channels), input_size=input_size, seed=seed + r)
    t, h, x = great_circle(
        (channels[0], input_size, input_size), n_samples, seed=seed + r
    )
    length = float(h * n_samples)
    keep = [i for b in range(n_blocks) for i in (3 * b, 3 * b + 2)]
    outs = along_path(net, torch.from_numpy(x), keep=keep)
    side = input_size
    for b in range(n_blocks):
        conv_out, pool_out = outs[2 * b], outs[2 * b + 1]
        maps = conv_out.reshape(n_samples, channels[b + 1], side, side)
        side //= 2
        win = pool_windows(maps, 2).reshape(n_samples, -1, 4)  # (N, windows, 4)
        stats = unit_statistics(win.reshape(n_samples, -1), h)
        mu = stats.mean.reshape(-1, 4)
        sig = stats.std.reshape(-1, 4)
        dsig = stats.dstd.reshape(-1, 4)
        s_in = _smp(win.reshape(n_samples, -1), h, axis=0, warn=False).reshape(-1, 4)
        centred = win - win.mean(axis=0)
        slope = np.diff(win, axis=0) / h
        slope -= slope.mean(axis=0)
        iu = np.triu_indices(4, 1)

        cov = np.einsum("nwi,nwj->wij", centred, centred) / n_samples  # (windows, 4, 4)
        dcov = np.einsum("nwi,nwj->wij", slope, slope) / slope.shape[0]
        # E[(x_i - m_i) x_j'], the value at each interval's midpoint against its slope
        middle = 0.5 * (centred[1:] + centred[:-1])
        xdcov = np.einsum("nwi,nwj->wij", middle, slope) / slope.shape[0]
        scale = (
            np.sqrt(np.einsum("wii->wi", cov))[:, :, None]
            * np.sqrt(np.einsum("wjj->wj", dcov))[:, None, :]
        )
        off = ~np.eye(4, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcorr = np.abs(xdcov / scale)[:, off]  # (windows, 12), i != j

        def mean_corr(c):
            d = np.sqrt(np.einsum("wii->wi", c))
            corr = c / (d[:, :, None] * d[:, None, :] + 1e-300)
            return corr[:, iu[0], iu[1]].mean(axis=1)

        rho = np.clip(mean_corr(cov), 0.0, 0.999)
        drho = np.clip(mean_corr(dcov), 0.0, 0.999)
        sig_w = np.sqrt((sig**2).mean(axis=1))
        dsig_w = np.sqrt((dsig**2).mean(axis=1))
        live = sig_w > 0  # dead windows (constant inputs) carry no SMP
        args = (
            4,
            sig_w[live],
            dsig_w[live],
            mu.mean(axis=1)[live],
            length,
            s_in.mean(axis=1)[live],
        )
        iid_parts = np.array(relu_maxpool_parts(*args, 0.0, 0.0))
        corr_parts = np.array(relu_maxpool_parts(*args, rho[live], drho[live]))
        window_parts = np.array(
            relu_maxpool_window(mu[live], sig[live], dsig[live], length, s_in[live])
        )
        window = (mu[live], cov[live], dcov[live], length, s_in[live])
        draws = dict(relu=True, n_draws=full_draws, seed=seed + 1000 * r + b)
        full = maxpool_window(*window, **draws)
        # the same draws, plus the cross-covariance
        full_cross = maxpool_window(*window, **draws, xdcov=xdcov[live])
        measured = float(_smp(pool_out, h, axis=0, warn=False).sum())
        ident = maxpool_identity(t, win.transpose(1, 2, 0), None, relu=True)
        per_net.append(
            dict(
                block=b + 1,
                network=r,
                windows=win.shape[1],
                rho=float(rho.mean()),
                drho=float(drho.mean()),
                measured=measured,
                iid=float(iid_parts.sum()),
                corr=float(corr_parts.sum()),
                births_counted=float(ident.born.sum()),
                births_iid=float(iid_parts[:2].sum()),
                births_corr=float(corr_parts[:2].sum()),
                smp_in=float(s_in.sum()),
                window=float(window_parts.sum()),
                births_window=float(window_parts[:2].sum()),
                full=float(full.births.sum() + full.passed.sum()),
                births_full=float(full.births.sum()),
                full_cross=float(full_cross.births.sum() + full_cross.passed.sum()),
                births_full_cross=float(full_cross.births.sum()),
                zero_full=float(full.zero_births.sum()),
                zero_full_cross=float(full_cross.zero_births.sum()),
                xcorr=float(np.nanmedian(xcorr[live])),
                mean_spread=float(np.mean(mu[live].std(axis=1) / sig_w[live])),
            )
        )
    return per_net


def write_tables(
    *,
    progress: bool = False,
    directory: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run chapter 5's measurements (:func:`maxpool_sweep`, :func:`maxpool_cnn`, defaults) and store them.

    ``workers`` and ``scheduler`` say where the units run; the tables do not depend on them.
    Stored through :func:`smp.data.write` (``directory`` defaults to the package's ``data/``);
    returns the tables by registry name.
    """
    where = dict(progress=progress, workers=workers, scheduler=scheduler)
    tables = {
        "maxpool_sweep": maxpool_sweep(**where),
        "maxpool_cnn": maxpool_cnn(**where),
    }
    data.write_many(tables, directory)
    return tables
