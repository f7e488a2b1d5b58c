"""Expected SMP through one block: convolution / linear, ReLU, max pooling.

Notation (the book's): ``sigma`` = ``std`` the per-unit standard deviation of the input along the path,
``sigma'`` = ``dstd`` the standard deviation of its derivative d x / d t, ``mu`` = ``mean``, ``L`` =
``length`` the path length (units of t), ``smp_in`` the SMP one input unit already carries (units of x
per unit t, i.e. total absolute slope jump).  ``phi`` and ``Phi`` are the standard normal pdf and cdf.
All functions broadcast over array arguments and return floats or numpy arrays in units of x per unit t.
"""

from __future__ import annotations

import numbers
from functools import lru_cache

import numpy as np
from scipy import integrate, special

__all__ = ["conv", "relu", "maxpool", "maxpool_switch_integral"]

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def _array(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> np.ndarray:
    if isinstance(value, (str, bytes)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number or array, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number or array, got {value!r}") from err
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not (arr > 0).all():
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not (arr >= 0).all():
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return arr


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)


def conv(weight_std, fan_in, smp_in):
    """Expected SMP of one output unit of a convolution / linear layer, kinks at distinct times.

    ``y = sum_i w_i x_i + b`` with ``w_i ~ N(0, sw**2)`` i.i.d.: every kink of input i reappears in y
    with its jump times ``w_i``.  When no two inputs kink at the same t (the identity
    ``SMP(y) = sum_i |w_i| SMP(x_i)`` then holds on every path),

        E SMP(y) = fan_in * sw * sqrt(2/pi) * smp_in,

    since ``E|w| = sw sqrt(2/pi)``.  Shared kink times: see the chapter on convolution.

    Parameters
    ----------
    weight_std : ``sw``, the weights' standard deviation (units of y per unit x).
    fan_in : number of inputs of one output unit (``C_in * k * k`` for a convolution).
    smp_in : SMP carried by each input unit (units of x per unit t).
    """
    sw = _array("weight_std", weight_std, nonnegative=True)
    n = _array("fan_in", fan_in, positive=True)
    s_in = _array("smp_in", smp_in, nonnegative=True)
    return _out(n * sw * _SQRT_2_OVER_PI * s_in)


def relu(std, dstd, mean=0.0, length=1.0, smp_in=0.0):
    """Expected SMP of ``max(x, 0)`` over a path of ``length`` for stationary Gaussian x.

    Births: every zero crossing ``t_c`` adds a kink of size ``|x'(t_c)|``.  By the Rice / Kac formula
    for a stationary Gaussian process whose value and derivative are independent at equal times,
    ``E sum_c |x'(t_c)| = L p_x(0) E[x'^2] = L phi(mu/sigma) sigma'^2 / sigma``.  Pass-through: an input
    kink survives iff x > 0 there; for kinks at times independent of x this has probability
    ``Phi(mu/sigma)``.  Hence

        E SMP(y) = L phi(mu/sigma) sigma'^2 / sigma + Phi(mu/sigma) smp_in.

    Parameters
    ----------
    std, dstd, mean : ``sigma > 0``, ``sigma' >= 0``, ``mu`` of the input (units of x, x per unit t, x).
    length : path length ``L`` (units of t).
    smp_in : SMP the input carries (units of x per unit t).
    """
    sigma = _array("std", std, positive=True)
    dsigma = _array("dstd", dstd, nonnegative=True)
    mu = _array("mean", mean)
    L = _array("length", length, positive=True)
    s_in = _array("smp_in", smp_in, nonnegative=True)
    z = mu / sigma
    return _out(L * _phi(z) * dsigma**2 / sigma + special.ndtr(z) * s_in)


@lru_cache(maxsize=None)
def maxpool_switch_integral(k: int) -> float:
    """``I_K = integral phi(z)^2 Phi(z)^(K-2) dz`` (for K >= 2), by adaptive quadrature.

    ``K(K-1) I_K`` is the switch-birth rate of the max of K i.i.d. standard Gaussians per unit
    ``sigma'^2/sigma``: 0.5642 (K=2), 0.8463 (3), 1.0294 (4), 1.4850 (9).
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    value, _ = integrate.quad(lambda z: _phi(z) ** 2 * special.ndtr(z) ** (k - 2), -np.inf, np.inf, epsabs=1e-13)
    return float(value)


def maxpool(k, std, dstd, mean=0.0, length=1.0, smp_in=0.0):
    """Expected SMP of ``y = max(x_1..x_K)`` for K i.i.d. stationary Gaussian inputs.

    Births: every switch of the argmax from i to j adds a kink of size ``|x_i' - x_j'|``.  A switch
    between i and j happens where ``x_i = x_j = v`` exceeds the K-2 others; Rice's formula for
    ``d = x_i - x_j`` restricted to that event, summed over the ``K(K-1)/2`` pairs, gives

        E SMP(y) = L K(K-1) (sigma'^2 / sigma) I_K + smp_in,
        I_K = integral phi(z)^2 Phi(z)^(K-2) dz.

    Shift invariant (no ``mu``).  Pass-through: an input kink passes iff its input is the argmax;
    for kinks at levels distributed like x each input is the argmax 1/K of the time, so K inputs each
    carrying ``smp_in`` pass ``(1/K) * K * smp_in = smp_in``.

    Parameters
    ----------
    k : window size K (number of inputs), integer >= 1 (K = 1 is the identity).
    std, dstd : ``sigma > 0`` and ``sigma' >= 0`` of each input.
    mean : accepted for symmetry with :func:`relu`; the max of i.i.d. inputs does not depend on it.
    length : path length ``L``.
    smp_in : SMP carried by each input.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (the window size), got {k!r}")
    sigma = _array("std", std, positive=True)
    dsigma = _array("dstd", dstd, nonnegative=True)
    _array("mean", mean)
    L = _array("length", length, positive=True)
    s_in = _array("smp_in", smp_in, nonnegative=True)
    rate = 0.0 if k == 1 else k * (k - 1) * maxpool_switch_integral(int(k))
    return _out(L * rate * dsigma**2 / sigma + s_in)
