"""Chapter 4, the ReLU: the Rice model against measurement on Gaussian processes and great circles.

The bias sweep with and without input kinks (:func:`relu_sweep`), the detector's resolution on
ReLU outputs (:func:`relu_resolution`) and the single-sinusoid case of a first layer on a great
circle (:func:`relu_great_circle`); :func:`write_tables` stores the sweep through :mod:`smp.data`.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import special
from torch import nn

from .. import data, signals
from ..feature import smp as _smp
from ..measure import along_path, mean_sem, unit_statistics
from ..models import relu as relu_model
from ..models import relu_identity, relu_sinusoid
from ..signals import add_tents, gaussian_process
from ._parallel import run_units, run_until_each, unit_seed

__all__ = [
    "RELU_SWEEP_POINTS",
    "BLOCK_MODEL_GOAL",
    "relu_sweep",
    "sweep_summary",
    "spot_check",
    "great_circle_summary",
    "relu_resolution",
    "relu_great_circle",
    "write_tables",
]


#: the chapter's sweep points ``(mu/sigma, sigma'/sigma, tents)``: the bias sweep without and with input
#: kinks at sigma'/sigma = 10, then sigma'/sigma from 2.5 to 40 at mu = 0.
RELU_SWEEP_POINTS = tuple(
    [(float(z), 10.0, False) for z in np.arange(-3.0, 3.01, 0.5)]
    + [(float(z), 10.0, True) for z in np.arange(-3.0, 3.01, 0.5)]
    + [(0.0, r, tents) for tents in (False, True) for r in (2.5, 5.0, 20.0, 40.0)]
)


#: the accuracy a block model should reach (relative); the sweep's default s.e. target is a third
#: of it, so that a miss of this size stands at 3 s.e.
BLOCK_MODEL_GOAL = 0.02


def relu_sweep(
    points: Sequence[tuple[float, float, bool]] = RELU_SWEEP_POINTS,
    *,
    length: float = 31.0,
    samples_per_ell: int = 100,
    batch_samples: int = 2_000_000,
    min_paths: int = 32,
    max_samples: int = 3_000_000_000,
    target_rel_sem: float = BLOCK_MODEL_GOAL / 3,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """Expected SMP of a real ``nn.ReLU`` on stationary Gaussian inputs: model :func:`smp.models.relu` vs measurement.

    For each point ``(z, r, tents)``: paths of :func:`gaussian_process_with_tents` (``std = 1``,
    ``dstd = r``, ``mean = z``, ``length`` L, ``samples_per_ell`` samples per ``ell = 1/r``; input kinks
    from tents if ``tents``), run through ``torch.nn.ReLU`` in float64; ``smp.smp`` along each path
    (``dt`` = the grid step) is the measurement.  Batches of paths (about ``batch_samples`` samples
    each, seeded by ``(seed, point, batch)``) are added until the standard error of the mean over
    paths is below ``target_rel_sem`` of the mean, or ``max_samples`` samples were used (then the
    s.e. stays larger and the table says so).  The default target, 2 %/3, lets a block model's
    goal of 2 % be resolved at 3 s.e. at every point; the budget allows the up to 1.75e9 samples the
    tails (``|mu/sigma| = 3``, about one crossing per path) need for it.  The model is
    ``L phi(z') s'^2 / s + Phi(z') smp_in`` with the process's ensemble ``s``, ``s'`` (tents included),
    ``z' = z / s`` and ``smp_in`` the mean measured (``smp.smp``) input SMP.  Every path is also
    checked against the exact identity (:func:`smp.models.relu_identity`: births from the
    crossings, pass-through from the tents' known kinks): ``estimator_error`` is the mean measured
    SMP over the identity's, minus 1.

    Returns
    -------
    pandas.DataFrame, one row per point: ``mu_over_sigma, dstd_over_std, tents, length, n_samples`` (per
    path), ``paths``, ``crossings`` (mean per path), ``smp_in``, ``model_births``, ``model_pass``,
    ``model``, ``measured``, ``measured_sem``, ``rel_sem``, ``rel_error`` (model / measured - 1), ``z``
    ((model - measured) / sem), ``exact`` (mean identity SMP) and ``estimator_error``.

    ``workers`` and ``scheduler`` say where the batches run (local processes or a
    ``dask.distributed`` scheduler's address, :func:`smp.experiments._parallel.run_units`); the
    table does not depend on them.
    """
    points = [tuple(point) for point in points]
    # n = samples_per_ell * length / ell + 1 with ell = 1 / r, in the serial loop's arithmetic
    n_samples = [
        int(round(samples_per_ell * length / (1.0 / r))) + 1 for _, r, _ in points
    ]
    per_batch = [max(1, batch_samples // n) for n in n_samples]

    def stats(batches: list) -> tuple[np.ndarray, float, float]:
        values = np.concatenate([b[0] for b in batches])
        return values, values.mean(), values.std(ddof=1) / np.sqrt(values.size)

    def done(index: int, batches: list) -> bool:
        # the serial loop's rule: enough paths, and the s.e. on target or the sample budget spent
        if len(batches) * per_batch[index] < max(min_paths, 2):
            return False
        _, mean, sem = stats(batches)
        budget = (len(batches) + 1) * per_batch[index] * n_samples[index] > max_samples
        return bool((mean > 0 and sem < target_rel_sem * mean) or budget)

    # the rule holds at the latest once there are enough paths and the budget is spent
    most = [
        max(-(-max(min_paths, 2) // p), int(max_samples // (p * n)), 1)
        for p, n in zip(per_batch, n_samples)
    ]
    batch = partial(
        _relu_batch,
        points=points,
        n_samples=n_samples,
        per_batch=per_batch,
        length=length,
        seed=seed,
    )
    runs_per_point = run_until_each(
        batch,
        done,
        range(len(points)),
        min_units=1,
        max_units=most,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="relu sweep",
    )
    table = []
    for index, ((z, r, tents), n, batches) in enumerate(
        zip(points, n_samples, runs_per_point)
    ):
        values, mean, sem = stats(batches)
        proc_std, proc_dstd = batches[-1][4:]
        s_in = float(np.concatenate([b[1] for b in batches]).mean())
        births = float(relu_model(proc_std, proc_dstd, z, length))
        model = float(relu_model(proc_std, proc_dstd, z, length, s_in))
        ex = float(np.concatenate([b[2] for b in batches]).mean())
        table.append(
            dict(
                mu_over_sigma=z,
                dstd_over_std=r,
                tents=bool(tents),
                length=length,
                n_samples=n,
                paths=values.size,
                crossings=float(np.concatenate([b[3] for b in batches]).mean()),
                smp_in=s_in,
                model_births=births,
                model_pass=model - births,
                model=model,
                measured=mean,
                measured_sem=sem,
                rel_sem=sem / mean,
                rel_error=model / mean - 1,
                z=(model - mean) / sem,
                exact=ex,
                estimator_error=mean / ex - 1,
            )
        )
    return pd.DataFrame(table)


def sweep_summary(sweep: pd.DataFrame, goal: float = BLOCK_MODEL_GOAL) -> dict:
    """The numbers chapter 4 states about a :func:`relu_sweep` table, by name.

    Each point is classed against the block-model goal ``g`` (relative error): it *meets* the
    goal if ``|model / measured - 1| <= g``, it is a *model miss* if ``|error| - g > 3 s.e.``
    (the goal is missed beyond the noise), and *unresolved* otherwise.  ``chance_pct`` is how
    often the largest ``|z|`` of that many independent points reaches the observed one by chance
    (``1 - (1 - 2 Phi(-|z|max))^n``).  At the points without tents the model holds no measured
    quantity, and comparing it with the exact identity on the same paths (``exact``: the births
    from the crossings) instead of the sampled SMP separates its error from the estimator's.

    Parameters
    ----------
    sweep : pandas.DataFrame
        the table of :func:`relu_sweep` (e.g. ``smp.data.load("relu_sweep")``).
    goal : float
        the relative accuracy the model should reach (default :data:`BLOCK_MODEL_GOAL`).

    Returns
    -------
    dict
        ``points, paths, samples`` (in all), ``length, spe`` (samples per ell), ``goal_pct``,
        ``target_pct`` (goal / 3), ``max_sem_pct``, ``worst_pct`` (largest ``|error|``, %),
        ``worst_at`` (text), ``worst_sem_pct`` and ``worst_at_z`` (its s.e. and ``|z|``),
        ``worst_z`` (largest ``|z|``), ``chance_pct``, ``meets, misses, unresolved`` (counts),
        ``within3`` (points within max(3 s.e., 3 %)), ``mean_error_pct`` and its s.e.
        ``mean_error_sem_pct``, ``worst_exact_pct`` (largest ``|model / exact - 1|`` without
        tents, %),
        ``est_pct`` (largest ``|estimator_error|``, %), ``z_end`` (largest ``|mu/sigma|``),
        ``tail_factor`` (``exp(z_end^2 / 2)``), ``tail_samples, tail_paths, tail_cross``
        (samples, paths, crossings per path at ``mu/sigma = z_end`` without tents).

    Example
    -------
    >>> table = relu_sweep([(0.0, 10.0, False), (3.0, 10.0, False)], target_rel_sem=0.1,
    ...                    min_paths=8, workers=1)
    >>> summary = sweep_summary(table)
    >>> summary["points"], summary["meets"] + summary["misses"] + summary["unresolved"]
    (2, 2)
    >>> summary["z_end"], round(summary["tail_factor"], 1)
    (3.0, 90.0)
    """
    error = sweep.rel_error.abs()
    z_abs = sweep.z.abs()
    worst = sweep.loc[error.idxmax()]
    meets = error <= goal
    misses = error - goal > 3 * sweep.rel_sem
    z_end = float(sweep.mu_over_sigma.abs().max())
    plain = sweep[~sweep.tents.astype(bool)]
    end = plain[plain.mu_over_sigma == z_end].iloc[0]
    first = sweep.iloc[0]
    where = f"μ/σ = {worst.mu_over_sigma:+.1f}, σ′/σ = {worst.dstd_over_std:g}"
    return dict(
        points=len(sweep),
        paths=int(sweep.paths.sum()),
        samples=float((sweep.paths * sweep.n_samples).sum()),
        length=float(first.length),
        spe=float((first.n_samples - 1) / (first.length * first.dstd_over_std)),
        goal_pct=100 * goal,
        target_pct=100 * goal / 3,
        max_sem_pct=float(100 * sweep.rel_sem.max()),
        worst_pct=float(100 * error.max()),
        worst_at=where + (" with tents" if worst.tents else ""),
        worst_sem_pct=float(100 * worst.rel_sem),
        worst_at_z=float(abs(worst.z)),
        worst_z=float(z_abs.max()),
        chance_pct=float(
            100 * (1 - (1 - 2 * special.ndtr(-z_abs.max())) ** len(sweep))
        ),
        meets=int(meets.sum()),
        misses=int(misses.sum()),
        unresolved=int((~meets & ~misses).sum()),
        within3=int((error <= np.maximum(3 * sweep.rel_sem, 0.03)).sum()),
        mean_error_pct=float(100 * sweep.rel_error.mean()),
        mean_error_sem_pct=float(100 * np.sqrt(np.sum(sweep.rel_sem**2)) / len(sweep)),
        worst_exact_pct=float(100 * (plain.model / plain.exact - 1).abs().max()),
        est_pct=float(100 * sweep.estimator_error.abs().max()),
        z_end=z_end,
        tail_factor=float(np.exp(z_end**2 / 2)),
        tail_samples=float(end.paths * end.n_samples),
        tail_paths=int(end.paths),
        tail_cross=float(end.crossings),
    )


def spot_check(
    stored: pd.DataFrame,
    points: Sequence[tuple[float, float, bool]],
    *,
    target_rel_sem: float = 0.03,
    seed: int = 101,
    workers: int | None = None,
) -> pd.DataFrame:
    """Re-run :func:`relu_sweep` at a few ``points`` with a fresh ``seed`` and compare with ``stored``.

    Returns the fresh table with a column ``z_stored``: (fresh - stored measurement) over their
    combined standard error, which is N(0, 1) if both measure the same expectation.
    ``workers``: where the batches run, as in :func:`relu_sweep`.

    Example
    -------
    >>> stored = relu_sweep([(0.0, 10.0, False)], target_rel_sem=0.1, min_paths=8, workers=1)
    >>> fresh = spot_check(stored, [(0.0, 10.0, False)], target_rel_sem=0.1, seed=1,
    ...                    workers=1)
    >>> bool(abs(fresh.z_stored.iloc[0]) < 5)
    True
    """
    fresh = relu_sweep(
        points, target_rel_sem=target_rel_sem, seed=seed, workers=workers
    )
    key = ["mu_over_sigma", "dstd_over_std", "tents"]
    ref = stored.set_index(key).loc[[tuple(p) for p in points]]
    combined = np.hypot(fresh.measured_sem.to_numpy(), ref.measured_sem.to_numpy())
    return fresh.assign(
        z_stored=(fresh.measured.to_numpy() - ref.measured.to_numpy()) / combined
    )


def _relu_batch(
    index: int, batch: int, *, points, n_samples, per_batch, length, seed
) -> tuple:
    """Batch ``batch`` of point ``index`` of :func:`relu_sweep`, seeded by ``(seed, index, batch)``:
    per path the measured SMP, the input SMP, the identity's SMP and crossings; the process's
    ensemble std and derivative std."""
    z, r, tents = points[index]
    n, p = n_samples[index], per_batch[index]
    bseed = unit_seed(seed, index, batch)
    proc = add_tents(
        gaussian_process(p, n, length=length, mean=z, std=1.0, dstd=r, seed=bseed),
        std=1.0,
        dstd=r,
        tent_spacing=10.0 if tents else 0.0,
        seed=bseed,
    )
    y = nn.ReLU()(torch.from_numpy(proc.x)).numpy()
    measured = _smp(y, proc.h, axis=-1, warn=False)
    smp_in = _smp(proc.x, proc.h, axis=-1, warn=False) if tents else np.zeros(p)
    ident = relu_identity(proc.t, proc.x, proc.dx, proc.kink_times, proc.slope_jumps)
    return (
        measured,
        smp_in,
        ident.born + ident.passed,
        ident.crossings,
        proc.std,
        proc.dstd,
    )


def relu_resolution(
    samples_per_ell: Sequence[int] = (10, 20, 50, 100, 200),
    *,
    mu_over_sigma: float = 0.0,
    length: float = 31.0,
    n_paths: int = 16,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """How finely the grid must sample a ReLU output for ``smp.smp`` to see its births.

    The same Gaussian paths (``std = 1``, ``dstd = 10``, mean ``mu_over_sigma``) are sampled at each
    ``samples_per_ell``; ``ratio`` is the measured SMP of ``nn.ReLU`` output over the exact identity
    (:func:`smp.models.relu_identity`), pooled over paths, and ``ratio_sem`` its s.e. over paths.
    A crossing with small slope ``|x'|`` makes a kink smaller than the curvature's second difference
    ``h^2 |x''|`` times ``kappa`` and is missed: the loss falls like ``h^3`` (slopes near a crossing
    have density ``~|x'|``, the missed SMP ``~ |x'|^2 d|x'|``).

    Returns a pandas.DataFrame: ``samples_per_ell, n_samples, ratio, ratio_sem, worst_path``.
    ``workers``, ``scheduler``: where the grids run, as in :func:`relu_sweep`.
    """
    grid = partial(
        _resolution_grid,
        mu_over_sigma=mu_over_sigma,
        length=length,
        n_paths=n_paths,
        seed=seed,
    )
    rows = run_units(
        grid,
        [int(spe) for spe in samples_per_ell],
        workers=workers,
        scheduler=scheduler,
    )
    return pd.DataFrame(rows)


def _resolution_grid(spe: int, *, mu_over_sigma, length, n_paths, seed) -> dict:
    """One row of :func:`relu_resolution`: the same paths sampled at ``spe`` samples per ell."""
    n_samples = int(round(spe * length * 10.0)) + 1
    proc = add_tents(
        gaussian_process(
            n_paths,
            n_samples,
            length=length,
            mean=mu_over_sigma,
            std=1.0,
            dstd=10.0,
            seed=seed,
        ),
        std=1.0,
        dstd=10.0,
        tent_spacing=0.0,
        seed=seed,
    )
    y = nn.ReLU()(torch.from_numpy(proc.x)).numpy()
    measured = _smp(y, proc.h, axis=-1, warn=False)
    ident = relu_identity(proc.t, proc.x, proc.dx)
    ratio = measured.sum() / ident.born.sum()
    # s.e. of a ratio of means (delta method): the paired residuals measured - ratio * exact
    sem = (
        (measured - ratio * ident.born).std(ddof=1)
        / np.sqrt(n_paths)
        / ident.born.mean()
    )
    has = ident.born > 0
    per_path = measured[has] / ident.born[has]
    return dict(
        samples_per_ell=spe,
        n_samples=n_samples,
        ratio=ratio,
        ratio_sem=sem,
        worst_path=float(per_path[np.argmax(np.abs(per_path - 1))]),
    )


def relu_great_circle(
    mu_over_sigma: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0),
    *,
    in_features: int = 64,
    units: int = 4000,
    n_samples: int = 4096,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
):
    """First-layer ReLU units on a great circle: Rice per path against Rice for the ensemble.

    A ``nn.Linear(in_features, units)`` (float64, weights ``N(0, 1/in_features)``, every bias
    ``b = mu_over_sigma``) on :func:`smp.signals.great_circle` (radius ``sqrt(in_features)``): each unit
    is ``x(t) = A cos(t + p) + b`` with ``(A cos p, -A sin p) = (w.u, w.v)`` i.i.d. ``N(0, 1)`` over the
    ensemble of units, so over the ensemble x(t) is stationary Gaussian with ``sigma = sigma' = 1``, but
    along one path its values follow the arcsine law of a sinusoid.  Per point:

    - ``measured``: mean over units of ``smp.smp`` of ``nn.ReLU`` output (``dt = 2 pi / n_samples``);
    - ``exact``: mean of :func:`smp.models.relu_sinusoid` (``2 sqrt(A^2 - b^2)``);
    - ``model_ensemble``: :func:`smp.models.relu` with ``sigma = sigma' = 1``, ``mu = b``, ``L = 2 pi``;
    - ``model_pathwise``: mean over units of :func:`smp.models.relu` with each unit's own time
      statistics (:func:`unit_statistics`).

    Returns a pandas.DataFrame with these, ``measured_sem`` (s.e. of ``measured`` over units) and the relative errors
    ``rel_error_ensemble``, ``rel_error_pathwise`` (model / measured - 1) and ``z_ensemble``.
    ``workers``, ``scheduler``: where the biases run, as in :func:`relu_sweep`.
    """
    bias = partial(
        _great_circle_bias,
        mu_over_sigma=list(mu_over_sigma),
        in_features=in_features,
        units=units,
        n_samples=n_samples,
        seed=seed,
    )
    rows = run_units(
        bias, range(len(mu_over_sigma)), workers=workers, scheduler=scheduler
    )
    return pd.DataFrame(rows)


def _great_circle_bias(
    index: int, *, mu_over_sigma, in_features, units, n_samples, seed
) -> dict:
    """One row of :func:`relu_great_circle`: the bias ``mu_over_sigma[index]``, weights seeded by
    ``(seed, index)``."""
    b = mu_over_sigma[index]
    _, h, path = signals.great_circle((in_features,), n_samples, seed=seed)
    gen = torch.Generator().manual_seed(unit_seed(seed, index))
    layer = nn.Linear(in_features, units).double()
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0 / np.sqrt(in_features), generator=gen)
        layer.bias.fill_(float(b))
    x, y = along_path(nn.Sequential(layer, nn.ReLU()), path)
    measured = _smp(y, h, axis=0, warn=False)
    # the sinusoid's amplitude from its two Fourier coefficients along the closed path
    t = np.arange(n_samples) * h
    amp = 2.0 / n_samples * np.hypot(np.cos(t) @ x, np.sin(t) @ x)
    exact = relu_sinusoid(amp, float(b))
    stats = unit_statistics(x, h)
    pathwise = relu_model(stats.std, stats.dstd, stats.mean, 2 * np.pi)
    ensemble = float(relu_model(1.0, 1.0, float(b), 2 * np.pi))
    mean, sem = mean_sem(measured)
    return dict(
        mu_over_sigma=float(b),
        units=units,
        measured=float(mean),
        measured_sem=float(sem),
        exact=float(exact.mean()),
        model_ensemble=ensemble,
        model_pathwise=float(pathwise.mean()),
        rel_error_ensemble=ensemble / mean - 1,
        z_ensemble=(ensemble - mean) / sem,
        rel_error_pathwise=float(pathwise.mean()) / mean - 1,
        estimator_error=float(np.abs(measured - exact).sum() / exact.sum()),
    )


def great_circle_summary(circle: pd.DataFrame) -> dict:
    """The numbers chapter 4 states about a :func:`relu_great_circle` table, by name.

    Returns ``units`` (per bias), ``path0_pct`` (pathwise model error at zero bias, %),
    ``theory_pct`` (``sqrt(pi)/2 - 1``, the sinusoid's factor, %), ``path_worst_pct``,
    ``ens_worst_pct`` and ``ens_worst_z`` (largest pathwise and ensemble errors, the latter in
    s.e.) and ``est`` (largest pooled relative error of ``smp.smp`` against the exact SMP).

    Example
    -------
    >>> circle = relu_great_circle([0.0, 1.0], units=200, n_samples=1024, workers=1)
    >>> summary = great_circle_summary(circle)
    >>> round(summary["theory_pct"], 1), bool(abs(summary["path0_pct"] + 11.4) < 3)
    (-11.4, True)
    """
    at0 = circle[circle.mu_over_sigma == 0.0].iloc[0]
    return dict(
        units=int(circle.units.iloc[0]),
        path0_pct=float(100 * at0.rel_error_pathwise),
        theory_pct=float(100 * (np.sqrt(np.pi) / 2 - 1)),
        path_worst_pct=float(100 * circle.rel_error_pathwise.abs().max()),
        ens_worst_pct=float(100 * circle.rel_error_ensemble.abs().max()),
        ens_worst_z=float(circle.z_ensemble.abs().max()),
        est=float(circle.estimator_error.max()),
    )


def write_tables(
    *,
    progress: bool = False,
    directory: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run chapter 4's sweep (:func:`relu_sweep`, its defaults) and store it as ``relu_sweep``.

    About 7e9 samples: 13 min with 2 workers on a loaded 2-core machine (the three points at
    ``|mu/sigma| = 3`` whose SMP is mostly births need 1.6-1.75e9 samples each: crossings are
    rare).  ``workers`` and ``scheduler`` say where the batches run; the table does not depend
    on them.

    Stored through :func:`smp.data.write` (``directory`` defaults to the package's ``data/``);
    returns the tables by registry name.
    """
    tables = {
        "relu_sweep": relu_sweep(
            progress=progress, workers=workers, scheduler=scheduler
        ),
    }
    data.write_many(tables, directory)
    return tables
