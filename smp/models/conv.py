"""Expected SMP through a convolution / linear layer.

Notation (the book's): ``sigma`` = ``std`` the per-unit standard deviation of the input along the path,
``sigma'`` = ``dstd`` the standard deviation of its derivative d x / d t, ``mu`` = ``mean``, ``L`` =
``length`` the path length (units of t), ``smp_in`` the SMP one input unit already carries (units of x
per unit t, i.e. total absolute slope jump).  ``phi`` and ``Phi`` are the standard normal pdf and cdf.
All functions broadcast over array arguments and return floats or numpy arrays in units of x per unit t.
"""

from __future__ import annotations

from ._checks import SQRT_2_OVER_PI, as_array, to_output

__all__ = ["conv"]


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
    sw = as_array("weight_std", weight_std, nonnegative=True)
    n = as_array("fan_in", fan_in, positive=True)
    s_in = as_array("smp_in", smp_in, nonnegative=True)
    return to_output(n * sw * SQRT_2_OVER_PI * s_in)
