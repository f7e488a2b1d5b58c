"""Expected SMP layer by layer through a Conv-ReLU-MaxPool stack (chapter 6); the method is in
:mod:`smp.models._stack`'s docstring, the dense stack beside it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import integrate, special

from .._validation import check_array, check_int, pool_window_indices
from ._common import SQRT_2_OVER_PI, phi
from ._maxpool import maxpool_window
from ._relu import relu

__all__ = [
    "conv_stack",
]


def _conv_second_moments(
    moments: np.ndarray, shape: tuple[int, int], k: int
) -> np.ndarray:
    """``sum_k S_k M S_k^T``: second moments of ``sum_k w_k a(p + k)`` per unit weight variance.

    ``moments`` is the (P_in, P_in) matrix ``E[a(r) a(r')]`` of one input channel over the positions
    of an (H, W) map; the output has the same positions (padding ``k // 2``, stride 1).  Only pairs
    that use the same kernel tap ``k`` survive the expectation over the weights, and taps that fall
    in the zero padding contribute nothing.
    """
    h, w = shape
    n = h * w
    padded = np.zeros((n + 1, n + 1))
    padded[:n, :n] = moments  # index n is the zero padding
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.zeros((n, n))
    r = k // 2
    for a in range(-r, k - r):
        for b in range(-r, k - r):
            ii, jj = rows + a, cols + b
            inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
            src = np.where(inside, ii * w + jj, n).ravel()
            out += padded[np.ix_(src, src)]
    return out


def _box_sum(maps: np.ndarray, k: int) -> np.ndarray:
    """``sum over the k x k neighbourhood (zero padding)`` of every (.., H, W) map."""
    r = k // 2
    h, w = maps.shape[-2:]
    padded = np.zeros(maps.shape[:-2] + (h + k - 1, w + k - 1))
    padded[..., r : r + h, r : r + w] = maps
    out = np.zeros_like(maps)
    for a in range(k):
        for b in range(k):
            out += padded[..., a : a + h, b : b + w]
    return out


def _gaussian_draws(
    cov: np.ndarray, n_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_draws, P) draws of N(0, cov) for a positive semi-definite ``cov`` (symmetric square root)."""
    try:
        root = np.linalg.cholesky(cov)
    except (
        np.linalg.LinAlgError
    ):  # singular (e.g. a constant field): the symmetric square root
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return rng.standard_normal((n_draws, cov.shape[0])) @ root.T


def _chi_mean(n: np.ndarray) -> np.ndarray:
    """``E sqrt(X)`` for ``X ~ chi-square(n)``: ``sqrt(2) Gamma((n+1)/2) / Gamma(n/2)``."""
    n = np.asarray(n, dtype=np.float64)
    return np.sqrt(2.0) * np.exp(special.gammaln((n + 1) / 2) - special.gammaln(n / 2))


def _first_relu_births(shape, c_in, k, sw, sb, m2, dm2, length) -> np.ndarray:
    """Expected ReLU births per position of one channel of the first block (exact, white input).

    Given the kernel, the pre-activation at position p is a stationary Gaussian process over the
    path ensemble with variance ``|w_p|^2 m2`` (``w_p`` the taps that fall inside the map), derivative
    variance ``|w_p|^2 dm2`` and mean ``b``.  Rice's formula given (w, b), averaged over
    ``b ~ N(0, sb^2)`` (``E_b phi(b / s) = phi(0) s / sqrt(s^2 + sb^2)``) and over
    ``|w_p|^2 ~ sw^2 chi-square(n_p)``, ``n_p = C_in taps(p)``:

        B(p) = L phi(0) dm2 E[ |w_p|^2 / sqrt(|w_p|^2 m2 + sb^2) ].

    The mean-field value ``L phi(0) q' / sqrt(q)`` (``q = E|w_p|^2 m2``) exceeds it by Jensen's
    inequality: ``sqrt(n_p) / E chi_{n_p}`` = 1.028 at ``n_p = 9``.
    """
    h, w = shape
    r = k // 2
    inside = lambda size: np.array(
        [sum(0 <= i + a < size for a in range(-r, k - r)) for i in range(size)]
    )
    taps = np.outer(inside(h), inside(w))
    births = np.zeros(shape)
    for n_taps in np.unique(taps):
        n = c_in * int(n_taps)
        if sb == 0:
            value = sw * _chi_mean(n) * dm2 / np.sqrt(m2)
        else:
            density = lambda x: np.exp(
                (n / 2 - 1) * np.log(x)
                - x / 2
                - n / 2 * np.log(2)
                - special.gammaln(n / 2)
            )
            value, _ = integrate.quad(
                lambda x: density(x) * sw**2 * x / np.sqrt(sw**2 * x * m2 + sb**2),
                0,
                np.inf,
                limit=200,
            )
            value *= dm2
        births[taps == n_taps] = length * phi(0.0) * value
    return births


def _first_block_window_cov(
    kernels: np.ndarray, shape, pool: int, m2: float
) -> np.ndarray:
    """(n_kernels, windows, K, K) covariance of one channel's pre-activations in every pooling
    window of the first block, given its kernel (white input of mean square ``m2``, zero padding).

    ``Sigma_w(p, p + d) = m2 sum_c sum_t [p + t inside] w_c(t) w_c(t - d)``: the input pixels two
    positions share, weighted by the taps that see them.
    """
    n, c, k, _ = kernels.shape
    h, w = shape
    r = k // 2
    win = pool_window_indices(shape, pool)
    rows, cols = np.divmod(win, w)
    di = rows[:, None, :] - rows[:, :, None]  # (W, K, K) offset d = p' - p
    dj = cols[:, None, :] - cols[:, :, None]
    span = pool - 1
    padded = np.zeros((n, c, k + 2 * span, k + 2 * span))
    padded[:, :, span : span + k, span : span + k] = kernels
    # lagged[..., a, b, t] = sum_c w_c(t) w_c(t - d) for d = (a - span, b - span), t over the taps
    lagged = np.zeros((n, 2 * span + 1, 2 * span + 1, k, k))
    for a in range(2 * span + 1):
        for b in range(2 * span + 1):
            shifted = padded[
                :, :, 2 * span - a : 2 * span - a + k, 2 * span - b : 2 * span - b + k
            ]
            lagged[:, a, b] = (kernels * shifted).sum(axis=1)
    ii = (
        np.arange(h)[:, None] + np.arange(-r, k - r)[None, :]
    )  # (H, k) input rows seen by position rows
    jj = np.arange(w)[:, None] + np.arange(-r, k - r)[None, :]
    inside = ((ii >= 0) & (ii < h))[:, None, :, None] & ((jj >= 0) & (jj < w))[
        None, :, None, :
    ]  # (H, W, k, k)
    p_rows = np.broadcast_to(rows[:, :, None], di.shape)
    p_cols = np.broadcast_to(cols[:, :, None], dj.shape)
    mask = inside[p_rows, p_cols]  # (W, K, K, k, k)
    lag = lagged[:, di + span, dj + span]  # (n, W, K, K, k, k)
    return m2 * np.einsum("nwijab,wijab->nwij", lag, mask.astype(float))


def _first_block_fields(kernels, biases, shape, m2, dm2, rng, chunk: int = 2000):
    """Draws of one channel's first-block pre-activations and their t-derivatives, (n, H*W) each:
    kernel i applied to a white input of mean square ``m2`` (and an independent white input of
    mean square ``dm2`` for the derivative, as on a great circle), plus bias i."""
    import torch
    import torch.nn.functional as F

    n, c, k, _ = kernels.shape
    h, w = shape
    out, dout = [], []
    for start in range(0, n, chunk):
        ker = torch.from_numpy(kernels[start : start + chunk]).reshape(-1, 1, c * k * k)
        fields = []
        for scale in (np.sqrt(m2), np.sqrt(dm2)):
            x = torch.from_numpy(scale * rng.standard_normal((ker.shape[0], c, h, w)))
            patches = F.unfold(x, k, padding=k // 2)  # (n, c k k, H W)
            fields.append((ker @ patches)[:, 0].numpy())
        out.append(fields[0] + biases[start : start + chunk, None])
        dout.append(fields[1])
    return np.concatenate(out), np.concatenate(dout)


def _first_block_pool(
    shape, c_in, k, pool, sw, sb, m2, dm2, length, n_draws, pool_draws, correlated, rng
):
    """First block's pool: births per window (one channel) and draws of its pre-activations.

    Exact law at block 1: given the kernel w and bias b of a channel, the field over positions is
    Gaussian (mean b, covariance ``Sigma_w`` of :func:`_first_block_window_cov`); Kac-Rice per
    window (:func:`maxpool_window`) given (w, b), averaged over kernel draws.  Without bias the
    births are homogeneous of degree 1 in w, so unit-norm kernels are drawn and the result scaled
    by ``E|w| = sw E chi_n`` (exact), which removes the norm's scatter from the Monte Carlo.
    ``correlated=False`` replaces each window's covariance by its diagonal (the i.i.d. model).
    """
    n_kernels = max(pool_draws // 20, 100)
    fan_in = c_in * k * k
    kernels = rng.standard_normal((n_kernels, c_in, k, k))
    biases = sb * rng.standard_normal(n_kernels)
    if sb == 0:
        kernels /= np.sqrt((kernels**2).sum(axis=(1, 2, 3), keepdims=True))
        scale = sw * _chi_mean(fan_in)
    else:
        kernels *= sw
        scale = 1.0
    cov = _first_block_window_cov(kernels, shape, pool, m2)  # (kernels, windows, K, K)
    if not correlated:
        cov = cov * np.eye(pool * pool)
    mean = np.broadcast_to(biases[:, None, None], cov.shape[:-1])
    births = np.zeros(cov.shape[1])
    seed = int(rng.integers(2**31))
    for start in range(
        0, n_kernels, 20
    ):  # chunks keep maxpool_window's draws in memory
        part = slice(start, start + 20)
        births += maxpool_window(
            mean[part],
            cov[part],
            (dm2 / m2) * cov[part],
            length,
            relu=True,
            n_draws=max(pool_draws // 40, 50),
            seed=seed + start,
        ).births.sum(axis=0)
    births *= scale / n_kernels
    # field draws for the moments and the argmax probabilities: one kernel (Gaussian, with its
    # norm) and one white input per draw
    draw_kernels = sw * rng.standard_normal((n_draws, c_in, k, k))
    draw_biases = sb * rng.standard_normal(n_draws)
    x, dx = _first_block_fields(draw_kernels, draw_biases, shape, m2, dm2, rng)
    if (
        not correlated
    ):  # independent positions with the same per-position law given the kernel
        x = _decorrelate(x, rng)
        dx = _decorrelate(dx, rng)
    return births, x, dx


def _decorrelate(fields: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each position's values shuffled over the draws: the same marginal law per position,
    independent across positions (the i.i.d.-window baseline)."""
    out = np.empty_like(fields)
    for j in range(fields.shape[1]):
        out[:, j] = fields[rng.permutation(fields.shape[0]), j]
    return out


def _convolve_samples(
    jumps: np.ndarray, c_out: int, k: int, sw: float, rng
) -> np.ndarray:
    """Every jump-vector sample through a convolution with its own N(0, sw^2) weights (padding k//2)."""
    import torch
    import torch.nn.functional as F

    n_src, n_samples, c_in = jumps.shape[:3]
    out = np.zeros((n_src, n_samples, c_out) + jumps.shape[3:])
    if n_src == 0:
        return out
    for m in range(n_samples):
        weight = torch.from_numpy(sw * rng.standard_normal((c_out, c_in, k, k)))
        out[:, m] = F.conv2d(
            torch.from_numpy(np.ascontiguousarray(jumps[:, m])), weight, padding=k // 2
        ).numpy()
    return out


def conv_stack(
    input_shape: Sequence[int],
    channels: Sequence[int],
    *,
    kernel_size: int = 3,
    pool_size: int = 2,
    weight_gain: float = 1.0,
    bias_std: float = 0.0,
    input_std: float = 1.0,
    input_dstd: float = 1.0,
    length: float = 2 * np.pi,
    correlated_windows: bool = True,
    n_draws: int = 20000,
    n_jumps: int = 256,
    jensen: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Predicted statistics and total SMP of every layer of a Conv-ReLU-MaxPool stack along a path.

    The stack is :func:`smp.networks.conv_net` without a head: blocks ``Conv2d(kernel_size,
    padding=kernel_size // 2) -> ReLU -> MaxPool2d(pool_size)``, weights ``N(0, sw**2)`` with
    ``sw = weight_gain * sqrt(2 / (C_in k k))``, biases ``N(0, bias_std**2)``.  The input path is
    smooth, its pixels uncorrelated (as on :func:`smp.signals.great_circle` in image space) with
    second moment ``input_std**2`` and derivative second moment ``input_dstd**2``.

    *Statistics* (mean field, module docstring).  Channels are i.i.d. over the weights, so one
    channel's second moments over positions, ``Sigma(p, p') = E[x(p) x(p')]`` and ``Sigma'`` for
    the t-derivatives, describe a layer.  A convolution gives

        Sigma_{l+1}(p, p') = sw**2 C_in sum_taps M_l(p + k, p' + k) + sb**2

    (``M_l`` the second moments of the block input; the zero padding drops taps, so border units
    have smaller variance).  Pixels of one channel are correlated even with white input: a ReLU or
    pool output has a positive mean, and ``sum_k w_k E[a]`` is shared by all positions of a channel;
    this is the window correlation that max pooling sees.  The post-pool moments
    ``M = E[max(0, x_W(r)) max(0, x_W(r'))]`` (and those of the derivative, the argmax's ``x'``)
    have no closed form: they are integrated by Monte Carlo over ``n_draws`` draws of the Gaussian
    field ``N(0, Sigma)`` of one channel (numerical integration of the mean-field law; no network
    is run).

    *Block 1 is exact.*  Given a channel's kernel w and bias b, its pre-activations along the great
    circle ensemble are a Gaussian field (mean b, covariance ``m2 sum_taps w w`` over positions).
    The mean-field law is the average of these fields over w, not a Gaussian: the per-position
    variance ``|w_p|^2 m2`` scatters with the norm of the taps (9 at a 3 x 3 kernel of one input
    channel), and Rice's births ``prop. |w_p|`` average to ``E chi`` instead of ``sqrt(E chi^2)``
    (-2.8 % at fan-in 9).  The model therefore computes block 1 given the kernel and averages over
    kernels: ReLU births in closed form over the chi law of ``|w_p|``, pool births by Kac-Rice with
    each kernel's window covariance (Monte Carlo over kernel directions, scaled by the exact
    ``E|w|`` without bias), and the pooled moments from draws of (kernel, white input).

    *Births* at later blocks: ReLU zero crossings by Rice per position (:func:`smp.models.relu`); at
    the pool, zero crossings of the window maximum and argmax switches above 0, by Kac-Rice with the
    window's full covariance (:func:`smp.models.maxpool_window`; with ``correlated_windows=False``
    the window covariance is replaced by its diagonal, the i.i.d. model).

    *Propagation*: every pooled position R of block m is a source of events of total size
    ``B_m(R)``, one unit jump in one channel.  A convolution gives each output the jump ``w . J_RF``,
    Gaussian given J, so ``E||W J||_1 = sqrt(2/pi) sw C_out sum_p E||J_RF(p)||_2``.  The expectation
    over J is taken over ``n_jumps`` samples of each source's jump vector, propagated with fresh
    Gaussian weights per sample, the ReLU-and-pool keeping entry i of a window with probability
    ``pi_i = P(x_i is the argmax and > 0)`` (independent of the jump) and none otherwise.  A
    single-entry source is exact; after a ReLU and a pool ``||J_RF||_2`` is random, and
    ``E||J_RF||_2 < sqrt(E||J_RF||^2)`` (Jensen: a few % at the third convolution, more with fewer
    channels); ``jensen=False`` uses the root mean square instead, to show the effect.  The ReLU
    keeps each entry with probability ``P(active) = 1/2``: exactly, by the symmetry w -> -w of the
    ensemble.

    Remaining approximations: Gaussian fields after block 1 (the mean-field law), kernel-norm
    scatter after block 1 (a Jensen term of the order of 1 / fan-in, 54 to 144 in the book), masks
    independent of the jumps.

    Parameters
    ----------
    input_shape : (C, H, W) or (H, W) of one input image (C = channels[0]).
    channels : (C_0, C_1, ..., C_B), the channels of the input and of each block.
    kernel_size, pool_size : convolution kernel and pooling window sides.
    weight_gain, bias_std : as :func:`smp.networks.conv_net`.
    input_std, input_dstd : root mean square of an input pixel and of its t-derivative.
    length : path length L (units of t).
    correlated_windows : use the predicted window correlations (True) or i.i.d. windows (False).
    n_draws : Monte Carlo draws for the pooling integrals (their relative error ~ n_draws**-0.5;
        the model's scatter between seeds is ~0.4 % at 20000).
    n_jumps : jump-vector samples per event source (the Jensen term's Monte Carlo).
    jensen : average ``||J_RF||_2`` over the samples (True) or take its root mean square (False).
    seed : seed of those draws.

    Returns
    -------
    pandas.DataFrame, one row per layer (conv, relu, pool per block) with ``layer``, ``block``,
    ``kind``, ``units``, ``rms``, ``drms``, ``p_active`` (P(output > 0)), ``births``, ``smp``
    (expected total SMP over the layer's units), ``window_rho`` and ``window_drho`` (mean pairwise
    correlation of the pre-activations in a pooling window, of values and of derivatives).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        if shape[0] != channels[0]:
            raise ValueError(
                f"input_shape has {shape[0]} channels but channels[0] is {channels[0]}"
            )
        shape = shape[1:]
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (C, H, W) or (H, W) with positive sides, got {input_shape!r}"
        )
    chans = [check_int("channels", c) for c in channels]
    if len(chans) < 2:
        raise ValueError(
            f"channels must list the input channels and at least one block, got {channels!r}"
        )
    k = check_int("kernel_size", kernel_size)
    p = check_int("pool_size", pool_size)
    gain = float(check_array("weight_gain", weight_gain, positive=True))
    sb = float(check_array("bias_std", bias_std, nonnegative=True))
    m2 = float(check_array("input_std", input_std, positive=True)) ** 2
    dm2 = float(check_array("input_dstd", input_dstd, nonnegative=True)) ** 2
    L = float(check_array("length", length, positive=True))
    n_draws = check_int("n_draws", n_draws)
    n_jumps = check_int("n_jumps", n_jumps)
    rng = np.random.default_rng(seed)

    n_pos = shape[0] * shape[1]
    moments, dmoments = m2 * np.eye(n_pos), dm2 * np.eye(n_pos)
    jumps = np.zeros(
        (0, n_jumps, chans[0]) + shape
    )  # jump-vector samples of every event source
    weights = np.zeros(0)  # total size of the events of each source
    rows = []
    for block, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:]), start=1):
        sw = gain * np.sqrt(2.0 / (c_in * k * k))
        sigma = sw**2 * c_in * _conv_second_moments(moments, shape, k) + sb**2
        dsigma = sw**2 * c_in * _conv_second_moments(dmoments, shape, k)
        q, dq = np.diag(sigma), np.diag(dsigma)
        units = c_out * n_pos

        # convolution: E||W J||_1 = sqrt(2/pi) sw sum over outputs of E||J_RF||_2, the expectation
        # over the sampled jump vectors (a single-entry source is exact; the masks and selections
        # of earlier layers make ||J_RF||_2 random, and E||J_RF||_2 < sqrt(E||J_RF||^2))
        n_src = len(jumps)
        rf_energy = _box_sum(
            (jumps**2).sum(axis=2), k
        )  # ||J_RF(p)||^2 per source, sample, position
        if jensen:
            rf_norm = np.sqrt(rf_energy).mean(axis=1).reshape(n_src, n_pos)
        else:  # the root of the mean square, an upper bound (Jensen)
            rf_norm = np.sqrt(rf_energy.mean(axis=1)).reshape(n_src, n_pos)
        l1_conv = c_out * sw * SQRT_2_OVER_PI * rf_norm  # per source and position
        smp_conv = float(weights @ l1_conv.sum(axis=1))
        rows.append(
            dict(
                layer=3 * block - 2,
                block=block,
                kind="conv2d",
                units=units,
                rms=np.sqrt(q.mean()),
                drms=np.sqrt(dq.mean()),
                p_active=np.nan,
                births=0.0,
                smp=smp_conv,
            )
        )

        # ReLU: symmetric pre-activations, P(active) = 1/2 at every position
        if block == 1:  # exact: Rice given the kernel, averaged over the kernel's norm
            births_relu = float(
                c_out * _first_relu_births(shape, c_in, k, sw, sb, m2, dm2, L).sum()
            )
        else:
            births_relu = float(c_out * np.sum(relu(np.sqrt(q), np.sqrt(dq), 0.0, L)))
        rows.append(
            dict(
                layer=3 * block - 1,
                block=block,
                kind="relu",
                units=units,
                rms=np.sqrt(q.mean() / 2),
                drms=np.sqrt(dq.mean() / 2),
                p_active=0.5,
                births=births_relu,
                smp=births_relu + 0.5 * smp_conv,
            )
        )

        # max pooling of the ReLU outputs = max(0, window of pre-activations)
        win = pool_window_indices(shape, p)
        cov = sigma[win[:, :, None], win[:, None, :]]
        dcov = dsigma[win[:, :, None], win[:, None, :]]
        off = ~np.eye(p * p, dtype=bool)
        norm = np.sqrt(np.einsum("wii,wjj->wij", cov, cov))
        dnorm = np.sqrt(np.einsum("wii,wjj->wij", dcov, dcov))
        rho = float((cov / norm)[:, off].mean()) if p > 1 else np.nan
        drho = (
            float((dcov / np.where(dnorm > 0, dnorm, 1.0))[:, off].mean())
            if p > 1
            else np.nan
        )
        pool_draws = max(n_draws // 5, 1000)
        if block == 1:
            births_pool_map, x, dx = _first_block_pool(
                shape,
                c_in,
                k,
                p,
                sw,
                sb,
                m2,
                dm2,
                L,
                n_draws,
                pool_draws,
                correlated_windows,
                rng,
            )
            x, dx = x[:, win], dx[:, win]
        else:
            if correlated_windows:
                sigma_used, dsigma_used = sigma, dsigma
            else:
                cov, dcov = cov * np.eye(p * p), dcov * np.eye(p * p)
                sigma_used, dsigma_used = np.diag(q), np.diag(dq)
            x = _gaussian_draws(sigma_used, n_draws, rng)[:, win]  # (draws, windows, K)
            dx = _gaussian_draws(dsigma_used, n_draws, rng)[:, win]
            births_pool_map = maxpool_window(
                np.zeros(cov.shape[:-1]),
                cov,
                dcov,
                L,
                relu=True,
                n_draws=pool_draws,
                seed=int(rng.integers(2**31)),
            ).births
        births_pool_map = c_out * births_pool_map
        arg = x.argmax(axis=-1)
        top = np.take_along_axis(x, arg[..., None], -1)[..., 0]
        dtop = np.take_along_axis(dx, arg[..., None], -1)[..., 0]
        positive = top > 0
        a, da = np.where(positive, top, 0.0), np.where(positive, dtop, 0.0)
        pi = (np.eye(p * p, dtype=bool)[arg] & positive[..., None]).mean(
            axis=0
        )  # (windows, K)
        births_pool = float(births_pool_map.sum())

        # the sources' jump vectors through this block: fresh Gaussian weights per sample, then
        # the pool keeps entry i of each window and channel with probability pi_i (argmax and > 0,
        # independent of the jump) or none
        pooled_shape = (shape[0] // p, shape[1] // p)
        conv_jumps = _convolve_samples(
            jumps, c_out, k, sw, rng
        )  # (sources, samples, c_out, H, W)
        flat = conv_jumps.reshape(n_src, n_jumps, c_out, n_pos)[
            ..., win
        ]  # (.., c_out, windows, K)
        l1_pool = (np.abs(flat) * pi).sum(axis=(-1, -2, -3)).mean(axis=1)  # per source
        smp_pool = births_pool + float(weights @ l1_pool)
        rows.append(
            dict(
                layer=3 * block,
                block=block,
                kind="maxpool2d",
                units=c_out * win.shape[0],
                rms=np.sqrt(np.mean(a**2)),
                drms=np.sqrt(np.mean(da**2)),
                p_active=float(positive.mean()),
                births=births_pool,
                smp=smp_pool,
                window_rho=rho,
                window_drho=drho,
            )
        )
        rows[-3].update(window_rho=rho, window_drho=drho)
        rows[-2].update(window_rho=rho, window_drho=drho)

        cumulative = np.cumsum(
            pi, axis=-1
        )  # (windows, K); above the last: no positive entry
        u = rng.random(flat.shape[:-1])
        pick = (u[..., None] >= cumulative).sum(
            axis=-1
        )  # index of the kept entry, K = none
        kept = np.take_along_axis(
            np.concatenate([flat, np.zeros(flat.shape[:-1] + (1,))], axis=-1),
            pick[..., None],
            -1,
        )[..., 0]
        pooled = kept.reshape((n_src, n_jumps, c_out) + pooled_shape)
        new = np.zeros((win.shape[0], n_jumps, c_out) + pooled_shape)
        new.reshape(win.shape[0], n_jumps, c_out, -1)[
            np.arange(win.shape[0]), :, 0, np.arange(win.shape[0])
        ] = 1.0
        jumps = np.concatenate(
            [pooled, new]
        )  # a new source is one unit jump at its pooled position
        weights = np.concatenate([weights, births_pool_map])

        # second moments of the block output for the next block
        moments = a.T @ a / n_draws
        dmoments = da.T @ da / n_draws
        shape, n_pos = pooled_shape, win.shape[0]
    return pd.DataFrame(rows)
