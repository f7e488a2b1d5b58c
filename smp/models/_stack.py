"""Expected SMP layer by layer through stacks of blocks (dense ReLU stacks and Conv-ReLU-MaxPool CNNs).

The prediction never runs a network.  It combines two ingredients.

*Mean-field statistics.*  Over the ensemble of random weights (``w ~ N(0, sw**2)``, ``b ~ N(0, sb**2)``)
and at a fixed point of the path, a pre-activation is a sum of many independent terms and is treated
as Gaussian with mean 0, second moment ``q`` and derivative second moment ``q'`` (the book's
``sigma**2`` and ``sigma'**2``), value and derivative independent (the great circle is symmetric
under ``t -> -t``).  A linear layer maps the previous layer's second moments ``m2, m2'`` to

    q_{l+1}  = sw**2 * fan_in * m2_l + sb**2,      q'_{l+1} = sw**2 * fan_in * m2'_l,

and a ReLU gives ``m2 = q/2``, ``m2' = P(active) q'`` with ``P(active) = 1/2`` (Poole et al. 2016's
``chi_1 = sw**2 fan_in P(active)`` is the per-layer gain of ``q'``).

*Kink events with jump vectors.*  Every kink is an event at one time t* with a jump vector J, the
slope jump of every unit of a layer; a layer's SMP is the sum over events of ``||J||_1``.  Events
are born at ReLU zero crossings (Rice: ``L phi(0) q'/sqrt(q)`` per unit, :func:`smp.models.relu`)
and at pooling switches; afterwards a linear layer maps ``J -> W J`` with

    E ||W J||_1 = sqrt(2/pi) sw * sum over outputs of ||J restricted to the output's inputs||_2,

a ReLU masks J with the activity pattern (each entry kept with probability ``P(active)``, the
jump being independent of the sign of the unit at t*) and max pooling keeps the argmax entry of
each window (if the window's maximum is positive, after a ReLU).

Units: ``length`` is the path length L in units of t; SMP is in units of the activation per unit t.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np
import pandas as pd

from .._validation import check_array, check_int
from ._common import SQRT_2_OVER_PI
from ._relu import relu

__all__ = ["dense_stack", "dense_growth"]


def _widths(width, depth) -> list[int]:
    if isinstance(width, (str, bytes)):
        raise TypeError(
            f"width must be an integer or a sequence of integers, got {width!r}"
        )
    if isinstance(width, numbers.Integral) and not isinstance(width, bool):
        if depth is None:
            raise ValueError("depth is needed when width is a single integer")
        return [check_int("width", width)] * check_int("depth", depth)
    if depth is not None:
        raise ValueError(
            "give depth only with a single integer width, not with a list of widths"
        )
    try:
        widths = [check_int("width", w) for w in width]
    except TypeError as err:
        raise TypeError(
            f"width must be an integer or a sequence of integers, got {width!r}"
        ) from err
    if not widths:
        raise ValueError("width must list at least one layer")
    return widths


def dense_stack(
    in_features: int,
    width: int | Sequence[int],
    depth: int | None = None,
    *,
    weight_gain: float = 1.0,
    bias_std: float = 0.0,
    input_std: float = 1.0,
    input_dstd: float = 1.0,
    length: float = 2 * np.pi,
) -> pd.DataFrame:
    """Predicted statistics and total SMP of every layer of a dense ReLU stack along a smooth path.

    The stack is ``Linear -> ReLU`` repeated (as :func:`smp.networks.dense_net`), weights
    ``N(0, sw**2)`` with the He convention ``sw = weight_gain * sqrt(2 / fan_in)``, biases
    ``N(0, bias_std**2)``.  The input path is smooth (no kinks); every input coordinate has second
    moment ``input_std**2`` and derivative second moment ``input_dstd**2`` (1 and 1 for
    :func:`smp.signals.great_circle` with its default radius, whose length is ``2 pi``).

    Bookkeeping (module docstring): the events born at the ReLU of layer m have total size
    ``B_m = n_m L phi(0) q'_m / sqrt(q_m)`` (``||J||_1 = ||J||_2 = |x'(t*)|`` for a birth).  A linear
    layer of ``n`` outputs turns the events' summed 2-norm ``R`` into the 1-norm
    ``n sw sqrt(2/pi) R`` and the 2-norm ``sqrt(n) sw R`` (the entries of ``W J`` are Gaussian with
    variance ``sw**2 ||J||_2**2``; the 2-norm of ``n`` of them concentrates, error ``O(1/n)``); a ReLU
    multiplies the 1-norm by ``P`` and the 2-norm by ``sqrt(P)``.  The SMP of a layer is the sum of
    the 1-norms of all events born at or below it.

    Parameters
    ----------
    in_features : input dimension d.
    width : the width of every layer (with ``depth``) or a sequence of widths, one per layer.
    depth : number of ``Linear -> ReLU`` blocks when ``width`` is an integer.
    weight_gain : multiplies the He standard deviation ``sqrt(2 / fan_in)`` (1: He init).
    bias_std : standard deviation of the biases (units of the pre-activation).
    input_std, input_dstd : root mean square of an input coordinate and of its t-derivative.
    length : path length L (units of t).

    Returns
    -------
    pandas.DataFrame, one row per layer (``Linear``, ``ReLU``, ...): ``layer`` (1-based), ``block``,
    ``kind`` ("linear" / "relu"), ``units``, ``rms`` and ``drms`` (root mean square of the
    activation and its t-derivative over the ensemble), ``p_active`` (P(output > 0); NaN for a linear
    layer), ``births`` (SMP born in the layer, summed over units), ``smp`` (expected total SMP of the
    layer: sum over its units).
    """
    d = check_int("in_features", in_features)
    widths = _widths(width, depth)
    gain = float(check_array("weight_gain", weight_gain, positive=True))
    sb = float(check_array("bias_std", bias_std, nonnegative=True))
    m2 = float(check_array("input_std", input_std, positive=True)) ** 2
    dm2 = float(check_array("input_dstd", input_dstd, nonnegative=True)) ** 2
    L = float(check_array("length", length, positive=True))

    rows = []
    fan_in = d
    l1_sum = 0.0  # sum over live events of ||J||_1 at the current layer
    l2_sum = 0.0  # sum over live events of ||J||_2
    for block, n in enumerate(widths, start=1):
        sw = gain * np.sqrt(2.0 / fan_in)
        q = sw**2 * fan_in * m2 + sb**2
        dq = sw**2 * fan_in * dm2
        # linear map of every live event
        l1_sum = n * sw * SQRT_2_OVER_PI * l2_sum
        l2_sum = np.sqrt(n) * sw * l2_sum
        rows.append(
            dict(
                layer=2 * block - 1,
                block=block,
                kind="linear",
                units=n,
                rms=np.sqrt(q),
                drms=np.sqrt(dq),
                p_active=np.nan,
                births=0.0,
                smp=l1_sum,
            )
        )
        # ReLU: zero-mean symmetric pre-activation, so P(active) = 1/2 and E relu(x)^2 = q / 2
        p_active = 0.5
        births = n * relu(np.sqrt(q), np.sqrt(dq), 0.0, L)
        l1_sum = p_active * l1_sum + births
        l2_sum = np.sqrt(p_active) * l2_sum + births
        m2, dm2 = q / 2, p_active * dq
        rows.append(
            dict(
                layer=2 * block,
                block=block,
                kind="relu",
                units=n,
                rms=np.sqrt(m2),
                drms=np.sqrt(dm2),
                p_active=p_active,
                births=births,
                smp=l1_sum,
            )
        )
        fan_in = n
    return pd.DataFrame(rows)


def dense_growth(
    width: int,
    depth,
    weight_gain: float = 1.0,
    q1: float = 2.0,
    length: float = 2 * np.pi,
):
    """Closed form of :func:`dense_stack` for equal widths and no bias: total SMP after the l-th ReLU.

    With ``n`` units per layer and gain ``g``, ``q_l = q'_l`` and ``sqrt(q_l) = sqrt(q1) g**l``
    (``q1`` is the first layer's ``q = q'`` at gain 1: 2 on a great circle of unit-scale
    coordinates with He init).  Each ReLU gives births ``B_l = n L phi(0) sqrt(q_l)``, and an event
    born at layer m has, ``k >= 1`` layers later, the 1-norm ``g**k sqrt(n / pi) B_m`` after the
    ReLU (its 2-norm gains ``g`` per layer, its 1-norm is ``sqrt(n / pi)`` times its 2-norm).
    Summing over m <= l,

        SMP_l = n L phi(0) sqrt(q1) g**l * (1 + (l - 1) sqrt(n / pi)),

    linear in depth at ``g = 1`` with slope ``L phi(0) sqrt(q1 / pi) n**1.5`` (width**1.5 per layer),
    and ``g**l`` times that otherwise (exponential growth above He init, decay below).

    ``depth`` may be an array of layer indices l >= 1.
    """
    n = check_int("width", width)
    g = float(check_array("weight_gain", weight_gain, positive=True))
    l = check_array("depth", depth, positive=True)
    q1 = float(check_array("q1", q1, positive=True)) * g**2
    L = float(check_array("length", length, positive=True))
    birth_per_unit = (
        L / np.sqrt(2 * np.pi) * np.sqrt(q1)
    )  # L phi(0) q'/sqrt(q) with q' = q = q1
    return n * birth_per_unit * g ** (l - 1) * (1 + (l - 1) * np.sqrt(n / np.pi))


# ----------------------------------------------------------------------------------------------
# Convolutional stacks: Conv2d(k, padding k//2) -> ReLU -> MaxPool2d(p), repeated
# ----------------------------------------------------------------------------------------------
