"""Expected SMP through a ReLU, and its exact bookkeeping on single paths.

Notation (the book's): ``sigma`` = ``std`` the per-unit standard deviation of the input along the path,
``sigma'`` = ``dstd`` the standard deviation of its derivative d x / d t, ``mu`` = ``mean``, ``L`` =
``length`` the path length (units of t), ``smp_in`` the SMP one input unit already carries (units of x
per unit t, i.e. total absolute slope jump).  ``phi`` and ``Phi`` are the standard normal pdf and cdf.
All closed forms broadcast over array arguments and return floats or numpy arrays in units of x per
unit t.

The exact identity (true for every path): for ``y = max(x, 0)``, an input kink where ``x > 0`` passes
unchanged, one where ``x < 0`` vanishes, and every zero crossing ``t_c`` adds a kink of jump
``+|x'(t_c)|`` (always convex: the slope goes from 0 to ``x' > 0`` or from ``x' < 0`` to 0).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from .._validation import check_array
from ._common import phi, to_output

__all__ = [
    "relu",
    "relu_births",
    "relu_pass_through",
    "relu_sinusoid",
    "relu_kinks",
    "relu_identity",
    "ReluKinks",
    "ReluIdentity",
]


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
    sigma = check_array("std", std, positive=True)
    dsigma = check_array("dstd", dstd, nonnegative=True)
    mu = check_array("mean", mean)
    L = check_array("length", length, positive=True)
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    z = mu / sigma
    return to_output(L * phi(z) * dsigma**2 / sigma + special.ndtr(z) * s_in)


def relu_births(std, dstd, mean=0.0, length=1.0):
    """Expected total size of the kinks a ReLU creates at zero crossings: ``L phi(mu/sigma) sigma'^2/sigma``.

    Rice / Kac: the crossings of level 0 by a stationary process with density ``p_x`` and ``x'``
    independent of ``x`` satisfy ``E sum_c |x'(t_c)| = L p_x(0) E[x'^2]``; for Gaussian x,
    ``p_x(0) = phi(mu/sigma)/sigma``.  Arguments as in :func:`relu` (units of x, x per unit t, x, t).
    """
    return relu(std, dstd, mean=mean, length=length, smp_in=0.0)


def relu_pass_through(std, mean=0.0, smp_in=1.0):
    """Expected SMP of the input kinks that survive a ReLU: ``Phi(mu/sigma) smp_in``.

    Assumes the kinks sit at times independent of x, so that x at a kink is distributed like x at any
    time (Gaussian, ``mu``, ``sigma``), and that the kink sizes are independent of x there.
    """
    sigma = check_array("std", std, positive=True)
    mu = check_array("mean", mean)
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    return to_output(special.ndtr(mu / sigma) * s_in)


def relu_sinusoid(amplitude, offset=0.0):
    """Exact SMP of ``max(A cos(t + p) + b, 0)`` over one period (any phase ``p``).

    For ``|b| < A`` the sinusoid crosses 0 twice per period, each time with slope
    ``|x'| = sqrt(A^2 - b^2)``: ``SMP = 2 sqrt(A^2 - b^2)``; for ``|b| >= A`` it does not cross and the
    output is smooth (``SMP = 0``).  This is one path; compare :func:`relu` with the path's own time
    statistics ``sigma = sigma' = A / sqrt(2)``, ``mu = b``, ``L = 2 pi`` (the Rice formula, which
    assumes a Gaussian value distribution, gives ``sqrt(pi) A = 0.886 * 2A`` at ``b = 0``).

    Parameters
    ----------
    amplitude : ``A >= 0`` (units of x).
    offset : ``b`` (units of x).
    """
    A = check_array("amplitude", amplitude, nonnegative=True)
    b = check_array("offset", offset)
    return to_output(2.0 * np.sqrt(np.clip(A**2 - b**2, 0.0, None)))


class ReluKinks(NamedTuple):
    """Every kink of ``max(x, 0)`` for a piecewise-linear x, with its source.

    ``times`` and ``jumps`` (slope jump of y, units of x per unit t) of the output's kinks, sorted in
    time, and ``source`` for each: ``"passed"`` (an input kink where x > 0) or ``"born"`` (a zero
    crossing, jump ``+|x'|``); ``vanished_times`` and ``vanished_jumps``: input kinks where x < 0.
    """

    times: np.ndarray
    jumps: np.ndarray
    source: np.ndarray
    vanished_times: np.ndarray
    vanished_jumps: np.ndarray


def relu_kinks(value0, slope0, kink_times, slope_jumps, t0=0.0, t1=1.0) -> ReluKinks:
    """Exact kinks of ``y = max(x, 0)`` for one piecewise-linear input on ``[t0, t1]``.

    ``x(t) = value0 + slope0 (t - t0) + sum_k Ds_k max(t - t_k, 0)``.  On each linear piece the zero
    crossing (if any) is found analytically; an input kink passes if ``x(t_k) > 0`` and vanishes if
    ``x(t_k) < 0`` (a kink exactly at ``x = 0`` has probability zero and is reported as vanished).

    Parameters
    ----------
    value0, slope0 : x and x' at ``t0`` (units of x, x per unit t).
    kink_times, slope_jumps : 1-D arrays of the input's kinks, inside ``(t0, t1)`` (units of t, x per t).
    t0, t1 : the interval (units of t).
    """
    times = check_array("kink_times", kink_times).ravel()
    jumps = check_array("slope_jumps", slope_jumps).ravel()
    if times.shape != jumps.shape:
        raise ValueError(
            f"kink_times and slope_jumps must have the same length, got {times.size} and {jumps.size}"
        )
    t0, t1 = float(check_array("t0", t0)), float(check_array("t1", t1))
    if not t1 > t0 or (times.size and not ((times > t0) & (times < t1)).all()):
        raise ValueError("kinks must lie inside (t0, t1) and t1 > t0")
    order = np.argsort(times)
    times, jumps = times[order], jumps[order]
    edges = np.concatenate([[t0], times, [t1]])
    # exact value and slope at the start of every piece: a loop over the few kinks of one path
    slopes = float(check_array("slope0", slope0)) + np.concatenate(
        [[0.0], np.cumsum(jumps)]
    )
    values = np.empty(edges.size)
    values[0] = float(check_array("value0", value0))
    for i in range(1, edges.size):
        values[i] = values[i - 1] + slopes[i - 1] * (edges[i] - edges[i - 1])
    out_t, out_j, out_s = [], [], []
    # births: a sign change inside piece i, at t_c = edge_i - value_i / slope_i, jump |slope_i|
    for i in range(edges.size - 1):
        if slopes[i] != 0.0:
            tc = edges[i] - values[i] / slopes[i]
            if edges[i] < tc < edges[i + 1]:
                out_t.append(tc)
                out_j.append(abs(slopes[i]))
                out_s.append("born")
    at_kink = values[1:-1]
    passed = at_kink > 0
    out_t += list(times[passed])
    out_j += list(jumps[passed])
    out_s += ["passed"] * int(passed.sum())
    out_t, out_j, out_s = (
        np.asarray(out_t, float),
        np.asarray(out_j, float),
        np.asarray(out_s, dtype=object),
    )
    order = np.argsort(out_t)
    return ReluKinks(
        out_t[order],
        out_j[order],
        out_s[order].astype(str),
        times[~passed],
        jumps[~passed],
    )


class ReluIdentity(NamedTuple):
    """Per-path totals of the ReLU identity: ``born`` (sum of |x'| at zero crossings), ``passed`` and
    ``vanished`` (sum of |jump| of input kinks where x > 0, x < 0), ``crossings`` (count); the exact SMP
    of the output is ``born + passed``.  Units of x per unit t (counts dimensionless)."""

    born: np.ndarray
    passed: np.ndarray
    vanished: np.ndarray
    crossings: np.ndarray


def relu_identity(t, x, dx, kink_times=None, slope_jumps=None) -> ReluIdentity:
    """The ReLU identity on sampled paths whose derivative and kinks are known.

    Crossings are the sign changes between consecutive samples of ``x``; the crossing time is linear
    interpolation between them and ``|x'(t_c)|`` linear interpolation of the exact derivative ``dx``
    (error ``O(h^2 |x'''|)``; exact for piecewise-linear x with the crossing inside a piece).  An input
    kink passes iff x, interpolated at its time, is > 0.  Vectorised over the leading (path) axes.

    Parameters
    ----------
    t : (N,) sample times (units of t).
    x, dx : (..., N) input values and exact derivative (units of x, x per unit t).
    kink_times, slope_jumps : (..., K) the input's kinks (NaN time = no kink), or None.
    """
    t = check_array("t", t)
    x = check_array("x", x)
    dx = check_array("dx", dx)
    if t.ndim != 1 or x.shape[-1] != t.size or dx.shape != x.shape or t.size < 2:
        raise ValueError(
            f"need t (N,) and x, dx (..., N) of equal shape, got {t.shape}, {x.shape}, {dx.shape}"
        )
    x2, dx2 = x.reshape(-1, t.size), dx.reshape(-1, t.size)
    sign = x2 > 0
    path, n = np.nonzero(sign[:, 1:] != sign[:, :-1])
    u = x2[path, n] / (x2[path, n] - x2[path, n + 1])
    slope = np.abs((1 - u) * dx2[path, n] + u * dx2[path, n + 1])
    born = np.bincount(path, weights=slope, minlength=x2.shape[0])
    crossings = np.bincount(path, minlength=x2.shape[0]).astype(float)
    passed = np.zeros(x2.shape[0])
    vanished = np.zeros(x2.shape[0])
    if kink_times is not None:
        kt = check_array(
            "kink_times", np.nan_to_num(np.asarray(kink_times, float), nan=-np.inf)
        )
        kj = np.abs(check_array("slope_jumps", slope_jumps))
        kt, kj = kt.reshape(x2.shape[0], -1), kj.reshape(x2.shape[0], -1)
        valid = np.isfinite(kt)
        idx = np.clip(np.searchsorted(t, np.where(valid, kt, t[0])) - 1, 0, t.size - 2)
        frac = (np.where(valid, kt, t[0]) - t[idx]) / (t[idx + 1] - t[idx])
        rows = np.arange(x2.shape[0])[:, None]
        level = (1 - frac) * x2[rows, idx] + frac * x2[rows, idx + 1]
        passed = np.where(valid & (level > 0), kj, 0.0).sum(axis=1)
        vanished = np.where(valid & (level <= 0), kj, 0.0).sum(axis=1)
    shape = x.shape[:-1]
    return ReluIdentity(
        born.reshape(shape),
        passed.reshape(shape),
        vanished.reshape(shape),
        crossings.reshape(shape),
    )
