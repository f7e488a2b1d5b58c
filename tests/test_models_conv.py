"""The convolution / linear block: closed forms against integration and simulation, the exact identity
on real ``nn.Conv2d`` modules, and the input generator's guarantees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

import smp
from smp import measure, models, networks, signals
from smp.models import conv_kinks, conv_shared


def _abs_normal_mean(scale: float) -> float:
    """E|s| for s ~ N(0, scale**2), by numerical integration (independent of the closed form)."""
    value, _ = integrate.quad(
        lambda s: abs(s) * stats.norm.pdf(s, scale=scale), -np.inf, np.inf
    )
    return value


@pytest.mark.parametrize(
    "sw, fan_in, smp_in", [(1.0, 1, 1.0), (0.3, 16, 2.5), (2.0, 64, 0.7)]
)
def test_conv_matches_integration(sw, fan_in, smp_in):
    # E SMP(y) = sum_i E|w_i| smp_in with E|w| from quad (quad's own error is ~1e-10)
    assert models.conv(sw, fan_in, smp_in) == pytest.approx(
        fan_in * _abs_normal_mean(sw) * smp_in, rel=1e-8
    )


@pytest.mark.parametrize("sw", [0.5, 1.0, 3.0])
def test_conv_shared_matches_integration(sw):
    jumps = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 0.0]])
    # w . J ~ N(0, sw^2 ||J||^2): E|w . J| by quad for each event, summed
    expected = sum(_abs_normal_mean(sw * np.linalg.norm(j)) for j in jumps)
    assert conv_shared(sw, jumps) == pytest.approx(expected, rel=1e-8)


def test_conv_shared_matches_simulation_with_cancellation():
    rng = np.random.default_rng(0)
    sw, jumps = 0.7, np.array([[1.0, -1.0, 1.0, -1.0], [2.0, 0.5, 0.0, -1.5]])
    w = rng.normal(0.0, sw, (400_000, 4))
    simulated = np.abs(w @ jumps.T).sum(axis=1)
    mean, sem = simulated.mean(), simulated.std(ddof=1) / np.sqrt(simulated.size)
    # 4 standard errors: a false alarm once in ~16,000 runs, while a wrong norm (||J||_1 instead of
    # ||J||_2, here 1.6x larger) is off by hundreds of s.e.
    assert abs(conv_shared(sw, jumps) - mean) < 4 * sem
    independent = models.conv(sw, 1, np.abs(jumps).sum())
    assert (
        independent > 1.5 * mean
    )  # the independent-times model overestimates when kinks coincide


def test_conv_shared_reduces_to_conv_for_single_input_events():
    jumps = np.diag([0.3, 1.2, 2.0])  # each event kinks one input only
    assert conv_shared(1.3, jumps) == pytest.approx(
        models.conv(1.3, 3, np.trace(jumps) / 3), rel=1e-12
    )
    batched = conv_shared(1.0, np.stack([jumps, 2 * jumps]))
    assert batched.shape == (2,) and batched[1] == pytest.approx(
        2 * batched[0], rel=1e-12
    )


def test_conv_kinks_adds_jumps_before_the_absolute_value():
    out = conv_kinks(
        [1.0, -2.0, 3.0],
        [[0.1, 0.5], [0.2, 0.5], [0.3, np.nan]],
        [[1.0, 1.0], [1.0, 0.5], [2.0, 9.0]],
    )
    np.testing.assert_array_equal(out.times, [0.1, 0.2, 0.3, 0.5])
    # at t=0.5: 1*1 + (-2)*0.5 = 0, a complete cancellation; NaN is "no kink" (its jump 9 is ignored)
    np.testing.assert_allclose(out.jumps, [1.0, -2.0, 6.0, 0.0], atol=1e-15)
    np.testing.assert_array_equal(out.n_sources, [1, 1, 1, 2])
    np.testing.assert_array_equal(out.source[:3], [0, 1, 2])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: conv_shared(-1.0, [1.0]), "weight_std"),
        (lambda: conv_shared(1.0, 3.0), "jump_vectors"),
        (lambda: conv_shared(1.0, [np.nan]), "jump_vectors"),
        (lambda: conv_kinks([[1.0]], [[0.1]], [[1.0]]), "weights"),
        (lambda: conv_kinks([1.0, 2.0], [[0.1]], [[1.0]]), "fan_in"),
        (lambda: conv_kinks([1.0], [[np.inf]], [[1.0]]), "kink_times"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_type_raises():
    with pytest.raises(TypeError, match="weight_std"):
        conv_shared("1", [1.0])


def _output_jumps_at(y: np.ndarray, h: float, times: np.ndarray) -> np.ndarray:
    """Slope jump of an exactly piecewise-linear y at each known kink time: D[n] + D[n+1] = h Ds
    (exact when no other kink lies within 3 samples)."""
    n = np.floor(times / h).astype(int)
    d = y[2:] - 2 * y[1:-1] + y[:-2]  # d[m] is centred on sample m + 1
    return (d[n - 1] + d[n]) / h


@pytest.mark.parametrize("shared", [False, True])
def test_identity_on_a_real_conv2d(shared):
    c_in, k = 3, 3
    maps = signals.kinked_feature_map(
        1500, c_in, 5, k, 2, shared_channels=shared, seed=4
    )
    layer = networks.random_conv2d(c_in, 2, k, 0.8, seed=5)
    (y,) = measure.along_path(layer, maps.x)
    weight = layer.weight.detach().numpy()
    # output unit (channel 1, pixel (1, 2)) sees inputs [:, 1:4, 2:5]
    w = weight[1].ravel()
    times = maps.kink_times[:, 1:4, 2:5].reshape(-1, 2)
    jumps = maps.slope_jumps[:, 1:4, 2:5].reshape(-1, 2)
    unit = y.reshape(-1, 2, 3, 3)[:, 1, 1, 2]
    kinks = conv_kinks(w, times, jumps)
    # bookkeeping, kink by kink, to rounding (values ~10, jumps ~1, h ~ 7e-4: 1e-9 absolute is ~1e4 eps)
    np.testing.assert_allclose(
        _output_jumps_at(unit, maps.h, kinks.times), kinks.jumps, rtol=0, atol=1e-9
    )
    exact = np.abs(kinks.jumps).sum()
    independent = (np.abs(w) * np.abs(jumps).sum(axis=1)).sum()
    if shared:
        assert (
            kinks.n_sources.max() == c_in
        )  # every event is seen by all channels of its pixel
        assert (
            exact < 0.9 * independent
        )  # cancellation: jumps add before the absolute value
    else:
        assert kinks.n_sources.max() == 1
        assert exact == pytest.approx(independent, rel=1e-13)
    # the sampled estimator agrees with the exact SMP (property 1 of the feature: ~1e-9)
    assert smp.smp(unit, maps.h) == pytest.approx(exact, rel=1e-8)


def test_kinked_feature_map_separates_kinks_in_every_receptive_field():
    k = 3
    maps = signals.kinked_feature_map(1000, 2, 7, k, 3, seed=1)
    n = maps.x.shape[0]
    assert maps.x.shape == (n, 2, 7, 7) and maps.kink_times.shape == (2, 7, 7, 3)
    for i in range(7 - k + 1):
        for j in range(7 - k + 1):
            times = np.sort(maps.kink_times[:, i : i + k, j : j + k].ravel())
            assert np.diff(times).min() >= 3 * maps.h * (1 - 1e-9)  # >= 3 samples apart
    assert (
        maps.kink_times.min() >= 2 * maps.h and maps.kink_times.max() <= 1 - 2 * maps.h
    )
    # the signals are the stated piecewise-linear functions: SMP = sum |Ds| per unit
    np.testing.assert_allclose(
        smp.smp(maps.x.reshape(n, -1), maps.h, axis=0),
        np.abs(maps.slope_jumps).sum(-1).ravel(),
        rtol=1e-8,
    )


def test_kinked_feature_map_checks_its_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        signals.kinked_feature_map(
            100, 4, 8, 4, 2
        )  # 64 classes x 2 kinks x 8 samples do not fit
    with pytest.raises(ValueError, match="layout"):
        signals.kinked_feature_map(1000, 1, 4, 2, 1, layout="grid")
    with pytest.raises(TypeError, match="channels"):
        signals.kinked_feature_map(1000, 1.5, 4, 2, 1)


def test_random_conv2d_is_seeded_float64():
    a = networks.random_conv2d(2, 3, 3, 0.5, seed=7)
    b = networks.random_conv2d(2, 3, 3, 0.5, seed=7)
    assert a.weight.dtype == torch.float64 and isinstance(a, nn.Conv2d)
    assert torch.equal(a.weight, b.weight)
    # std of 54 N(0, 0.25) draws: 0.5 within ~30 % (sampling error of a std from 54 values is ~10 %)
    assert 0.35 < a.weight.std().item() < 0.65


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv_with_pytorch_default_init(dtype):
    # nn.Conv2d's default init is uniform on +-1/sqrt(fan_in): E|w| = bound / 2 = 0.866 sw, 8.5 %
    # above the Gaussian sqrt(2/pi) sw.  Inputs with separated kinks, so E SMP(y) = E|w| sum_RF
    # SMP(x_i) per output unit (exact given the inputs); 40 default-initialised layers average
    # 40 * 16 * 27 = 17,280 weights: |w| has relative spread 0.58, so the s.e. is 0.44 % and 2 %
    # is 4.5 s.e., while the Gaussian assumption misses by 8.5 % (19 s.e.)
    c_in, c_out, k, size = 3, 16, 3, 5
    maps = signals.kinked_feature_map(1500, c_in, size, k, 2, seed=3)
    x = torch.from_numpy(maps.x).to(dtype)
    per_input = np.abs(maps.slope_jumps).sum(-1)  # exact SMP of every input unit
    # the sum of input SMP over each output unit's receptive field (no padding, 3 x 3 outputs)
    rf_sum = np.array(
        [
            [per_input[:, i : i + k, j : j + k].sum() for j in range(size - k + 1)]
            for i in range(size - k + 1)
        ]
    )
    fan_in = c_in * k * k
    bound = 1 / np.sqrt(fan_in)
    measured, gaussian = [], []
    for seed in range(40):
        torch.manual_seed(seed)
        layer = nn.Conv2d(
            c_in, c_out, k, dtype=dtype
        )  # PyTorch's default initialisation
        with torch.no_grad():
            y = layer(x).reshape(x.shape[0], -1).double().numpy()
        # float32 rounding roughens the smooth parts (the detector warns) but moves SMP by ~0.2 %
        measured.append(smp.smp(y, maps.h, axis=0, warn=dtype == torch.float64).mean())
        gaussian.append(
            models.conv(layer.weight.std().item(), fan_in, rf_sum.mean() / fan_in)
        )
    model = models.conv(None, fan_in, rf_sum.mean() / fan_in, mean_abs_weight=bound / 2)
    assert np.mean(measured) == pytest.approx(model, rel=0.02)
    # the Gaussian model at the weights' own standard deviation is 8.5 % low
    assert np.mean(gaussian) / np.mean(measured) - 1 == pytest.approx(-0.079, abs=0.02)


def test_conv_mean_abs_weight_arguments():
    assert models.conv(2.0, 3, 1.0, mean_abs_weight=0.5) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="weight_std"):
        models.conv(None, 3, 1.0)
    with pytest.raises(ValueError, match="mean_abs_weight"):
        models.conv(None, 3, 1.0, mean_abs_weight=-1.0)
