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
    "SMPWarning",
    "DenseKinksWarning",
    "RoundingLimitWarning",
    "DiscontinuityWarning",
    "CloseKinksWarning",
    "UnderSampledWarning",
    "DEFAULT_KAPPA",
    "DEFAULT_WINDOW",
    "DEFAULT_FLOOR_EPS",
]

DEFAULT_KAPPA = 10.0
DEFAULT_WINDOW = 41
#: the floor is ``DEFAULT_FLOOR_EPS`` units in the last place (ulp, in the input's dtype) of the
#: signal's largest |y|: values rounded to their dtype carry at most ulp/2 each, so
#: ``D = y[n+1] - 2 y[n] + y[n-1]`` carries at most ``(1 + 2 + 1) * ulp/2 = 2 ulp`` (measured on
#: uniform rounding errors: median 0.52 ulp, 99.9th percentile 1.82 ulp); 4 ulp is twice that
#: bound, for values computed with a few roundings more (float64 test signals built from O(1)
#: terms show spikes of 4 ulp at their zero crossings)
DEFAULT_FLOOR_EPS = 4.0
#: a signal whose core peak samples exceed this fraction triggers :class:`DenseKinksWarning`;
#: past it, kink samples start to fill the blocks' medians (half a block would blind them).
DENSE_FRACTION = 0.25
#: :func:`roughness` above this triggers :class:`DenseKinksWarning` (smooth signals measure <= 0.25
#: down to 10 samples per length-scale; noise-dominated or densely kinked ones 1.2-1.8)
ROUGHNESS_LIMIT = 0.5
#: :func:`roughness` above this (and up to ROUGHNESS_LIMIT) triggers :class:`UnderSampledWarning`
UNDERSAMPLED_ROUGHNESS = 0.3
#: roughness ignores samples below ROUGHNESS_FLOOR_FACTOR * ROUGHNESS_FLOOR_EPS * eps * max|y|
#: (16 times the old floor of 64 eps max|y|, kept so that the dense-kink flags do not move), and
#: signals with fewer than ROUGHNESS_MIN_PAIRS such pairs
ROUGHNESS_FLOOR_FACTOR = 16.0
ROUGHNESS_FLOOR_EPS = 64.0
ROUGHNESS_MIN_PAIRS = 8
#: (reported by :func:`diagnose`, not warned on: it fired on resolved convolution outputs whose
#: many kinks split over two samples sit near the threshold) core samples barely above a
#: curvature-set threshold carrying more than this share of SMP
CURVATURE_SHARE_LIMIT = 0.05
#: :class:`UnderSampledWarning` when the curvature-set detection limit exceeds this multiple of
#: the slope's rms (smooth Gaussian processes measure 2.0, 1.0, 0.58, 0.25, 0.10 at 20, 40, 80,
#: 160, 320 samples per length-scale: the warning fires below about 80; the rms skips exact
#: zeros, else a ReLU output's zero stretches shrink it and chapter 4's ReLU outputs at 100
#: samples per length-scale, where SMP is right, were flagged).  A signal whose kinks are all
#: below the limit shows no peaks at all: only this bound can tell
UNDERSAMPLED_LIMIT_RATIO = 0.5
#: :class:`RoundingLimitWarning` when the rounding-set detection limit exceeds this share of the
#: slope's standard deviation, peaks or none (measured on chapter 2's float32 network: 0.02-0.03
#: at 20,000 samples, where SMP is within 0.5 % of float64; 0.08-0.11 at 80,000, 1.5-2 % short)
ROUNDING_LIMIT_RATIO = 0.05
#: median |D| of values carrying independent uniform rounding errors of at most ulp/2 (measured)
PURE_ROUNDING_MEDIAN = 0.52
#: :class:`RoundingLimitWarning` also when the rms rounding noise over the peak samples is more
#: than this share of SMP (each measured jump is then that uncertain)
ROUNDING_ERROR_LIMIT = 0.01
#: a block's threshold is "set by rounding" when D between peaks is jagged (roughness over
#: ROUGHNESS_LIMIT: noise, not curvature) and kappa times its level is at most this many ulp:
#: rounding of the values, or accumulated through the computation that made them (chapter 2's
#: float32 network: about 20 ulp of its largest output; 128 leaves a factor 6)
ROUNDING_LEVEL_ULP = 128.0
#: core samples within this factor of a rounding- or curvature-set threshold are "marginal" ...
MARGINAL_FACTOR = 2.0
#: ... and :class:`RoundingLimitWarning` is raised when those on rounding-set blocks carry more
#: than this share of SMP (chapter 2's float32 network: 0.02-0.03 at 20,000 samples, within
#: 0.5 % of float64; 0.14-0.15 at 80,000, 1.5-2 % short)
ROUNDING_SHARE_LIMIT = 0.05
#: below this many samples of D a block median cannot stand for the smooth level (a kink's two
#: samples would be most of it): the level is taken as 0 and UnderSampledWarning raised
MIN_LEVEL_SAMPLES = 5
#: peaks closer than this many samples on average trigger :class:`CloseKinksWarning`: kinks
#: placed at random (N(0, 1) jumps) lose CLOSE_LOSS / spacing of SMP on average (measured: 10.6,
#: 4.5, 2.4, 1.1, 0.66 % at 5, 10, 20, 40, 80 samples per kink), 1 % at 45
CLOSE_SPACING = 45.0
CLOSE_LOSS = 0.45
#: ... or when touching opposite-sign pairs may have cancelled more than this share of SMP
CLOSE_SHARE_LIMIT = 0.01
#: a step's two samples cancel to within this share, and its neighbours are this small
STEP_BALANCE = 0.25


class SMPWarning(UserWarning):
    """The data cannot support an accurate SMP; the subclass says why and what to do."""


class DenseKinksWarning(SMPWarning):
    """Kinks too dense for the grid, or noise: ``D`` between peaks is not smooth; SMP is underestimated."""


class RoundingLimitWarning(SMPWarning):
    """Kinks' peaks ``dt*|Ds|`` reach down to the rounding noise of ``D``: smaller ones are lost.

    Sample more coarsely (a peak grows like ``dt``) or compute the signal in float64."""


class DiscontinuityWarning(SMPWarning):
    """A step in ``y`` (or two opposite kinks within two samples): its SMP grows like ``1/dt``."""


class CloseKinksWarning(SMPWarning):
    """Kinks closer than the grid separates: opposite ones within a grid step cancel; sample finer."""


class UnderSampledWarning(SMPWarning):
    """The smooth part changes within a few samples (or the signal is too short): sample finer."""


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
    # float32 and float64 stay as they are (the detector converts a chunk at a time to float64)
    keep = arr.dtype in (np.float32, np.float64)
    return (arr if keep else arr.astype(np.float64)), source_dtype, is_torch


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
    """``D[n] = y[n+1] - 2 y[n] + y[n-1]`` along the last axis (length N-2), in float64.

    Example
    -------
    >>> second_difference(np.array([0.0, 1.0, 2.0, 4.0]))
    array([0., 1.])
    """
    y = np.asarray(y, dtype=np.float64)
    return (y[..., 2:] + y[..., :-2]) - 2.0 * y[..., 1:-1]


#: rows of a batch are processed in chunks of about this many samples: the working set of one
#: chunk stays in cache, and the extra memory is a few chunks, not a few copies of the batch
_CHUNK_SAMPLES = 1 << 17


def _n_blocks(m: int, window: int) -> int:
    return max(-(-m // window), 1)


def _pad_blocks(buf: np.ndarray, m: int, window: int) -> np.ndarray:
    """Fill ``buf[..., m:]`` (the padding of the last block) and return the (..., blocks, window)
    view: the last block holds the last ``window`` samples, overlapping its neighbour; fewer samples
    than one block are repeated cyclically."""
    total = buf.shape[-1]
    pad = total - m
    if pad and m >= window:
        buf[..., m:] = buf[..., m - window : m - window + pad]
    elif pad:
        buf[..., m:] = np.take(buf[..., :m], np.arange(pad) % m, axis=-1)
    return buf.reshape(buf.shape[:-1] + (total // window, window))


def _block_level(abs_blocks: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Per-block smooth level: max of the medians of ``|D|`` in the block and its two neighbours.

    With ``overwrite`` the blocks are partially sorted in place (no copy)."""
    window = abs_blocks.shape[-1]
    if overwrite:
        abs_blocks.partition(window // 2, axis=-1)
        med = abs_blocks[..., window // 2].copy()
    else:  # partition, not sort: only the middle order statistic is needed
        med = np.partition(abs_blocks, window // 2, axis=-1)[..., window // 2]
    padded = np.concatenate([med[..., :1], med, med[..., -1:]], axis=-1)
    return np.maximum(np.maximum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])


def _add_split_kinks(
    d: np.ndarray,
    core: np.ndarray,
    smooth_threshold: np.ndarray,
    floor: np.ndarray,
    floor_bound: np.ndarray,
    window: int,
) -> None:
    """Where the rounding floor (not the smooth level) sets the threshold, also count a kink split
    over two samples: both of one sign, each above the smooth threshold, their sum above the floor.

    A kink puts ``dt*|Ds|`` into two adjacent samples in a proportion set by its position, so the
    larger may be only half of it; rounding of values (at most ulp/2 each) bounds both a sample and
    the sum of two adjacent ones by 2 ulp, so the floor holds for the pair as it does for a sample.
    Updates ``core`` in place."""
    rows = np.flatnonzero(floor_bound.any(axis=-1))
    m = d.shape[-1]
    sub = d[rows]
    per_sample = lambda a: np.repeat(a[rows], window, axis=-1)[:, :m]  # noqa: E731
    smooth, fl = per_sample(smooth_threshold), per_sample(floor)
    left, right = sub[:, :-1], sub[:, 1:]
    pair = (
        (left * right > 0)
        & (np.abs(left + right) > np.maximum(fl[:, :-1], fl[:, 1:]))
        & (np.abs(left) > smooth[:, :-1])
        & (np.abs(right) > smooth[:, 1:])
    )
    if pair.any():
        added = np.zeros_like(pair, shape=(rows.size, m))
        added[:, :-1] |= pair
        added[:, 1:] |= pair
        core[rows] |= added


def _count_steps(
    d: np.ndarray, core: np.ndarray, r_c: np.ndarray, c_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the number of step marks in ``D``, and of other adjacent opposite-sign core pairs
    (two kinks of opposite sign sharing a sample of ``D``: partly cancelled).

    Step marks: two adjacent core samples of opposite sign that nearly cancel
    (``|D[n] + D[n+1]| <= STEP_BALANCE * max``) while their outer neighbours are small
    (``<= STEP_BALANCE * min``).  A step S between samples puts exactly ``+S, -S`` there; two
    kinks of opposite sign in one grid interval do the same (and cannot be told from it); two kinks
    a couple of samples apart spread over four samples and do not match.  ``r_c, c_c`` are the
    rows and columns of the core samples."""
    rows, m = d.shape
    steps = np.zeros(rows, dtype=np.int64)
    close = np.zeros(rows)
    has_next = c_c + 1 < m
    r, c = r_c[has_next], c_c[has_next]
    pair = core[r, c + 1]
    r, c = r[pair], c[pair]
    if r.size == 0:
        return steps, close
    a, b = d[r, c], d[r, c + 1]
    small = STEP_BALANCE * np.minimum(np.abs(a), np.abs(b))
    before = np.abs(d[r, np.maximum(c - 1, 0)]) * (c > 0)
    after = np.abs(d[r, np.minimum(c + 2, m - 1)]) * (c + 2 < m)
    opposite = a * b < 0
    step = (
        opposite
        & (np.abs(a + b) <= STEP_BALANCE * np.maximum(np.abs(a), np.abs(b)))
        & (before <= small)
        & (after <= small)
    )
    np.add.at(steps, r[step], 1)
    # two kinks side by side over four samples (+, +, -, -) share none: not close
    outer_left = (c > 0) & core[r, np.maximum(c - 1, 0)] & (d[r, np.maximum(c - 1, 0)] * a > 0)
    last = np.minimum(c + 2, m - 1)
    outer_right = (c + 2 < m) & core[r, last] & (d[r, last] * b > 0)
    touching = opposite & ~step & ~(outer_left & outer_right)
    # what the pair can have lost: the smaller side, twice (it may have cancelled as much)
    np.add.at(close, r[touching], 2 * np.minimum(np.abs(a), np.abs(b))[touching])
    return steps, close


class _Analysis(NamedTuple):
    """Per-signal results of the detector (arrays over the batch), and optionally the masks."""

    total: np.ndarray  # sum of |D| over peak samples
    fraction: np.ndarray  # share of core samples
    roughness: np.ndarray
    limit: np.ndarray  # median over blocks of the threshold (units of D)
    rounding_share: np.ndarray  # share of the peak mass in samples barely above a rounding floor
    rounding_error: np.ndarray  # rms rounding noise over the peak samples / peak mass
    curvature_share: np.ndarray  # share of the peak mass barely above a curvature-set threshold
    limit_ratio: np.ndarray  # curvature-set detection limit / standard deviation of the slope
    rounding_ratio: np.ndarray  # rounding-set detection limit / standard deviation of the slope
    rounding_limit: np.ndarray  # median threshold over rounding-limited blocks (units of D), or 0
    steps: np.ndarray  # step marks (balanced opposite-sign pairs): count per signal
    close: np.ndarray  # mass of D that touching opposite-sign pairs may have cancelled / SMP mass
    spacing: np.ndarray  # samples of D per peak
    few_samples: bool
    d: np.ndarray | None = None
    core: np.ndarray | None = None
    peak: np.ndarray | None = None
    threshold: np.ndarray | None = None


class _Chunk(NamedTuple):
    """What one chunk of rows hands back: per-row sums, per-block thresholds, optional masks."""

    total: np.ndarray
    fraction: np.ndarray
    roughness: np.ndarray
    marginal_mass: np.ndarray
    curvature_mass: np.ndarray
    noise_rms: np.ndarray
    slope_scale: np.ndarray
    steps: np.ndarray
    close: np.ndarray
    n_peaks: np.ndarray
    threshold: np.ndarray  # (rows, blocks)
    limited: np.ndarray  # (rows, blocks)
    d: np.ndarray | None
    core: np.ndarray | None
    peak: np.ndarray | None


def _buffers(rows: int, n: int, window: int) -> dict[str, np.ndarray]:
    """Work arrays for chunks of ``rows`` signals, allocated once and reused: fresh memory for every
    chunk costs more (page faults) than the arithmetic."""
    width = _n_blocks(n - 2, window) * window
    return {
        "y": np.empty((rows, n)),
        "first": np.empty((rows, n - 1)),
        "d": np.empty((rows, width)),
        "abs": np.empty((rows, width)),
        "core": np.empty((rows, width), dtype=bool),
        "peak": np.empty((rows, width), dtype=bool),
    }


def _analyse_chunk(
    y: np.ndarray,
    dtype: np.dtype,
    kappa: float,
    window: int,
    floor_eps: float,
    keep: bool,
    buffers: dict[str, np.ndarray],
) -> _Chunk:
    """The detector on a 2-D chunk ``(rows, N)`` of signals (any float dtype), D in float64."""
    rows, n = y.shape
    m = n - 2
    n_blocks = _n_blocks(m, window)
    if y.dtype != np.float64 or not y.flags.c_contiguous:
        # one cast (or gather, for a sample axis that was not last) into a reused buffer:
        # mixed-type and strided arithmetic are slower
        np.copyto(buffers["y"][:rows], y)
        y = buffers["y"][:rows]
    first = buffers["first"][:rows]
    np.subtract(y[:, 1:], y[:, :-1], out=first)
    # D as the difference of first differences, straight into the padded block buffer
    d_buf = buffers["d"][:rows]
    d = d_buf[:, :m]
    np.subtract(first[:, 1:], first[:, :-1], out=d)
    d_blocks = _pad_blocks(d_buf, m, window)
    abs_buf = np.abs(d_buf, out=buffers["abs"][:rows])
    abs_blocks = abs_buf.reshape(d_blocks.shape)
    if m < MIN_LEVEL_SAMPLES:  # too few samples for a median to stand for the smooth level
        level = np.zeros((rows, n_blocks))
    else:
        level = _block_level(abs_blocks, overwrite=True)
        np.abs(d_buf, out=abs_buf)  # restore |D| after the in-place partition
    # the unit in the last place (in the input's dtype) of the signal's largest |y|: values
    # rounded to it carry at most ulp/2 each, and D at most 2 ulp.  Global, not local: a value
    # near zero computed from larger terms carries the rounding of the terms (measured: spikes of
    # 2-4 ulp of max|y| at the zero crossings of float64 piecewise-linear test signals)
    scale = np.maximum(np.abs(y.max(axis=-1)), np.abs(y.min(axis=-1))).astype(np.float64)
    ulp = np.spacing(scale.astype(dtype)).astype(np.float64)
    rounding = np.broadcast_to(ulp[:, None], (rows, n_blocks))
    smooth_threshold = kappa * level
    floor = floor_eps * rounding
    threshold = np.maximum(smooth_threshold, floor)
    core_flat = buffers["core"][:rows]
    core_blocks = core_flat.reshape(d_blocks.shape)
    np.greater(abs_blocks, threshold[..., None], out=core_blocks)
    core = core_flat[:, :m]
    floor_bound = floor > smooth_threshold
    if floor_bound.any():
        _add_split_kinks(d, core, smooth_threshold, floor, floor_bound, window)
    width = core_flat.shape[1]
    core_flat[:, m:] = False  # the padding repeats samples: count each once
    core_at = np.flatnonzero(core_flat)  # core samples are few: work on their positions
    r_c, c_c = np.divmod(core_at, width)
    b_c = c_c // window
    fraction = np.bincount(r_c, minlength=rows) / m
    peak_flat = buffers["peak"][:rows]
    np.copyto(peak_flat, core_flat)
    peak_flat[:, 1:] |= core_flat[:, :-1]
    peak_flat[:, :-1] |= core_flat[:, 1:]
    peak_flat[:, m:] = False
    peak = peak_flat[:, :m]
    steps, close = _count_steps(d, core, r_c, c_c)
    # peaks are runs of the widened core: a new one starts where the previous core sample of the
    # row is more than 3 samples back (closer ones merge once widened)
    new_run = np.ones(r_c.size, dtype=bool)
    new_run[1:] = (r_c[1:] != r_c[:-1]) | (c_c[1:] - c_c[:-1] > 3)
    n_peaks = np.bincount(r_c[new_run], minlength=rows)
    # every 4th pair (n, n+1) of D, gathered once: the jaggedness ratios below need no more
    left, right = d[:, 0 : m - 1 : 4].copy(), d[:, 1:m:4].copy()
    step_change = np.abs(right - left)
    np.abs(right, out=right)
    np.abs(left, out=left)
    # the threshold is set by the data's rounding where D between peaks is jagged (noise, not
    # curvature: the curvature of a resolved smooth part changes little from sample to sample) and
    # kappa * level is within ROUNDING_LEVEL_ULP ulp
    calm = ~(core[:, 0 : m - 1 : 4] | core[:, 1:m:4])
    if left.shape[1]:
        starts = -(-np.arange(n_blocks) * window // 4)  # first gathered pair of each block
        starts = np.minimum(starts, left.shape[1] - 1)
        jag = np.add.reduceat(step_change * calm, starts, axis=-1)
        size = np.add.reduceat(right * calm, starts, axis=-1)
    else:  # a single sample of D
        jag = size = np.zeros((rows, n_blocks))
    limited = (jag > ROUGHNESS_LIMIT * size) & (smooth_threshold <= ROUNDING_LEVEL_ULP * rounding)
    # core samples barely above their threshold (within MARGINAL_FACTOR): a population of kinks
    # reaching down to the limit continues below it, unseen
    values = abs_buf[r_c, c_c]
    is_marginal = values <= MARGINAL_FACTOR * threshold[r_c, b_c]
    on_rounding = limited[r_c, b_c]
    marginal_mass = np.bincount(r_c, values * (is_marginal & on_rounding), minlength=rows)
    curvature_mass = np.bincount(r_c, values * (is_marginal & ~on_rounding), minlength=rows)
    if limited.any():
        # rounding noise per sample of D: the block's level, at least that of pure rounding
        noise = np.where(limited, np.maximum(level, PURE_ROUNDING_MEDIAN * rounding), 0.0)
        n_peak = np.count_nonzero(peak_flat.reshape(d_blocks.shape), axis=-1)
        noise_rms = np.sqrt((n_peak * noise**2).sum(axis=-1))
    else:
        noise_rms = np.zeros(rows)
    # the typical slope, root mean square over the samples where it is not exactly 0 (a ReLU
    # output's zero stretches say nothing about the kinks' scale); every 16th is enough
    sub = first[:, ::16]
    moving = np.maximum(np.count_nonzero(sub, axis=-1), 1)
    slope_scale = np.sqrt(np.einsum("rk,rk->r", sub, sub) / moving)
    eps = float(np.finfo(dtype).eps)
    # roughness (see the public function: the same sums, on the gathered pairs)
    floor_r = (ROUGHNESS_FLOOR_FACTOR * ROUGHNESS_FLOOR_EPS * eps * scale)[:, None]
    pair = ~(peak[:, 0 : m - 1 : 4] | peak[:, 1:m:4]) & (left > floor_r) & (right > floor_r)
    weight = pair.astype(np.float64)
    rough_jag = np.einsum("rk,rk->r", step_change, weight)
    rough_size = np.einsum("rk,rk->r", right, weight)
    enough = np.count_nonzero(pair, axis=-1) >= ROUGHNESS_MIN_PAIRS
    rough = np.divide(
        rough_jag, rough_size, out=np.zeros(rows), where=enough & (rough_size > 0)
    )
    # SMP: |D| summed over the peak samples, gathered sparsely (they are few)
    peak_at = np.flatnonzero(peak_flat)
    total = np.bincount(peak_at // width, abs_buf.ravel()[peak_at], minlength=rows)
    masks = (d.copy(), core.copy(), peak.copy()) if keep else (None, None, None)
    return _Chunk(
        total, fraction, rough, marginal_mass, curvature_mass, noise_rms, slope_scale, steps,
        close, n_peaks, threshold, limited, *masks,
    )


def _analyse(
    arr: np.ndarray, source_dtype: np.dtype, kappa: float, window: int, floor_eps: float,
    keep: bool = False,
) -> _Analysis:
    """Run the detector over a batch (signal axis last), chunk by chunk over the rows."""
    batch_shape, n = arr.shape[:-1], arr.shape[-1]
    m = n - 2
    rows = arr.reshape(-1, n)
    step = max(1, min(_CHUNK_SAMPLES // n, rows.shape[0]))
    buffers = _buffers(step, n, window)
    parts = [
        _analyse_chunk(rows[i : i + step], source_dtype, kappa, window, floor_eps, keep, buffers)
        for i in range(0, rows.shape[0], step)
    ]
    c = _Chunk(*[None if p[0] is None else np.concatenate(p) for p in zip(*parts)])
    # per-signal bounds from the per-block thresholds, once for the whole batch
    limit = np.median(c.threshold, axis=-1)
    limited_thr = np.where(c.limited, c.threshold, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # signals without such blocks: NaN
        rounding_limit = np.nan_to_num(np.nanmedian(limited_thr, axis=-1), nan=0.0)
    curvature_limit = np.median(np.where(c.limited, 0.0, c.threshold), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        limit_ratio = np.where(c.slope_scale > 0, 2.0 * curvature_limit / c.slope_scale, 0.0)
        rounding_ratio = np.where(c.slope_scale > 0, 2.0 * rounding_limit / c.slope_scale, 0.0)
        positive = c.total > 0
        safe_total = np.where(positive, c.total, 1.0)
        share = np.where(positive, c.marginal_mass / safe_total, 0.0)
        noise_share = np.where(positive, c.noise_rms / safe_total, 0.0)
        curvature_share = np.where(positive, c.curvature_mass / safe_total, 0.0)
    spacing = np.where(c.n_peaks > 0, m / np.maximum(c.n_peaks, 1), np.inf)
    close_share = np.where(c.total > 0, c.close / np.where(c.total > 0, c.total, 1.0), 0.0)
    per_sample = np.repeat(c.threshold, window, axis=-1)[:, :m] if keep else None
    values = [
        c.total, c.fraction, c.roughness, limit, share, noise_share, curvature_share,
        limit_ratio, rounding_ratio, rounding_limit, c.steps, close_share, spacing,
    ]
    shaped = [v.reshape(batch_shape) for v in values]
    masks = [None if v is None else v.reshape(batch_shape + (m,)) for v in (c.d, c.core, c.peak)]
    if per_sample is not None:
        per_sample = per_sample.reshape(batch_shape + (m,))
    return _Analysis(*shaped, m < MIN_LEVEL_SAMPLES, *masks, per_sample)


def roughness(d: np.ndarray, peak: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """``sum |D[n+1] - D[n]| / sum |D[n+1]|`` over pairs of non-peak samples well above the floor.

    Between peaks ``D ~ h**2 y''`` varies slowly, so the ratio is ``O(h |y'''| / |y''|)``: measured
    on Gaussian processes 0.001 with 2000 samples per length-scale, 0.06 with 40, 0.24 with 10 and
    0.45-0.64 with 4.  Noise or kinks too dense to be told apart make ``D`` jagged and the ratio
    about 1.2-1.8.  Only samples above ``16 * floor`` count (``floor`` is
    ``ROUGHNESS_FLOOR_EPS / 16 * eps * max|y|`` in :func:`smp`): the rounding noise of a signal
    computed through a network (a float64 sum of many terms) can exceed the detector's floor, and
    between the kinks of an exactly piecewise-linear signal ``D`` is nothing but that noise.
    Signals with fewer than 8 such pairs (exactly piecewise linear, constant) give 0.  Only every
    4th pair ``(n, n+1)`` is used: a ratio of sums needs no more, at a quarter of the cost.
    """
    left, right = d[..., :-1:4], d[..., 1::4]
    level = ROUGHNESS_FLOOR_FACTOR * floor
    pair = ~(peak[..., :-1:4] | peak[..., 1::4]) & (np.abs(left) > level) & (np.abs(right) > level)
    jag = (np.abs(right - left) * pair).sum(axis=-1)
    size = (np.abs(right) * pair).sum(axis=-1)
    enough = pair.sum(axis=-1) >= ROUGHNESS_MIN_PAIRS
    return np.divide(jag, size, out=np.zeros_like(jag), where=enough & (size > 0))


class Diagnosis(NamedTuple):
    """Per-signal reliability of the SMP estimate (see :func:`diagnose`).

    Attributes
    ----------
    peak_fraction : share of samples of ``D`` that are core peak samples.
    roughness : :func:`roughness` of ``D`` between peaks.
    unreliable : ``peak_fraction > DENSE_FRACTION`` or ``roughness > ROUGHNESS_LIMIT``: the
        condition of :class:`DenseKinksWarning`.
    detection_limit : smallest slope jump the detector sees (units of y per unit t, with ``dt``):
        ``2 * median threshold / dt``.
    rounding_limit : the same bound over the stretches where the data's rounding (not the smooth
        curvature) sets the threshold; 0 where there are none.
    rounding_share : share of SMP in peak samples within a factor ``MARGINAL_FACTOR`` of a rounding
        threshold (:class:`RoundingLimitWarning` above ``ROUNDING_SHARE_LIMIT``): smaller kinks,
        below the limit, are lost.
    rounding_error : root-mean-square rounding noise summed over the peak samples, relative to SMP
        (:class:`RoundingLimitWarning` above ``ROUNDING_ERROR_LIMIT``): the rounding error of SMP.
    curvature_share : share of SMP in peak samples within a factor ``MARGINAL_FACTOR`` of a
        threshold set by the smooth curvature (information only: kinks reach down to the
        curvature carpet).
    limit_ratio : the detection limit where curvature sets it, over the rms of the signal's slope
        (where it is not exactly 0) (:class:`UnderSampledWarning` above ``UNDERSAMPLED_LIMIT_RATIO``): kinks
        smaller than this share of the typical slope are invisible at this grid step.
    rounding_ratio : ``rounding_limit`` over the standard deviation of the slope
        (:class:`RoundingLimitWarning` above ``ROUNDING_LIMIT_RATIO``, with or without peaks).
    steps : number of adjacent peak-sample pairs of opposite sign (:class:`DiscontinuityWarning`).
    close_kinks : whether kinks are closer than the grid separates (:class:`CloseKinksWarning`):
        adjacent peak samples of opposite sign (not a step mark) whose smaller sides, doubled,
        exceed ``CLOSE_SHARE_LIMIT`` of SMP (what they may have cancelled), or peaks closer than
        ``CLOSE_SPACING`` samples on average.
    peak_spacing : samples of ``D`` per peak (inf without peaks).
    undersampled : ``roughness > UNDERSAMPLED_ROUGHNESS`` or ``limit_ratio >
        UNDERSAMPLED_LIMIT_RATIO`` (and not :attr:`unreliable`), or fewer than
        ``MIN_LEVEL_SAMPLES + 2`` samples (:class:`UnderSampledWarning`).
    """

    peak_fraction: np.ndarray
    roughness: np.ndarray
    unreliable: np.ndarray
    detection_limit: np.ndarray
    rounding_limit: np.ndarray
    rounding_share: np.ndarray
    rounding_error: np.ndarray
    curvature_share: np.ndarray
    limit_ratio: np.ndarray
    rounding_ratio: np.ndarray
    steps: np.ndarray
    close_kinks: np.ndarray
    peak_spacing: np.ndarray
    undersampled: np.ndarray


def _diagnosis(a: _Analysis, dt: float) -> Diagnosis:
    dense = (a.fraction > DENSE_FRACTION) | (a.roughness > ROUGHNESS_LIMIT)
    under = ((a.roughness > UNDERSAMPLED_ROUGHNESS) | (a.limit_ratio > UNDERSAMPLED_LIMIT_RATIO)) & ~dense
    if a.few_samples:
        under = np.ones_like(dense)
    return Diagnosis(
        a.fraction, a.roughness, dense, 2.0 * a.limit / dt, 2.0 * a.rounding_limit / dt,
        a.rounding_share, a.rounding_error, a.curvature_share, a.limit_ratio,
        a.rounding_ratio, a.steps, (a.close > CLOSE_SHARE_LIMIT) | (a.spacing < CLOSE_SPACING),
        a.spacing, under,
    )


def _warn(diagnosis: Diagnosis, dtype: np.dtype) -> None:
    """Raise the specific warning of every failure present in the batch."""
    n = diagnosis.unreliable.size
    dense = diagnosis.unreliable
    if np.any(dense):
        warnings.warn(
            f"kinks too dense for the grid, or noise: in {int(dense.sum())} of {n} signal(s) the "
            "second difference between peaks is not smooth (roughness up to "
            f"{float(diagnosis.roughness.max()):.2f} > {ROUGHNESS_LIMIT}) or peaks cover more than "
            f"{DENSE_FRACTION:.0%} of the samples (up to {float(diagnosis.peak_fraction.max()):.0%})."
            " Kinks below detection_limit(y, dt) are missed and SMP is underestimated: sample the "
            "path more finely (kinks several samples apart) or reduce the noise.",
            DenseKinksWarning,
            stacklevel=3,
        )
    rounding = (
        (diagnosis.rounding_share > ROUNDING_SHARE_LIMIT)
        | (diagnosis.rounding_error > ROUNDING_ERROR_LIMIT)
        | (diagnosis.rounding_ratio > ROUNDING_LIMIT_RATIO)
    )
    if np.any(rounding):
        limit = float(np.max(diagnosis.rounding_limit[rounding]))
        warnings.warn(
            f"the data's rounding ({np.dtype(dtype).name}) limits SMP: in {int(rounding.sum())} of "
            f"{n} signal(s) up to {float(diagnosis.rounding_share.max()):.1%} of SMP sits in peaks "
            "barely above the rounding noise of the second difference (smaller kinks are lost) "
            f"and the rounding error of SMP is up to {float(diagnosis.rounding_error.max()):.1%}. "
            f"Slope jumps below about {limit:.3g} (y per unit t, with the true dt) are not seen: "
            "sample more coarsely (a kink's peak grows like dt, the rounding does not) or compute "
            "y in float64.",
            RoundingLimitWarning,
            stacklevel=3,
        )
    steps = diagnosis.steps > 0
    if np.any(steps):
        warnings.warn(
            f"a discontinuity, not a kink: in {int(steps.sum())} of {n} signal(s) two adjacent "
            "samples of the second difference stand out with opposite signs, the mark of a step in "
            "y (or of two kinks of opposite sign less than two samples apart). A step adds "
            "2 |step| / dt to SMP, which grows as the grid is refined: remove the step, or sample "
            "more finely to tell the two apart.",
            DiscontinuityWarning,
            stacklevel=3,
        )
    close = diagnosis.close_kinks & ~dense
    if np.any(close):
        spacing = float(np.min(diagnosis.peak_spacing[close]))
        crowded = diagnosis.peak_spacing[close] < CLOSE_SPACING
        reason = (
            f"peaks come every {spacing:.0f} samples on average"
            if crowded.any()
            else "peak samples of opposite sign touch (kinks sharing a sample)"
        )
        warnings.warn(
            f"kinks closer than the grid separates: in {int(close.sum())} of {n} signal(s) "
            f"{reason}. Kinks of opposite sign within one grid step share a sample of the second "
            "difference and cancel: measured on kinks placed at random, SMP is about "
            f"{CLOSE_LOSS:.2f} / (samples per kink) short on average (1 % at "
            f"{CLOSE_SPACING:.0f}), more on some signals. Sample more finely.",
            CloseKinksWarning,
            stacklevel=3,
        )
    under = diagnosis.undersampled
    if np.any(under):
        warnings.warn(
            f"the smooth part is under-sampled: in {int(under.sum())} of {n} signal(s) the second "
            "difference between peaks changes from sample to sample (roughness up to "
            f"{float(diagnosis.roughness.max()):.2f} > {UNDERSAMPLED_ROUGHNESS}; fewer than about "
            "8 samples per length-scale of the signal), or the signal has fewer than "
            f"{MIN_LEVEL_SAMPLES + 2} samples, so curvature and kinks are not told apart and SMP "
            "may be off by 10 % or more: sample the path more finely.",
            UnderSampledWarning,
            stacklevel=3,
        )


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

    Example
    -------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 4001)
    >>> y = (1000.0 + np.abs(t - 0.3)).astype(np.float32)  # one kink, slope jump 2
    >>> report = diagnose(y, dt=t[1])
    >>> bool(report.detection_limit < 2.0), int(report.steps)
    (True, 0)
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
    if warn:
        _warn(_diagnosis(analysis, dt), source_dtype)
    total = analysis.total / dt
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
    """Per-sample detection threshold ``max(kappa * level[n], floor[n])`` on ``|D[n]|`` (for figures).

    Same layout as :func:`peak_mask`: length N-2 along the last axis, entry k for ``D`` centred on
    sample k+1.  Core peak samples are those where ``|D|`` exceeds it.
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
    """
    return diagnose(y, dt, axis=axis, kappa=kappa, window=window, floor_eps=floor_eps).detection_limit
