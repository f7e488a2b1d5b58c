"""Seeded synthetic signals: realised statistics match the requested ones."""

from __future__ import annotations

import numpy as np
import pytest

from smp import signals


def test_gaussian_process_statistics():
    # 2000 paths x 401 samples of length 10 (30 length-scales each): the ensemble std of a variance
    # estimate is ~1 %, so 3 % bounds are ~3 standard errors
    gp = signals.gaussian_process(
        2000, 401, length=10.0, mean=0.5, std=2.0, dstd=6.0, seed=0
    )
    assert gp.y.shape == gp.dy.shape == (2000, 401)
    assert gp.y.mean() == pytest.approx(0.5, abs=0.05)
    assert gp.y.std() == pytest.approx(2.0, rel=0.03)
    assert gp.dy.std() == pytest.approx(6.0, rel=0.03)
    # at fixed t the marginal is N(mu, sigma^2): check the 4th moment (Gaussian kurtosis 3) loosely
    z = (gp.y[:, 100] - 0.5) / 2.0
    assert np.mean(z**4) == pytest.approx(3.0, rel=0.15)


def test_gaussian_process_derivative_is_exact():
    gp = signals.gaussian_process(5, 20001, dstd=10.0, seed=1)
    numerical = np.gradient(gp.y, gp.h, axis=1)[:, 1:-1]
    # central differences err by h^2 y'''/6: with h = 5e-5 and |y'''| ~ 1e4, ~ 4e-6 relative to sigma' = 10
    np.testing.assert_allclose(numerical, gp.dy[:, 1:-1], atol=1e-4 * 10)


def test_gaussian_process_is_seeded():
    a = signals.gaussian_process(3, 500, seed=5)
    b = signals.gaussian_process(3, 500, seed=5)
    c = signals.gaussian_process(3, 500, seed=6)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.y, c.y)


def test_gaussian_process_rejects_coarse_grid():
    with pytest.raises(ValueError, match="does not resolve"):
        signals.gaussian_process(1, 10, dstd=100.0)
    with pytest.raises(ValueError, match="std"):
        signals.gaussian_process(1, 100, std=0.0)
    with pytest.raises(TypeError, match="n_paths"):
        signals.gaussian_process(1.5, 100)


def test_great_circle_is_a_circle():
    t, h, x = signals.great_circle((3, 8, 8), 360, seed=2)
    flat = x.reshape(360, -1)
    norms = np.linalg.norm(flat, axis=1)
    np.testing.assert_allclose(norms, np.sqrt(3 * 64), rtol=1e-12)
    assert h == pytest.approx(2 * np.pi / 360)
    # every linear function of x is a sinusoid of period 2 pi: a.x(t) = A cos(t - phase)
    a = np.random.default_rng(0).standard_normal(flat.shape[1])
    proj = flat @ a
    fit = np.linalg.lstsq(np.stack([np.cos(t), np.sin(t)], 1), proj, rcond=None)
    np.testing.assert_allclose(
        np.stack([np.cos(t), np.sin(t)], 1) @ fit[0], proj, atol=1e-9
    )


def test_line_segment():
    x0 = np.zeros((2, 3))
    d = np.ones((2, 3))
    t, h, x = signals.line_segment(x0, d, 11)
    assert x.shape == (11, 2, 3) and h == pytest.approx(0.1)
    np.testing.assert_allclose(x[-1], d)
    with pytest.raises(ValueError, match="same shape"):
        signals.line_segment(x0, np.ones(3), 11)


def test_piecewise_linear_ground_truth():
    pl = signals.piecewise_linear(50, 1000, 7, min_separation=4.0, seed=3)
    gaps = np.diff(pl.kink_times, axis=1)
    assert gaps.min() >= 4.0 * pl.h - 1e-12
    assert pl.kink_times.min() >= 2 * pl.h and pl.kink_times.max() <= 1 - 2 * pl.h
    # slope jumps recovered from the samples on either side of each kink
    i = 0
    for tk, ds in zip(pl.kink_times[i], pl.slope_jumps[i]):
        n = int(tk // pl.h)
        left = (pl.y[i, n - 1] - pl.y[i, n - 2]) / pl.h
        right = (pl.y[i, n + 3] - pl.y[i, n + 2]) / pl.h
        assert right - left == pytest.approx(ds, abs=1e-9)
    with pytest.raises(ValueError, match="do not fit"):
        signals.piecewise_linear(1, 20, 10, min_separation=3.0)
