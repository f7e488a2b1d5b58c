"""The ReLU block: closed forms against integration and simulation, the exact identity on
piecewise-linear and Gaussian inputs through a real ``nn.ReLU``, and the tented input generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import smp
from smp import models, signals
from smp.models import relu_identity, relu_kinks, relu_sinusoid
from smp.signals import piecewise_linear


@pytest.mark.parametrize(
    "std, dstd, mean, length",
    [(1.0, 10.0, 0.0, 1.0), (2.0, 3.0, -1.5, 4.0), (0.5, 1.0, 1.2, 2.0)],
)
def test_births_match_the_rice_integral(std, dstd, mean, length):
    # Rice: E sum |x'(t_c)| = L p_x(0) E[x'^2], both factors by quadrature (quad's error ~1e-10)
    second_moment, _ = integrate.quad(
        lambda s: s**2 * stats.norm.pdf(s, scale=dstd), -np.inf, np.inf
    )
    expected = length * stats.norm.pdf(0.0, loc=mean, scale=std) * second_moment
    assert models.relu_births(std, dstd, mean, length) == pytest.approx(
        expected, rel=1e-8
    )


def test_pass_through_and_total():
    p, _ = integrate.quad(lambda v: stats.norm.pdf(v, loc=0.7, scale=2.0), 0.0, np.inf)
    assert models.relu_pass_through(2.0, 0.7, 3.0) == pytest.approx(3.0 * p, rel=1e-8)
    total = models.relu(2.0, 1.5, 0.7, 2.0, 3.0)
    assert total == pytest.approx(
        models.relu_births(2.0, 1.5, 0.7, 2.0) + models.relu_pass_through(2.0, 0.7, 3.0)
    )


@pytest.mark.parametrize("mean", [0.0, 0.8, -1.5])
def test_relu_matches_simulation_of_a_random_sinusoid_ensemble(mean):
    # x(t) = a cos t + b sin t + mu with a, b ~ N(0, 1) is exactly stationary Gaussian with sigma = sigma' = 1;
    # its ReLU SMP over one period is 2 sqrt(A^2 - mu^2) (A^2 = a^2 + b^2): the ensemble mean is Rice's
    rng = np.random.default_rng(0)
    amp = np.hypot(*rng.standard_normal((2, 1_000_000)))
    per_path = relu_sinusoid(amp, mean)
    mean_smp, sem = per_path.mean(), per_path.std(ddof=1) / np.sqrt(per_path.size)
    # 4 s.e.: a false alarm about once in 16,000 runs; a model off by 1 % is off by > 10 s.e. here
    assert abs(models.relu(1.0, 1.0, mean, 2 * np.pi) - mean_smp) < 4 * sem


def test_sinusoid_path_is_not_gaussian_over_time():
    assert relu_sinusoid(2.0, 0.0) == pytest.approx(4.0)
    assert relu_sinusoid(1.0, 1.0) == 0.0 and relu_sinusoid(1.0, -3.0) == 0.0
    # Rice with the path's own time statistics (sigma = sigma' = A/sqrt 2) is sqrt(pi)/2 - 1 = -11.4 % off
    pathwise = models.relu(1 / np.sqrt(2), 1 / np.sqrt(2), 0.0, 2 * np.pi)
    assert pathwise / relu_sinusoid(1.0, 0.0) - 1 == pytest.approx(
        np.sqrt(np.pi) / 2 - 1, rel=1e-12
    )


def test_relu_kinks_by_hand():
    # x = -0.5 + t on [0, 0.25]; kink +2 at 0.25 where x = -0.25 (vanishes); slope 3: crossing at 1/3 (jump 3);
    # kink -4 at 0.75 where x = 1.25 (passes); slope -1 until t = 1 (x stays > 0)
    k = relu_kinks(-0.5, 1.0, [0.25, 0.75], [2.0, -4.0], 0.0, 1.0)
    np.testing.assert_allclose(k.times, [1 / 3, 0.75], rtol=1e-15)
    np.testing.assert_allclose(k.jumps, [3.0, -4.0], rtol=1e-15)
    assert list(k.source) == ["born", "passed"]
    np.testing.assert_array_equal(k.vanished_times, [0.25])
    np.testing.assert_array_equal(k.vanished_jumps, [2.0])


def _pl_input(seed: int = 28):
    pl = piecewise_linear(1, 1000, 10, min_separation=40.0, seed=seed)
    x = pl.y[0] - np.polyval(np.polyfit(pl.t, pl.y[0], 1), pl.t)
    slope0 = (x[1] - x[0]) / pl.h
    return pl, x, slope0


def test_identity_on_a_piecewise_linear_input_to_rounding_error():
    pl, x, slope0 = _pl_input()
    kinks = relu_kinks(
        x[0], slope0, pl.kink_times[0], pl.slope_jumps[0], pl.t[0], pl.t[-1]
    )
    assert (kinks.source == "born").sum() >= 3 and kinks.vanished_times.size >= 3
    assert (kinks.jumps[kinks.source == "born"] > 0).all()  # births are convex
    assert (
        kinks.times.size + kinks.vanished_times.size
        == pl.kink_times.size + (kinks.source == "born").sum()
    )
    y = torch.nn.ReLU()(torch.from_numpy(x)).numpy()
    found = smp.peaks(
        y, pl.h, warn=False
    )  # exactly piecewise linear: rounding noise between kinks
    # every kink found at its place with its jump; 1e-9 is far above rounding (~1e-13), far below any error
    np.testing.assert_allclose(found.positions, kinks.times, atol=1e-9)
    np.testing.assert_allclose(found.jumps, kinks.jumps, atol=1e-9)
    assert smp.smp(y, pl.h, warn=False) == pytest.approx(
        np.abs(kinks.jumps).sum(), rel=1e-9
    )
    # the sampled bookkeeping agrees with the analytic one (dx exact: the slope of each piece)
    dx = slope0 + (pl.slope_jumps[0][:, None] * (pl.t > pl.kink_times[0][:, None])).sum(
        axis=0
    )
    ident = relu_identity(pl.t, x, dx, pl.kink_times, pl.slope_jumps)
    born = kinks.jumps[kinks.source == "born"].sum()
    assert (
        ident.born == pytest.approx(born, rel=1e-9)
        and ident.crossings == (kinks.source == "born").sum()
    )
    assert ident.passed == pytest.approx(
        np.abs(kinks.jumps[kinks.source == "passed"]).sum(), rel=1e-12
    )
    assert ident.vanished == pytest.approx(
        np.abs(kinks.vanished_jumps).sum(), rel=1e-12
    )


def test_identity_on_gaussian_inputs_within_the_estimator_accuracy():
    proc = signals.add_tents(
        signals.gaussian_process(8, 31001, length=31.0, std=1.0, dstd=10.0, seed=3),
        std=1.0,
        dstd=10.0,
        tent_spacing=10.0,
        seed=3,
    )
    y = torch.nn.ReLU()(torch.from_numpy(proc.x)).numpy()
    ident = relu_identity(proc.t, proc.x, proc.dx, proc.kink_times, proc.slope_jumps)
    measured = smp.smp(y, proc.h, axis=-1)
    # at 100 samples per ell the estimator is within ~0.5 % (pooled) of the identity; 2 % leaves room for
    # the path-to-path spread, while a lost pass-through or a missed birth term (>= 30 %) fails
    assert measured.sum() / (ident.born + ident.passed).sum() == pytest.approx(
        1.0, abs=0.02
    )
    assert ident.passed + ident.vanished == pytest.approx(
        np.abs(proc.slope_jumps).sum(axis=1), rel=1e-12
    )


def test_tented_process_statistics():
    proc = signals.add_tents(
        signals.gaussian_process(64, 31001, length=31.0, std=1.0, dstd=10.0, seed=1),
        std=1.0,
        dstd=10.0,
        tent_spacing=10.0,
        seed=1,
    )
    # 31 slots of 10 ell (ell = 0.1), 3 kinks each, jumps c/w = +-1 (0.1 sigma over 0.1 ell) times (1, -2, 1)
    assert proc.kink_times.shape == (64, 93)
    np.testing.assert_allclose(
        np.abs(proc.slope_jumps).reshape(64, 31, 3),
        np.broadcast_to([10.0, 20.0, 10.0], (64, 31, 3)),
    )
    assert (
        np.diff(proc.kink_times, axis=1) >= 0.01 - 1e-12
    ).all()  # kinks >= w = 10 samples apart
    np.testing.assert_allclose(proc.smp_in, 31 * 40.0)
    # the ensemble sigma, sigma' it reports against pooled time statistics (s.e. ~0.5 % over 64 x 31 ell)
    assert proc.x.std() == pytest.approx(proc.std, rel=0.03)
    assert (np.diff(proc.x, axis=1) / proc.h).std() == pytest.approx(
        proc.dstd, rel=0.03
    )
    assert proc.dstd == pytest.approx(10.0 * np.sqrt(1.02), rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="std"):
        models.relu(0.0, 1.0)
    with pytest.raises(TypeError, match="mean"):
        models.relu_pass_through(1.0, "a")
    with pytest.raises(ValueError, match="amplitude"):
        relu_sinusoid(-1.0)
    with pytest.raises(ValueError, match="same length"):
        relu_kinks(0.0, 1.0, [0.5], [1.0, 2.0])
    with pytest.raises(ValueError, match="inside"):
        relu_kinks(0.0, 1.0, [1.5], [1.0])
    with pytest.raises(ValueError):
        relu_identity(np.arange(5.0), np.zeros((2, 4)), np.zeros((2, 4)))
