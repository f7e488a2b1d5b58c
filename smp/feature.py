"""The SMP feature: peaks of the second difference and the sum of their magnitudes.

A signal ``y`` sampled on a uniform grid ``t_n = t0 + n*dt`` has the second difference

    D[n] = y[n+1] - 2 y[n] + y[n-1],     n = 1 .. N-2.

On a smooth stretch ``|D| ~ dt**2 |y''|``; a kink (slope jump ``Ds`` at ``t*`` with
``t_n <= t* < t_{n+1}``) adds ``Ds*(t_{n+1}-t*)`` to ``D[n]`` and ``Ds*(t*-t_n)`` to ``D[n+1]``:
two samples whose sum is exactly ``dt*|Ds|``.  A *peak* is a run of samples where ``|D|``
stands out of the local smooth level, and

    SMP(y) = (1/dt) * sum over peak samples of |D[n]|,

which, with ``dt`` the grid step, is the total absolute slope jump ``sum_k |Ds_k|`` (units: y per
unit t) and does not depend on the resolution.  With the default ``dt=1`` it is the raw sum of the
magnitudes of the peaks of ``D``.

The detector (all options are keyword arguments of :func:`smp` and :func:`peaks`):

``kappa`` (default 10)
    a sample is a *core* peak sample when ``|D[n]| > kappa * level[n]``.  Chapter 2 sweeps it: the
    SMP of smooth-plus-kinks signals is flat (within 1 %) over roughly 2 < kappa < 30.
``window`` (default 41)
    the local smooth ``level`` is computed from medians of ``|D|`` over blocks of ``window``
    samples; ``level[n]`` is the largest of the medians of the block holding ``n`` and its two
    neighbours.  A median (not a mean) ignores the one or two kink samples in a block; a *local*
    level (not a global median) is needed because a ReLU output is exactly 0 on about half its
    samples, where a global median is 0 and every smooth sample would count.  Taking the largest
    of three neighbouring block medians keeps the active side's level at the edge of a zero stretch.
    Chapter 2 sweeps it: blocks of 11 or fewer samples lose kinks that crowd by chance (a kink every
    12 samples on average), blocks of 81 or more stop following a ReLU output's zero stretches.
``floor_eps`` (default 4)
    core samples must also exceed ``floor_eps`` units in the last place (ulp, in the input's dtype)
    of the signal's largest ``|y|``.  Values rounded to their dtype carry at most ulp/2 each, so
    ``D`` carries at most ``(1 + 2 + 1) ulp/2 = 2 ulp`` of rounding; 4 ulp leaves room for values
    computed with a few roundings more.  ``D`` itself is computed in float64 whatever the input's
    dtype, so float32 data lose nothing beyond their own rounding.  Where this floor (not the
    smooth level) sets the threshold, a kink split over two samples of one sign is counted when
    their sum clears the floor (the larger half of a kink can be only half of ``dt*|Ds|``).

Where the data's rounding (not curvature) sets the threshold and a peak's sum of ``|D|`` carries
more than 1 % of rounding noise (float32 values, or a large offset), the peak is re-measured from
least-squares lines through up to ``window`` samples on either side (not past the neighbouring
peaks): the sum of ``D`` over a run is the difference of two single first differences, each
carrying about an ulp of rounding, while the fitted slopes carry about ``ulp / W**1.5``.  Only
where both sides are straight within half an ulp rms and the run has one sign (up to its noise);
exact on piecewise-linear data.  It does not find kinks below the threshold.

Where the rounding hides kinks from ``D`` altogether (the :class:`RoundingLimitWarning` condition:
float32 values on an offset of 1e2-1e3 times their scale, say), :func:`smp` also fits each such
signal with a continuous piecewise-linear function plus a smooth part, weighted by the rounding
noise of the input's dtype (:mod:`smp._slope_fit`: knots proposed by matched filters, pruned at 4
standard deviations of the rounding, whose errors along a locally straight signal form a sawtooth
set by its slope, placed to a fraction of a sample).  The fit's SMP replaces the detector's
where the fit explains the data to its rounding, does not depend on the smooth part's resolution,
and finds more than ``FIT_GAIN`` (1 %) and three of its standard deviations more than the
detector; the warning still fires and names the fit's smallest kept slope jump.  :func:`peaks`,
:func:`diagnose` and :func:`detection_limit` describe the detector on ``D`` only.

Each core sample is widened by one sample on both sides, because a kink close to a grid point puts
almost all of its jump in one sample and a tiny remainder in its neighbour, which may fall below the
threshold.  The widening adds at most ``2 dt**2 |y''|`` of smooth curvature per kink, a relative
error ``O(dt |y''| / |Ds|)`` that vanishes with resolution.

Limits, each with its own warning (subclasses of :class:`SMPWarning`; :func:`diagnose` gives the
numbers behind them per signal, and the smallest slope jump the detector sees):

- :class:`DenseKinksWarning`: kinks closer than about 4 samples on average fill the blocks'
  medians; raised when more than a quarter of a signal's samples are core peak samples, or when
  ``D`` between peaks is jagged (:func:`roughness` above 0.5: dense kinks, or noise).  Sample
  finer, or reduce the noise.
- :class:`CloseKinksWarning`: kinks placed independently fall within one grid step of each other
  and opposite ones cancel; raised when two adjacent peak samples have opposite signs, or peaks
  come every ``CLOSE_SPACING`` (45) samples or closer.  Sample finer.
- :class:`RoundingLimitWarning`: the kinks' peaks reach down to the rounding noise of ``D``
  (float32 data sampled finely, or carrying a large offset): smaller kinks are lost, and each
  measured jump carries about ``ulp / (dt |Ds|)`` of rounding.  Sample more coarsely, or compute
  in float64.
- :class:`UnderSampledWarning`: the smooth part's curvature hides slope jumps as large as half
  the slope's rms, or ``D`` between peaks changes from sample to sample, or the
  signal is shorter than 7 samples.  Sample finer.
- :class:`DiscontinuityWarning`: a step in ``y`` puts ``+S, -S`` into two adjacent samples of
  ``D`` and adds ``2|S|/dt``, which grows as the grid is refined; SMP measures kinks, not steps.

A slope jump smaller than ``2 * max(kappa * level, floor) / dt`` is invisible
(:func:`detection_limit` returns that bound per signal).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._detector import (  # the detector's constants, re-exported: chapters cite them
    CLOSE_LOSS,
    CLOSE_SHARE_LIMIT,
    CLOSE_SPACING,
    CURVATURE_SHARE_LIMIT,
    DEFAULT_FLOOR_EPS,
    DEFAULT_KAPPA,
    DEFAULT_WINDOW,
    DENSE_FRACTION,
    MARGINAL_FACTOR,
    MIN_LEVEL_SAMPLES,
    PURE_ROUNDING_MEDIAN,
    REFINE_MIN_SAMPLES,
    ROUGHNESS_FLOOR_EPS,
    ROUGHNESS_FLOOR_FACTOR,
    ROUGHNESS_LIMIT,
    ROUGHNESS_MIN_PAIRS,
    ROUNDING_ERROR_LIMIT,
    ROUNDING_LEVEL_ULP,
    ROUNDING_LIMIT_RATIO,
    ROUNDING_SHARE_LIMIT,
    STEP_BALANCE,
    STRAIGHT_RMS_ULP,
    UNDERSAMPLED_LIMIT_RATIO,
    UNDERSAMPLED_ROUGHNESS,
    _analyse,
    roughness,
)
from ._diagnosis import Diagnosis, _diagnosis, _warn
from ._slope_fit import _refit_rounded
from ._validation import _check_dt, _check_options, _prepare
from ._warnings import (
    CloseKinksWarning,
    DenseKinksWarning,
    DiscontinuityWarning,
    RoundingLimitWarning,
    SMPWarning,
    UnderSampledWarning,
)

try:  # torch is a dependency, but the feature itself needs only numpy
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = [
    "smp",
    "peaks",
    "second_difference",
    "peak_mask",
    "threshold",
    "diagnose",
    "Diagnosis",
    "roughness",
    "detection_limit",
    "Peaks",
    "SMPWarning",
    "DenseKinksWarning",
    "RoundingLimitWarning",
    "DiscontinuityWarning",
    "CloseKinksWarning",
    "UnderSampledWarning",
    "DEFAULT_KAPPA",
    "DEFAULT_WINDOW",
    "DEFAULT_FLOOR_EPS",
    # the detector's other constants (smp._detector), each documented where it is set
    "CLOSE_LOSS",
    "CLOSE_SHARE_LIMIT",
    "CLOSE_SPACING",
    "CURVATURE_SHARE_LIMIT",
    "DENSE_FRACTION",
    "MARGINAL_FACTOR",
    "MIN_LEVEL_SAMPLES",
    "PURE_ROUNDING_MEDIAN",
    "REFINE_MIN_SAMPLES",
    "ROUGHNESS_FLOOR_EPS",
    "ROUGHNESS_FLOOR_FACTOR",
    "ROUGHNESS_LIMIT",
    "ROUGHNESS_MIN_PAIRS",
    "ROUNDING_ERROR_LIMIT",
    "ROUNDING_LEVEL_ULP",
    "ROUNDING_LIMIT_RATIO",
    "ROUNDING_SHARE_LIMIT",
    "STEP_BALANCE",
    "STRAIGHT_RMS_ULP",
    "UNDERSAMPLED_LIMIT_RATIO",
    "UNDERSAMPLED_ROUGHNESS",
]


class Peaks(NamedTuple):
    """Peaks of one 1-D signal.

    Attributes
    ----------
    positions : ndarray, shape (P,)
        position of each peak in units of t (the ``|D|``-weighted centre of its run; for an isolated
        kink this is the kink time exactly).
    magnitudes : ndarray, shape (P,)
        magnitude of each peak, ``(1/dt) * sum of |D|`` over its run (a slope jump, y per unit t);
        ``magnitudes.sum() == smp(y, dt)``.
    jumps : ndarray, shape (P,)
        signed slope jump of each peak, ``(1/dt) * sum of D`` over its run.

    Example
    -------
    >>> t = np.linspace(0.0, 1.0, 401)
    >>> found = peaks(np.abs(t - 0.3) - 2 * np.abs(t - 0.7), dt=t[1])
    >>> found._fields
    ('positions', 'magnitudes', 'jumps')
    >>> np.round(found.jumps, 6)  # slope jumps +2 at t = 0.3 and -4 at t = 0.7
    array([ 2., -4.])
    """

    positions: np.ndarray
    magnitudes: np.ndarray
    jumps: np.ndarray


def second_difference(y: np.ndarray) -> np.ndarray:
    """``D[n] = y[n+1] - 2 y[n] + y[n-1]`` along the last axis (length N-2), in float64.

    Parameters
    ----------
    y : array_like, shape (..., N)
        signals on a uniform grid along the last axis (N >= 3 for a non-empty result).

    Returns
    -------
    ndarray, shape (..., N-2), float64
        ``D[..., k]`` is centred on sample ``k+1`` of ``y``; not divided by ``dt**2``.

    Example
    -------
    A kink at sample 2 (slope 1 before, 2 after): only ``D`` centred on sample 2 sees
    it, and it holds the slope jump times the step (here 1).

    >>> second_difference(np.array([0.0, 1.0, 2.0, 4.0]))
    array([0., 1.])
    """
    y = np.asarray(y, dtype=np.float64)
    return (y[..., 2:] + y[..., :-2]) - 2.0 * y[..., 1:-1]


def diagnose(
    y: Any,
    dt: float = 1.0,
    *,
    axis: int = -1,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
) -> Diagnosis:
    """Why :func:`smp` would warn, per signal, and the smallest slope jump it can see.

    Returns a :class:`Diagnosis`: the fraction of core peak samples, the :func:`roughness` of ``D``
    between peaks, whether either passes its limit (``DENSE_FRACTION = 0.25``,
    ``ROUGHNESS_LIMIT = 0.5``), the detection limit (slope units with the true ``dt``), the limit
    set by the data's rounding, the share of SMP barely above it, the count of step-like
    opposite-sign pairs, and whether the smooth part is under-sampled.

    Parameters
    ----------
    y : array_like or torch.Tensor
        signals sampled on a uniform grid along ``axis``; any other axes are a batch.
    dt : float
        grid step in units of t (sets the units of the limits: y per unit t).
    axis : int
        the sample axis.
    kappa, window, floor_eps : detector options, see the module docstring.

    Returns
    -------
    Diagnosis
        one array per attribute, shaped like ``y`` without ``axis``.

    Example
    -------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 4001)
    >>> y = (1000.0 + np.abs(t - 0.3)).astype(np.float32)  # one kink, slope jump 2
    >>> report = diagnose(y, dt=t[1])
    >>> bool(report.detection_limit < 2.0), int(report.steps)
    (True, 0)

    A sine with three periods is under-sampled on 41 samples, not on 2001:

    >>> for n in (41, 2001):
    ...     t = np.linspace(0.0, 1.0, n)
    ...     print(n, bool(diagnose(np.sin(6 * np.pi * t), dt=t[1]).undersampled))
    41 True
    2001 False
    """
    dt = _check_dt(dt)
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    return _diagnosis(_analyse(arr, source_dtype, kappa, window, floor_eps), dt)


def peak_mask(
    y: Any,
    *,
    axis: int = -1,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
) -> np.ndarray:
    """Boolean mask of the peak samples of ``D`` (length N-2 along ``axis``, moved to the last axis).

    ``mask[..., k]`` refers to ``D`` centred on sample ``k+1`` of ``y``.

    Parameters
    ----------
    y : array_like or torch.Tensor
        signals sampled on a uniform grid along ``axis``; any other axes are a batch.
    axis : int
        the sample axis.
    kappa, window, floor_eps : detector options, see the module docstring.

    Returns
    -------
    ndarray of bool, shape (..., N-2)
        core peak samples widened by one sample on both sides (the samples :func:`smp`
        sums).

    Example
    -------
    Kinks at t = 0.3 and 0.7 fall on samples 120 and 280 of a 401-sample grid:

    >>> t = np.linspace(0.0, 1.0, 401)
    >>> mask = peak_mask(np.abs(t - 0.3) - 2 * np.abs(t - 0.7))
    >>> mask.shape, np.flatnonzero(mask) + 1  # + 1: the samples of y they centre on
    ((399,), array([119, 120, 121, 279, 280, 281]))
    """
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    return _analyse(arr, source_dtype, kappa, window, floor_eps, keep=True).peak


def smp(
    y: Any,
    dt: float = 1.0,
    axis: int = -1,
    *,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
    warn: bool = True,
):
    """Sum of the magnitude of peaks of the second difference of every signal in ``y``.

    ``SMP(y) = (1/dt) * sum over peak samples n of |y[n+1] - 2 y[n] + y[n-1]|``, where peak samples
    are those standing ``kappa`` times above the local median level and above the local rounding
    floor ``floor_eps * eps * max|y|`` (see the module docstring).

    Parameters
    ----------
    y : array_like or torch.Tensor
        signals sampled on a uniform grid along ``axis``; any other axes are a batch.  Integers and
        floats; ``D`` is computed in float64 whatever the input dtype (the floor uses the input's
        eps).
    dt : float
        grid step in units of t.  With the true step, SMP is the total absolute slope jump in
        units of y per unit t; with ``dt=1`` it is the raw sum of the peaks of ``D``.
    axis : int
        the sample axis.
    kappa, window, floor_eps : detector options, see the module docstring.
    warn : bool
        raise the :class:`SMPWarning` subclass of each failure found (dense kinks or noise,
        rounding, a step, an under-sampled smooth part).

    Returns
    -------
    ndarray or torch.Tensor
        SMP with ``axis`` removed; a torch tensor for torch input; the input's float dtype
        (float64 for integer input).

    Raises
    ------
    TypeError
        ``y`` is not real numeric; ``dt`` is not a number.
    ValueError
        NaN or inf in ``y``, fewer than 3 samples, ``dt <= 0``, bad detector options.

    Example
    -------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 4001)
    >>> y = 1000.0 + np.abs(t - 0.3)  # one kink of slope jump 2, on an offset
    >>> round(float(smp(y, dt=t[1])), 6)
    2.0
    """
    dt = _check_dt(dt)
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, is_torch = _prepare(y, axis)
    analysis = _analyse(arr, source_dtype, kappa, window, floor_eps)
    diagnosis = _diagnosis(analysis, dt)
    total = analysis.total / dt
    total, refitted, fit_limit = _refit_rounded(arr, source_dtype, diagnosis, total, dt)
    if warn:
        _warn(diagnosis, source_dtype, refitted, fit_limit)
    out_dtype = source_dtype
    if is_torch:
        return torch.from_numpy(np.ascontiguousarray(total)).to(
            getattr(torch, np.dtype(out_dtype).name)
        )
    return (
        total.astype(out_dtype, copy=False) if np.ndim(total) else out_dtype.type(total)
    )


def peaks(
    y: Any,
    dt: float = 1.0,
    *,
    t0: float = 0.0,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
    warn: bool = True,
) -> Peaks:
    """The peaks of one 1-D signal: positions (units of t) and magnitudes (slope jumps).

    A peak is a maximal run of adjacent peak samples of ``D``.  Its magnitude is
    ``(1/dt) * sum |D|`` over the run, its signed jump ``(1/dt) * sum D``, and its position the
    ``|D|``-weighted mean of the run's sample times ``t_n = t0 + n*dt`` (exact for an isolated kink
    of a piecewise-linear signal).  ``peaks(y, dt).magnitudes.sum() == smp(y, dt)``.

    Parameters
    ----------
    y : array_like or torch.Tensor, shape (N,)
        one signal on a uniform grid.
    dt : float
        grid step in units of t.
    t0 : float
        time of sample 0 (sets the origin of ``positions``).
    kappa, window, floor_eps, warn : as in :func:`smp`.

    Returns
    -------
    Peaks
        ``positions``, ``magnitudes`` and signed ``jumps``, one entry per peak, in order
        of position (empty arrays when there is no peak).

    Example
    -------
    A piecewise-linear signal: the peaks are its kinks, their magnitudes its slope jumps
    and their sum its SMP.

    >>> t = np.linspace(0.0, 1.0, 401)
    >>> y = np.abs(t - 0.3) - 2 * np.abs(t - 0.7)  # slope jumps +2 and -4
    >>> found = peaks(y, dt=t[1])
    >>> np.round(found.positions, 6), np.round(found.magnitudes, 6)
    (array([0.3, 0.7]), array([2., 4.]))
    >>> round(float(found.magnitudes.sum()), 6), round(float(smp(y, dt=t[1])), 6)
    (6.0, 6.0)
    """
    dt = _check_dt(dt)
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, -1)
    if arr.ndim != 1:
        raise ValueError(
            f"peaks takes one 1-D signal, got y with shape {arr.shape}; use smp() for batches"
        )
    analysis = _analyse(arr, source_dtype, kappa, window, floor_eps, keep=True)
    if warn:
        _warn(_diagnosis(analysis, dt), source_dtype)
    d, peak = analysis.d, analysis.peak
    abs_d = np.abs(d)
    edges = np.diff(np.concatenate([[0], peak.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    if starts.size == 0:
        empty = np.zeros(0)
        return Peaks(empty, empty.copy(), empty.copy())
    times = t0 + dt * np.arange(1, arr.shape[0] - 1)  # D[k] is centred on sample k+1
    # reduceat sums from each start to the next start; zero the gaps so runs end at their stops
    gap_free = np.where(peak, abs_d, 0.0)
    run_abs = np.add.reduceat(gap_free, starts)
    run_signed = np.add.reduceat(np.where(peak, d, 0.0), starts)
    run_moment = np.add.reduceat(gap_free * times, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        positions = np.where(
            run_abs > 0, run_moment / run_abs, 0.5 * (times[starts] + times[stops - 1])
        )
    if (
        analysis.refined is not None
    ):  # peaks re-measured from line fits (rounding-limited)
        _, refined_start, refined_jump = analysis.refined
        which = np.searchsorted(starts, refined_start)
        run_abs[which] = np.abs(refined_jump)
        run_signed[which] = refined_jump
    return Peaks(positions, run_abs / dt, run_signed / dt)


def threshold(
    y: Any,
    *,
    axis: int = -1,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
) -> np.ndarray:
    """Per-sample detection threshold ``max(kappa * level[n], floor[n])`` on ``|D[n]|`` (for figures).

    Same layout as :func:`peak_mask`: length N-2 along the last axis, entry k for ``D`` centred on
    sample k+1.  Core peak samples are those where ``|D|`` exceeds it.

    Parameters
    ----------
    y : array_like or torch.Tensor
        signals sampled on a uniform grid along ``axis``; any other axes are a batch.
    axis : int
        the sample axis.
    kappa, window, floor_eps : detector options, see the module docstring.

    Returns
    -------
    ndarray, shape (..., N-2), float64
        the threshold on ``|D|`` in units of y (not divided by ``dt``).

    Example
    -------
    Outside the peak samples, ``|D|`` stays below the threshold:

    >>> t = np.linspace(0.0, 1.0, 401)
    >>> y = np.sin(2 * np.pi * t) + np.abs(t - 0.3)
    >>> limit, mask = threshold(y), peak_mask(y)
    >>> bool(np.all(np.abs(second_difference(y))[~mask] <= limit[~mask]))
    True
    """
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    return _analyse(arr, source_dtype, kappa, window, floor_eps, keep=True).threshold


def detection_limit(
    y: Any,
    dt: float = 1.0,
    axis: int = -1,
    *,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
) -> np.ndarray:
    """Smallest slope jump the detector can see in each signal (median over the signal).

    A kink of slope jump ``Ds`` puts ``dt*|Ds|`` into (at most) two samples of ``D``; its larger
    sample is at least ``dt*|Ds|/2`` and must exceed ``max(kappa*level, floor)``.  The bound
    ``2 * median over blocks of max(kappa*level, floor) / dt`` (units of y per unit t) rises with
    noise, with the data's rounding and with curvature at coarse resolution.

    Parameters
    ----------
    y : array_like or torch.Tensor
        signals sampled on a uniform grid along ``axis``; any other axes are a batch.
    dt : float
        grid step in units of t.
    axis : int
        the sample axis.
    kappa, window, floor_eps : detector options, see the module docstring.

    Returns
    -------
    ndarray
        the bound in units of y per unit t, shaped like ``y`` without ``axis``.

    Example
    -------
    Noise of standard deviation 0.001 hides slope jumps below about 13 on this grid:

    >>> t = np.linspace(0.0, 1.0, 401)
    >>> noise = np.random.default_rng(0).normal(0.0, 1e-3, t.size)
    >>> clean = detection_limit(np.abs(t - 0.3), dt=t[1])
    >>> noisy = detection_limit(np.abs(t - 0.3) + noise, dt=t[1])
    >>> bool(clean < 1e-6), round(float(noisy), 1)
    (True, 13.5)
    """
    return diagnose(
        y, dt, axis=axis, kappa=kappa, window=window, floor_eps=floor_eps
    ).detection_limit
