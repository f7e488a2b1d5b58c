"""Conditional block models: each block's expected output SMP from *measured* statistics of its input.

The block models of chapters 3-4 take the statistics of a block's input as given.  For a trained
network nothing about those statistics is known in advance, so here they are measured over an
ensemble of paths (``P`` paths sampled at the same ``N`` values of t, e.g. straight lines between
random pairs of images, or random great circles) and fed in, one block at a time.  Arrays of
statistics have shape ``(N, U)``: time along the path by unit.  ``weights`` are quadrature weights
in t (trapezoid: sum = path length L), so every result is in activation units per unit t.

ReLU, births.  A ReLU unit with pre-activation ``z(t)`` kinks at each zero crossing ``t_c`` by
``|z'(t_c)|``.  By the Kac-Rice formula, for any smooth random ``z``,

    E sum_c |z'(t_c)| = int dt  p_t(0) E[z'(t)**2 | z(t) = 0],                       (KR)

with ``p_t`` the density of ``z(t)`` over the ensemble.  Three ways to fill in the ingredients:

* :func:`gaussian_births` -- ``(z(t), z'(t))`` jointly Gaussian with the measured means, stds and
  covariance: ``p_t(0) = phi(mu/sigma)/sigma`` and
  ``E[z'^2 | z=0] = (mu' - c mu / sigma^2)^2 + sigma'^2 - c^2/sigma^2``.  For a stationary
  zero-covariance input it is chapter 4's ``L phi(mu/sigma) sigma'^2/sigma``.
* :func:`kernel_births` -- both ingredients estimated from the ensemble's samples at each t with a
  Gaussian kernel: ``p_t(0) ~ mean_p K_h(z_p)``, ``p_t(0) E[z'^2|z=0] ~ mean_p z'_p^2 K_h(z_p)``.
  (KR) makes it exact in expectation for any distribution; it uses only the one-time joint law of
  ``(z, z')``, never the paths' continuity, and its error is the kernel's bias and the sampling
  noise.  It tells whether the miss of the Gaussian model is in ``p_t(0)`` or in the conditional
  slope (:func:`kernel_births` returns both).
* :func:`pair_births` -- first layer on straight lines between two independent random inputs
  ``a, b``: ``z(t) = (1-t) z_a + t z_b`` crosses zero iff the signs differ, by ``|z_b - z_a|``,
  so the expected births need only the distribution of ``z`` over single inputs.

ReLU, pass-through.  An input jump ``Delta z`` at time t passes iff the unit is active then.
:func:`gaussian_pass_through` takes ``P(active) = Phi(mu/sigma)`` from the Gaussian;
:func:`independent_pass_through` the measured fraction of active paths at t; both assume the sign
of ``z`` independent of the jump's size across the ensemble at fixed t.

Linear layer.  An event with input jump vector ``J`` gives output jumps ``W J``.  With the layer's
actual weights, :func:`linear_independent` assumes no two inputs jump together
(``sum_ij |W_ji| SMP_in_i``, chapter 3 with measured ``|w|`` in place of ``E|w|``), and
:func:`linear_shared` takes the measured events' jump vectors (their summed 2-norms) and chapter
3's shared-kink model with each output's actual root-mean-square weight.

Mean field.  :func:`mean_field_dense` is chapter 6's dense-stack recursion fed with a checkpoint's
per-layer weight and bias standard deviations instead of He initialisation's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .._validation import check_array
from ._common import SQRT_2_OVER_PI

__all__ = [
    "KernelBirths",
    "gaussian_births",
    "gaussian_conditional_slope2",
    "gaussian_density_at_zero",
    "gaussian_pass_through",
    "independent_pass_through",
    "kernel_births",
    "linear_independent",
    "linear_shared",
    "mean_field_dense",
    "pair_births",
    "trapezoid_weights",
]

_SQRT_2PI = np.sqrt(2 * np.pi)


def trapezoid_weights(n_samples: int, length: float) -> np.ndarray:
    """Trapezoid quadrature weights for ``n_samples`` equally spaced points spanning ``length``.

    Example
    -------
    >>> trapezoid_weights(5, 1.0).tolist()
    [0.125, 0.25, 0.25, 0.25, 0.125]
    """
    if (
        not isinstance(n_samples, (int, np.integer))
        or isinstance(n_samples, bool)
        or n_samples < 2
    ):
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    length = float(check_array("length", length, positive=True))
    w = np.full(n_samples, length / (n_samples - 1))
    w[[0, -1]] /= 2
    return w


def _stats(name: str, value, shape=None) -> np.ndarray:
    arr = check_array(name, value)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a (N, U) array of statistics (time by unit), got shape {arr.shape}"
        )
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} like mean, got {arr.shape}")
    return arr


def _weights(weights, n: int) -> np.ndarray:
    w = check_array("weights", weights, nonnegative=True)
    if w.shape != (n,):
        raise ValueError(
            f"weights must have shape ({n},), one quadrature weight per time, got {w.shape}"
        )
    return w


def gaussian_density_at_zero(mean, std) -> np.ndarray:
    """``phi(mu/sigma)/sigma`` elementwise (0 where ``sigma = 0``): the Gaussian density of z at 0.

    Example
    -------
    >>> round(float(gaussian_density_at_zero([[0.0]], [[1.0]])[0, 0]), 4)
    0.3989
    """
    mu = _stats("mean", mean)
    sigma = _stats("std", std, mu.shape)
    s = np.where(sigma > 0, sigma, 1.0)
    return np.where(sigma > 0, np.exp(-0.5 * (mu / s) ** 2) / (_SQRT_2PI * s), 0.0)


def gaussian_conditional_slope2(mean, std, dmean, dstd, cov) -> np.ndarray:
    """``E[z'^2 | z = 0]`` for jointly Gaussian ``(z, z')``: ``(mu' - c mu/sigma^2)^2 + sigma'^2 - c^2/sigma^2``.

    Example
    -------
    >>> float(gaussian_conditional_slope2([[1.0]], [[1.0]], [[0.0]], [[1.0]], [[0.5]])[0, 0])
    1.0
    """
    mu = _stats("mean", mean)
    sigma = _stats("std", std, mu.shape)
    dmu, dsigma, c = (
        _stats(n, v, mu.shape)
        for n, v in (("dmean", dmean), ("dstd", dstd), ("cov", cov))
    )
    s = np.where(sigma > 0, sigma, 1.0)
    return (dmu - c * mu / s**2) ** 2 + np.maximum(dsigma**2 - c**2 / s**2, 0.0)


def gaussian_births(mean, std, dmean, dstd, cov, weights) -> np.ndarray:
    """Expected ReLU births per unit, ``(z, z')`` jointly Gaussian at every t (units per unit t).

    ``births_j = sum_t w_t phi(mu/sigma)/sigma [(mu' - c mu/sigma^2)^2 + sigma'^2 - c^2/sigma^2]``
    with ``mu, sigma`` (value), ``mu', sigma'`` (slope) and ``c = cov(z, z')`` over the ensemble,
    each an ``(N, U)`` array; ``weights`` (N,) quadrature weights in t.  A unit with ``sigma = 0``
    at some t contributes 0 there.

    Example
    -------
    >>> import numpy as np
    >>> one = np.ones((3, 1))
    >>> float(gaussian_births(0 * one, one, 0 * one, one, 0 * one, [0.5, 1, 0.5])[0])  # 2 phi(0)
    0.7978845608028654
    """
    density = gaussian_density_at_zero(mean, std)
    slope2 = gaussian_conditional_slope2(mean, std, dmean, dstd, cov)
    return _weights(weights, density.shape[0]) @ (density * slope2)


def gaussian_pass_through(mean, std, mean_abs_jump, weights=None) -> np.ndarray:
    """Expected passed-through input SMP per unit with ``P(active) = Phi(mu/sigma)`` (Gaussian).

    ``pass_j = sum_t Phi(mu_tj/sigma_tj) * mean_abs_jump_tj`` where ``mean_abs_jump`` (N, U) is
    the measured mean over paths of the unit's summed input jumps in the interval ending at t
    (already in units of slope, so no quadrature weight is applied; ``weights`` is accepted for a
    uniform signature and ignored).

    Example
    -------
    >>> import numpy as np
    >>> float(gaussian_pass_through(np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1)))[0])
    1.0
    """
    mu = _stats("mean", mean)
    sigma = _stats("std", std, mu.shape)
    jumps = _stats("mean_abs_jump", mean_abs_jump, mu.shape)
    p_active = np.where(
        sigma > 0, ndtr(mu / np.where(sigma > 0, sigma, 1.0)), (mu > 0).astype(float)
    )
    return (p_active * jumps).sum(0)


def independent_pass_through(p_active, mean_abs_jump) -> np.ndarray:
    """Passed-through input SMP per unit with the *measured* ``P(active)`` at every t.

    ``pass_j = sum_t p_active_tj * mean_abs_jump_tj``: exact if, across the ensemble at fixed t,
    the unit's sign is independent of the size of its input jump.

    Example
    -------
    >>> import numpy as np
    >>> float(independent_pass_through(np.full((2, 1), 0.5), np.ones((2, 1)))[0])
    1.0
    """
    p = _stats("p_active", p_active)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p_active must lie in [0, 1]")
    return (p * _stats("mean_abs_jump", mean_abs_jump, p.shape)).sum(0)


class KernelBirths:
    """Result of :func:`kernel_births` (arrays per unit, summed over t with the weights).

    ``births`` ``sum_t w_t mean_p z'^2 K_h(z)``; ``density`` ``sum_t w_t p_t(0)`` (the kernel
    estimate of the density at zero, integrated over t); ``gaussian_density`` the same integral of
    ``phi(mu/sigma)/sigma``; ``slope2`` the density-weighted conditional slope
    ``births / density``; ``density_t`` the kernel estimate of ``p_t(0)`` at every (t, unit).
    """

    __slots__ = ("births", "density", "density_t", "gaussian_density", "slope2")

    def __init__(self, births, density, gaussian_density, slope2, density_t):
        self.births, self.density, self.gaussian_density = (
            births,
            density,
            gaussian_density,
        )
        self.slope2, self.density_t = slope2, density_t


def kernel_births(z, dz, weights, *, bandwidth_factor: float = 0.25) -> KernelBirths:
    """ReLU births per unit by the Kac-Rice formula with kernel estimates of its ingredients.

    ``z, dz``: ``(P, N, U)`` samples of the pre-activation and its t-derivative over ``P`` paths.
    At every ``(t, unit)`` a Gaussian kernel of bandwidth
    ``h = bandwidth_factor * 0.9 min(sigma, IQR/1.34) P**(-1/5)`` (Silverman's rule, robust to
    heavy tails) estimates ``p_t(0) = mean_p K_h(z_p)`` and ``p_t(0) E[z'^2|z=0] =
    mean_p z'_p^2 K_h(z_p)``; the births are ``sum_t w_t`` of the latter.  The kernel smooths the
    density over ``h``: its bias is ``O(h^2 p'')``, and it is the only approximation.  The default
    ``bandwidth_factor`` 0.25 (a quarter of Silverman's bandwidth) is chosen because the estimate is
    summed over many times and units, which averages the kernel's variance away but not its bias:
    at Silverman's bandwidth and P = 100 the density of a Gaussian at its mode comes out 6 % low
    (``1/sqrt(1 + h^2/sigma^2)``), at a quarter of it 0.4 % low.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 200, 1))  # 200 times, independent draws at each
    >>> w = trapezoid_weights(200, 2.0)
    >>> b = kernel_births(z, np.ones_like(z), w).births[0]
    >>> round(float(b), 1)  # Gaussian, unit slope: L phi(0) = 0.80
    0.8
    """
    z = check_array("z", z)
    dz = check_array("dz", dz)
    if z.ndim != 3 or dz.shape != z.shape:
        raise ValueError(
            f"z and dz must be (P, N, U) arrays of the same shape, got {z.shape} and {dz.shape}"
        )
    p = z.shape[0]
    if p < 10:
        raise ValueError(
            f"z must hold at least 10 paths for a kernel estimate, got {p}"
        )
    w = _weights(weights, z.shape[1])
    sigma = z.std(0, ddof=1)
    q75, q25 = np.percentile(z, [75, 25], axis=0)
    spread = np.minimum(sigma, (q75 - q25) / 1.34)
    spread = np.where(spread > 0, spread, sigma)
    h = float(bandwidth_factor) * 0.9 * spread * p ** (-0.2)
    ok = h > 0
    hs = np.where(ok, h, 1.0)
    kernel = np.exp(-0.5 * (z / hs) ** 2) / (_SQRT_2PI * hs)
    density_t = np.where(ok, kernel.mean(0), 0.0)
    rate_t = np.where(ok, (dz**2 * kernel).mean(0), 0.0)
    mu = z.mean(0)
    s = np.where(sigma > 0, sigma, 1.0)
    gauss_t = np.where(sigma > 0, np.exp(-0.5 * (mu / s) ** 2) / (_SQRT_2PI * s), 0.0)
    births, density = w @ rate_t, w @ density_t
    slope2 = np.divide(births, density, out=np.zeros_like(births), where=density > 0)
    return KernelBirths(births, density, w @ gauss_t, slope2, density_t)


def pair_births(z) -> np.ndarray:
    """Expected first-layer ReLU births per unit on a line between two distinct random inputs.

    ``z`` (n, U): the unit's pre-activation on each of ``n`` inputs.  On the line ``x(t) = (1-t) a
    + t b``, ``t in [0, 1]``, ``z(t) = (1-t) z_a + t z_b``: one kink of size ``|z_b - z_a|`` iff
    ``z_a z_b < 0``.  For an ordered pair of distinct inputs drawn uniformly,

        E births = n/(n-1) * 2 [P(z<0) E(z 1{z>0}) - P(z>0) E(z 1{z<0})]

    (the ``i = j`` pairs contribute 0, hence ``n/(n-1)``).  Units: activation per unit t.

    Example
    -------
    >>> import numpy as np
    >>> float(pair_births(np.array([[-1.0], [1.0]]))[0])  # the only pairs cross, by 2
    2.0
    """
    z = check_array("z", z)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(
            f"z must be an (n, U) array with n >= 2 inputs, got shape {z.shape}"
        )
    n = z.shape[0]
    pos, neg = (z > 0).mean(0), (z < 0).mean(0)
    return (
        n
        / (n - 1)
        * 2
        * (neg * np.maximum(z, 0).mean(0) + pos * np.maximum(-z, 0).mean(0))
    )


def linear_independent(weight, smp_in) -> np.ndarray:
    """Output SMP of a linear layer whose inputs never jump together: ``|W| @ smp_in`` per output.

    ``weight`` (U_out, U_in) the layer's actual weights, ``smp_in`` (..., U_in) measured input SMP.

    Example
    -------
    >>> import numpy as np
    >>> linear_independent(np.array([[1.0, -2.0]]), np.array([1.0, 1.0])).tolist()
    [3.0]
    """
    w = check_array("weight", weight)
    if w.ndim != 2:
        raise ValueError(f"weight must be a (U_out, U_in) matrix, got shape {w.shape}")
    return check_array("smp_in", smp_in) @ np.abs(w).T


def linear_shared(weight, event_l2) -> np.ndarray:
    """Output SMP of a linear layer whose input kinks come as events shared by many inputs.

    Chapter 3's shared-kink model ``E|jump_j| = sw sqrt(2/pi) ||J||_2`` with, for every output j,
    ``sw`` the root mean square of the layer's actual weight row ``W_j``: summed over outputs and
    events, ``sqrt(2/pi) (sum_j ||W_j||_2 / sqrt(U_in)) * sum_events ||J||_2``.  ``event_l2`` is the
    measured sum over events of the input jump vectors' 2-norms (any leading shape).  It assumes
    the weights are unrelated to the jump vectors (random signs and sizes across the terms
    ``W_ji J_i``).

    Example
    -------
    >>> import numpy as np
    >>> round(float(linear_shared(np.array([[3.0, 4.0]]), 1.0)), 4)  # sqrt(2/pi) * 5 / sqrt(2)
    2.8209
    """
    w = check_array("weight", weight)
    if w.ndim != 2:
        raise ValueError(f"weight must be a (U_out, U_in) matrix, got shape {w.shape}")
    gain = np.sqrt((w**2).sum(1)).sum() / np.sqrt(w.shape[1])
    return SQRT_2_OVER_PI * gain * check_array("event_l2", event_l2, nonnegative=True)


def mean_field_dense(
    weight_std,
    bias_std,
    widths,
    *,
    in_features: int,
    input_m2: float,
    input_dm2: float,
    length: float,
    relu_after=None,
) -> pd.DataFrame:
    """Chapter 6's dense-stack recursion with per-layer weight and bias standard deviations.

    Layer ``l`` is ``Linear(fan_in, widths[l])`` with weights of standard deviation ``weight_std[l]``
    and biases ``bias_std[l]``, followed by a ReLU where ``relu_after[l]`` (default: all but the
    last).  Pre-activations are treated as zero-mean Gaussians (the random-weight assumption):
    ``q = sw^2 fan_in m2 + sb^2``, ``q' = sw^2 fan_in m2'``; a ReLU has ``P(active) = 1/2``, births
    ``n L phi(0) q'/sqrt(q)`` and passes half of its input SMP; a linear layer maps the summed
    2-norm ``R`` of the events to the 1-norm ``n sw sqrt(2/pi) R`` (module docstring of
    :mod:`smp.models.stack`).  ``input_m2, input_dm2``: mean square of an input coordinate and of
    its t-derivative along the paths; ``length`` the path length in t.

    Returns a DataFrame with one row per layer: ``layer`` (0-based index in the Sequential),
    ``kind``, ``units``, ``births`` and ``smp`` (summed over units, activation per unit t).

    Example
    -------
    >>> table = mean_field_dense([1.0], [0.0], [1], in_features=1, input_m2=1, input_dm2=1,
    ...                          length=1.0, relu_after=[True])
    >>> round(float(table["smp"].iloc[1]), 4)  # phi(0)
    0.3989
    """
    sw = check_array("weight_std", weight_std, nonnegative=True)
    sb = check_array("bias_std", bias_std, nonnegative=True)
    widths = [int(n) for n in widths]
    if not (sw.shape == sb.shape == (len(widths),)):
        raise ValueError(
            "weight_std, bias_std and widths must have one entry per linear layer"
        )
    relu_after = (
        [True] * (len(widths) - 1) + [False] if relu_after is None else list(relu_after)
    )
    m2, dm2 = float(input_m2), float(input_dm2)
    L = float(check_array("length", length, positive=True))
    fan_in, l1, l2, rows, index = int(in_features), 0.0, 0.0, [], 0
    for s, b, n, relu in zip(sw, sb, widths, relu_after):
        q, dq = s**2 * fan_in * m2 + b**2, s**2 * fan_in * dm2
        l1, l2 = n * s * SQRT_2_OVER_PI * l2, np.sqrt(n) * s * l2
        rows.append(
            {"layer": index, "kind": "linear", "units": n, "births": 0.0, "smp": l1}
        )
        index += 1
        if relu:
            births = (
                n * L * np.exp(-0.0) / _SQRT_2PI * dq / np.sqrt(q) if q > 0 else 0.0
            )
            l1, l2 = 0.5 * l1 + births, np.sqrt(0.5) * l2 + births
            m2, dm2 = q / 2, dq / 2
            rows.append(
                {
                    "layer": index,
                    "kind": "relu",
                    "units": n,
                    "births": births,
                    "smp": l1,
                }
            )
            index += 1
        else:
            m2, dm2 = q, dq
        fan_in = n
    return pd.DataFrame(rows)
