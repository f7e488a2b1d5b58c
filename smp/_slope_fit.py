"""Kinks hidden by value rounding: a least-squares continuous piecewise-linear fit.

When a signal's values are rounded to a coarse grid (float32 values on a large offset), the
second difference ``D`` carries ``sqrt(6) * sigma`` of rounding noise per sample, with
``sigma = q / sqrt(12)`` the standard deviation of rounding to the unit in the last place ``q``
of the signal's largest ``|y|`` (global: a value near zero computed from larger terms carries
their rounding).  A kink of slope jump ``Ds`` puts only ``dt*|Ds|`` into one or two samples of
``D``, so kinks with ``dt*|Ds|`` of a few ``sigma`` are lost by any detector on ``D``.  Lines
fitted through ``W`` samples on either side of a kink measure its jump to
``sigma * sqrt(24 / W**3)`` (per sample) instead: the kinks reappear.

The model, per signal (in samples, ``x = 0 .. N-1``)::

    y(x) = sum_k v_k hat_k(x) + sum_j c_j B_j(x) + rounding noise (sd sigma)

``hat_k`` are the hat functions of a continuous piecewise-linear function with knots ``tau_k``
(the kinks, sub-sample positions, plus the two ends), ``B_j`` cubic B-splines on ``N / 64``
samples per piece (the smooth curvature between kinks: a great circle through a network is
piecewise sinusoidal, not linear; B_0, B_1 are left out, the hats carry the straight lines).  The
slope jump at knot ``k`` is ``J_k = s_k - s_{k-1}``, ``s_k = (v_{k+1} - v_k) / (tau_{k+1} -
tau_k)``; SMP is ``sum_k |J_k| / dt`` (y per unit t, as :func:`smp.feature.smp`).

The fit (:func:`fit_kinks`), vectorised over the batch (the signals of a chunk form one
block-diagonal least-squares problem, banded once its columns are ordered by position):

1. smooth part only; then in rounds: a matched filter on the residual (the difference of the
   least-squares slopes over ``w`` samples right and left of every sample, ``w`` in
   ``FIT_WINDOWS``, in units of its standard deviation under the rounding noise: a sawtooth set
   by the fitted slope, :func:`_sawtooth_variance`, never less than white noise) proposes knots
   at its local maxima above ``FIT_Z``, smallest window first (small windows place a kink, large
   ones find weak ones);
2. the knots are fitted and pruned: a knot whose jump is below ``FIT_Z`` standard deviations
   (from the exact covariance of the fit under white noise, times the sawtooth's factor over
   the shorter of the knot's two segments) is dropped (the weakest of neighbouring weak knots
   first), and proposals dropped once are not proposed again;
3. knot positions are refined to sub-sample precision by Gauss-Newton steps (at most half a
   sample each); knots closer than one sample merge; refined and pruned twice at the end.

The result is accepted only where (a) the residual's spread (interquartile range over sqrt(3))
is at most ``FIT_RESIDUAL_LIMIT`` sigma (noise from the computation rather than the values'
rounding leaves more); (b) SMP changes by at most ``FIT_STABILITY`` when
the smooth part is four times finer (knots that only followed curvature then lose their
significance); (c) the values move by half an ulp or more per sample (median), so that a window
holds several teeth of the rounding's sawtooth.

Measured on the issue-12 network (two outputs, float32, offset 1e3 times the output scale; the
float64 SMP at the same N as reference): 0.4 % and 1.4 % low at 20,000 samples; 4.1 % and 4.2 %
low at 10,000 and 5,000 (kinks 13 samples apart), 2.5 % and 4.1 % at 2,000; at 80,000 the first
output 3.8 % high, the second not fitted (values move by less than half an ulp per sample),
neither at 160,000.  Against the
converged SMP (float64 at 320,000 samples, itself 0.5 % and 0.9 % above the float64 SMP at
20,000) the fit at 20,000 is 0.9 % and 2.3 % low.  Compared kink by kink with a float64 fit at
the kinks' true positions (the hidden units' zero crossings, 382 kinks), the second output
loses 1.8 % of SMP in 53 isolated kinks too weak to see, 1.7 % in 19 pairs of kinks a few
samples apart fitted as one, 1.6 % in other close groups, and gains 0.5 % in the kinks it finds
and 0.3 % from 5 knots where there is no kink.  With an offset of 1e2 times the scale: 2.9 % and
4.4 % high at 2,000 samples, 0.2 % and 0.35 % low at 5,000, 0.2 % low at 20,000 (both), 0.1 %
and 0.04 % low at 80,000, 1.3 % and 1.6 % high at 160,000; with 3e2 times 1.1 % and 2.6 % low
at 5,000, 0.2 % and 0.8 % low at 20,000.  With 3e3 times: refused.  On 32 random
piecewise-linear float32 signals (8 each of 12 kinks of jump std 100 at 80,001 and 20,001
samples on an offset of 1e3, 40 kinks of jump std 10 at 20,001 samples on 1e2 and at 80,001 on
1e3; seed 31): per signal from 0.5 % low to 3.1 % high, mean absolute error 0.4 / 0.2 / 0.2 /
1.2 % per group, against 30 / 4.2 / 1.7 / 98 % for the second-difference detector alone (which
is only ever low).  Under white-noise thresholds (before
the sawtooth) the same signals were 8.0 % low to 22.5 % high: knots on every tooth of a steep
line's rounding.  Cost: 1.7 s of CPU for the network's two outputs at 20,000 samples, 1.4 s per
signal of 80,001 samples.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve_banded, cholesky_banded
from scipy.ndimage import maximum_filter1d
from threadpoolctl import threadpool_limits

from ._diagnosis import Diagnosis, _rounding_limited

__all__ = ["KinkFit", "fit_kinks"]

#: detection threshold for proposing and for keeping a knot, in standard deviations of its jump
#: under the rounding (the sawtooth's, :func:`_sawtooth_variance`).  The matched filters test
#: ~N * 6 positions per signal.  Measured with 4: no knot on 16 kink-free float32 sinusoids (one
#: period, as the network's smooth part) nor on 16 steep float32 lines, at 20,001 and 80,001
#: samples on offsets of 1e2 and 1e3 (with white-noise thresholds instead: 12-91 knots on the
#: sinusoids, up to 518 on a line).  On the network at 20,000 samples and 1e3 times its scale,
#: 5 instead of 4 gives 1.3 % and 2.6 % low instead of 0.4 % and 1.4 %
FIT_Z = 4.0
#: half-widths (samples) of the matched filters
FIT_WINDOWS = (3, 6, 12, 24, 48, 96)
#: pieces of the cubic smooth part over a signal (at least FIT_MIN_PIECE samples each)
FIT_SMOOTH_PIECES = 64
FIT_MIN_PIECE = 32
#: ... and the same fit with this many pieces must give SMP within FIT_STABILITY: a smooth part
#: too stiff for the signal's curvature makes the fit add knots that follow the curvature (their
#: jumps are not kinks), and a finer smooth part does without them.  Measured: the network's
#: outputs (5,000-80,000 samples, offsets 1e2 and 1e3 times the scale) change by 0.1-1.4 %;
#: float32 Gaussian processes with 8 kinks on an offset, where the 64-piece fit is 5-85 % high,
#: change by 5-25 % (a few, within 2-4 % of the truth, pass)
FIT_FINER_PIECES = 256
FIT_STABILITY = 0.02
#: rounds of proposing knots; the knots are refined after half of them and at the end
FIT_ROUNDS = 6
#: Gauss-Newton steps per refinement, each moving a knot by at most FIT_REFINE_MOVE samples.
#: Measured on the 32 random float32 signals of the module docstring (before the final prune
#: ran to the end): with 2 steps 7 of the 32 fits were refused (knots found by the wide filters
#: stay samples off their kinks), with 4 none, mean |error| 0.2-1.1 % per group; moves of up to
#: 2 samples per step gave up to 8 % high
FIT_REFINE_STEPS = 4
FIT_REFINE_MOVE = 0.5
#: the fit is accepted where the residual's spread is at most this many sigma: the
#: interquartile range over sqrt(3), sigma for the uniform errors of rounding, so that it follows
#: the bulk of the residual (more noise than the values' rounding, as in float64 values computed
#: with several roundings: 110-1800) and not the few samples where kinks too small or too close
#: to fit leave a tent.  The rms counts those: 1.1-3.8 on the network at 2,000-5,000 samples
#: (kinks 5-13 samples apart), where the fits are 0.2-4 % off while the detector alone is 4-76 %
#: low; the spread there is 0.81-0.97, and 0.98-0.99 at 20,000-80,000 samples
FIT_RESIDUAL_LIMIT = 1.1
#: the fit is accepted only where the values move by at least half an ulp per sample (median of
#: |y[n+1] - y[n]| over the ulp of max|y|, a whole number for rounded values: the bound tells 0
#: from 1).  Slower, a window holds less than one tooth of the rounding's sawtooth
#: (:func:`_sawtooth_variance`): its errors are a few deterministic ramps, not the stationary
#: noise whose variance the thresholds use.  Measured on the network with an offset of 1e3
#: times its scale at 160,000 samples (medians 0 ulp): the fit 5.8 % and 9.9 % high; at 80,000
#: (medians 1 and 0) the first output 3.8 % high, the second 1.5 % low
FIT_MIN_STEP_ULP = 0.5
#: ... and where the median |D| is at most this many ulp of max|y|: D of values rounded once
#: (within one binade) is a whole number of ulps, median 0 or 1 (the network with an offset of
#: 1e3 times its scale); the same float32 outputs without offset measure 2-2.5 (the
#: computation's rounding, which the residual test would refuse): rows above are not fitted
FIT_MAX_D_LEVEL_ULP = 1.5
#: the fit replaces the detector's SMP (in :func:`smp.feature.smp`) only where it finds more
#: than this share more
FIT_GAIN = 0.01
#: signals shorter than this are not fitted (the matched filters need room)
FIT_MIN_SAMPLES = 64
#: the rounding of a locally straight signal is a sawtooth, not white noise (see
#: :func:`_sawtooth_variance`): its variance ratio is tabulated on this grid of the slope's
#: fractional part (ulp per sample) ...
_SAWTOOTH_GRID = 4096
#: ... and taken as its worst within +-1 / (_SAWTOOTH_SLOPE_SPREAD * w) of the fitted slope: a
#: slope fitted over L >= w samples is uncertain by L**-1.5 ulp per sample, 1 / (4.9 w) at w = 24
#: and 1 / (9.8 w) at w = 96
_SAWTOOTH_SLOPE_SPREAD = 8
#: knots' jumps are judged with the sawtooth of the shorter of their two segments, up to this long
_SAWTOOTH_MAX_SEGMENT = 256
#: rows fitted together: the covariance of the jumps is computed with one dense right-hand side
#: per knot, so the work grows with the square of the rows in a chunk
_FIT_CHUNK_SAMPLES = 1 << 16


class KinkFit(NamedTuple):
    """Per-signal results of :func:`fit_kinks` (arrays over the rows of the batch).

    Attributes
    ----------
    total : sum of ``|J_k|`` over the fitted knots, in units of y per sample (divide by ``dt``).
    count : number of fitted knots.
    limit : the smallest jump the fit keeps, ``FIT_Z`` times the median standard deviation of the
        jumps (y per sample); 0 where there is no knot.
    marginal_share : share of ``total`` in knots below ``2 * limit``: kinks reaching down to the
        limit continue below it, unseen.
    noise : standard deviation of ``total`` from the rounding noise (y per sample).
    residual : the residual's interquartile range over ``sqrt(3)``, in units of the rounding's
        ``sigma`` (1 for uniform rounding errors).
    stability : relative change of ``total`` when the smooth part has ``FIT_FINER_PIECES``
        pieces instead of ``FIT_SMOOTH_PIECES``.
    accepted : ``residual <= FIT_RESIDUAL_LIMIT``, ``stability <= FIT_STABILITY``, the median
        step ``|y[n+1] - y[n]|`` at least ``FIT_MIN_STEP_ULP`` ulp of ``max|y|`` and the median
        ``|D|`` at most ``FIT_MAX_D_LEVEL_ULP`` ulp (the values' own rounding).
    """

    total: np.ndarray
    count: np.ndarray
    limit: np.ndarray
    marginal_share: np.ndarray
    noise: np.ndarray
    residual: np.ndarray
    stability: np.ndarray
    accepted: np.ndarray


def fit_kinks(y: np.ndarray, dtype: np.dtype) -> KinkFit:
    """Fit a continuous piecewise-linear function plus a smooth part to rounded signals.

    See the module docstring for the model and the steps.

    Parameters
    ----------
    y : ndarray, shape (rows, N)
        signals on a uniform grid along the last axis (any float dtype; fitted in float64).
    dtype : numpy dtype
        the dtype the values were rounded to: ``sigma = spacing(max|y| in dtype) / sqrt(12)``.

    Returns
    -------
    KinkFit
        per-row totals (y per sample), knot counts, limits and the fit's quality.

    Example
    -------
    One kink of slope jump 2 on an offset of 1000, in float32 (the kink puts 5e-4 into ``D``,
    rounding puts up to 2.4e-4), 20,001 samples:

    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 20_001)
    >>> y = (1000.0 + np.abs(t - 0.3)).astype(np.float32)[None, :]
    >>> found = fit_kinks(y, np.float32)
    >>> int(found.count[0]), round(float(found.total[0] / t[1]), 3), bool(found.accepted[0])
    (1, 2.0, True)
    """
    y = np.asarray(y, dtype=np.float64)
    rows, n = y.shape
    step = max(1, _FIT_CHUNK_SAMPLES // n)
    with threadpool_limits(
        1, user_api="blas"
    ):  # small banded solves: threads only stall
        parts = [
            _fit_or_fail(y[i : i + step], np.dtype(dtype)) for i in range(0, rows, step)
        ]
    return KinkFit(*[np.concatenate(p) for p in zip(*parts)])


def _fit_or_fail(y: np.ndarray, dtype: np.dtype) -> KinkFit:
    """:func:`_fit_chunk` on the rows whose values move by half an ulp or more per sample and
    whose ``D`` is at the rounding level (the others are not fitted: they would be refused);
    rows are marked not accepted, with an infinite residual, where they are not fitted or a
    normal matrix is singular to working precision (no rounding noise to speak of: constant or
    exactly linear stretches)."""
    rows = y.shape[0]
    out = KinkFit(
        *(np.zeros(rows) for _ in range(5)),
        np.full(rows, np.inf),
        np.full(rows, np.inf),
        np.zeros(rows, dtype=bool),
    )
    out = out._replace(count=out.count.astype(np.intp))
    ulp = np.spacing(np.abs(y).max(axis=1).astype(dtype)).astype(np.float64)
    first = np.diff(y, axis=1)
    step = np.median(np.abs(first), axis=1)
    # the noise of D must be the values' rounding: more (a computation's rounding, as in a
    # float32 network's outputs without offset, or noise) and the residual test would refuse
    # the fit; this saves fitting those rows
    level = np.median(np.abs(np.diff(first, axis=1)), axis=1)
    rounded = np.flatnonzero(
        (step >= FIT_MIN_STEP_ULP * ulp) & (level <= FIT_MAX_D_LEVEL_ULP * ulp)
    )
    if rounded.size == 0:
        return out
    try:
        fitted = _fit_chunk(y[rounded], dtype)
    except np.linalg.LinAlgError:
        return out
    for field, values in zip(out, fitted):
        field[rounded] = values
    return out


def _fit_chunk(y: np.ndarray, dtype: np.dtype) -> KinkFit:
    rows, n = y.shape
    piece = max(n // FIT_SMOOTH_PIECES, FIT_MIN_PIECE)
    # the rounding of the signal's largest |y|, everywhere: a value near zero computed from
    # larger terms carries their rounding, not its own (and exact zeros would weigh infinitely)
    scale = np.abs(y).max(axis=1, keepdims=True)
    sigma = np.spacing(scale.astype(dtype)).astype(np.float64) / np.sqrt(12.0)
    # weights of 1 (conditioning); ``unit`` turns residuals back into sigma units
    unit = 1.0 / np.where(sigma > 0, sigma, 1.0)
    weight = np.ones_like(y)
    y = y - y.mean(axis=1, keepdims=True)
    problem = _Problem(y, weight, unit, piece)
    rows_k = np.repeat(np.arange(rows), 2)
    pos_k = np.tile([0.0, n - 1.0], rows)
    fitted = problem.fit(rows_k, pos_k)
    rejected = np.zeros((rows, n), dtype=bool)
    for round_ in range(FIT_ROUNDS):
        slope_fraction = problem.slope_fraction(fitted.residual)
        proposed = _matched_filter(fitted.residual, slope_fraction) & ~rejected
        rows_k, pos_k, added = _add_knots(rows_k, pos_k, proposed, n)
        if added == 0:
            break
        if round_ == FIT_ROUNDS // 2:
            rows_k, pos_k = problem.refine(rows_k, pos_k)
        rows_k, pos_k, fitted = problem.prune(rows_k, pos_k)
        # proposals pruned now are not proposed again (within one sample)
        cr, cp = np.nonzero(proposed)
        kept = _near(rows_k * 2 * n + pos_k, cr * 2 * n + cp, 1.5)
        dropped = np.zeros((rows, n), dtype=np.uint8)
        dropped[cr[~kept], cp[~kept]] = 1
        rejected |= maximum_filter1d(dropped, size=3, axis=1).astype(bool)
    # twice: a weak knot pruned after refinement had pulled its neighbours' positions (a float32
    # line's kink stayed 0.07 samples off, its jump 2e-3 high)
    for _ in range(2):
        rows_k, pos_k = problem.refine(rows_k, pos_k)
        rows_k, pos_k, fitted = problem.prune(rows_k, pos_k)
    row = rows_k[fitted.inner]
    size = np.abs(fitted.jump)
    sd = np.sqrt(fitted.variance)
    total = np.bincount(row, size, minlength=rows)
    count = np.bincount(row, minlength=rows)
    limit = np.zeros(rows)
    for_rows = np.flatnonzero(count)
    order = np.lexsort((sd, row))  # median sd per row: sort within rows
    starts = np.r_[0, np.cumsum(count)[:-1]]
    mid_lo = order[starts[for_rows] + (count[for_rows] - 1) // 2]
    mid_hi = order[starts[for_rows] + count[for_rows] // 2]
    limit[for_rows] = FIT_Z * 0.5 * (sd[mid_lo] + sd[mid_hi])
    marginal = np.bincount(row, size * (size < 2.0 * limit[row]), minlength=rows)
    share = np.divide(marginal, total, out=np.zeros(rows), where=total > 0)
    noise = np.sqrt(np.bincount(row, fitted.variance, minlength=rows))
    upper, lower = np.percentile(fitted.residual, [75.0, 25.0], axis=1)
    residual = (upper - lower) / np.sqrt(3.0)
    # the same knots with a finer smooth part, pruned again: knots that only followed
    # curvature lose their significance and SMP drops
    finer = _Problem(y, weight, unit, max(n // FIT_FINER_PIECES, FIT_MIN_PIECE))
    rows_f, _, fitted_f = finer.prune(rows_k, pos_k)
    total_f = np.bincount(rows_f[fitted_f.inner], np.abs(fitted_f.jump), minlength=rows)
    change = np.divide(
        np.abs(total - total_f),
        total_f,
        out=np.where(total > 0, np.inf, 0.0),
        where=total_f > 0,
    )
    return KinkFit(
        total,
        count,
        limit,
        share,
        noise,
        residual,
        change,
        (residual <= FIT_RESIDUAL_LIMIT) & (change <= FIT_STABILITY),
    )


class _Fitted(NamedTuple):
    inner: np.ndarray  # indices of the interior knots (those with a jump)
    jump: np.ndarray  # slope jump at each, y per sample
    variance: (
        np.ndarray
    )  # its variance under the rounding noise (empty if not computed)
    residual: np.ndarray  # (rows, N), in units of sigma


class _Problem:
    """The weighted least-squares problem of one chunk of signals, for any set of knots.

    Knots are given flat: ``rows_k`` (row of each knot) and ``pos_k`` (position in samples),
    sorted by row then position, each row with knots at 0 and N-1."""

    def __init__(self, y: np.ndarray, weight: np.ndarray, unit: np.ndarray, piece: int):
        self.y, self.weight, self.unit = y, weight, unit
        self.rows, self.n = y.shape
        self.intervals = int(np.ceil((self.n - 1) / piece))
        self.piece = (
            self.n - 1
        ) / self.intervals  # exact division: no empty last B-spline
        self.sample_row = np.repeat(np.arange(self.rows), self.n)
        self.x = np.tile(np.arange(self.n, dtype=np.float64), self.rows)
        self.w_flat = weight.reshape(-1)
        self.b = y.reshape(-1) * self.w_flat

    def _design(self, rows_k, pos_k):
        """The weighted design matrix, the band order of its columns, each sample's segment."""
        n, x, r = self.n, self.x, self.sample_row
        seg = np.searchsorted(rows_k * 2 * n + pos_k, r * 2 * n + x, side="right") - 1
        seg[x == n - 1] -= 1  # the last sample belongs to the last segment
        u = (x - pos_k[seg]) / (pos_k[seg + 1] - pos_k[seg])
        n_hat = pos_k.size
        m = (
            self.intervals + 3
        )  # cubic B-splines per row, of which B_0 and B_1 are left out
        s = x / self.piece
        j = np.minimum(np.floor(s), self.intervals - 1).astype(np.intp)
        f = s - j
        cubic = [
            (1 - f) ** 3 / 6,
            (3 * f**3 - 6 * f**2 + 4) / 6,
            (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6,
            f**3 / 6,
        ]
        sample = np.arange(x.size)
        cols, vals, at = [seg, seg + 1], [1 - u, u], [sample, sample]
        for t in range(4):
            keep = j + t >= 2
            cols.append(n_hat + r[keep] * (m - 2) + j[keep] + t - 2)
            vals.append(cubic[t][keep])
            at.append(sample[keep])
        w = self.w_flat
        a = sp.csr_matrix(
            (
                np.concatenate(vals) * w[np.concatenate(at)],
                (np.concatenate(at), np.concatenate(cols)),
            ),
            shape=(x.size, n_hat + self.rows * (m - 2)),
        )
        cubic_row = np.repeat(np.arange(self.rows), m - 2)
        cubic_centre = (np.tile(np.arange(2, m), self.rows) - 1) * self.piece
        centre = np.r_[rows_k * 4.0 * n + pos_k, cubic_row * 4.0 * n + cubic_centre]
        return a, centre, seg, u

    def fit(self, rows_k, pos_k, variance=False) -> _Fitted:
        a, centre, _, _ = self._design(rows_k, pos_k)
        factor = _banded_cholesky((a.T @ a).tocoo(), centre)
        coef = _solve(factor, a.T @ self.b)
        residual = (self.b - a @ coef).reshape(self.rows, self.n) * self.unit
        inner, jump, contrast = _jumps(rows_k, pos_k, coef[: pos_k.size], a.shape[1])
        var = np.zeros(0)
        if variance and inner.size:
            var = np.einsum("ij,ij->j", contrast, _solve(factor, contrast))
            var = var / self.unit[rows_k[inner], 0] ** 2
        return _Fitted(inner, jump, var, residual)

    def prune(self, rows_k, pos_k):
        """Drop knots whose jump is below FIT_Z standard deviations, the weakest of neighbouring
        weak knots first (two close kinks are each uncertain but not both absent), until every
        knot left is significant (each pass drops at least one knot)."""
        while True:
            fitted = self.fit(rows_k, pos_k, variance=True)
            z = np.full(pos_k.size, np.inf)
            z[fitted.inner] = np.abs(fitted.jump) / np.sqrt(fitted.variance)
            if fitted.inner.size:
                z[fitted.inner] /= self.knot_inflation(rows_k, pos_k, fitted)
            weakest = (z <= np.r_[np.inf, z[:-1]]) & (z <= np.r_[z[1:], np.inf])
            drop = (z < FIT_Z) & weakest
            if not drop.any():
                return rows_k, pos_k, fitted
            rows_k, pos_k = rows_k[~drop], pos_k[~drop]

    def slope_fraction(self, residual: np.ndarray) -> np.ndarray:
        """Fractional part of the fitted signal's |slope| in ulp per sample, per sample: it sets
        the correlation of the rounding errors (:func:`_sawtooth_variance`)."""
        fitted = self.y - residual / self.unit
        ulp = np.sqrt(12.0) / self.unit
        return np.mod(np.abs(np.gradient(fitted, axis=1)) / ulp, 1.0)

    def knot_inflation(self, rows_k, pos_k, fitted: _Fitted) -> np.ndarray:
        """Standard deviation of each interior knot's jump under the sawtooth rounding, over
        that under white rounding (at least 1): the slope difference over the shorter of its two
        segments, at the slopes in the middle of each segment (the larger of the two)."""
        fraction = self.slope_fraction(fitted.residual)
        inner = fitted.inner
        left = pos_k[inner] - pos_k[inner - 1]
        right = pos_k[inner + 1] - pos_k[inner]
        width = np.clip(np.minimum(left, right), 3, _SAWTOOTH_MAX_SEGMENT).astype(
            np.intp
        )
        row = rows_k[inner]
        at_left = np.clip((pos_k[inner] - left / 2).astype(np.intp), 0, self.n - 1)
        at_right = np.clip((pos_k[inner] + right / 2).astype(np.intp), 0, self.n - 1)
        out = np.ones(inner.size)
        for w in np.unique(width):
            these = width == w
            out[these] = np.maximum(
                _sawtooth_inflation(fraction[row[these], at_left[these]], int(w)),
                _sawtooth_inflation(fraction[row[these], at_right[these]], int(w)),
            )
        return out

    def refine(self, rows_k, pos_k):
        """Gauss-Newton steps on the interior knots' positions (at most half a sample each).

        Moving knot k by d along the bisector of its two lines changes the fit by
        ``d * J_k / 2 * hat_k(x)`` (sign + left of the knot, - right of it), a column with the
        hat's support: the joint normal matrix stays banded."""
        n = self.n
        for _ in range(FIT_REFINE_STEPS):
            a, centre, seg, u = self._design(rows_k, pos_k)
            factor = _banded_cholesky((a.T @ a).tocoo(), centre)
            coef = _solve(factor, a.T @ self.b)
            residual = self.b - a @ coef
            inner, jump, _ = _jumps(rows_k, pos_k, coef[: pos_k.size], a.shape[1])
            if inner.size == 0:
                break
            half_jump = np.zeros(pos_k.size)
            half_jump[inner] = 0.5 * jump
            col_of = np.full(pos_k.size, -1)
            col_of[inner] = np.arange(inner.size)
            sample = np.arange(seg.size)
            right_of = col_of[seg]  # the sample lies right of knot seg ...
            left_of = col_of[seg + 1]  # ... and left of knot seg + 1
            ok_r, ok_l = right_of >= 0, left_of >= 0
            g = sp.csr_matrix(
                (
                    np.r_[-half_jump[seg] * (1 - u), half_jump[seg + 1] * u][
                        np.r_[ok_r, ok_l]
                    ]
                    * self.w_flat[np.r_[sample[ok_r], sample[ok_l]]],
                    (
                        np.r_[sample[ok_r], sample[ok_l]],
                        np.r_[right_of[ok_r], left_of[ok_l]],
                    ),
                ),
                shape=(seg.size, inner.size),
            )
            joint = sp.hstack([a, g]).tocsr()
            normal = (joint.T @ joint).tocsr()
            # a little damping on the positions only (a knot with a tiny jump hardly moves)
            damp = np.zeros(joint.shape[1])
            damp[a.shape[1] :] = 1e-3 * normal.diagonal()[a.shape[1] :] + 1e-30
            normal = (normal + sp.diags(damp)).tocoo()
            factor = _banded_cholesky(normal, np.r_[centre, centre[inner] + 0.25])
            move = np.clip(
                _solve(factor, joint.T @ residual)[a.shape[1] :],
                -FIT_REFINE_MOVE,
                FIT_REFINE_MOVE,
            )
            pos_k = pos_k.copy()
            pos_k[inner] += move
            order = np.lexsort((pos_k, rows_k))
            rows_k, pos_k = rows_k[order], pos_k[order]
            # knots less than a sample apart cannot be told apart: merged at their mean
            close = np.r_[False, (rows_k[1:] == rows_k[:-1]) & (np.diff(pos_k) < 1.0)]
            if close.any():
                group = np.cumsum(~close) - 1
                pos_k = np.bincount(group, pos_k) / np.bincount(group)
                rows_k = rows_k[~close]
            pos_k = np.clip(pos_k, 0.0, n - 1.0)
        return rows_k, pos_k


def _jumps(rows_k, pos_k, values, n_columns):
    """Slope jumps at the interior knots, and their contrasts on the coefficients (columns)."""
    same = rows_k[1:] == rows_k[:-1]
    length = np.where(same, np.diff(pos_k), 1.0)
    slope = np.diff(values) / length
    inner = np.flatnonzero(same[:-1] & same[1:]) + 1
    jump = slope[inner] - slope[inner - 1]
    contrast = np.zeros((n_columns, inner.size))
    col = np.arange(inner.size)
    left, right = 1.0 / length[inner - 1], 1.0 / length[inner]
    contrast[inner - 1, col] = left
    contrast[inner, col] = -left - right
    contrast[inner + 1, col] = right
    return inner, jump, contrast


def _banded_cholesky(normal: sp.coo_matrix, centre: np.ndarray):
    """Cholesky factor of a symmetric sparse matrix whose columns, ordered by ``centre``, form a
    band (each basis function overlaps only its neighbours in that order)."""
    size = centre.size
    perm = np.argsort(centre, kind="stable")
    inv = np.empty_like(perm)
    inv[perm] = np.arange(size)
    i, j = inv[normal.row], inv[normal.col]
    upper = j >= i
    width = int((j - i)[upper].max())
    band = np.zeros((width + 1, size))
    np.add.at(band, (width + i[upper] - j[upper], j[upper]), normal.data[upper])
    return cholesky_banded(band, check_finite=False), perm, inv


def _solve(factor, rhs: np.ndarray) -> np.ndarray:
    chol, perm, inv = factor
    return cho_solve_banded((chol, False), rhs[perm], check_finite=False)[inv]


def _matched_filter(residual: np.ndarray, slope_fraction: np.ndarray) -> np.ndarray:
    """Proposed knots: local maxima of the standardised slope difference above FIT_Z.

    At sample n and half-width w: the least-squares slope of the residual (sigma units) over
    samples n..n+w minus that over n-w..n, divided by its standard deviation under the rounding
    (white noise of unit variance, times the sawtooth's :func:`_sawtooth_inflation` at the fitted
    slope's ``slope_fraction``).  Smallest window first: a larger window proposes only where no
    smaller one did within +-w/2 (small windows place a kink, large ones detect weak ones)."""
    rows, n = residual.shape
    zero = np.zeros((rows, 1))
    csum = np.concatenate([zero, np.cumsum(residual, axis=1)], axis=1)
    cmom = np.concatenate(
        [zero, np.cumsum(residual * np.arange(n, dtype=np.float64), axis=1)], axis=1
    )
    proposed = np.zeros((rows, n), dtype=bool)
    for w in FIT_WINDOWS:
        if 2 * w + 1 > n:
            break
        xs = np.arange(w + 1, dtype=np.float64)
        centred = xs - xs.mean()
        start = np.arange(n - w)
        s0 = csum[:, start + w + 1] - csum[:, start]
        s1 = cmom[:, start + w + 1] - cmom[:, start] - start * s0
        sxx = centred @ centred
        slope = (s1 - xs.mean() * s0) / sxx  # over samples start .. start + w
        weights = _slope_difference_weights(w)
        centre = np.arange(w, n - w)
        z = np.zeros((rows, n))
        z[:, centre] = np.abs(slope[:, centre] - slope[:, centre - w]) / np.sqrt(
            weights @ weights
        )
        z /= _sawtooth_inflation(slope_fraction, w)
        peak = (z >= FIT_Z) & (z == maximum_filter1d(z, size=w + 1, axis=1))
        taken = maximum_filter1d(proposed.astype(np.uint8), size=w + 1, axis=1)
        proposed |= peak & ~taken.astype(bool)
    return proposed


def _slope_difference_weights(w: int) -> np.ndarray:
    """Weights on samples n-w .. n+w of the least-squares slope over n..n+w minus that over
    n-w..n (the matched filter of a kink at n)."""
    xs = np.arange(w + 1, dtype=np.float64)
    centred = (xs - xs.mean()) / np.sum((xs - xs.mean()) ** 2)
    weights = np.zeros(2 * w + 1)
    weights[: w + 1] -= centred
    weights[w:] += centred
    return weights


@functools.cache
def _sawtooth_variance(w: int) -> np.ndarray:
    """Variance of the slope difference over half-width ``w`` under the rounding of a straight
    line, over its variance under white rounding, on a grid of the slope's fractional part.

    Rounding ``a + b*n`` to a grid of spacing ``q`` leaves the errors ``q * s(phi + b*n)``, ``s``
    the centred sawtooth of period 1: not white noise.  For a phase ``phi`` uniform over the
    samples their correlation at lag ``m`` is ``1 - 6 x (1 - x)``, ``x = frac(m * b)``
    (``E[s(u) s(u + x)] = 1/12 - x (1 - x) / 2``): 1 at every lag when ``b`` is a whole number
    of ulps per sample (a staircase whose steps the lines follow), 0 on average over ``b``.  The
    slope difference with weights ``c`` then has variance ``sum_kl c_k c_l rho(k - l)`` against
    ``sum_k c_k**2``.  Near slopes of small denominators (``frac(b)`` near 0, 1/2, 1/3 ...) the
    ratio reaches about ``0.6 w`` (15 at w = 24, 61 at w = 96; it is 1 on average over ``b``,
    1.6 after the spread below): white-noise thresholds there put a knot on every tooth (a
    float32 line of 42.03 ulp per sample on an offset of 1e3 got one every 34.5 samples).
    Returns the worst ratio within ``+-1 / (_SAWTOOTH_SLOPE_SPREAD * w)`` of each grid point."""
    ratio = _sawtooth_ratio(w, np.arange(_SAWTOOTH_GRID) / _SAWTOOTH_GRID)
    spread = max(1, int(_SAWTOOTH_GRID / (_SAWTOOTH_SLOPE_SPREAD * w)))
    return maximum_filter1d(ratio, size=2 * spread + 1, mode="wrap")


def _sawtooth_ratio(w: int, slope_fraction: np.ndarray) -> np.ndarray:
    """The ratio of :func:`_sawtooth_variance` at the given fractional slopes (ulp per
    sample), exactly: ``1 + 2 sum_m a_m rho(m) / a_0``, ``a_m`` the weights' autocorrelation."""
    weights = _slope_difference_weights(w)
    lagged = np.correlate(weights, weights, mode="full")[2 * w :]  # lags 0 .. 2w
    x = np.mod(np.outer(slope_fraction, np.arange(1, 2 * w + 1)), 1.0)
    return 1.0 + 2.0 * ((1.0 - 6.0 * x * (1.0 - x)) @ lagged[1:]) / lagged[0]


def _sawtooth_inflation(slope_fraction: np.ndarray, w: int) -> np.ndarray:
    """Factor (at least 1) on the white-noise standard deviation of the slope difference over
    half-width ``w`` at each sample's ``slope_fraction``: never below the white-noise level,
    where the sawtooth's negative correlations would make the filter more sensitive."""
    at = np.minimum(
        (slope_fraction * _SAWTOOTH_GRID).astype(np.intp), _SAWTOOTH_GRID - 1
    )
    return np.sqrt(np.maximum(_sawtooth_variance(w)[at], 1.0))


def _near(sorted_keys: np.ndarray, keys: np.ndarray, gap: float) -> np.ndarray:
    """Whether each of ``keys`` lies within ``gap`` of one of ``sorted_keys``."""
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    at = np.clip(np.searchsorted(sorted_keys, keys), 1, max(sorted_keys.size - 1, 1))
    return (np.abs(sorted_keys[at] - keys) < gap) | (
        np.abs(sorted_keys[at - 1] - keys) < gap
    )


def _add_knots(rows_k, pos_k, proposed, n):
    """Add the proposed knots not within 1.5 samples of a knot (sorted again)."""
    cr, cp = np.nonzero(proposed)
    new = ~_near(rows_k * 2 * n + pos_k, cr * 2 * n + cp, 1.5)
    cr, cp = cr[new], cp[new].astype(np.float64)
    rows_k, pos_k = np.r_[rows_k, cr], np.r_[pos_k, cp]
    order = np.lexsort((pos_k, rows_k))
    return rows_k[order], pos_k[order], cr.size


def _refit_rounded(
    arr: np.ndarray,
    source_dtype: np.dtype,
    diagnosis: Diagnosis,
    total: np.ndarray,
    dt: float,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Where the data's rounding hides kinks from ``D``, SMP from the least-squares kink fit.

    Signals under the :class:`RoundingLimitWarning` condition are fitted by
    :func:`smp._slope_fit.fit_kinks` (a continuous piecewise-linear function plus a smooth part,
    weighted by the rounding noise of the input's dtype); where the fit is accepted (see
    :class:`KinkFit`) and finds more than the detector (``FIT_GAIN`` and three of its standard
    deviations more), its total replaces the detector's.  Returns the totals (``total``
    itself when nothing was fitted), the mask of replaced signals and the fit's smallest kept
    slope jump (y per unit t), the last two ``None`` when nothing was fitted."""
    limited = np.asarray(_rounding_limited(diagnosis)).reshape(-1)
    if not limited.any() or arr.shape[-1] < FIT_MIN_SAMPLES:
        return total, None, None
    rows = np.flatnonzero(limited)
    found = fit_kinks(arr.reshape(-1, arr.shape[-1])[rows], source_dtype)
    # a flat copy, returned: ``total`` of one signal is a numpy scalar, whose reshape is no view
    flat = np.array(total, dtype=np.float64).reshape(-1)
    # only where the fit sees kinks the detector lost: more than FIT_GAIN of the detector's SMP
    # and 3 standard deviations of the fit's own total more (an isolated kink the detector
    # resolves is measured by its line fits as well: 4e-4 to 8e-4 relative on float32 values
    # whose rounding repeats every few samples, where the fit's white-noise model is off)
    gain = found.total / dt - flat[rows] * (1.0 + FIT_GAIN) - 3.0 * found.noise / dt
    better = found.accepted & (gain > 0)
    use = rows[better]
    flat[use] = found.total[better] / dt
    refitted = np.zeros(limited.size, dtype=bool)
    refitted[use] = True
    fit_limit = np.zeros(limited.size)
    fit_limit[rows] = found.limit / dt
    shape = np.shape(total)
    return flat.reshape(shape), refitted.reshape(shape), fit_limit.reshape(shape)
