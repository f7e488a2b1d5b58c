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
        raise ValueError(
            f"auc needs at least one positive and one negative score, got {pos.size} and {neg.size}"
        )
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("scores must be finite")
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def smp_score(y: np.ndarray, dt: float, **detector_options) -> np.ndarray:
    """``SMP(y_x) + SMP(y_y)`` for trajectories ``(..., 2, N)``; units: px per px of motion.

    ``warn=False``: densely kinked or noisy trajectories are the point of the sweeps, the score
    is used as a ranking statistic there, not as a calibrated total slope jump.

    Parameters
    ----------
    y : ndarray, shape (..., 2, N)
        trajectories: coordinates on axis -2, frames on axis -1.
    dt : float
        the frame step in units of t (pixels travelled in the forensics chapter).
    **detector_options
        ``kappa``, ``window``, ``floor_eps`` of :func:`smp.smp`.

    Returns
    -------
    ndarray, shape (...)
        the score of every trajectory.

    Example
    -------
    A trajectory whose first coordinate turns once (slope -1 to +1) scores its slope
    jump, 2; a smooth one scores 0:

    >>> t = np.linspace(0.0, 1.0, 201)
    >>> kinked = np.stack([np.abs(t - 0.3021), np.sin(t)])
    >>> smooth = np.stack([t**2, np.sin(t)])
    >>> np.round(smp_score(np.stack([kinked, smooth]), dt=t[1]), 3)
    array([2., 0.])
    """
    return _smp(y, dt, warn=False, **detector_options).sum(axis=-1)


def tv_score(y: np.ndarray, dt: float) -> np.ndarray:
    """Baseline without peak detection: ``sum_n |D[n]| / dt``, summed over coordinates.

    Parameters
    ----------
    y : ndarray, shape (..., 2, N)
        trajectories: coordinates on axis -2, frames on axis -1.
    dt : float
        the frame step.

    Returns
    -------
    ndarray, shape (...)
        the score of every trajectory.

    Example
    -------
    Unlike :func:`smp_score`, it counts smooth curvature too: for ``(t**2, 0)`` on
    [0, 1] it is ``(N - 2) * 2 dt``, about 2:

    >>> t = np.linspace(0.0, 1.0, 201)
    >>> parabola = np.stack([t**2, np.zeros_like(t)])
    >>> round(float(tv_score(parabola, dt=t[1])), 6), round(199 * 2 * float(t[1]), 6)
    (1.99, 1.99)
    """
    return (
        np.abs(second_difference(np.asarray(y, dtype=np.float64))).sum(axis=(-1, -2))
        / dt
    )


def add_noise(
    y: np.ndarray, truth: np.ndarray, snr_db: float, *, seed: int = 0
) -> np.ndarray:
    """``y`` plus white Gaussian noise of variance ``P/10^(snr_db/10)`` per trajectory.

    ``P`` is the power of the true trajectory ``truth`` (same shape ``(M, 2, N)``): the mean over
    frames and coordinates of ``(c - mean_t c)^2``.  ``snr_db = inf`` returns ``y`` unchanged.

    Parameters
    ----------
    y : ndarray, shape (M, 2, N)
        the trajectories to perturb (e.g. a network's predictions).
    truth : ndarray, shape (M, 2, N)
        the true trajectories, which set the power ``P``.
    snr_db : float
        signal-to-noise ratio in decibels.
    seed : int
        seed of the noise.

    Returns
    -------
    ndarray, shape (M, 2, N)
        the noisy trajectories, float64.

    Example
    -------
    The noise drawn has the requested SNR:

    >>> t = np.linspace(0.0, 1.0, 20001)
    >>> truth = np.stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)])[None]
    >>> noise = add_noise(truth, truth, 20.0, seed=0) - truth
    >>> power = ((truth - truth.mean(axis=-1, keepdims=True)) ** 2).mean()
    >>> round(float(10 * np.log10(power / noise.var())), 1)
    20.0
    """
    y = np.asarray(y, dtype=np.float64)
    if np.isinf(snr_db) and snr_db > 0:
        return y
    power = ((truth - truth.mean(axis=-1, keepdims=True)) ** 2).mean(
        axis=(-1, -2), keepdims=True
    )
    sigma = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return y + sigma * np.random.default_rng(seed).normal(size=y.shape)


def auc(pos, neg) -> float:
    """Area under the ROC curve, the Mann-Whitney ``P(pos > neg) + P(pos == neg)/2``.

    Exact, via ranks.  ``pos`` are the scores of the positive class (ReLU network),
    ``neg`` of the negative class.

    Parameters
    ----------
    pos, neg : array_like
        finite scores of the two classes (any shapes, flattened; at least one each).

    Returns
    -------
    float
        the AUC in [0, 1]; 0.5 is chance.

    Example
    -------
    >>> auc([3.0, 4.0], [1.0, 2.0]), auc([1.0, 2.0], [1.0, 2.0]), auc([1.0], [2.0])
    (1.0, 0.5, 0.0)
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
    """ROC curve ``(fpr, tpr)`` over all thresholds ``score >= thr``, (0, 0) to (1, 1).

    Parameters
    ----------
    pos, neg : array_like
        scores of the positive and negative classes.

    Returns
    -------
    fpr, tpr : ndarray
        false- and true-positive rates, one per distinct score plus the origin.

    Example
    -------
    The area under the curve is :func:`auc`:

    >>> fpr, tpr = roc_curve([2.0, 4.0], [1.0, 3.0])
    >>> fpr, tpr
    (array([0. , 0. , 0.5, 0.5, 1. ]), array([0. , 0.5, 0.5, 1. , 1. ]))
    >>> area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    >>> area, auc([2.0, 4.0], [1.0, 3.0])
    (0.75, 0.75)
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (pos[None, :] >= thresholds[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= thresholds[:, None]).mean(axis=1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def bootstrap_auc(
    pos,
    neg,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    paired: bool = True,
    seed: int = 0,
) -> tuple[float, float, float]:
    """AUC and its percentile bootstrap interval over trajectories: ``(auc, low, high)``.

    ``paired=True`` (``pos[i]`` and ``neg[i]`` come from the same input trajectory) resamples
    trajectory indices once for both classes.  With resampling counts ``w_b`` the replicate is
    ``AUC_b = w_b^T C v_b / (M_pos M_neg)`` (``C`` from :func:`auc`'s definition), all
    replicates at once.

    Parameters
    ----------
    pos, neg : array_like
        scores of the two classes (equal numbers if ``paired``).
    n_boot : int
        number of bootstrap replicates.
    level : float
        coverage of the interval, in (0, 1).
    paired : bool
        resample the same indices for both classes.
    seed : int
        seed of the resampling.

    Returns
    -------
    auc, low, high : float
        the AUC of the data and the interval's bounds.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> pos, neg = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)
    >>> a, low, high = bootstrap_auc(pos, neg, n_boot=500, seed=0)
    >>> bool(low < a < high), a == auc(pos, neg)
    (True, True)

    Perfectly separated classes give the AUC 1 in every replicate:

    >>> bootstrap_auc([2.0, 3.0, 4.0], [0.0, 1.0, 1.5], n_boot=100)
    (1.0, 1.0, 1.0)
    """
    n_boot = check_int("n_boot", n_boot)
    level = check_real("level", level, minimum=0, maximum=1)
    c = _comparison_matrix(pos, neg)
    m_pos, m_neg = c.shape
    if paired and m_pos != m_neg:
        raise ValueError(
            f"paired bootstrap needs as many positives as negatives, got {m_pos} and {m_neg}"
        )
    rng = np.random.default_rng(seed)
    w = rng.multinomial(m_pos, np.full(m_pos, 1.0 / m_pos), size=n_boot).astype(
        np.float64
    )
    v = (
        w
        if paired
        else rng.multinomial(m_neg, np.full(m_neg, 1.0 / m_neg), size=n_boot).astype(
            np.float64
        )
    )
    reps = np.einsum("bi,ij,bj->b", w, c, v) / (m_pos * m_neg)
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return float(c.mean()), float(low), float(high)
