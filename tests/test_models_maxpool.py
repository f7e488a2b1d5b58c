"""Max-pool models (chapter 5): closed forms vs numerical integration and vs Monte-Carlo simulation."""

import numpy as np
import pytest
import torch
from scipy import integrate, special

import smp
from smp.models import (
    maxpool,
    maxpool_correlated,
    maxpool_identity,
    relu,
    relu_maxpool,
    relu_maxpool_parts,
    relu_maxpool_window,
)
from smp.models._common import phi
from smp.signals import gaussian_process, piecewise_linear

L, DSTD = 20.0, 10.0


def _equicorrelated(k, n_paths, rho, mean=0.0, seed=0, n_samples=20001):
    """x_i = mean + sqrt(rho) g0 + sqrt(1-rho) g_i from independent unit GPs (sigma'/sigma = 10)."""
    t, h, y, dy = gaussian_process(
        n_paths * (k + 1), n_samples, length=L, dstd=DSTD, seed=seed
    )
    y, dy = y.reshape(n_paths, k + 1, -1), dy.reshape(n_paths, k + 1, -1)
    a, b = np.sqrt(rho), np.sqrt(1 - rho)
    return t, h, mean + a * y[:, :1] + b * y[:, 1:], a * dy[:, :1] + b * dy[:, 1:]


def test_tabulated_rates():
    # the K(K-1) I_K values quoted in the spec, 4 digits
    for k, v in [(2, 0.5642), (3, 0.8463), (4, 1.0294), (9, 1.4850)]:
        assert maxpool(k, 1.0, 1.0) == pytest.approx(v, abs=6e-5)


def test_correlated_reduces_and_scales():
    assert maxpool_correlated(4, 2.0, 3.0, 0.0, 0.0, 1.5, 0.7) == pytest.approx(
        maxpool(4, 2.0, 3.0, 0, 1.5, 0.7), rel=1e-14
    )
    assert maxpool_correlated(3, 1.0, 1.0, 0.75, 0.5) == pytest.approx(
        maxpool(3, 1.0, 1.0) * 0.5 / 0.5, rel=1e-14
    )


def _relu_maxpool_quad(k, mu, rho, drho):
    """Nested scipy quad of the three Rice integrals (sigma = sigma' = L = 1, smp_in = 1)."""
    sc = np.sqrt(1 - rho)

    def outer(f):
        return integrate.quad(
            lambda w: phi(w) * f(mu + np.sqrt(rho) * w), -np.inf, np.inf, epsabs=1e-12
        )[0]

    zero = k * outer(lambda m: phi(m / sc) / sc * special.ndtr(-m / sc) ** (k - 1))
    inner = lambda m: integrate.quad(
        lambda v: (phi((v - m) / sc) / sc) ** 2 * special.ndtr((v - m) / sc) ** (k - 2),
        0,
        np.inf,
        epsabs=1e-13,
    )[0]
    switch = k * (k - 1) * (1 - drho) * outer(inner)
    passed = 1 - outer(lambda m: special.ndtr(-m / sc) ** k)
    return zero, switch, passed


@pytest.mark.parametrize(
    "k,mu,rho,drho", [(2, 0.0, 0.0, 0.0), (4, 0.4, 0.3, 0.2), (9, -1.0, 0.6, 0.6)]
)
def test_relu_maxpool_against_quad(k, mu, rho, drho):
    got = relu_maxpool_parts(k, 1.0, 1.0, mu, 1.0, 1.0, rho, drho)
    want = _relu_maxpool_quad(k, mu, rho, drho)
    # Simpson table + 96-node Gauss-Hermite vs adaptive quad: agree to 1e-7 relative
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12)


def test_relu_maxpool_limits():
    # K = 1 is a plain ReLU (model of chapter 4); a large mean makes the ReLU irrelevant
    assert relu_maxpool(1, 1.3, 2.0, 0.4, 2.0, 0.5) == pytest.approx(
        relu(1.3, 2.0, 0.4, 2.0, 0.5), rel=1e-9
    )
    assert relu_maxpool(4, 1.0, 3.0, 12.0, 1.0, 0.2) == pytest.approx(
        maxpool(4, 1.0, 3.0, 0, 1.0, 0.2), rel=1e-9
    )
    assert relu_maxpool(4, 1.0, 3.0, -12.0, 1.0, 0.2) < 1e-20


def test_bad_input():
    with pytest.raises(ValueError, match="k must"):
        maxpool_correlated(0, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="rho"):
        maxpool_correlated(2, 1, 1, 1.0, 0)
    with pytest.raises(ValueError, match="drho"):
        relu_maxpool(2, 1, 1, drho=-0.1)
    with pytest.raises(ValueError, match="std"):
        relu_maxpool(2, -1, 1)
    with pytest.raises(TypeError, match="mean"):
        relu_maxpool(2, 1, 1, mean="a")


@pytest.mark.parametrize(
    "k,rho,mean,use_relu",
    [(3, 0.6, 0.0, False), (4, 0.0, 0.3, True), (2, 0.5, -0.5, True)],
)
def test_against_simulation(k, rho, mean, use_relu):
    # births counted exactly (identity with exact derivatives) on 80 GP paths: s.e. about 1-2 %;
    # tolerance 3 s.e. + 1 % (grid error of the identity, h = ell / 100)
    t, h, x, dx = _equicorrelated(k, 80, rho, mean, seed=10 + k)
    ident = maxpool_identity(t, x, dx, relu=use_relu)
    m, s = ident.born.mean(), ident.born.std(ddof=1) / np.sqrt(ident.born.size)
    if use_relu:
        model = relu_maxpool(k, 1.0, DSTD, mean, L, 0.0, rho, rho)
    else:
        model = maxpool_correlated(k, 1.0, DSTD, rho, rho, L)
    assert s < 0.025 * m
    assert abs(model - m) < 3 * s + 0.01 * m, (model, m, s)


def test_identity_on_piecewise_linear():
    # max of 3 piecewise-linear signals: smp of the pooled output == births + passed, to 1e-9
    k = 3
    t, h, y, kt, kj = piecewise_linear(
        k * 4, 4001, 6, length=1.0, min_separation=20, seed=3
    )
    x = y.reshape(4, k, -1)
    ident = maxpool_identity(t, x, None, kt.reshape(4, k, -1), kj.reshape(4, k, -1))
    out = (
        torch.nn.MaxPool1d(k)(torch.from_numpy(x.transpose(0, 2, 1).reshape(-1, 1, k)))
        .reshape(4, -1)
        .numpy()
    )
    measured = smp.smp(out, h, axis=-1, warn=False)
    ok = ident.ambiguous == 0
    assert ok.sum() >= 2
    np.testing.assert_allclose(measured[ok], (ident.born + ident.passed)[ok], rtol=1e-8)


def test_relu_maxpool_window_equal_statistics():
    # equal statistics: the window model is relu_maxpool with rho = 0 (trapezoid on 4001 points: 1e-6)
    got = relu_maxpool_window(
        np.full((2, 4), 0.3), np.full(4, 1.2), np.full(4, 2.0), 3.0, np.full(4, 0.5)
    )
    want = relu_maxpool_parts(4, 1.2, 2.0, 0.3, 3.0, 0.5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_relu_maxpool_window_against_quad():
    mu, s, ds, s_in = (
        np.array([0.5, -0.2, 1.5]),
        np.array([1.0, 0.7, 2.0]),
        np.array([1.0, 3.0, 0.5]),
        np.array([1.0, 2.0, 0.3]),
    )
    p = lambda i, v: phi((v - mu[i]) / s[i]) / s[i]
    F = lambda i, v: special.ndtr((v - mu[i]) / s[i])
    zero = sum(
        ds[i] ** 2 * p(i, 0) * np.prod([F(m, 0) for m in range(3) if m != i])
        for i in range(3)
    )
    sw = sum(
        (ds[i] ** 2 + ds[j] ** 2)
        * integrate.quad(lambda v: p(i, v) * p(j, v) * F(3 - i - j, v), 0, np.inf)[0]
        for i in range(3)
        for j in range(i + 1, 3)
    )
    ps = sum(
        s_in[i]
        * integrate.quad(
            lambda v: p(i, v) * np.prod([F(m, v) for m in range(3) if m != i]),
            0,
            np.inf,
        )[0]
        for i in range(3)
    )
    # trapezoid rule on 4001 points (step ~ 0.005 sigma) vs adaptive quad: error ~ 1.5e-6 relative
    np.testing.assert_allclose(
        relu_maxpool_window(mu, s, ds, 1.0, s_in), (zero, sw, ps), rtol=1e-5
    )


def test_relu_maxpool_window_simulation():
    # 3 independent GPs with unequal means and scales, births counted exactly on 80 paths;
    # tolerance 3 s.e. + 1 % (grid error of the identity)
    mu, s = np.array([0.8, 0.0, -0.3]), np.array([1.0, 1.5, 0.6])
    t, h, y, dy = gaussian_process(80 * 3, 20001, length=L, dstd=DSTD, seed=21)
    x = mu[:, None] + s[:, None] * y.reshape(80, 3, -1)
    dx = s[:, None] * dy.reshape(80, 3, -1)
    born = maxpool_identity(t, x, dx, relu=True).born
    m, se = born.mean(), born.std(ddof=1) / np.sqrt(born.size)
    zero, sw, _ = relu_maxpool_window(mu, s, s * DSTD, L)
    assert abs(zero + sw - m) < 3 * se + 0.01 * m, (zero + sw, m, se)


@pytest.mark.parametrize(
    "k,rho,drho,mu", [(2, 0.0, 0.0, 0.0), (4, 0.5, 0.3, 0.4), (3, 0.3, 0.6, -0.7)]
)
def test_window_reduces_to_equicorrelated(k, rho, drho, mu):
    from smp.models import maxpool_window

    C = np.full((k, k), rho) + np.eye(k) * (1 - rho)
    D = 4.0 * (np.full((k, k), drho) + np.eye(k) * (1 - drho))
    # 200,000 draws: Monte-Carlo s.e. of the "others below" probability ~0.1 %, tolerance 1 %
    w = maxpool_window(np.full(k, mu), C, D, length=1.5, smp_in=0.7, n_draws=200_000)
    assert w.births == pytest.approx(
        maxpool_correlated(k, 1.0, 2.0, rho, drho, length=1.5), rel=1e-2
    )
    assert w.passed == pytest.approx(
        0.7, rel=1e-12
    )  # without ReLU some input is always the argmax
    w = maxpool_window(
        np.full(k, mu), C, D, length=1.5, smp_in=0.7, relu=True, n_draws=200_000
    )
    ref = relu_maxpool(k, 1.0, 2.0, mu, 1.5, 0.7, rho, drho)
    assert w.births + w.passed == pytest.approx(ref, rel=1e-2)


def test_window_not_equicorrelated_differs():
    # a 2x2 window with adjacent correlation 0.6 and diagonal 0.3 is not the equicorrelated one:
    # the general model must sit between the equicorrelated models at rho = 0.3 and rho = 0.6
    from smp.models import maxpool_window

    C = np.array(
        [[1, 0.6, 0.6, 0.3], [0.6, 1, 0.3, 0.6], [0.6, 0.3, 1, 0.6], [0.3, 0.6, 0.6, 1]]
    )
    w = maxpool_window(np.zeros(4), C, C, n_draws=100_000)
    lo, hi = (
        maxpool_correlated(4, 1.0, 1.0, 0.6, 0.6),
        maxpool_correlated(4, 1.0, 1.0, 0.3, 0.3),
    )
    assert lo < w.births < hi
    with pytest.raises(ValueError, match="cov"):
        maxpool_window(np.zeros(4), np.eye(3), np.eye(3))


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("mu", [0.0, 1.0])
@pytest.mark.parametrize("rho", [0.9, 0.99, 0.999])
def test_relu_maxpool_at_high_correlation_agrees_with_the_window_model(k, mu, rho):
    # the common part's level a_w spreads as sqrt(rho / (1 - rho)) (31 at rho = 0.999): a fixed
    # Gauss-Hermite rule in w missed by +19 % .. -100 % here.  maxpool_window conditions on each
    # pair exactly; its Monte-Carlo error with 200,000 draws is ~0.2 %, so 1 % is the bar
    from smp.models import maxpool_window

    drho = rho
    cov = np.full((k, k), rho) + np.eye(k) * (1 - rho)
    dcov = np.full((k, k), drho) + np.eye(k) * (1 - drho)
    window = maxpool_window(
        np.full((1, k), mu),
        cov[None],
        dcov[None],
        1.0,
        smp_in=0.5,
        relu=True,
        n_draws=200_000,
        seed=1,
    )
    zero, switch, passed = relu_maxpool_parts(k, 1.0, 1.0, mu, 1.0, 0.5, rho, drho)
    assert zero + switch == pytest.approx(window.births[0], rel=0.01)
    assert passed == pytest.approx(window.passed[0], rel=0.01)


def test_relu_maxpool_tends_to_one_relu_as_the_window_becomes_one_input():
    # rho = drho -> 1: all K inputs are one signal, max(0, x_1..x_K) = relu(x_1)
    for rho in (1 - 1e-6, 1 - 1e-10):
        got = relu_maxpool(4, 1.0, 1.0, 0.5, 1.0, 1.0, rho, rho)
        assert got == pytest.approx(relu(1.0, 1.0, 0.5, 1.0, 1.0), rel=2e-3)
    with pytest.raises(ValueError, match="rho"):
        relu_maxpool(4, 1.0, 1.0, rho=1.0)


def _shifted_window(tau, dstd):
    """Value covariance C, derivative covariance D and value-derivative cross-covariance X of
    ``(g(t), g(t + tau))`` for a unit squared-exponential process g with derivative std dstd:
    ``R(s) = exp(-s^2 dstd^2 / 2)``, ``C_12 = R``, ``D_12 = -R''``, ``X_12 = R'(tau) = -X_21``."""
    r = np.exp(-0.5 * (tau * dstd) ** 2)
    cov = np.array([[1.0, r], [r, 1.0]])
    d12 = dstd**2 * (1 - (tau * dstd) ** 2) * r
    dcov = np.array([[dstd**2, d12], [d12, dstd**2]])
    x12 = -tau * dstd**2 * r
    return cov, dcov, np.array([[0.0, x12], [-x12, 0.0]])


def test_window_cross_covariance_against_simulation():
    # max(0, x_1, x_2) with x_1 = 1 + g(t), x_2 = 1 + g(t + tau), tau = one length scale:
    # corr(x_1, x_2') = -0.61.  Given that x_1 crosses 0 while x_2 < 0 (a tail event), x_1' is
    # shifted, so the zero-crossing births rise by a third; the switch births fall.  Simulated
    # with exact derivatives on 400 paths (s.e. 1.7 % and 0.7 %); the model's Monte-Carlo error
    # with 200,000 draws is ~0.3 %.  The model with the term is within 3 s.e.; without it
    # (xdcov=None) it misses both parts by more than 6 s.e. (measured: 13 and 10 s.e.).
    from smp.models import maxpool_window

    dstd, tau, mu, length, n = 10.0, 0.1, 1.0, 10.0, 20001
    h = length / (n - 1)
    shift = int(round(tau / h))
    _, h, g, dg = gaussian_process(
        400, n + shift, length=length + shift * h, dstd=dstd, seed=5
    )
    zeros = np.zeros((g.shape[0], n))
    x = np.stack([mu + g[:, :n], mu + g[:, shift : shift + n], zeros], axis=1)
    dx = np.stack([dg[:, :n], dg[:, shift : shift + n], zeros], axis=1)
    arg = x.argmax(axis=1)
    p, m = np.nonzero(arg[:, 1:] != arg[:, :-1])
    i, j = arg[p, m], arg[p, m + 1]
    d0, d1 = x[p, i, m] - x[p, j, m], x[p, i, m + 1] - x[p, j, m + 1]
    u = d0 / (d0 - d1)  # crossing time within the interval, slopes interpolated there
    size = np.abs(
        (1 - u) * (dx[p, i, m] - dx[p, j, m]) + u * (dx[p, i, m + 1] - dx[p, j, m + 1])
    )
    at_zero = (i == 2) | (j == 2)
    measured = {
        "zero": np.bincount(p, weights=size * at_zero, minlength=400),
        "switch": np.bincount(p, weights=size * ~at_zero, minlength=400),
    }
    cov, dcov, xdcov = _shifted_window(shift * h, dstd)
    args = ([mu, mu], cov, dcov, (n - 1) * h)
    with_term = maxpool_window(*args, relu=True, n_draws=200_000, xdcov=xdcov)
    without = maxpool_window(*args, relu=True, n_draws=200_000)
    for part in ("zero", "switch"):
        mean = measured[part].mean()
        se = np.hypot(measured[part].std(ddof=1) / 20.0, 0.003 * mean)
        assert abs(getattr(with_term, f"{part}_births") - mean) < 3 * se, part
        assert abs(getattr(without, f"{part}_births") - mean) > 6 * se, part


def test_window_cross_covariance_moves_births_between_pairs_only():
    # Joint stationarity makes the total births -sum_i E[x_i'' 1{i is the argmax}], which depends
    # on the mean, C and D only (E[x_j x_i''] = -D_ij): X moves births between the pairs, not the
    # total.  Same draws (same seed), so the only difference is the term: within 0.3 % (the
    # pairs' Monte-Carlo errors no longer cancel); pass-through is untouched.
    from smp.models import maxpool_window

    cov, dcov, xdcov = _shifted_window(0.1, 10.0)
    k4 = np.zeros((4, 4))
    cov4, dcov4, xd4 = k4.copy(), k4.copy(), k4.copy()
    for block in (slice(0, 2), slice(2, 4)):
        cov4[block, block], dcov4[block, block], xd4[block, block] = cov, dcov, xdcov
    for mean, with_relu in (([0.5, -0.3, 0.2, 0.0], True), ([0.0] * 4, False)):
        a = maxpool_window(
            mean, cov4, dcov4, smp_in=1.0, relu=with_relu, n_draws=200_000
        )
        b = maxpool_window(
            mean, cov4, dcov4, smp_in=1.0, relu=with_relu, n_draws=200_000, xdcov=xd4
        )
        assert b.births == pytest.approx(a.births, rel=3e-3)
        assert b.passed == a.passed
    zero_a, zero_b = (
        maxpool_window(
            [1.0, 1.0], cov, dcov, relu=True, n_draws=100_000, xdcov=x
        ).zero_births
        for x in (None, xdcov)
    )
    assert (
        zero_b > 1.2 * zero_a
    )  # ... while a single pair moves by a third (test above)


def test_window_cross_covariance_bad_input():
    from smp.models import maxpool_window

    with pytest.raises(ValueError, match="xdcov"):
        maxpool_window(np.zeros(2), np.eye(2), np.eye(2), xdcov=np.zeros((3, 3)))
