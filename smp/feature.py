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
``floor_eps`` (default 64)
    core samples must also exceed ``floor_eps * eps * max|y|`` (``eps`` of the input's dtype): the
    rounding noise of ``D`` is a few ``eps * |y|``, and an exactly piecewise-linear signal has a
    smooth level of pure rounding noise.

Each core sample is widened by one sample on both sides, because a kink close to a grid point puts
almost all of its jump in one sample and a tiny remainder in its neighbour, which may fall below the
threshold.  The widening adds at most ``2 dt**2 |y''|`` of smooth curvature per kink, a relative
error ``O(dt |y''| / |Ds|)`` that vanishes with resolution.

Limits: kinks closer than about 4 samples on average fill the blocks' medians and are no longer
told from the smooth part; a :class:`DenseKinksWarning` is raised when more than a quarter of a
signal's samples are core peak samples, or when ``D`` between peaks is jagged (:func:`roughness`
above 0.5: dense kinks, or noise); a slope jump smaller than
``kappa * level / dt`` is invisible (:func:`detection_limit` returns that bound per signal).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np

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
    "DenseKinksWarning",
    "DEFAULT_KAPPA",
    "DEFAULT_WINDOW",
    "DEFAULT_FLOOR_EPS",
]

DEFAULT_KAPPA = 10.0
DEFAULT_WINDOW = 41
DEFAULT_FLOOR_EPS = 64.0
#: a signal whose core peak samples exceed this fraction triggers :class:`DenseKinksWarning`;
#: past it, kink samples start to fill the blocks' medians (half a block would blind them).
DENSE_FRACTION = 0.25
#: :func:`roughness` above this triggers :class:`DenseKinksWarning` (smooth signals measure <= 0.25
#: down to 10 samples per length-scale; noise-dominated or densely kinked ones 1.2-1.8)
ROUGHNESS_LIMIT = 0.5
#: roughness ignores samples below this multiple of the floor, and signals with fewer such pairs
ROUGHNESS_FLOOR_FACTOR = 16.0
ROUGHNESS_MIN_PAIRS = 8


class DenseKinksWarning(UserWarning):
    """Kinks too dense for the grid, or noise: ``D`` between peaks is not smooth; SMP is underestimated."""


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
    """

    positions: np.ndarray
    magnitudes: np.ndarray
    jumps: np.ndarray


def _as_float_array(y: Any, name: str = "y") -> tuple[np.ndarray, np.dtype, bool]:
    """Return (float64 numpy view/copy, dtype whose eps sets the floor, came-from-torch)."""
    is_torch = torch is not None and isinstance(y, torch.Tensor)
    if is_torch:
        if y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"{name} must be a real numeric tensor, got dtype {y.dtype}")
        arr = y.detach().cpu().numpy()
    elif isinstance(y, np.ndarray):
        arr = y
    elif isinstance(y, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a {type(y).__name__}: {y!r:.40}")
    else:
        try:
            arr = np.asarray(y)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name} must be a numeric array (ragged or mixed input): {err}") from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a real numeric array (integer or float), got dtype {arr.dtype}"
        )
    source_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    return arr.astype(np.float64, copy=False), source_dtype, is_torch


def _check_dt(dt: Any) -> float:
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real):
        raise TypeError(f"dt must be a positive real number (the grid step), got {dt!r}")
    dt = float(dt)
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive finite grid step, got {dt}")
    return dt


def _check_options(kappa: float, window: int, floor_eps: float) -> None:
    if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or not kappa > 0:
        raise ValueError(f"kappa must be a positive number (threshold over the local level), got {kappa!r}")
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 3:
        raise ValueError(f"window must be an integer >= 3 (samples per median block), got {window!r}")
    if isinstance(floor_eps, bool) or not isinstance(floor_eps, numbers.Real) or floor_eps < 0:
        raise ValueError(f"floor_eps must be a non-negative number, got {floor_eps!r}")


def _prepare(y: Any, axis: int) -> tuple[np.ndarray, np.dtype, bool]:
    """Validate ``y`` and return it as float64 with the signal axis last."""
    arr, source_dtype, is_torch = _as_float_array(y)
    if arr.ndim == 0:
        raise ValueError("y must have at least one axis of samples, got a scalar")
    if not isinstance(axis, numbers.Integral) or not -arr.ndim <= axis < arr.ndim:
        raise ValueError(f"axis={axis!r} is out of range for y with {arr.ndim} dimension(s)")
    arr = np.moveaxis(arr, axis, -1)
    if arr.shape[-1] < 3:
        raise ValueError(
            f"y needs at least 3 samples along axis {axis} for a second difference, got {arr.shape[-1]}"
        )
    # one reduction first (fast); the exact count only when it is not finite (or overflowed)
    if not np.isfinite(arr.sum()) and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise ValueError(f"y contains {bad} NaN or infinite value(s); SMP needs finite samples")
    return arr, source_dtype, is_torch


def second_difference(y: np.ndarray) -> np.ndarray:
    """``D[n] = y[n+1] - 2 y[n] + y[n-1]`` along the last axis (length N-2)."""
    return (y[..., 2:] + y[..., :-2]) - 2.0 * y[..., 1:-1]


def _blocks_of_abs(d: np.ndarray, window: int) -> np.ndarray:
    """``|D|`` laid out as (..., n_blocks, window) blocks, padded so the last block holds the last
    ``window`` samples (overlapping its neighbour); ``result.reshape(...)[..., :m]`` is ``|D|``."""
    m = d.shape[-1]
    n_blocks = max(-(-m // window), 1)
    padded = np.empty(d.shape[:-1] + (n_blocks * window,))
    np.abs(d, out=padded[..., :m])
    pad = n_blocks * window - m
    if pad and m >= window:
        padded[..., m:] = padded[..., m - window : m - window + pad]
    elif pad:  # fewer samples than one block: repeat them cyclically
        padded[..., m:] = np.take(padded[..., :m], np.arange(pad) % m, axis=-1)
    return padded.reshape(d.shape[:-1] + (n_blocks, window))


def _block_level(blocks: np.ndarray) -> np.ndarray:
    """Per-block smooth level: max of the medians of the block and its two neighbours."""
    window = blocks.shape[-1]
    # partition, not sort: only the middle order statistic is needed (a copy: blocks stay intact)
    med = np.partition(blocks, window // 2, axis=-1)[..., window // 2]
    padded = np.concatenate([med[..., :1], med, med[..., -1:]], axis=-1)
    return np.maximum(np.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])


def _floor(arr: np.ndarray, source_dtype: np.dtype, floor_eps: float) -> np.ndarray:
    scale = np.maximum(arr.max(axis=-1, keepdims=True), -arr.min(axis=-1, keepdims=True))
    return floor_eps * np.finfo(source_dtype).eps * scale


def _core_and_peaks(
    arr: np.ndarray, source_dtype: np.dtype, kappa: float, window: int, floor_eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (D, |D|, core mask, widened peak mask, floor), along the last axis."""
    d = second_difference(arr)
    m = d.shape[-1]
    blocks = _blocks_of_abs(d, window)
    floor = _floor(arr, source_dtype, floor_eps)
    threshold = np.maximum(kappa * _block_level(blocks), floor)
    # compare block by block: no per-sample threshold array is ever built
    core = (blocks > threshold[..., None]).reshape(d.shape[:-1] + (-1,))[..., :m]
    abs_d = blocks.reshape(d.shape[:-1] + (-1,))[..., :m]
    peak = core.copy()
    peak[..., 1:] |= core[..., :-1]
    peak[..., :-1] |= core[..., 1:]
    return d, abs_d, core, peak, floor


def roughness(d: np.ndarray, peak: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``sum |D[n+1] - D[n]| / sum |D[n+1]|`` over pairs of non-peak samples well above the floor.

    Between peaks ``D ~ h**2 y''`` varies slowly, so the ratio is ``O(h |y'''| / |y''|)``: measured
    on Gaussian processes 0.001 with 2000 samples per length-scale, 0.06 with 40, 0.24 with 10 and
    0.45-0.64 with 4.  Noise or kinks too dense to be told apart make ``D`` jagged and the ratio
    about 1.2-1.8.  Only samples above ``16 * floor`` count: the rounding noise of a signal computed
    through a network (a float64 sum of many terms) can exceed the detector's floor, and between the
    kinks of an exactly piecewise-linear signal ``D`` is nothing but that noise.  Signals with fewer
    than 8 such pairs (exactly piecewise linear, constant) give 0.  Only every 4th pair ``(n, n+1)``
    is used: a ratio of sums needs no more, at a quarter of the cost.
    """
    left, right = d[..., :-1:4], d[..., 1::4]
    level = ROUGHNESS_FLOOR_FACTOR * floor
    pair = ~(peak[..., :-1:4] | peak[..., 1::4]) & (np.abs(left) > level) & (np.abs(right) > level)
    jag = (np.abs(right - left) * pair).sum(axis=-1)
    size = (np.abs(right) * pair).sum(axis=-1)
    enough = pair.sum(axis=-1) >= ROUGHNESS_MIN_PAIRS
    return np.divide(jag, size, out=np.zeros_like(jag), where=enough & (size > 0))


class Diagnosis(NamedTuple):
    """Per-signal reliability of the SMP estimate (see :func:`diagnose`)."""

    peak_fraction: np.ndarray
    roughness: np.ndarray
    unreliable: np.ndarray


def _diagnosis(d: np.ndarray, core: np.ndarray, peak: np.ndarray, floor: np.ndarray) -> Diagnosis:
    fraction = core.mean(axis=-1)
    rough = roughness(d, peak, floor)
    return Diagnosis(fraction, rough, (fraction > DENSE_FRACTION) | (rough > ROUGHNESS_LIMIT))


def _warn_if_unreliable(diagnosis: Diagnosis) -> None:
    fraction, rough, unreliable = diagnosis
    if np.any(unreliable):
        warnings.warn(
            f"kinks too dense for the grid, or noise: in {int(unreliable.sum())} of {unreliable.size} "
            f"signal(s) the second difference between peaks is not smooth (roughness up to "
            f"{float(rough.max()):.2f} > {ROUGHNESS_LIMIT}) or peaks cover more than {DENSE_FRACTION:.0%} "
            f"of the samples (up to {float(fraction.max()):.0%}). Kinks below detection_limit(y, dt) are "
            "missed and SMP is underestimated: sample the path more finely (kinks several samples "
            "apart) or reduce the noise.",
            DenseKinksWarning,
            stacklevel=3,
        )


def diagnose(
    y: Any,
    *,
    axis: int = -1,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
) -> Diagnosis:
    """Why :func:`smp` would warn, per signal: the fraction of core peak samples, the
    :func:`roughness` of ``D`` between peaks, and whether either passes its limit
    (``DENSE_FRACTION = 0.25``, ``ROUGHNESS_LIMIT = 0.5``)."""
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    d, _, core, peak, floor = _core_and_peaks(arr, source_dtype, kappa, window, floor_eps)
    return _diagnosis(d, core, peak, floor)


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
    """
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    return _core_and_peaks(arr, source_dtype, kappa, window, floor_eps)[3]


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
    are those standing ``kappa`` times above the local median level (see the module docstring).

    Parameters
    ----------
    y : array_like or torch.Tensor
        signals sampled on a uniform grid along ``axis``; any other axes are a batch.  Integers and
        floats; computed in float64 whatever the input dtype (the floor uses the input's eps).
    dt : float
        grid step in units of t.  With the true step, SMP is the total absolute slope jump in
        units of y per unit t; with ``dt=1`` it is the raw sum of the peaks of ``D``.
    axis : int
        the sample axis.
    kappa, window, floor_eps : detector options, see the module docstring.
    warn : bool
        raise :class:`DenseKinksWarning` when kinks are too dense for the grid.

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
    """
    dt = _check_dt(dt)
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, is_torch = _prepare(y, axis)
    d, abs_d, core, peak, floor = _core_and_peaks(arr, source_dtype, kappa, window, floor_eps)
    if warn:
        _warn_if_unreliable(_diagnosis(d, core, peak, floor))
    total = np.einsum("...i,...i->...", abs_d, peak.astype(np.float64)) / dt
    out_dtype = source_dtype
    if is_torch:
        return torch.from_numpy(np.ascontiguousarray(total)).to(
            getattr(torch, np.dtype(out_dtype).name)
        )
    return total.astype(out_dtype, copy=False) if np.ndim(total) else out_dtype.type(total)


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

    Parameters are those of :func:`smp`; ``y`` must be 1-D.
    """
    dt = _check_dt(dt)
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, -1)
    if arr.ndim != 1:
        raise ValueError(f"peaks takes one 1-D signal, got y with shape {arr.shape}; use smp() for batches")
    d, abs_d, core, peak, floor = _core_and_peaks(arr, source_dtype, kappa, window, floor_eps)
    if warn:
        _warn_if_unreliable(_diagnosis(d, core, peak, floor))
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
        positions = np.where(run_abs > 0, run_moment / run_abs, 0.5 * (times[starts] + times[stops - 1]))
    return Peaks(positions, run_abs / dt, run_signed / dt)


def threshold(
    y: Any,
    *,
    axis: int = -1,
    kappa: float = DEFAULT_KAPPA,
    window: int = DEFAULT_WINDOW,
    floor_eps: float = DEFAULT_FLOOR_EPS,
) -> np.ndarray:
    """Per-sample detection threshold ``max(kappa * level[n], floor)`` on ``|D[n]|`` (for figures).

    Same layout as :func:`peak_mask`: length N-2 along the last axis, entry k for ``D`` centred on
    sample k+1.  Core peak samples are those where ``|D|`` exceeds it.
    """
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    m = arr.shape[-1] - 2
    blocks = _blocks_of_abs(second_difference(arr), window)
    block_threshold = np.maximum(kappa * _block_level(blocks), _floor(arr, source_dtype, floor_eps))
    return np.repeat(block_threshold, blocks.shape[-1], axis=-1)[..., :m]


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
    ``2 * median over blocks of max(kappa*level, floor) / dt`` (units of y per unit t) rises with noise and
    with curvature at coarse resolution.
    """
    dt = _check_dt(dt)
    _check_options(kappa, window, floor_eps)
    arr, source_dtype, _ = _prepare(y, axis)
    blocks = _blocks_of_abs(second_difference(arr), window)
    threshold = np.maximum(kappa * _block_level(blocks), _floor(arr, source_dtype, floor_eps))
    return 2.0 * np.median(threshold, axis=-1) / dt
