"""Stack models (smp.models.stack): closed forms against numerical integration and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from smp import models
from smp.models import maxpool_identity, maxpool_window
from smp.models._common import phi


def test_dense_first_relu_is_exact_for_sinusoids():
    # On a great circle every first-layer unit is a cos t + b sin t with a, b ~ N(0, q1): two kinks of
    # size R = sqrt(a^2 + b^2) per period, so E births per unit = 2 E R (Rayleigh mean), integrated here.
    q1 = 2.0 * 1.1**2
    two_r, _ = integrate.quad(
        lambda r: 2 * r * r / q1 * np.exp(-r * r / (2 * q1)), 0, np.inf
    )
    table = models.dense_stack(64, 256, 1, weight_gain=1.1)
    assert table["births"].iloc[1] / 256 == pytest.approx(two_r, rel=1e-9)


@pytest.mark.parametrize("gain", [0.8, 1.0, 1.2])
@pytest.mark.parametrize("width", [64, 256])
def test_dense_growth_law_matches_the_recursion(gain, width):
    table = models.dense_stack(64, width, 8, weight_gain=gain)
    relu_rows = table[table["kind"] == "relu"]
    np.testing.assert_allclose(
        relu_rows["smp"], models.dense_growth(width, np.arange(1, 9), gain), rtol=1e-12
    )


def test_dense_growth_is_linear_in_depth_and_width_to_the_1_5_at_he_init():
    # slope per layer = L phi(0) sqrt(q1 / pi) n^1.5 = 2 n^1.5 for q1 = 2, L = 2 pi
    for n in (64, 256, 1024):
        smp_l = models.dense_growth(n, np.arange(1, 9))
        np.testing.assert_allclose(np.diff(smp_l), 2 * n**1.5, rtol=1e-12)
    above = models.dense_growth(256, np.arange(1, 9), weight_gain=1.2)
    below = models.dense_growth(256, np.arange(1, 9), weight_gain=0.8)
    # g^(l-1) (1 + (l-1) c): ratio of successive layers tends to g from above
    assert np.all(np.diff(np.log(above)) > np.log(1.2))
    assert np.diff(np.log(below))[-1] < 0  # decays once g^l wins over the linear factor


def test_dense_mean_field_and_bias():
    table = models.dense_stack(
        10, [20, 30], weight_gain=1.0, bias_std=0.5, input_std=2.0, input_dstd=3.0
    )
    # q1 = sw^2 d m2 + sb^2 = (2/10) 10 4 + 0.25; q1' = (2/10) 10 9
    assert table["rms"].iloc[0] ** 2 == pytest.approx(8.25)
    assert table["drms"].iloc[0] ** 2 == pytest.approx(18.0)
    # q2 = (2/20) 20 q1/2 + sb^2
    assert table["rms"].iloc[2] ** 2 == pytest.approx(8.25 + 0.25)
    assert table["drms"].iloc[2] ** 2 == pytest.approx(18.0)


def test_dense_jump_propagation_against_simulation():
    # one birth of unit size at a layer of n units, then Linear -> ReLU -> Linear with random weights:
    # the model's 1-norm after the second linear layer is n sw sqrt(2/pi) * sqrt(n P) sw.
    rng = np.random.default_rng(0)
    n, reps = 256, 200
    sw = np.sqrt(2.0 / n)
    measured = []
    for _ in range(reps):
        first = rng.normal(
            0, sw, n
        )  # W1 applied to the unit jump e_0: its first column
        masked = first * (
            rng.random(n) < 0.5
        )  # ReLU of layer 2 keeps each entry with P = 1/2
        measured.append(np.abs(rng.normal(0, sw, (n, n)) @ masked).sum())
    model = n * sw * np.sqrt(2 / np.pi) * np.sqrt(n * 0.5) * sw
    # per repetition the 1-norm scatters by ~7 % (the 2-norm of ~128 masked entries), so the mean of 200
    # has s.e. ~0.5 %; the model neglects the O(1/n) Jensen term of E||J||_2 <= sqrt(E||J||^2)
    assert np.mean(measured) == pytest.approx(model, rel=0.02)


def _switch_above_zero_iid(k):
    return integrate.quad(
        lambda z: phi(z) ** 2 * special.ndtr(z) ** (k - 2), 0, np.inf
    )[0]


@pytest.mark.parametrize("k", [2, 4])
def test_relu_pool_window_births_iid_against_quadrature(k):
    # max(0, x_1..x_K), i.i.d. N(0, s^2), derivatives N(0, ds^2):
    # zero crossings K L phi(0) ds^2/s Phi(0)^(K-1), switches above 0 L K(K-1) ds^2/s int_0^inf phi^2 Phi^(K-2)
    s, ds, length = 1.3, 0.7, 2.0
    expected = k * length * phi(0.0) * ds**2 / s * 0.5 ** (k - 1)
    expected += length * k * (k - 1) * ds**2 / s * _switch_above_zero_iid(k)
    cov = np.eye(k)[None] * s**2
    dcov = np.eye(k)[None] * ds**2
    got = maxpool_window(
        np.zeros(k)[None], cov, dcov, length, relu=True, n_draws=200000, seed=1
    ).births[0]
    # Monte Carlo over 2e5 conditional draws: relative error ~ 1/sqrt(2e5 * P) < 0.5 %
    assert got == pytest.approx(expected, rel=0.01)


def test_relu_pool_window_births_correlated_pair():
    # K = 2 with correlations rho (values), drho (derivatives): zero crossings of the max at x_i = 0
    # need the other below 0: P = 1/2 + arcsin(-rho... ) -> P(x_j < 0 | x_i = 0) = 1/2 (mean 0);
    # switches above 0: L var(d') / sqrt(2 pi var d) * P(x > 0 | x_1 = x_2) = ... * 1/2.
    s, ds, rho, drho, length = 1.0, 1.0, 0.6, 0.2, 1.0
    cov = np.array([[[1, rho], [rho, 1]]]) * s**2
    dcov = np.array([[[1, drho], [drho, 1]]]) * ds**2
    zero = 2 * length * phi(0.0) * ds**2 / s * 0.5
    switch = (
        length
        * 2
        * ds**2
        * (1 - drho)
        / np.sqrt(2 * np.pi * 2 * s**2 * (1 - rho))
        * 0.5
    )
    got = maxpool_window(
        np.zeros(2)[None], cov, dcov, length, relu=True, n_draws=200000, seed=2
    ).births[0]
    assert got == pytest.approx(zero + switch, rel=0.01)


def test_conv_stack_pool_of_one_is_the_relu():
    table = models.conv_stack((1, 8, 8), (1, 4, 4), pool_size=1, n_draws=40000, seed=3)
    relu_rows = table[table["kind"] == "relu"]["smp"].to_numpy()
    pool_rows = table[table["kind"] == "maxpool2d"]["smp"].to_numpy()
    # a 1 x 1 "pool" of a ReLU output is the identity; the pool path uses Monte Carlo (4e4 draws)
    np.testing.assert_allclose(pool_rows, relu_rows, rtol=0.02)


def test_conv_stack_first_block_closed_form():
    # white input, He init: interior conv units have q = q' = 2, border ones 2 * taps / 9; the ReLU
    # births per unit are Rice's given the kernel, L phi(0) |w_p|, averaged over |w_p| ~ sw chi_taps
    table = models.conv_stack((1, 6, 6), (1, 3), n_draws=20000)
    taps = np.array([2, 3, 3, 3, 3, 2])
    mean_taps = np.mean(np.outer(taps, taps))
    assert table["rms"].iloc[0] ** 2 == pytest.approx(2 * mean_taps / 9)
    n = np.outer(taps, taps)
    chi_mean = np.sqrt(2) * np.exp(
        special.gammaln((n + 1) / 2) - special.gammaln(n / 2)
    )
    births = 3 * np.sum(2 * np.pi * phi(0.0) * np.sqrt(2 / 9) * chi_mean)
    assert table["births"].iloc[1] == pytest.approx(births, rel=1e-9)
    assert table["window_rho"].iloc[2] == pytest.approx(0.0)


def _first_block_on_random_circles(n_nets, size, kernel_size, pool, bias_std, seed):
    """Exact first-block ReLU and pool SMP of random 1-channel kernels on random great circles.

    Every pre-activation is A cos t + B sin t + b: its ReLU has two kinks of size sqrt(A^2 + B^2 - b^2)
    when |b| < R; the pool's SMP is counted by the max-pool identity with exact derivatives on a
    fine grid (per network: one kernel, one circle, as conv_net + great_circle)."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    sw = np.sqrt(2 / kernel_size**2)
    w = torch.from_numpy(sw * rng.standard_normal((n_nets, 1, kernel_size**2)))
    b = bias_std * rng.standard_normal(n_nets)
    uv = rng.standard_normal(
        (2, n_nets, 1, size, size)
    )  # i.i.d. pixels: the circle ensemble
    a_, b_ = (
        (w @ F.unfold(torch.from_numpy(z), kernel_size, padding=kernel_size // 2))[
            :, 0
        ].numpy()
        for z in uv
    )
    radius = np.hypot(a_, b_)
    relu = (2 * np.sqrt(np.clip(radius**2 - b[:, None] ** 2, 0, None))).sum(axis=1)
    t = np.linspace(0, 2 * np.pi, 2001)[:-1]
    from smp._validation import pool_window_indices

    win = pool_window_indices((size, size), pool)
    pooled = np.zeros(n_nets)
    for i in range(n_nets):
        x = a_[i][win][..., None] * np.cos(t) + b_[i][win][..., None] * np.sin(t) + b[i]
        dx = -a_[i][win][..., None] * np.sin(t) + b_[i][win][..., None] * np.cos(t)
        pooled[i] = maxpool_identity(t, x, dx, relu=True).born.sum()
    return relu, pooled


@pytest.mark.parametrize("bias_std", [0.0, 0.5])
def test_conv_stack_first_block_against_random_kernels_and_circles(bias_std):
    # the first block is exact in the model (Gaussian field given the kernel, averaged over kernels):
    # against 2000 networks on their own circles, ReLU births per channel and pool births (s.e.
    # ~0.5 % and ~0.7 %; the model's own Monte Carlo ~0.4 %): within 4 combined s.e.; the
    # mean-field value without the kernel-norm average was 2.8 % high at this fan-in
    relu_smp, pool_smp = _first_block_on_random_circles(2000, 8, 3, 2, bias_std, seed=5)
    table = models.conv_stack(
        (1, 8, 8), (1, 1), bias_std=bias_std, n_draws=20000, seed=1
    )
    for measured, model in (
        (relu_smp, table["births"].iloc[1]),
        (pool_smp, table["smp"].iloc[2]),
    ):
        sem = measured.std(ddof=1) / np.sqrt(measured.size)
        assert abs(model - measured.mean()) < 4 * np.hypot(sem, 0.004 * model), (
            model,
            measured.mean(),
            sem,
        )


def test_conv_stack_jensen_term_against_closed_form():
    # 1x1 kernels, no pooling: a block-1 event reaches conv 3 as C_2 Gaussian entries of which
    # Binomial(C_2, P) survive the second ReLU, so E||J||_2 = sw_2 sum_m Binom(m) E chi_m, below
    # sqrt(E||J||^2) = sw_2 sqrt(C_2 P) (by 6 % at C_2 = 4)
    c = (1, 3, 4, 5)
    table = models.conv_stack(
        (1, 6, 6), c, kernel_size=1, pool_size=1, n_draws=20000, n_jumps=1024, seed=2
    )
    sw2, sw3 = np.sqrt(2 / c[1]), np.sqrt(2 / c[2])
    p_keep = table["p_active"].iloc[
        5
    ]  # P(ReLU output > 0) at block 2: the pool of 1 keeps it
    m = np.arange(c[2] + 1)
    binom = special.comb(c[2], m) * p_keep**m * (1 - p_keep) ** (c[2] - m)
    chi = (
        np.sqrt(2)
        * np.exp(special.gammaln((m + 1) / 2) - special.gammaln(np.maximum(m, 1) / 2))
        * (m > 0)
    )
    from_block1 = table["births"].iloc[2] * sw2 * (binom * chi).sum()
    from_block2 = table["births"].iloc[5]
    expected = np.sqrt(2 / np.pi) * c[3] * sw3 * (from_block1 + from_block2)
    # Monte Carlo over 1024 jump samples x 36 positions: ~0.3 %
    assert table["smp"].iloc[6] == pytest.approx(expected, rel=0.01)
    naive = (
        np.sqrt(2 / np.pi)
        * c[3]
        * sw3
        * (table["births"].iloc[2] * sw2 * np.sqrt(c[2] * p_keep) + from_block2)
    )
    assert naive > 1.03 * expected


def test_conv_stack_predicts_positive_window_correlation_after_a_relu():
    table = models.conv_stack((1, 16, 16), (1, 8, 16), n_draws=20000)
    # block 2 pixels share the per-channel offset sum_k w_k E[a] of the non-negative block-1 output
    assert table["window_rho"].iloc[3] > 0.3
    assert (
        abs(table["window_drho"].iloc[3]) < 0.05
    )  # derivatives have mean 0: no shared part


def test_bad_arguments():
    with pytest.raises(ValueError, match="in_features"):
        models.dense_stack(0, 10, 2)
    with pytest.raises(ValueError, match="depth"):
        models.dense_stack(10, 10)
    with pytest.raises(ValueError, match="weight_gain"):
        models.dense_stack(10, 10, 2, weight_gain=-1.0)
    with pytest.raises(TypeError, match="width"):
        models.dense_stack(10, "wide", None)
    with pytest.raises(ValueError, match="channels"):
        models.conv_stack((2, 8, 8), (1, 4))
    with pytest.raises(ValueError, match="pooling window"):
        models.conv_stack((1, 2, 2), (1, 2, 2), n_draws=100)
