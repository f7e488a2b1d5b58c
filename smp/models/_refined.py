"""Refined block models for trained networks: max pooling and linear maps fed by measured inputs.

Chapter 7's landmark CNN showed two kinds of miss that the Gaussian block models cannot close.
The models here replace the Gaussian assumption by measured one-time statistics of the block's
input, as :func:`smp.models.kernel_births` does for a ReLU.

Max pooling, births.  The window's output ``max(0, x_1..x_K)`` switches from input ``i`` to
``j`` where ``d = x_i - x_j`` crosses 0 while every other input (and 0, for the ReLU before the
pool) lies below the common level; the slope jumps by ``|d'|``.  By the Kac-Rice formula, for
any smooth random window,

    E sum_switches |d'| = int dt  E[ d'^2 1{others below} delta(d) ],                      (KR)

summed over the pairs ``(i, j)``.  :func:`kernel_switch_births` estimates the integrand from an
ensemble of paths at every t with a Gaussian kernel in ``d`` (no Gaussian law of the window
assumed); pairs with the constant input 0 are the zero crossings of the window's maximum.

Max pooling on lines between inputs, first layer.  If the window's inputs are affine in t (the
first convolution on a straight line ``x(t) = (1-t) a + t b``), the output is convex and
piecewise linear, so its SMP is the increase of its slope, ``h'(1) - h'(0)``.  Averaged over
random ordered pairs of distinct inputs this needs only single inputs (:func:`pair_maxpool`).

Linear maps fed by shared events.  An event with input jump vector ``J`` gives an output unit
with weight row ``w`` the jump ``w . J``.  :func:`aligned_events` treats ``w . J`` over events as
a scale mixture of Gaussians with the measured second moments of the events' jump vectors: it
sees how the weights line up with the events (``w^T M w``), not only their sizes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import check_array
from ._common import SQRT_2_OVER_PI

__all__ = [
    "KernelSwitchBirths",
    "aligned_events",
    "kernel_switch_births",
    "pair_maxpool",
]

_SQRT_2PI = np.sqrt(2 * np.pi)


class KernelSwitchBirths(NamedTuple):
    """Result of :func:`kernel_switch_births` (arrays per window, summed over t with the weights).

    ``switch_births``: births at argmax switches between two inputs; ``zero_births``: births
    where the maximum crosses the constant 0 (``relu=True``, else 0); ``switch_density`` and
    ``zero_density``: the same integrals without the ``d'^2`` weight, i.e. ``int dt
    p_d(0) P(others below | d = 0)`` summed over the pairs (units 1 / x times t);
    ``density_births``: switch and zero births with the measured density but the
    *unconditional* mean square slope ``E d'^2`` at each t in place of the conditional one
    (what a model with ``d'`` independent of the window's values, as chapter 5's, uses), so
    ``(switch_births + zero_births) / density_births`` is the conditional slope's factor.
    """

    switch_births: np.ndarray
    zero_births: np.ndarray
    switch_density: np.ndarray
    zero_density: np.ndarray
    density_births: np.ndarray


def _bandwidth(d: np.ndarray, factor: float) -> np.ndarray:
    # a quarter of Silverman's robust rule by default, as smp.models.kernel_births
    p = d.shape[0]
    sigma = d.std(0, ddof=1)
    q75, q25 = np.percentile(d, [75, 25], axis=0)
    spread = np.minimum(sigma, (q75 - q25) / 1.34)
    spread = np.where(spread > 0, spread, sigma)
    return factor * 0.9 * spread * p ** (-0.2)


def kernel_switch_births(
    x, dx, weights, *, relu: bool = True, bandwidth_factor: float = 0.25
) -> KernelSwitchBirths:
    """Max-pooling births per window by the Kac-Rice formula with kernel estimates.

    ``x, dx``: ``(P, N, W, K)`` values and t-derivatives of the ``K`` inputs of ``W`` windows
    over ``P`` paths at ``N`` times; ``weights`` (N,) quadrature weights in t.  For every pair
    ``(i, j)`` (with ``relu=True`` also every input with the constant 0), ``d = x_i - x_j`` and
    the level ``v = (x_i + x_j)/2``; at every ``(t, window, pair)`` a Gaussian kernel of
    bandwidth ``h = bandwidth_factor * 0.9 min(sigma_d, IQR_d/1.34) P**(-1/5)`` over the paths
    gives

        rate_t = mean_p d'_p^2 K_h(d_p) 1{x_q,p < v_p for every other q}

    and the births are ``sum_t w_t rate_t`` (module docstring, (KR)).  Exact in expectation up to
    the kernel's bias ``O(h^2)`` for any law of the window; it uses only the one-time joint law
    of ``(x, x')`` over the ensemble.  A pair whose ``d`` does not vary over the paths at some t
    (``h = 0``) contributes 0 there.  Ties of the maximum (equal inputs on every path) have no
    crossing and no slope jump.

    Returns
    -------
    KernelSwitchBirths with arrays of shape ``(W,)`` (units of x per unit t for the births).

    Example
    -------
    Two independent stationary Gaussian inputs of unit variance and unit derivative variance,
    no ReLU: chapter 5's rate ``K(K-1) I_K sigma'^2/sigma`` = 0.5642 per unit t.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(4000, 50, 1, 2))
    >>> dx = rng.normal(size=x.shape)
    >>> w = np.full(50, 1 / 50)
    >>> round(float(kernel_switch_births(x, dx, w, relu=False).switch_births[0]), 2)
    0.56
    """
    x = check_array("x", x)
    dx = check_array("dx", dx)
    if x.ndim != 4 or dx.shape != x.shape:
        raise ValueError(
            f"x and dx must be (P, N, W, K) arrays of the same shape, got {x.shape}"
            f" and {dx.shape}"
        )
    if x.shape[0] < 10:
        raise ValueError(
            f"x must hold at least 10 paths for a kernel estimate, got {x.shape[0]}"
        )
    w = check_array("weights", weights, nonnegative=True)
    if w.shape != (x.shape[1],):
        raise ValueError(
            f"weights must have shape ({x.shape[1]},), one per time, got {w.shape}"
        )
    if relu:  # the constant input 0 of the ReLU before the pool
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (1,))], axis=-1)
        dx = np.concatenate([dx, np.zeros(dx.shape[:-1] + (1,))], axis=-1)
    k = x.shape[-1]
    n_windows = x.shape[2]
    out = {
        key: np.zeros(n_windows)
        for key in ("switch", "zero", "sdens", "zdens", "uncond")
    }
    for i in range(k):
        for j in range(i + 1, k):
            d = x[..., i] - x[..., j]  # (P, N, W)
            dd = dx[..., i] - dx[..., j]
            level = 0.5 * (x[..., i] + x[..., j])
            rest = [q for q in range(k) if q not in (i, j)]
            below = (x[..., rest] < level[..., None]).all(-1) if rest else True
            h = _bandwidth(d, float(bandwidth_factor))  # (N, W)
            ok = h > 0
            hs = np.where(ok, h, 1.0)
            kernel = np.exp(-0.5 * (d / hs) ** 2) / (_SQRT_2PI * hs) * below
            density = np.where(ok, kernel.mean(0), 0.0)
            rate = np.where(ok, (dd**2 * kernel).mean(0), 0.0)
            zero_pair = relu and j == k - 1
            out["zero" if zero_pair else "switch"] += w @ rate
            out["zdens" if zero_pair else "sdens"] += w @ density
            out["uncond"] += w @ (density * (dd**2).mean(0))
    return KernelSwitchBirths(
        out["switch"], out["zero"], out["sdens"], out["zdens"], out["uncond"]
    )


def pair_maxpool(z) -> np.ndarray:
    """Expected SMP of ``max(0, z_1..z_K)`` per window on a line between two random inputs.

    ``z`` (n, W, K): the window's ``K`` inputs on each of ``n`` single inputs (images).  On the
    line ``x(t) = (1-t) a + t b``, ``t in [0, 1]``, each input is affine in t, so the window's
    output ``h`` is convex and piecewise linear and its SMP (every slope jump, switches and zero
    crossings alike) is ``h'(1) - h'(0) = M(a) + M(b) - z_{k(b)}(a) - z_{k(a)}(b)``, with ``M``
    the maximum (0 included) and ``k(.)`` its argmax.  Over ordered pairs of distinct inputs
    drawn uniformly,

        E SMP = n/(n-1) * 2 sum_k Cov(z_k, 1{k is the argmax})

    over the single inputs (``k`` includes the constant 0; the pairs ``a = b`` contribute 0).
    For ``K = 1`` this is :func:`smp.models.pair_births`.  Units: activation per unit t.

    Example
    -------
    >>> z = np.array([[[1.0, -1.0]], [[-1.0, 2.0]]])  # two inputs, one window of two
    >>> float(pair_maxpool(z)[0])  # h = max(0, 1 - 2t, -1 + 3t): slope -2 -> 3
    5.0
    """
    z = check_array("z", z)
    if z.ndim != 3 or z.shape[0] < 2:
        raise ValueError(
            f"z must be an (n, W, K) array with n >= 2 inputs, got shape {z.shape}"
        )
    n = z.shape[0]
    full = np.concatenate([z, np.zeros(z.shape[:-1] + (1,))], axis=-1)
    top = full.argmax(-1)  # ties: the first input, as torch's max pooling
    is_top = np.arange(full.shape[-1]) == top[..., None]  # (n, W, K+1)
    cov = (full * is_top).mean(0) - full.mean(0) * is_top.mean(0)
    return n / (n - 1) * 2 * cov.sum(-1)


def aligned_events(weight, m2, l1, l2) -> np.ndarray:
    """Output SMP of a linear map fed by events, from the events' measured second moments.

    An event with input jump vector ``J`` gives an output unit with weight row ``w`` the jump
    ``w . J``.  Model: over events, ``w . J`` is a scale mixture of centred Gaussians whose
    standard deviation is proportional to the event's size ``|J|``, with the proportionality
    taken from the measured second moments ``M = sum_e J_e J_e^T`` (``m2``), so that the model
    reproduces ``sum_e (w . J_e)^2 = w^T M w``:

        SMP_w = sqrt(2/pi) * l1 * sqrt(w^T M w / l2),   l1 = sum_e |J_e|, l2 = sum_e |J_e|^2.

    ``M`` sees how the weights line up with the events (random signs within an event would
    keep only its diagonal); the model assumes the projections ``w . J_e / |J_e|`` Gaussian
    across events (kurtosis 3 given the size).

    Parameters
    ----------
    weight : (U_out, D) weight rows (a convolution: its kernels flattened, D = C_in k k).
    m2 : (..., D, D) ``sum_e J_e J_e^T`` over the events (per output position for a conv).
    l1, l2 : (...) ``sum_e |J_e|`` and ``sum_e |J_e|^2`` over the same events.

    Returns
    -------
    (..., U_out) expected output SMP per unit (units of the jumps).

    Example
    -------
    One event direction aligned with the weights, sizes 1 and 3:

    >>> J = np.array([[1.0, 1.0], [3.0, 3.0]]) / np.sqrt(2)
    >>> m2, l1, l2 = J.T @ J, 4.0, 10.0
    >>> w = np.array([[1.0, 1.0], [1.0, -1.0]])
    >>> np.round(aligned_events(w, m2, l1, l2), 3).tolist()  # exact: 5.657 and 0
    [4.514, 0.0]
    """
    w = check_array("weight", weight)
    if w.ndim != 2:
        raise ValueError(f"weight must be a (U_out, D) matrix, got shape {w.shape}")
    m = check_array("m2", m2)
    if m.ndim < 2 or m.shape[-2:] != (w.shape[1], w.shape[1]):
        raise ValueError(
            f"m2 must have shape (..., {w.shape[1]}, {w.shape[1]}), got {m.shape}"
        )
    s1 = check_array("l1", l1, nonnegative=True)
    s2 = check_array("l2", l2, nonnegative=True)
    quad = np.clip(np.einsum("ui,...ij,uj->...u", w, m, w), 0.0, None)
    safe = np.where(s2 > 0, s2, 1.0)[..., None]
    return np.where(
        s2[..., None] > 0, SQRT_2_OVER_PI * s1[..., None] * np.sqrt(quad / safe), 0.0
    )
