"""Why the detector would be wrong on a signal: the per-signal diagnosis and the warnings it raises
(re-exported by :mod:`smp.feature`; :func:`smp.feature.diagnose` is the public entry).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ._detector import (
    CLOSE_LOSS,
    CLOSE_SHARE_LIMIT,
    CLOSE_SPACING,
    DENSE_FRACTION,
    MIN_LEVEL_SAMPLES,
    ROUGHNESS_LIMIT,
    ROUNDING_ERROR_LIMIT,
    ROUNDING_LIMIT_RATIO,
    ROUNDING_SHARE_LIMIT,
    UNDERSAMPLED_LIMIT_RATIO,
    UNDERSAMPLED_ROUGHNESS,
    _Analysis,
)
from ._warnings import (
    CloseKinksWarning,
    DenseKinksWarning,
    DiscontinuityWarning,
    RoundingLimitWarning,
    UnderSampledWarning,
)

__all__ = [
    "Diagnosis",
]


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

    Every attribute is an ndarray with the shape of the batch (the sample axis removed);
    a single signal gives 0-d arrays.

    Example
    -------
    >>> from smp.feature import diagnose
    >>> t = np.linspace(0.0, 1.0, 401)
    >>> report = diagnose(np.abs(t - 0.3), dt=t[1])  # one isolated kink, well sampled
    >>> bool(report.unreliable), bool(report.undersampled), int(report.steps)
    (False, False, 0)
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
    under = (
        (a.roughness > UNDERSAMPLED_ROUGHNESS)
        | (a.limit_ratio > UNDERSAMPLED_LIMIT_RATIO)
    ) & ~dense
    if a.few_samples:
        under = np.ones_like(dense)
    return Diagnosis(
        a.fraction,
        a.roughness,
        dense,
        2.0 * a.limit / dt,
        2.0 * a.rounding_limit / dt,
        a.rounding_share,
        a.rounding_error,
        a.curvature_share,
        a.limit_ratio,
        a.rounding_ratio,
        a.steps,
        (a.close > CLOSE_SHARE_LIMIT) | (a.spacing < CLOSE_SPACING),
        a.spacing,
        under,
    )


def _rounding_limited(diagnosis: Diagnosis) -> np.ndarray:
    """The condition of :class:`RoundingLimitWarning`, per signal."""
    return (
        (diagnosis.rounding_share > ROUNDING_SHARE_LIMIT)
        | (diagnosis.rounding_error > ROUNDING_ERROR_LIMIT)
        | (diagnosis.rounding_ratio > ROUNDING_LIMIT_RATIO)
    )


def _warn(
    diagnosis: Diagnosis,
    dtype: np.dtype,
    refitted: np.ndarray | None = None,
    fit_limit: np.ndarray | None = None,
) -> None:
    """Raise the specific warning of every failure present in the batch.

    ``refitted`` marks the signals whose SMP :func:`smp.feature.smp` took from the least-squares
    kink fit (:mod:`smp._slope_fit`), ``fit_limit`` the smallest slope jump that fit keeps (y per
    unit t): their rounding warning says so."""
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
    rounding = _rounding_limited(diagnosis)
    if refitted is not None and np.any(refitted):
        warnings.warn(
            f"the data's rounding ({np.dtype(dtype).name}) hides kinks from the second difference "
            f"in {int(refitted.sum())} of {n} signal(s); their SMP was re-measured by a "
            "least-squares fit of a continuous piecewise-linear function plus a smooth part, "
            "with the rounding noise known from the dtype. Slope jumps below about "
            f"{float(np.max(fit_limit[refitted])):.3g} (y per unit t, with the true dt) are not "
            "seen and kinks a few samples apart merge. Measured: on a float32 ReLU network with "
            "an offset of 1e3 times its scale, SMP 0.4 % and 1.4 % low at 20,000 samples (0.2 % "
            "with 1e2 times), 4 % low at 5,000, up to 4 % high at 80,000 and up to 4.4 % off "
            "at 2,000; on 32 random piecewise-linear float32 signals, per signal from 0.5 % low "
            "to 3.1 % high (the detector alone: 100 % low to 0.1 % high). Compute y in float64, "
            "or remove the offset before rounding to float32, for the second-difference "
            "detector's accuracy.",
            RoundingLimitWarning,
            stacklevel=3,
        )
        rounding = rounding & ~refitted
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
            f"the smooth part is under-sampled: in {int(under.sum())} of {n} signal(s) the "
            "curvature between peaks hides slope jumps as large as "
            f"{float(np.nanmax(diagnosis.limit_ratio[under])):.2f} of the slope's rms (limit "
            f"{UNDERSAMPLED_LIMIT_RATIO}), or the second difference between peaks changes from "
            f"sample to sample (roughness {float(diagnosis.roughness[under].max()):.2f}, limit "
            f"{UNDERSAMPLED_ROUGHNESS}: fewer than about 8 samples per length-scale), or the "
            f"signal has fewer than {MIN_LEVEL_SAMPLES + 2} samples; curvature and kinks are not "
            "told apart and SMP may be off by 10 % or more: sample the path more finely.",
            UnderSampledWarning,
            stacklevel=3,
        )
