"""Expected SMP through a max-pooling window.

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

from ._checks import as_array, phi, to_output

__all__ = ["maxpool", "maxpool_switch_integral"]


@lru_cache(maxsize=None)
def maxpool_switch_integral(k: int) -> float:
    """``I_K = integral phi(z)^2 Phi(z)^(K-2) dz`` (for K >= 2), by adaptive quadrature.

    ``K(K-1) I_K`` is the switch-birth rate of the max of K i.i.d. standard Gaussians per unit
    ``sigma'^2/sigma``: 0.5642 (K=2), 0.8463 (3), 1.0294 (4), 1.4850 (9).
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    value, _ = integrate.quad(lambda z: phi(z) ** 2 * special.ndtr(z) ** (k - 2), -np.inf, np.inf, epsabs=1e-13)
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
    sigma = as_array("std", std, positive=True)
    dsigma = as_array("dstd", dstd, nonnegative=True)
    as_array("mean", mean)
    L = as_array("length", length, positive=True)
    s_in = as_array("smp_in", smp_in, nonnegative=True)
    rate = 0.0 if k == 1 else k * (k - 1) * maxpool_switch_integral(int(k))
    return to_output(L * rate * dsigma**2 / sigma + s_in)
