"""Expected SMP through a convolution / linear layer.

Notation (the book's): ``sigma`` = ``std`` the per-unit standard deviation of the input along the path,
``sigma'`` = ``dstd`` the standard deviation of its derivative d x / d t, ``mu`` = ``mean``, ``L`` =
``length`` the path length (units of t), ``smp_in`` the SMP one input unit already carries (units of x
per unit t, i.e. total absolute slope jump).  ``phi`` and ``Phi`` are the standard normal pdf and cdf.
All functions broadcast over array arguments and return floats or numpy arrays in units of x per unit t.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import check_array
from ._common import SQRT_2_OVER_PI, to_output

__all__ = ["conv", "conv_shared", "conv_kinks", "ConvKinks"]


def conv(weight_std, fan_in, smp_in, *, mean_abs_weight=None):
    """Expected SMP of one output unit of a convolution / linear layer, kinks at distinct times.

    ``y = sum_i w_i x_i + b`` with i.i.d. weights: every kink of input i reappears in y with its
    jump times ``w_i``.  When no two inputs kink at the same t (the identity
    ``SMP(y) = sum_i |w_i| SMP(x_i)`` then holds on every path),

        E SMP(y) = fan_in * E|w| * smp_in,

    for any weight distribution.  For Gaussian weights ``w ~ N(0, sw**2)``,
    ``E|w| = sw sqrt(2/pi) = 0.798 sw`` (the default).  Other initialisations differ: PyTorch's
    default for ``nn.Conv2d`` / ``nn.Linear`` is uniform on ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
    whose ``E|w| = sw sqrt(3) / 2 = 0.866 sw`` is 8.5 % above the Gaussian value at the same
    standard deviation; pass the weights' actual mean absolute value as ``mean_abs_weight`` (e.g.
    ``layer.weight.abs().mean()``, or ``bound / 2`` for a uniform law on ``(-bound, bound)``).
    Shared kink times: :func:`conv_shared`; exact bookkeeping on one path: :func:`conv_kinks`.

    Parameters
    ----------
    weight_std : ``sw``, the weights' standard deviation (units of y per unit x); used only when
        ``mean_abs_weight`` is None (Gaussian weights), and may then be None.
    fan_in : number of inputs of one output unit (``C_in * k * k`` for a convolution).
    smp_in : SMP carried by each input unit (units of x per unit t).
    mean_abs_weight : ``E|w|`` of the weights' distribution (units of y per unit x); None means
        Gaussian weights of standard deviation ``weight_std``.

    Example
    -------
    >>> round(conv(1.0, 9, 2.0), 4)  # Gaussian weights: 9 * sqrt(2/pi) * 2
    14.3619
    >>> bound = 1 / 3  # PyTorch's default init at fan_in 9: U(-1/3, 1/3), E|w| = bound / 2
    >>> round(conv(None, 9, 2.0, mean_abs_weight=bound / 2), 4)
    3.0
    """
    n = check_array("fan_in", fan_in, positive=True)
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    if mean_abs_weight is None:
        if weight_std is None:
            raise ValueError(
                "weight_std must be given (>= 0) when mean_abs_weight is None"
            )
        mean_abs = (
            check_array("weight_std", weight_std, nonnegative=True) * SQRT_2_OVER_PI
        )
    else:
        mean_abs = check_array("mean_abs_weight", mean_abs_weight, nonnegative=True)
    return to_output(n * mean_abs * s_in)


class ConvKinks(NamedTuple):
    """The kinks of a linear unit ``y = sum_i w_i x_i + b`` built from its inputs' known kinks.

    ``times`` (sorted, distinct) are the output's kink times, ``jumps`` its slope jumps there (units of
    y per unit t), ``n_sources`` how many input kinks fell on each time (1 = a plain pass-through,
    more = a shared kink whose jumps were added before the absolute value), ``source`` the index of the
    input whose contribution ``|w_i Ds|`` is largest at each time.
    """

    times: np.ndarray
    jumps: np.ndarray
    n_sources: np.ndarray
    source: np.ndarray


def conv_kinks(weights, kink_times, slope_jumps) -> ConvKinks:
    """Exact bookkeeping of a linear unit: its kinks from those of its inputs.

    A kink of input ``i`` at ``t_k`` with slope jump ``Ds_ik`` reappears in ``y = sum_i w_i x_i + b``
    at the same time with jump ``w_i Ds_ik``.  Kinks of several inputs at *exactly* the same time
    (shared kink times) merge into one kink whose jump is the sum ``sum_i w_i Ds_ik`` (the jump vector
    ``J`` dotted with ``w``): the jumps add before the absolute value and may cancel.  Then

        SMP(y) = sum over distinct times |sum_{i kinking there} w_i Ds_ik|  =  sum(|jumps|),

    which is ``sum_i |w_i| SMP(x_i)`` when no two inputs share a kink time.  This is an identity,
    true for every realisation (no expectation, no grid).

    Parameters
    ----------
    weights : (fan_in,) the unit's weights ``w_i`` (units of y per unit x).
    kink_times : (fan_in, n_kinks) kink times of every input (units of t); NaN marks "no kink".
    slope_jumps : (fan_in, n_kinks) slope jumps ``Ds_ik`` (units of x per unit t).
    """
    w = check_array("weights", weights)
    if w.ndim != 1:
        raise ValueError(f"weights must be 1-D (fan_in,), got shape {w.shape}")
    times = np.asarray(kink_times, dtype=np.float64)
    jumps = check_array("slope_jumps", slope_jumps)
    if times.ndim == 1:
        times, jumps = (
            times[:, None],
            jumps.reshape(-1, 1) if jumps.ndim == 1 else jumps,
        )
    if times.shape != jumps.shape or times.shape[0] != w.size:
        raise ValueError(
            f"kink_times and slope_jumps must both have shape (fan_in={w.size}, n_kinks), "
            f"got {times.shape} and {jumps.shape}"
        )
    if np.isinf(times).any():
        raise ValueError("kink_times must be finite (NaN marks a missing kink)")
    contribution = (w[:, None] * jumps).ravel()
    source_of = np.broadcast_to(np.arange(w.size)[:, None], times.shape).ravel()
    flat = times.ravel()
    keep = ~np.isnan(flat)
    flat, contribution, source_of = flat[keep], contribution[keep], source_of[keep]
    unique, inverse = np.unique(flat, return_inverse=True)
    out_jumps = np.bincount(inverse, weights=contribution, minlength=unique.size)
    n_sources = np.bincount(inverse, minlength=unique.size)
    # largest contribution per time: sort by (time, -|contribution|) and take the first of each group
    order = np.lexsort((-np.abs(contribution), inverse))
    first = np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1]
    return ConvKinks(unique, out_jumps, n_sources, source_of[order][first])


def conv_shared(weight_std, jump_vectors):
    """Expected SMP of one output unit when kinks are shared by several inputs (jump vectors).

    Each kink *event* ``e`` happens at one time in several inputs at once; its jump vector ``J_e``
    holds the slope jump of every input of the unit at that time (0 for inputs that do not kink
    then).  The output's jump is ``w . J_e``, a ``N(0, sw**2 ||J_e||_2**2)`` variable for i.i.d.
    ``w_i ~ N(0, sw**2)``, so ``E|w . J_e| = sw sqrt(2/pi) ||J_e||_2`` and, events at distinct times,

        E SMP(y) = sw * sqrt(2/pi) * sum_e ||J_e||_2.

    This assumes Gaussian weights.  For other weight laws ``w . J_e`` is Gaussian only when many
    inputs share the event (central limit); with one input per event ``E|w . J_e| = E|w| |Ds|``
    exactly (use :func:`conv` with ``mean_abs_weight``).  For PyTorch's uniform default init the
    Gaussian value is 7.9 % low for one-input events, 2.3 % low for two equal entries, and the
    gap closes as ``1/m`` for ``m`` equal entries.

    With one input per event (``J_e = Ds e_i``) this is :func:`conv` (``||J||_2 = ||J||_1``); with a
    kink shared by ``m`` inputs of equal jumps ``||J||_2 = ||J||_1 / sqrt(m)``: the jumps add before
    the absolute value, and the independent-times model overestimates by ``||J||_1 / ||J||_2``.
    Because ``||J||_2`` is homogeneous, events whose jump vectors are all proportional to one
    direction ``v`` can be passed as a single row ``v * sum_e |s_e|``.

    Parameters
    ----------
    weight_std : ``sw``, the weights' standard deviation (units of y per unit x).
    jump_vectors : (..., n_events, fan_in) jump vectors (units of x per unit t); a 1-D array is a
        single event.  Leading axes are kept (one expectation per leading index).

    Returns
    -------
    float or array of shape ``jump_vectors.shape[:-2]``: expected SMP of y (units of y per unit t).
    """
    sw = check_array("weight_std", weight_std, nonnegative=True)
    j = check_array("jump_vectors", jump_vectors)
    if j.ndim == 0:
        raise ValueError(
            "jump_vectors must have shape (..., n_events, fan_in) or (fan_in,), got a scalar"
        )
    if j.ndim == 1:
        j = j[None, :]
    return to_output(sw * SQRT_2_OVER_PI * np.linalg.norm(j, axis=-1).sum(axis=-1))
