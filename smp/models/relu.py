"""Expected SMP through a ReLU.

Notation (the book's): ``sigma`` = ``std`` the per-unit standard deviation of the input along the path,
``sigma'`` = ``dstd`` the standard deviation of its derivative d x / d t, ``mu`` = ``mean``, ``L`` =
``length`` the path length (units of t), ``smp_in`` the SMP one input unit already carries (units of x
per unit t, i.e. total absolute slope jump).  ``phi`` and ``Phi`` are the standard normal pdf and cdf.
All functions broadcast over array arguments and return floats or numpy arrays in units of x per unit t.
"""

from __future__ import annotations

from scipy import special

from ._checks import as_array, phi, to_output

__all__ = ["relu"]


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
    sigma = as_array("std", std, positive=True)
    dsigma = as_array("dstd", dstd, nonnegative=True)
    mu = as_array("mean", mean)
    L = as_array("length", length, positive=True)
    s_in = as_array("smp_in", smp_in, nonnegative=True)
    z = mu / sigma
    return to_output(L * phi(z) * dsigma**2 / sigma + special.ndtr(z) * s_in)
