"""smp._exact_smp: the frozen-pattern per-layer SMP against the exact tracer (smp.trace.trace_line)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smp import networks
from smp.measure import exact_layer_smp, exact_path_smp, propagate_frozen
from smp.trace import trace_line


def _line(x0, d):
    x0, d = torch.as_tensor(x0), torch.as_tensor(d)
    extra = [1] * x0.ndim

    def path(index, t):
        return x0 + t.reshape(*t.shape, *extra) * d, d.expand(*t.shape, *d.shape)

    return path


@pytest.fixture(scope="module")
def dense_case():
    rng = np.random.default_rng(0)
    return (
        networks.dense_net(8, 32, 3, seed=1),
        rng.normal(size=8),
        2 * rng.normal(size=8),
    )


@pytest.fixture(scope="module")
def cnn_case():
    rng = np.random.default_rng(1)
    net = networks.conv_net((1, 4, 4), head=3, input_size=8, seed=2)
    return net, rng.normal(size=(1, 8, 8)), 2 * rng.normal(size=(1, 8, 8))


@pytest.mark.parametrize("case", ["dense_case", "cnn_case"])
def test_event_resolved_smp_equals_the_tracer_at_every_layer(case, request):
    # a coarse grid of 101 samples: every interval holding several kinks is refined, so the SMP of
    # every layer (the tracer's output SMP of the truncated network) agrees to rounding
    net, x0, d = request.getfixturevalue(case)
    result = exact_path_smp(
        net, _line(x0, d), torch.linspace(0, 1, 101, dtype=torch.float64), 1
    )
    for k, layer in enumerate(result):
        traced = trace_line(net[: k + 1], x0, d).smp.sum()
        assert layer.smp.sum() == pytest.approx(traced, rel=1e-9, abs=1e-9), (
            k,
            layer.name,
        )
        np.testing.assert_allclose(
            layer.births + layer.pass_through, layer.smp, rtol=1e-12
        )
        if layer.name in ("Linear", "Conv2d", "Flatten"):
            assert np.all(layer.births == 0)


def test_dense_fine_grid_without_refinement_equals_the_tracer(dense_case):
    # the plain frozen-pattern sum is exact when no unit kinks twice in one interval: the dense
    # net's breakpoints are at least 5.7e-5 apart (checked), so 40001 samples separate them
    net, x0, d = dense_case
    traced_t = trace_line(net, x0, d).t
    assert np.diff(traced_t).min() > 2 / 40000
    t = np.linspace(0, 1, 40001)
    x = x0 + t[:, None] * d
    result = exact_layer_smp(net, x, np.broadcast_to(d, x.shape).copy())
    for k, layer in enumerate(result):
        assert layer.smp.sum() == pytest.approx(
            trace_line(net[: k + 1], x0, d).smp.sum(), rel=1e-9, abs=1e-9
        )


def test_coarse_grid_without_refinement_is_low(dense_case):
    # what the refinement fixes: with 41 samples several kinks share an interval and cancel
    net, x0, d = dense_case
    t = np.linspace(0, 1, 41)
    x = x0 + t[:, None] * d
    coarse = exact_layer_smp(net, x, np.broadcast_to(d, x.shape).copy())[4].smp.sum()
    assert coarse < 0.97 * trace_line(net[:5], x0, d).smp.sum()


def test_births_are_zero_crossings_of_the_pre_activation(dense_case):
    # first ReLU on a line: each pre-activation is affine in t, so births = sum |slope| over the
    # units whose sign differs at the two ends, and there is nothing to pass through
    net, x0, d = dense_case
    w, b = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    z0, z1 = w @ x0 + b, w @ (x0 + d) + b
    expected = np.abs(z1 - z0)[np.sign(z0) != np.sign(z1)].sum()
    relu = exact_path_smp(
        net, _line(x0, d), torch.linspace(0, 1, 11, dtype=torch.float64), 1
    )[1]
    assert relu.births.sum() == pytest.approx(expected, rel=1e-12)
    assert relu.pass_through.sum() == 0


def test_float32_input_and_batch_of_paths(dense_case):
    # float32 paths are measured in float64; two paths in one batch give the two single results
    net, x0, d = dense_case
    t = np.linspace(0, 1, 2001)
    xs = np.stack([x0 + t[:, None] * d, x0 + t[:, None] * (-d)])
    dxs = np.stack([np.broadcast_to(d, (2001, 8)), np.broadcast_to(-d, (2001, 8))])
    both = exact_layer_smp(net, xs, dxs)[3].smp.sum(1)
    one = exact_layer_smp(net, xs[1], dxs[1])[3].smp.sum()
    assert both[1] == pytest.approx(one, rel=1e-12)
    single = exact_layer_smp(net, xs.astype(np.float32), dxs.astype(np.float32))[
        3
    ].smp.sum(1)
    # float32 rounding of the inputs (relative 6e-8) moves the kinks by as much: 1e-5 is ample
    np.testing.assert_allclose(single, both, rtol=1e-5)


def test_bad_input():
    net = networks.dense_net(4, 8, 1)
    x = np.zeros((2, 10, 4))
    with pytest.raises(ValueError, match="dx"):
        propagate_frozen(net, x, np.zeros((2, 9, 4)))
    with pytest.raises(ValueError, match="finite"):
        propagate_frozen(net, np.full((2, 10, 4), np.nan), x)
    with pytest.raises(TypeError, match="numeric"):
        propagate_frozen(net, np.array([["a"]]), x)
    with pytest.raises(TypeError, match="Sequential"):
        propagate_frozen(torch.nn.Sequential(torch.nn.Tanh()), x, x)
    with pytest.raises(ValueError, match="t must"):
        exact_path_smp(net, _line(np.zeros(4), np.ones(4)), torch.tensor([0.0, 0.0]), 1)
    with pytest.raises(ValueError, match="n_paths"):
        exact_path_smp(net, _line(np.zeros(4), np.ones(4)), torch.linspace(0, 1, 5), 0)
