"""SMP as a forensic feature: detector scores, noise, and ROC statistics.

The score of an output trajectory ``y(t)`` (coordinates on axis -2, frames on axis -1, step ``dt``)
is ``score_SMP = sum over coordinates of SMP(y_c, dt)`` (:func:`smp_score`); the baseline ignores
peaks: ``score_TV = sum_n |D[n]| / dt`` summed over the coordinates (:func:`tv_score`).

ROC/AUC: the AUC is the Mann-Whitney statistic ``P(s_pos > s_neg) + P(s_pos = s_neg)/2``
(:func:`auc`), with a percentile bootstrap over trajectories (:func:`bootstrap_auc`).

Noise: white Gaussian noise on the outputs at ``SNR_dB = 10 log10(P_signal / sigma^2)``, with
``P_signal`` the trajectory's power, the mean over frames and coordinates of
``(c(t) - mean_t c)^2`` of the *true* trajectory, computed per trajectory (:func:`add_noise`).

The experiment that tests the detector on trained landmark networks is
:mod:`smp.experiments.forensics`.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_real

from .feature import second_difference
from .feature import smp as _smp

__all__ = ["smp_score", "tv_score", "add_noise", "auc", "roc_curve", "bootstrap_auc"]


def _comparison_matrix(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``C[i, j] = 1[pos_i > neg_j] + 0.5 * 1[pos_i == neg_j]``."""
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"auc needs at least one positive and one negative score, got {pos.size} and {neg.size}")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("scores must be finite")
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def smp_score(y: np.ndarray, dt: float, **detector_options) -> np.ndarray:
    """``SMP(y_x) + SMP(y_y)`` for trajectories ``(..., 2, N)``; units: px per px of motion.

    ``warn=False``: densely kinked or noisy trajectories are the point of the sweeps, the score
    is used as a ranking statistic there, not as a calibrated total slope jump.
    """
    return _smp(y, dt, warn=False, **detector_options).sum(axis=-1)


def tv_score(y: np.ndarray, dt: float) -> np.ndarray:
    """Baseline without peak detection: ``sum_n |D[n]| / dt`` summed over both coordinates."""
    return np.abs(second_difference(np.asarray(y, dtype=np.float64))).sum(axis=(-1, -2)) / dt


def add_noise(y: np.ndarray, truth: np.ndarray, snr_db: float, *, seed: int = 0) -> np.ndarray:
    """``y`` plus white Gaussian noise of variance ``P/10^(snr_db/10)`` per trajectory.

    ``P`` is the power of the true trajectory ``truth`` (same shape ``(M, 2, N)``): the mean over
    frames and coordinates of ``(c - mean_t c)^2``.  ``snr_db = inf`` returns ``y`` unchanged.
    """
    y = np.asarray(y, dtype=np.float64)
    if np.isinf(snr_db) and snr_db > 0:
        return y
    power = ((truth - truth.mean(axis=-1, keepdims=True)) ** 2).mean(axis=(-1, -2), keepdims=True)
    sigma = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return y + sigma * np.random.default_rng(seed).normal(size=y.shape)


def auc(pos, neg) -> float:
    """Area under the ROC curve = Mann-Whitney ``P(pos > neg) + P(pos == neg)/2`` (exact, via ranks).

    ``pos`` are the scores of the positive class (ReLU network), ``neg`` of the negative class.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    _comparison_matrix(pos[:1], neg[:1])  # validation of emptiness
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("scores must be finite")
    sorted_neg = np.sort(neg)
    below = np.searchsorted(sorted_neg, pos, side="left")
    not_above = np.searchsorted(sorted_neg, pos, side="right")
    return float((below + 0.5 * (not_above - below)).sum() / (pos.size * neg.size))


def roc_curve(pos, neg) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` over all thresholds ``score >= thr``, from (0, 0) to (1, 1)."""
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (pos[None, :] >= thresholds[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= thresholds[:, None]).mean(axis=1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def bootstrap_auc(
    pos, neg, *, n_boot: int = 2000, level: float = 0.95, paired: bool = True, seed: int = 0
) -> tuple[float, float, float]:
    """AUC and its percentile bootstrap interval over trajectories: ``(auc, low, high)``.

    ``paired=True`` (``pos[i]`` and ``neg[i]`` come from the same input trajectory) resamples
    trajectory indices once for both classes.  With resampling counts ``w_b`` the replicate is
    ``AUC_b = w_b^T C v_b / (M_pos M_neg)`` (``C`` from :func:`auc`'s definition), all replicates
    at once.
    """
    n_boot = check_int("n_boot", n_boot)
    level = check_real("level", level, minimum=0, maximum=1)
    c = _comparison_matrix(pos, neg)
    m_pos, m_neg = c.shape
    if paired and m_pos != m_neg:
        raise ValueError(f"paired bootstrap needs as many positives as negatives, got {m_pos} and {m_neg}")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(m_pos, np.full(m_pos, 1.0 / m_pos), size=n_boot).astype(np.float64)
    v = w if paired else rng.multinomial(m_neg, np.full(m_neg, 1.0 / m_neg), size=n_boot).astype(np.float64)
    reps = np.einsum("bi,ij,bj->b", w, c, v) / (m_pos * m_neg)
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return float(c.mean()), float(low), float(high)
