"""Expected SMP through a max-pooling window.

Notation (the book's): ``sigma`` = ``std`` the per-unit standard deviation of the input along the path,
``sigma'`` = ``dstd`` the standard deviation of its derivative d x / d t, ``mu`` = ``mean``, ``L`` =
``length`` the path length (units of t), ``smp_in`` the SMP one input unit already carries (units of x
per unit t, i.e. total absolute slope jump).  ``phi`` and ``Phi`` are the standard normal pdf and cdf.
All functions broadcast over array arguments and return floats or numpy arrays in units of x per unit t.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import integrate, special

from .._validation import check_array, check_int
from ._common import phi, to_output

__all__ = [
    "maxpool",
    "maxpool_switch_integral",
    "maxpool_correlated",
    "relu_maxpool",
    "relu_maxpool_parts",
    "maxpool_identity",
    "maxpool_window",
    "MaxpoolWindow",
    "relu_maxpool_window",
    "MaxpoolIdentity",
]


@lru_cache(maxsize=None)
def maxpool_switch_integral(k: int) -> float:
    """``I_K = integral phi(z)^2 Phi(z)^(K-2) dz`` (for K >= 2), by adaptive quadrature.

    ``K(K-1) I_K`` is the switch-birth rate of the max of K i.i.d. standard Gaussians per unit
    ``sigma'^2/sigma``: 0.5642 (K=2), 0.8463 (3), 1.0294 (4), 1.4850 (9).
    """
    k = check_int("k", k, 2)
    value, _ = integrate.quad(
        lambda z: phi(z) ** 2 * special.ndtr(z) ** (k - 2),
        -np.inf,
        np.inf,
        epsabs=1e-13,
    )
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
    k = check_int("k", k)  # the window size
    sigma = check_array("std", std, positive=True)
    dsigma = check_array("dstd", dstd, nonnegative=True)
    check_array("mean", mean)
    L = check_array("length", length, positive=True)
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    rate = 0.0 if k == 1 else k * (k - 1) * maxpool_switch_integral(int(k))
    return to_output(L * rate * dsigma**2 / sigma + s_in)


def _window_size(k) -> int:
    return check_int("k", k)  # the window size


def _correlations(rho, drho):
    r = check_array("rho", rho)
    dr = check_array("drho", drho)
    if not ((r >= 0) & (r < 1)).all():
        raise ValueError(
            f"rho must be in [0, 1) (equicorrelated window, x_i = sqrt(rho) z0 + ...), got {rho!r}"
        )
    if not ((dr >= 0) & (dr <= 1)).all():
        raise ValueError(f"drho must be in [0, 1], got {drho!r}")
    return r, dr


def maxpool_correlated(k, std, dstd, rho, drho, length=1.0, smp_in=0.0):
    """Expected SMP of ``y = max(x_1..x_K)`` for K *equicorrelated* stationary Gaussian inputs.

    Model of the window: ``x_i = mu + sigma (sqrt(rho) z_0 + sqrt(1-rho) z_i)`` with z_0, z_i
    independent standard stationary processes; the derivatives have pairwise correlation ``drho``
    (``drho = rho`` when all z share one kernel).  The common part z_0 shifts every input by the same
    amount and so never changes the argmax: switches are those of K i.i.d. processes of std
    ``sigma sqrt(1-rho)`` and derivative std ``sigma' sqrt(1-drho)``.  Hence

        E SMP(y) = L K(K-1) I_K (sigma'^2 / sigma) (1 - drho) / sqrt(1 - rho) + smp_in,

    with ``I_K`` of :func:`maxpool_switch_integral`.  Pass-through as in :func:`maxpool` (each input is
    the argmax 1/K of the time by symmetry).  Assumptions: x and x' independent at equal times (true
    for stationary processes), kinks of the inputs at levels distributed like x.  This is the
    equicorrelated case only (one ``rho`` and one ``drho`` for every pair of the window); windows
    with a general covariance are not covered here.

    Parameters
    ----------
    k : window size K, integer >= 1.
    std, dstd : ``sigma > 0``, ``sigma' >= 0`` of each input (units of x, x per unit t).
    rho : pairwise correlation of the values, in [0, 1).
    drho : pairwise correlation of the derivatives, in [0, 1].
    length : path length L (units of t).
    smp_in : SMP carried by each input (x per unit t).
    """
    k = _window_size(k)
    r, dr = _correlations(rho, drho)
    iid = np.asarray(maxpool(k, std, dstd, 0.0, length, 0.0))
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    return to_output(iid * (1 - dr) / np.sqrt(1 - r) + s_in)


@lru_cache(maxsize=None)
def _tail_table(k: int):
    """Grid of ``J_K(a) = integral_a^inf phi(z)^2 Phi(z)^(K-2) dz`` and of ``Phi(a)`` helpers."""
    z = np.linspace(-12.0, 12.0, 24001)
    f = phi(z) ** 2 * special.ndtr(z) ** (k - 2)
    cum = integrate.cumulative_simpson(f, x=z, initial=0.0)
    return z, cum[-1] - cum


def _tail(k: int, a: np.ndarray) -> np.ndarray:
    """``J_K(a) = integral_a^inf phi(z)^2 Phi(z)^(K-2) dz`` (Simpson table + interpolation, error < 1e-9)."""
    z, tail = _tail_table(k)
    return np.interp(a, z, tail, left=tail[0], right=0.0)


_GRID_U = 2001  # Simpson nodes over the common part (see _common_part_expectation)
_LEVEL_RANGE = (
    12.0  # |a| beyond which phi(a) < 1e-31 and Phi(a)^K, J_K(a) are at their limits
)


def _common_part_expectation(k: int, m_a: np.ndarray, tau: np.ndarray):
    """``E[phi(A) Phi(A)^(K-1)]``, ``E[J_K(A)]``, ``E[Phi(A)^K]`` for ``A ~ N(m_a, tau^2)``.

    ``A = a_w`` is the standardised level 0 given the common part: mean ``-mu / s_c`` and std
    ``tau = sqrt(rho / (1 - rho))``, which grows without bound as rho -> 1 while the integrands vary
    on the scale 1 of ``a``.  Writing ``A = m_a + tau u`` with ``u ~ N(0, 1)``, the u-range is cut
    to where ``|A| <= 12`` (beyond it the integrands are at their limits: 0, or ``J_K(-inf)`` and 1,
    whose masses ``Phi(.)`` are added exactly) and to ``|u| <= 12``; Simpson's rule on 2001 nodes of
    that range then steps by at most 0.012 in u *and* at most 0.012 in a, resolving both scales
    for every rho in [0, 1).
    """
    big = _LEVEL_RANGE
    with np.errstate(divide="ignore", invalid="ignore"):
        u_lo = np.where(
            tau > 0, (-big - m_a) / tau, np.where(m_a < -big, np.inf, -np.inf)
        )
        u_hi = np.where(
            tau > 0, (big - m_a) / tau, np.where(m_a > big, -np.inf, np.inf)
        )
    u_lo = np.clip(u_lo, -big, big)
    u_hi = np.clip(u_hi, -big, big)
    u_hi = np.maximum(u_hi, u_lo)  # all of A's mass beyond |a| = 12: the tails carry it
    frac = np.linspace(0.0, 1.0, _GRID_U)
    u = u_lo[..., None] + (u_hi - u_lo)[..., None] * frac
    a = m_a[..., None] + tau[..., None] * u
    weight = phi(u)
    below = special.ndtr(a)

    def expect(values):
        return integrate.simpson(values * weight, x=u, axis=-1)

    lower, upper = (
        special.ndtr(u_lo),
        special.ndtr(-u_hi),
    )  # masses with A < -12 and A > 12
    cross = expect(phi(a) * below ** (k - 1))
    tail = (
        expect(_tail(k, a)) + lower * _tail(k, np.array(-big))
        if k >= 2
        else np.zeros_like(cross)
    )
    all_below = expect(below**k) + upper
    return cross, tail, all_below


def relu_maxpool_parts(
    k, std, dstd, mean=0.0, length=1.0, smp_in=0.0, rho=0.0, drho=0.0
):
    """The three parts of :func:`relu_maxpool`: ``(zero_crossing_births, switch_births, passed)``."""
    k = _window_size(k)
    sigma = check_array("std", std, positive=True)
    dsigma = check_array("dstd", dstd, nonnegative=True)
    mu = check_array("mean", mean)
    L = check_array("length", length, positive=True)
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    r, dr = _correlations(rho, drho)
    sigma, dsigma, mu, L, s_in, r, dr = np.broadcast_arrays(
        sigma, dsigma, mu, L, s_in, r, dr
    )
    # condition on the common part z_0 = w: inputs i.i.d. with mean m_w and std s_c; the level 0
    # standardised, a_w = -m_w / s_c, is Gaussian in w with mean -mu / s_c and std sqrt(rho / (1 - rho))
    s_c = sigma * np.sqrt(1 - r)
    cross, tail, all_below = _common_part_expectation(
        k, -mu / s_c, np.sqrt(r / (1 - r))
    )
    # the max crosses 0 through input i while the K-1 others are below 0
    zero = L * k * dsigma**2 * cross / s_c
    if k >= 2:
        switch = L * k * (k - 1) * dsigma**2 * (1 - dr) * tail / s_c
    else:
        switch = np.zeros_like(zero)
    passed = s_in * (1 - all_below)
    return to_output(zero), to_output(switch), to_output(passed)


def relu_maxpool(k, std, dstd, mean=0.0, length=1.0, smp_in=0.0, rho=0.0, drho=0.0):
    """Expected SMP of ``y = max(0, x_1..x_K)`` (a ReLU followed by a max pool of window K).

    Inputs: stationary Gaussian, mean ``mu``, std ``sigma``, derivative std ``sigma'``, equicorrelated
    as in :func:`maxpool_correlated` (``rho``, ``drho``; 0 = independent).  Conditioning on the common
    part ``z_0 = w`` the inputs are i.i.d. with mean ``m_w = mu + sigma sqrt(rho) w`` and std
    ``s_c = sigma sqrt(1-rho)``; write ``a_w = -m_w / s_c``.  Three parts, each a Rice (Kac) count:

    * zero crossings of the max: input i crosses 0 while all others are below 0, a kink ``|x_i'|``::

          L K sigma'^2 E_w[ phi(a_w) Phi(a_w)^(K-1) / s_c ]

      (``K L phi(mu/sigma) sigma'^2/sigma Phi(-mu/sigma)^(K-1)`` for rho = 0);
    * argmax switches above 0: ``d = x_i - x_j`` crosses 0 at a common level ``v > 0`` above the
      other K-2, a kink ``|d'|`` with ``E d'^2 = 2 sigma'^2 (1 - drho)``::

          L K(K-1) sigma'^2 (1 - drho) E_w[ J_K(a_w) / s_c ],  J_K(a) = integral_a^inf phi^2 Phi^(K-2) dz;

    * pass-through: a kink of input i passes iff ``x_i`` is the argmax and positive; for kinks at
      levels distributed like x this is ``(1 - P(all x < 0)) / K`` per input, so
      ``smp_in (1 - E_w[Phi(a_w)^K])`` for K inputs each carrying ``smp_in``.

    ``J_K`` is tabulated once per K by Simpson's rule; ``E_w`` is Simpson's rule in ``w`` on a range
    that resolves both the spread of ``w`` and that of ``a_w`` (which grows as
    ``sqrt(rho / (1 - rho))``), so it holds for every rho in [0, 1): checked against
    ``scipy.integrate.quad`` and, up to rho = 0.999, against :func:`maxpool_window` in the tests.  Assumptions: x and
    x' independent at equal times; kinks well separated; the ReLU is applied to every input before
    the pool (equivalently the pool has one extra constant input 0).

    Parameters
    ----------
    k : window size K, integer >= 1 (K = 1 is a plain ReLU).
    std, dstd : ``sigma > 0`` and ``sigma' >= 0`` of each pre-ReLU input.
    mean : ``mu`` of each pre-ReLU input.
    length : path length L (units of t).
    smp_in : SMP carried by each pre-ReLU input (x per unit t).
    rho, drho : pairwise correlation of the values in [0, 1) and of the derivatives in [0, 1].
    """
    zero, switch, passed = relu_maxpool_parts(
        k, std, dstd, mean, length, smp_in, rho, drho
    )
    return to_output(np.asarray(zero) + np.asarray(switch) + np.asarray(passed))


class MaxpoolIdentity(NamedTuple):
    """Exact bookkeeping of ``max(x_1..x_K)`` (or ``max(0, x_1..x_K)``) on sampled paths (per path)."""

    born: np.ndarray  # total |slope jump| born at argmax switches (x per unit t)
    passed: (
        np.ndarray
    )  # total |slope jump| of input kinks where their input is the argmax
    switches: np.ndarray  # number of argmax switches
    ambiguous: (
        np.ndarray
    )  # input kinks in an interval where the argmax also switches (not resolvable)


def maxpool_identity(
    t, x, dx=None, kink_times=None, slope_jumps=None, *, relu: bool = False
) -> MaxpoolIdentity:
    """The max-pool identity on sampled paths: births at argmax switches + pass-through of input kinks.

    Every change of the argmax between samples n and n+1, from input i to input j, is a kink of the
    output of size ``|x_i' - x_j'|`` at the crossing time of ``d = x_i - x_j``.  With ``dx`` given
    (exact derivatives) the crossing time is linear interpolation of d and the slopes are interpolated
    there (error ``O(h^2)``); with ``dx=None`` the inputs are taken as piecewise linear and the slopes
    are the interval's finite differences (exact when no input kink falls in that interval).  An
    input kink passes iff its input is the argmax at both ends of its interval (``ambiguous`` counts
    the kinks whose interval contains a switch).  ``relu=True`` adds the constant input 0
    (``max(0, x_1..x_K)``).  One switch per interval is assumed (the grid must resolve the switches).

    Parameters
    ----------
    t : (N,) sample times.
    x : (..., K, N) inputs; dx : same shape or None.
    kink_times, slope_jumps : (..., K, M) the inputs' kinks (NaN time = none), or None.
    """
    t = check_array("t", t)
    x = check_array("x", x)
    if t.ndim != 1 or t.size < 2 or x.ndim < 2 or x.shape[-1] != t.size:
        raise ValueError(f"need t (N,) and x (..., K, N), got {t.shape} and {x.shape}")
    lead = x.shape[:-2]
    k, n = x.shape[-2], x.shape[-1]
    x2 = x.reshape(-1, k, n)
    if dx is None:
        slope = np.diff(x2, axis=-1) / np.diff(t)  # (P, K, N-1) interval slopes
    else:
        dx2 = check_array("dx", dx).reshape(-1, k, n)
    if relu:
        x2 = np.concatenate([x2, np.zeros_like(x2[:, :1])], axis=1)
        if dx is None:
            slope = np.concatenate([slope, np.zeros_like(slope[:, :1])], axis=1)
        else:
            dx2 = np.concatenate([dx2, np.zeros_like(dx2[:, :1])], axis=1)
    arg = np.argmax(x2, axis=1)  # (P, N)
    path, m = np.nonzero(arg[:, 1:] != arg[:, :-1])
    i, j = arg[path, m], arg[path, m + 1]
    if dx is None:
        size = np.abs(slope[path, i, m] - slope[path, j, m])
    else:
        d0 = x2[path, i, m] - x2[path, j, m]
        d1 = x2[path, i, m + 1] - x2[path, j, m + 1]
        u = d0 / (d0 - d1)
        dd = (1 - u) * (dx2[path, i, m] - dx2[path, j, m]) + u * (
            dx2[path, i, m + 1] - dx2[path, j, m + 1]
        )
        size = np.abs(dd)
    n_paths = x2.shape[0]
    born = np.bincount(path, weights=size, minlength=n_paths)
    switches = np.bincount(path, minlength=n_paths).astype(float)
    passed = np.zeros(n_paths)
    ambiguous = np.zeros(n_paths)
    if kink_times is not None:
        kt = np.asarray(kink_times, dtype=np.float64).reshape(n_paths, k, -1)
        kj = np.abs(np.asarray(slope_jumps, dtype=np.float64)).reshape(n_paths, k, -1)
        p_idx, src, _ = np.nonzero(np.isfinite(kt))
        times = kt[np.isfinite(kt)]
        jumps = kj[np.isfinite(kt)]
        cell = np.clip(np.searchsorted(t, times, side="right") - 1, 0, n - 2)
        a0, a1 = arg[p_idx, cell], arg[p_idx, cell + 1]
        ok = (a0 == src) & (a1 == src)
        amb = (a0 != a1) & ((a0 == src) | (a1 == src))
        passed = np.bincount(p_idx, weights=jumps * ok, minlength=n_paths)
        ambiguous = np.bincount(p_idx, weights=amb.astype(float), minlength=n_paths)
    shape = lead if lead else ()
    return MaxpoolIdentity(
        born.reshape(shape),
        passed.reshape(shape),
        switches.reshape(shape),
        ambiguous.reshape(shape),
    )


class MaxpoolWindow(NamedTuple):
    """Expected SMP of one pooling window with a general Gaussian law (see :func:`maxpool_window`)."""

    births: (
        np.ndarray
    )  # switch births + zero-crossing births (x per unit t, over the path length)
    zero_births: (
        np.ndarray
    )  # births where the max crosses the constant 0 (relu=True only, else 0)
    switch_births: np.ndarray  # births at argmax switches between two inputs
    passed: (
        np.ndarray
    )  # pass-through of the inputs' own kinks, sum_i smp_in_i P(i is the argmax)
    p_argmax: np.ndarray  # (..., K) P(input i is the argmax (and > 0 with relu=True))


def maxpool_window(
    mean,
    cov,
    dcov,
    length=1.0,
    smp_in=0.0,
    *,
    relu: bool = False,
    n_draws: int = 2000,
    seed: int = 0,
    xdcov=None,
) -> MaxpoolWindow:
    """Expected SMP of ``max(x_1..x_K)`` (or ``max(0, x_1..x_K)``), general Gaussian window.

    The window's inputs are a stationary Gaussian vector ``x`` with mean ``m`` and covariance
    ``C`` (``cov``); its derivative ``x'`` has mean 0, covariance ``D`` (``dcov``) and
    cross-covariance ``X_ij = E[(x_i - m_i) x_j']`` with the values (``xdcov``).  Joint
    stationarity of the window makes ``X`` antisymmetric (``d/dt E[x_i x_j] = 0``), so each
    input's value and derivative are uncorrelated (``X_ii = 0``) and so are those of a
    difference (``E[d d'] = 0``); values and derivatives of *different* inputs need not be
    (median |correlation| 0.71, 0.30, 0.18 at blocks 1-3 of chapter 5's CNN).

    For every pair ``(i, j)`` the difference ``d = c^T x``, ``c = e_i - e_j`` (mean ``c^T m``,
    variance ``c^T C c``) crosses 0; by Rice's (Kac's) formula the expected total
    ``|slope jump|`` born there is, over the path length ``L``::

        births = L sum_{i<j} p_d(0) E[ d'^2 1{x_q < x_i for all q != i, j} | d = 0 ].

    Given all values ``x`` the slope jump is Gaussian:
    ``d' | x ~ N(b^T (x - m), c^T D c - b^T C b)`` with ``b = C^+ X c`` (``C^+`` the
    pseudo-inverse), so ``E[d'^2 | x] = (b^T (x - m))^2 + c^T D c - b^T C b``; this weight is
    averaged over ``n_draws`` seeded draws of the conditional law of ``x`` given ``d = 0``
    (mean ``m - C c (c^T m)/(c^T C c)``, covariance ``C - C c c^T C / (c^T C c)``) that fall
    in the "others below" event.  With ``xdcov=None`` (``X = 0``) ``d'`` is independent of
    ``x`` and the weight is the constant ``c^T D c``: births are ``(c^T D c) p_d(0)`` times
    the probability of the event.  The draws are independent for every window (errors average
    out over many windows).  The term moves births between the pairs but not their total:
    for a jointly stationary window the births are ``-sum_i E[x_i'' 1{i is the argmax}]``
    (the output is convex, its slope only jumps up), which depends on ``m, C, D`` alone since
    ``E[x_j x_i''] = -D_ij`` (tested: same total within the Monte-Carlo error).
    ``relu=True`` appends the constant input 0 (a ReLU before the
    pool): pairs with it are the zero crossings of the max.  Pass-through: a kink of input i
    passes iff x_i is the argmax (and positive), with probability ``P(i is the argmax)`` for
    kinks at levels distributed like x_i (independent of ``X``).  For equicorrelated windows
    with ``X = 0`` this reduces to :func:`maxpool_correlated` / :func:`relu_maxpool` (tested).

    Parameters
    ----------
    mean : (..., K) means of the inputs (units of x).
    cov, dcov : (..., K, K) covariance of the values and of the derivatives (x^2, (x per unit t)^2).
    length : path length L (units of t).
    smp_in : (..., K) or scalar, SMP carried by each input (x per unit t).
    relu : add the constant input 0.
    n_draws : Monte-Carlo draws per window and pair for the "others below" probabilities.
    seed : seed of the draws.
    xdcov : (..., K, K) or None, ``E[(x_i - m_i) x_j']`` (x^2 per unit t); None means zero
        (the value-derivative cross-covariance neglected; identical numbers to ``X = 0``
        up to rounding).

    Returns
    -------
    MaxpoolWindow with arrays of the leading shape ``(...)`` (``p_argmax`` (..., K)).

    Example
    -------
    Two inputs and a ReLU: a cross-covariance ``X_12 = -X_21`` moves births from the
    switches to the zero crossings, not their total:

    >>> cov, dcov = np.array([[1.0, 0.3], [0.3, 1.0]]), np.eye(2)
    >>> xd = np.array([[0.0, 0.5], [-0.5, 0.0]])
    >>> a = maxpool_window([0.5, 0.0], cov, dcov, relu=True, n_draws=20000)
    >>> b = maxpool_window([0.5, 0.0], cov, dcov, relu=True, n_draws=20000, xdcov=xd)
    >>> [round(float(w.zero_births), 3) for w in (a, b)]
    [0.316, 0.331]
    >>> [round(float(w.births), 2) for w in (a, b)]
    [0.7, 0.7]
    """
    m = check_array("mean", mean)
    c = check_array("cov", cov)
    dc = check_array("dcov", dcov)
    if m.ndim < 1 or c.shape != m.shape + m.shape[-1:] or dc.shape != c.shape:
        raise ValueError(
            f"need mean (..., K), cov and dcov (..., K, K), got {m.shape}, {c.shape}, {dc.shape}"
        )
    if xdcov is not None:
        xd = check_array("xdcov", xdcov)
        if xd.shape != c.shape:
            raise ValueError(
                f"xdcov must have the shape of cov {c.shape}, got {xd.shape}"
            )
    L = float(check_array("length", length, positive=True))
    s_in = np.broadcast_to(check_array("smp_in", smp_in, nonnegative=True), m.shape)
    n_draws = check_int("n_draws", n_draws, 10)
    k = m.shape[-1]
    lead = m.shape[:-1]
    if relu:  # the constant input 0: zero mean, zero variance, zero slope
        m = np.concatenate([m, np.zeros(lead + (1,))], axis=-1)
        c = np.pad(c, [(0, 0)] * len(lead) + [(0, 1), (0, 1)])
        dc = np.pad(dc, [(0, 0)] * len(lead) + [(0, 1), (0, 1)])
        if xdcov is not None:
            xd = np.pad(xd, [(0, 0)] * len(lead) + [(0, 1), (0, 1)])
    kk = m.shape[-1]
    if xdcov is not None:
        c_pinv = np.linalg.pinv(c, hermitian=True)
    rng = np.random.default_rng(seed)
    eye = np.eye(kk)
    zero = np.zeros(lead)
    switch = np.zeros(lead)
    for i in range(kk):
        for j in range(i + 1, kk):
            cvec = eye[i] - eye[j]
            cc = c @ cvec  # (..., kk)
            var_d = cc @ cvec
            var_dd = (dc @ cvec) @ cvec
            m_d = m @ cvec
            safe = np.where(var_d > 0, var_d, 1.0)
            density = np.where(
                var_d > 0, np.exp(-0.5 * m_d**2 / safe) / np.sqrt(2 * np.pi * safe), 0.0
            )
            cm = m - cc * (m_d / safe)[..., None]
            ccov = c - cc[..., :, None] * cc[..., None, :] / safe[..., None, None]
            vals, vecs = np.linalg.eigh(ccov)
            root = vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]
            z = rng.standard_normal(lead + (n_draws, kk))
            x = cm[..., None, :] + np.matmul(z, np.swapaxes(root, -1, -2))
            rest = [q for q in range(kk) if q not in (i, j)]
            # common level (x_i = x_j on the conditional law, up to rounding): use their average
            level = 0.5 * (x[..., i] + x[..., j])
            ok = (
                (x[..., rest] < level[..., None]).all(axis=-1)
                if rest
                else np.ones(level.shape, bool)
            )
            if xdcov is None:  # d' independent of x: E[d'^2 | x] = c^T D c
                rate = (
                    L * np.clip(var_dd, 0, None) * density * ok.mean(axis=-1)
                )  # Rice weighted by |d'|: E d'^2
            else:  # E[d'^2 | x] = (b^T (x - m))^2 + c^T D c - b^T C b, b = C^+ X c
                cross = xd @ cvec  # Cov(x, d')
                slope = np.einsum("...kl,...l->...k", c_pinv, cross)
                residual = np.clip(
                    var_dd - np.einsum("...k,...k->...", slope, cross), 0.0, None
                )
                mean_dd = np.einsum("...nk,...k->...n", x - m[..., None, :], slope)
                weight = (mean_dd**2 + residual[..., None]) * ok
                rate = L * density * weight.mean(axis=-1)
            if relu and j == kk - 1:
                zero = zero + rate
            else:
                switch = switch + rate
    # P(argmax = i) on the unconditional law
    vals, vecs = np.linalg.eigh(c)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]
    x = m[..., None, :] + np.matmul(
        rng.standard_normal(lead + (n_draws, kk)), np.swapaxes(root, -1, -2)
    )
    arg = np.argmax(x, axis=-1)
    p_arg = np.stack([(arg == i).mean(axis=-1) for i in range(k)], axis=-1)
    passed = (s_in * p_arg).sum(axis=-1)
    return MaxpoolWindow(
        to_output(zero + switch),
        to_output(zero),
        to_output(switch),
        to_output(passed),
        p_arg,
    )


def relu_maxpool_window(mean, std, dstd, length=1.0, smp_in=0.0, *, n_grid: int = 4001):
    """Expected SMP of ``max(0, x_1..x_K)`` for *independent* Gaussian inputs with their own statistics.

    Input i has mean ``mu_i``, std ``sigma_i``, derivative std ``sigma_i'`` and carries ``smp_in_i``
    (the last axis of every argument is the window, K = its size; leading axes broadcast, e.g. one row
    per window).  With ``p_i, F_i`` the pdf and cdf of x_i, Rice's formula gives

    * zero crossings: ``L sum_i sigma_i'^2 p_i(0) prod_{m != i} F_m(0)``;
    * switches above 0: ``L sum_{i<j} (sigma_i'^2 + sigma_j'^2) integral_0^inf p_i(v) p_j(v) prod_{m != i,j} F_m(v) dv``;
    * pass-through: ``sum_i smp_in_i integral_0^inf p_i(v) prod_{m != i} F_m(v) dv`` (= P(x_i is the
      positive argmax); kinks at levels distributed like x_i).

    With equal statistics this is :func:`relu_maxpool` (rho = 0).  Unequal means matter: the input with
    the highest mean holds the argmax for longer and the others switch in less often.  The v-integrals
    use the trapezoid rule on ``n_grid`` points over ``[0, max_i(mu_i + 9 sigma_i)]`` (checked
    against ``scipy.integrate.quad`` in the tests).  Assumptions: independent inputs, x and x'
    independent at equal times, kinks well separated.

    Returns
    -------
    (zero_crossing_births, switch_births, passed), each of the broadcast leading shape.
    """
    mu = check_array("mean", mean)
    sigma = check_array("std", std, positive=True)
    dsigma = check_array("dstd", dstd, nonnegative=True)
    L = check_array("length", length, positive=True)
    s_in = check_array("smp_in", smp_in, nonnegative=True)
    mu, sigma, dsigma, s_in = np.broadcast_arrays(mu, sigma, dsigma, s_in)
    if mu.ndim < 1:
        raise ValueError("mean, std, dstd must have a last axis (the window's inputs)")
    k = mu.shape[-1]
    lead = mu.shape[:-1]
    mu, sigma, dsigma, s_in = (a.reshape(-1, k) for a in (mu, sigma, dsigma, s_in))
    hi = np.maximum((mu + 9 * sigma).max(axis=1), 1e-12 * sigma.max(axis=1))
    v = hi[:, None] * np.linspace(0.0, 1.0, int(n_grid))[None, :]  # (W, G)
    z = (v[:, None, :] - mu[:, :, None]) / sigma[:, :, None]  # (W, K, G)
    p = phi(z) / sigma[:, :, None]
    log_f = special.log_ndtr(z)
    total = log_f.sum(axis=1)
    a0 = -mu / sigma
    p0 = phi(a0) / sigma
    log_f0 = special.log_ndtr(a0)
    zero = np.zeros(mu.shape[0])
    switch = np.zeros(mu.shape[0])
    passed = np.zeros(mu.shape[0])
    for i in range(k):
        zero += dsigma[:, i] ** 2 * p0[:, i] * np.exp(log_f0.sum(axis=1) - log_f0[:, i])
        passed += s_in[:, i] * integrate.trapezoid(
            p[:, i] * np.exp(total - log_f[:, i]), v, axis=-1
        )
        for j in range(i + 1, k):
            dens = p[:, i] * p[:, j] * np.exp(total - log_f[:, i] - log_f[:, j])
            switch += (dsigma[:, i] ** 2 + dsigma[:, j] ** 2) * integrate.trapezoid(
                dens, v, axis=-1
            )
    out = (L * zero, L * switch, passed)
    return tuple(to_output(np.asarray(o).reshape(lead)) for o in out)
