"""Running torch modules along a path: shapes, float64, identity with a direct forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import smp
from smp import measure, networks, signals


def test_along_path_matches_forward_and_batches():
    net = networks.conv_net((1, 4, 8), head=3, input_size=8, seed=0)
    t, h, x = signals.great_circle((1, 8, 8), 500, seed=1)
    outputs = measure.along_path(net, x, batch_size=128)
    assert [o.shape[0] for o in outputs] == [500] * len(net)
    assert all(o.dtype == np.float64 for o in outputs)
    with torch.no_grad():
        direct = net(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(outputs[-1], direct)
    again = measure.along_path(net, x, batch_size=500)
    for a, b in zip(outputs, again):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_layer_smp_of_relu_on_a_circle():
    # one linear unit on a great circle is A cos(t - phase): ReLU of it has two kinks of slope |A|
    linear = nn.Linear(16, 1, bias=False, dtype=torch.float64)
    net = nn.Sequential(linear, nn.ReLU())
    t, h, x = signals.great_circle((16,), 20000, seed=2)
    pre = x @ linear.weight.detach().numpy()[0]
    amplitude = np.hypot(
        *np.linalg.lstsq(np.stack([np.cos(t), np.sin(t)], 1), pre, rcond=None)[0]
    )
    smp_linear, smp_relu = measure.layer_smp(net, x, h)
    assert smp_linear[0] < 1e-6 * amplitude
    # the path starts and ends mid-circle, so both crossings are interior: SMP = 2 |A| (grid error O(h))
    assert smp_relu[0] == pytest.approx(2 * amplitude, rel=1e-3)


def test_unit_statistics_and_mean_sem():
    gp = signals.gaussian_process(
        4, 20001, length=20.0, mean=1.0, std=2.0, dstd=4.0, seed=3
    )
    stats = measure.unit_statistics(gp.y.T, gp.h)
    # each path spans 40 length-scales: per-path time averages scatter by ~10-20 %
    assert np.all(np.abs(stats.mean - 1.0) < 1.5)
    np.testing.assert_allclose(stats.std, 2.0, rtol=0.3)
    np.testing.assert_allclose(stats.dstd, gp.dy.std(axis=1), rtol=1e-3)
    mean, sem = measure.mean_sem([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and sem == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    with pytest.raises(ValueError, match="at least 2"):
        measure.mean_sem([1.0])


def test_bad_paths():
    net = networks.dense_net(4, 8, 2)
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        measure.along_path(net, [[0.0] * 4] * 5)
    with pytest.raises(ValueError, match="at least 3 samples"):
        measure.along_path(net, np.zeros((2, 4)))


def test_networks_init_and_errors():
    net = networks.dense_net(64, 256, 3, weight_gain=1.0, seed=0)
    w = net[2].weight.detach().numpy()
    # He init: var = 2 / fan_in; 65536 entries give ~0.6 % on the std
    assert w.std() == pytest.approx(np.sqrt(2 / 256), rel=0.02)
    assert net[0].weight.dtype == torch.float64
    with pytest.raises(ValueError, match="activation"):
        networks.dense_net(activation="tanhh")
    with pytest.raises(ValueError, match="weight_gain"):
        networks.conv_net(weight_gain=0)
    with pytest.raises(ValueError, match="input_size"):
        networks.conv_net(head=2)
    # smooth variants have no kinks along a path
    smooth = networks.conv_net(
        (1, 4, 4), activation="softplus", pooling="avg", head=1, input_size=8, seed=1
    )
    t, h, x = signals.great_circle((1, 8, 8), 4000, seed=4)
    assert (
        measure.layer_smp(smooth, x, h)[-1][0]
        < 1e-6 * np.abs(measure.along_path(smooth, x)[-1]).max()
    )
    assert isinstance(smp.smp(np.zeros(5)), np.floating)


def test_along_path_keep():
    net = networks.dense_net(4, 8, 3, seed=1)
    x = np.random.default_rng(0).standard_normal((50, 4))
    everything = measure.along_path(net, x)
    last, first = measure.along_path(net, x, keep=[-1, 0])
    np.testing.assert_array_equal(last, everything[-1])
    np.testing.assert_array_equal(first, everything[0])
    with pytest.raises(ValueError, match="keep"):
        measure.along_path(net, x, keep=[6])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stack_measurement_reports_the_root_of_the_ensemble_mean_square(dtype):
    # two networks whose activations differ in scale by 3: the mean of per-network rms is below the
    # root of the mean square over networks (what the mean-field models predict) by Jensen
    nets = [networks.dense_net(8, 16, 2, seed=s) for s in range(2)]
    with torch.no_grad():
        for layer in nets[1]:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(np.sqrt(3.0))
    _, dt, path = signals.great_circle((8,), 3000, seed=0)
    rows = measure.stack_measurement(nets, path.astype(dtype), dt, per_network=True)
    table = measure.summarise_networks(rows)
    ms = rows.pivot(index="network", columns="layer", values="ms").to_numpy()
    np.testing.assert_allclose(table["rms"], np.sqrt(ms.mean(axis=0)), rtol=1e-12)
    assert (
        table["rms"] > np.sqrt(ms).mean(axis=0) * 1.05
    ).all()  # 3^(l) scale gaps: Jensen is large
    # delta method: sem(ms) / (2 rms)
    np.testing.assert_allclose(
        table["rms_sem"],
        ms.std(axis=0, ddof=1) / np.sqrt(2) / (2 * table["rms"]),
        rtol=1e-12,
    )
    # the summary of stack_measurement is the pooled per-network table
    direct = measure.stack_measurement(nets, path.astype(dtype), dt)
    np.testing.assert_allclose(direct["smp"], table["smp"], rtol=1e-12)
    assert list(direct["n_networks"]) == [2] * 4
    with pytest.raises(ValueError, match="at least 2"):
        measure.summarise_networks(rows[rows["network"] == 0])
