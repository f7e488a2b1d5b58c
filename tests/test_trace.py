"""Tests of smp.trace, the exact kink tracer.

The tracer's breakpoints are checked against an independent brute force
(``smp.experiments.tracer.brute_force_breakpoints``): the real torch modules are run on a dense grid of the
segment, every sign change of a ReLU input and every change of a max-pool argmax brackets an event,
and bisection on the network itself refines it to ~1e-15.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import smp
from smp import networks
from smp import trace as T
from smp._threads import torch_threads
from smp.experiments import tracer as TX
from smp.networks import _seeded_float64

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The brute force runs many small batches: torch threads only add contention on 2 shared cores."""
    with torch_threads(1):
        yield


# ------------------------------------------------------------------------------------------
# tiny seeded networks


def dense_relu():
    return _seeded_float64(
        nn.Sequential(
            nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)
        ),
        1,
    ), (5,)


def dense_leaky_batchnorm():
    net = nn.Sequential(
        nn.Linear(5, 12),
        nn.BatchNorm1d(12),
        nn.LeakyReLU(0.1),
        nn.Linear(12, 10),
        nn.ReLU(),
        nn.Linear(10, 2),
    )
    return _seeded_float64(net, 2), (5,)


def conv_stride_padding():
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2),
        nn.ReLU(),
        nn.Conv2d(4, 3, 2, stride=(2, 1), padding=1, padding_mode="reflect"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 6, 2),
    )
    return _seeded_float64(net, 3), (2, 9, 9)


def conv_maxpool():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 3),
    )
    return _seeded_float64(net, 4), (1, 10, 10)


def maxpool_overlapping_ceil():
    # max pooling straight after a convolution (no ties at 0), overlapping windows, ceil_mode
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 2),
    )
    return _seeded_float64(net, 5), (
        1,
        10,
        10,
    )  # 8x8 feature maps: ceil_mode adds a partial window


def conv_avgpool_batchnorm():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2, stride=1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    return _seeded_float64(net, 6), (1, 8, 8)


NETWORKS = {
    "dense": dense_relu,
    "dense-leaky-batchnorm": dense_leaky_batchnorm,
    "conv-stride-padding": conv_stride_padding,
    "conv-maxpool": conv_maxpool,
    "maxpool-overlap-ceil": maxpool_overlapping_ceil,
    "conv-avgpool-batchnorm": conv_avgpool_batchnorm,
}


def line(shape, seed, length=2.0):
    """A random segment passing near the origin, where most units switch."""
    return TX.random_segment(shape, seed, length=length)


def _points(x0, d, t):
    t = torch.as_tensor(np.asarray(t, dtype=np.float64))
    return (
        torch.as_tensor(x0)[None]
        + t.reshape((-1,) + (1,) * x0.ndim) * torch.as_tensor(d)[None]
    )


# ------------------------------------------------------------------------------------------
# breakpoints


@pytest.mark.parametrize("name", list(NETWORKS))
def test_breakpoints_match_brute_force(name):
    net, shape = NETWORKS[name]()
    x0, d = line(shape, seed=len(name))
    tr = T.trace_line(net, x0, d)
    # grid step 5e-5: every unit crosses at most once per grid interval on these tiny nets (a
    # double crossing would show as a traced t without a brute-force partner and fail the test)
    brute = TX.brute_force_breakpoints(net, x0, d, n_grid=20_001)
    assert len(tr.t) >= 10, "the test line must cross several regions"
    # every traced breakpoint has a brute-force partner within 1e-9 in t, and vice versa
    gap_trace = np.abs(tr.t[:, None] - brute[None, :]).min(axis=1)
    gap_brute = np.abs(brute[:, None] - tr.t[None, :]).min(axis=1)
    assert gap_trace.max() < 1e-9, (name, gap_trace.max())
    assert gap_brute.max() < 1e-9, (name, gap_brute.max())
    assert len(tr.t) == len(brute)
    assert np.all(np.diff(tr.t) > 0) and tr.t[0] > 0 and tr.t[-1] < 1


def test_brute_force_comparison_can_fail():
    """A 1e-7 change of one bias moves breakpoints by far more than the 1e-9 tolerance."""
    net, shape = NETWORKS["conv-maxpool"]()
    x0, d = line(shape, seed=3)
    traced = T.trace_line(net, x0, d).t
    with torch.no_grad():
        net[0].bias[0] += 1e-7
    moved = TX.brute_force_breakpoints(net, x0, d, n_grid=5_001)
    assert TX.breakpoint_gap(traced, moved) > 1e-9
    assert (
        TX.breakpoint_gap(traced, traced) == 0.0
        and TX.breakpoint_gap(traced, []) == math.inf
    )


@pytest.mark.parametrize("name", list(NETWORKS))
def test_traced_output_is_the_network(name):
    """Interpolating the knots reproduces the network; region slopes equal torch's jvp."""
    net, shape = NETWORKS[name]()
    x0, d = line(shape, seed=len(name) + 100)
    tr = T.trace_line(net, x0, d)
    t = np.random.default_rng(0).uniform(0, 1, 2000)
    with torch.no_grad():
        y = net(_points(x0, d, t)).reshape(len(t), -1).numpy()
    scale = np.abs(y).max()
    # rounding only: the network itself evaluates in float64 (~1e-16 relative per operation)
    assert np.abs(T.evaluate(tr, t) - y).max() < 1e-12 * scale
    # slopes: forward-mode derivative at the middle of every region, through torch's own modules
    mids = 0.5 * (tr.knots[:-1] + tr.knots[1:])
    dd = torch.as_tensor(d)

    def f(x):
        return net(x[None])[0].reshape(-1)

    jvp = np.stack(
        [
            torch.func.jvp(f, (x,), (dd,))[1].detach().numpy()
            for x in _points(x0, d, mids)
        ]
    )
    assert np.abs(jvp - tr.slopes).max() < 1e-10 * np.abs(tr.slopes).max()
    # slope jumps and exact SMP are consistent with the slopes
    np.testing.assert_allclose(
        tr.jumps.sum(axis=0),
        tr.slopes[-1] - tr.slopes[0],
        atol=1e-10 * np.abs(tr.slopes).max(),
    )
    np.testing.assert_allclose(tr.smp, np.abs(tr.jumps).sum(axis=0))
    assert tr.n_regions == len(tr.t) + 1
    assert np.all(tr.n_pieces <= tr.n_regions) and np.all(tr.n_pieces >= 1)


def test_ties_are_merged():
    """Two identical hidden units cross 0 at the same t: one breakpoint, jumps added."""
    lin = nn.Linear(3, 2).to(F64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -0.5, 0.2], [1.0, -0.5, 0.2]]))
        lin.bias.copy_(torch.tensor([-0.3, -0.3]))
    head = nn.Linear(2, 1, bias=False).to(F64)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, -0.5]]))
    net = nn.Sequential(lin, nn.ReLU(), head)
    x0, d = np.zeros(3), np.array([1.0, 0.0, 0.0])
    tr = T.trace_line(net, x0, d)
    np.testing.assert_allclose(tr.t, [0.3], atol=1e-15)
    np.testing.assert_allclose(tr.jumps, [[1.5]], rtol=1e-14)  # (2 - 0.5) * slope 1
    # identical channels into a max pool: exact ties forever, no spurious switch
    conv = nn.Conv2d(1, 1, 1).to(F64)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    pool_net = nn.Sequential(conv, nn.MaxPool2d(2), nn.Flatten())
    x0 = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    d = np.array([[[2.0, 2.0], [0.0, 0.0]]])
    tr = T.trace_line(pool_net, x0, d)
    # two pairs of tied elements; the top pair overtakes the bottom pair at t = 1/2
    np.testing.assert_allclose(tr.t, [0.5], atol=1e-15)
    np.testing.assert_allclose(tr.jumps, [[2.0]], rtol=1e-14)


def test_float32_model_is_left_alone():
    net, shape = dense_relu()
    net32 = net.to(torch.float32)
    x0, d = line(shape, 7)
    tr = T.trace_line(net32, x0, d)
    assert next(net32.parameters()).dtype == torch.float32
    assert len(tr.t) > 0 and tr.values.dtype == np.float64


# ------------------------------------------------------------------------------------------
# sampled SMP converges to the traced SMP


@pytest.mark.parametrize("name", ["dense", "conv-maxpool", "conv-avgpool-batchnorm"])
def test_sampled_smp_converges(name):
    net, shape = NETWORKS[name]()
    x0, d = line(shape, seed=len(name) + 200, length=3.0)
    exact = T.trace_line(net, x0, d).smp
    errors = {}
    for n in (10_000, 100_000):
        with warnings.catch_warnings():
            warnings.simplefilter(
                "error", smp.DenseKinksWarning
            )  # the grids must resolve the kinks
            errors[n] = np.abs(TX.sampled_smp(net, x0, d, n) / exact - 1).max()
    # The sampled estimator loses only where two kinks fall within ~2 samples of each other (their
    # jumps add before the absolute value): with K ~ 100 kinks the fraction of such pairs is about
    # 4K/N, 4 % at N = 1e4 and 0.4 % at 1e5, and only opposite jumps lose anything.
    assert errors[10_000] < 0.05, errors
    assert errors[100_000] < 0.01, errors
    assert errors[100_000] <= errors[10_000] + 1e-9


# ------------------------------------------------------------------------------------------
# Hanin & Rolnick: regions along a line proportional to the number of neurons


def test_region_counts_scale_with_neurons():
    # widths >= 16: narrower deep nets lose units to dead ReLUs (measured 0.85 of the mean-field
    # count at width 8, depth 8), a finite-width effect outside the mean-field prediction
    df = TX.region_counts([16, 48], [1, 3], n_nets=40, seed=0)
    z = (df["regions"] - df["predicted"]) / df["sem"]
    # the mean-field constant angle/pi per neuron, each configuration within 3.5 s.e. (4 tests,
    # a false alarm probability below 0.2 %)
    assert np.all(np.abs(z) < 3.5), df
    # proportionality itself: breakpoints per neuron are the same for 16 and 144 neurons
    per_neuron = (df["regions"] - 1) / df["neurons"]
    sem = df["sem"] / df["neurons"]
    lo, hi = per_neuron.idxmin(), per_neuron.idxmax()
    assert per_neuron[hi] - per_neuron[lo] < 3.5 * math.hypot(sem[hi], sem[lo]), df
    # and the counts grow: 9x more neurons, well over 5x more regions
    assert df["regions"].max() > 5 * df["regions"].min()


def test_expected_regions_first_layer_exact():
    """A single hidden layer: the count is binomial(n, angle/pi) exactly, not only in mean field."""
    angle = math.pi / 3
    counts = [
        T.trace_line(
            networks.dense_net(6, 32, 1, seed=s), *TX.quarter_arc_line(6, s, angle)
        ).n_regions
        for s in range(60)
    ]
    p = angle / math.pi
    sem = math.sqrt(32 * p * (1 - p) / 60)
    assert abs(np.mean(counts) - TX.expected_regions(32, angle)) < 3.5 * sem
    x0, d = TX.quarter_arc_line(6, 0, angle)
    assert TX.line_angle(x0, d) == pytest.approx(angle, rel=1e-12)


# ------------------------------------------------------------------------------------------
# bad input


def test_unsupported_layer_raises_type_error_naming_it():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).to(F64)
    with pytest.raises(TypeError, match="Tanh"):
        T.trace_line(net, np.zeros(3), np.ones(3))
    with pytest.raises(TypeError, match="Softplus"):
        T.trace_line(
            nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.Softplus())),
            np.zeros(3),
            np.ones(3),
        )
    with pytest.raises(TypeError, match="model"):
        T.trace_line("not a model", np.zeros(3), np.ones(3))


def test_bad_arguments():
    net, _ = dense_relu()
    with pytest.raises(ValueError, match="direction"):
        T.trace_line(net, np.zeros(5), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        T.trace_line(net, np.full(5, np.nan), np.ones(5))
    with pytest.raises(ValueError, match="merge_tol"):
        T.trace_line(net, np.zeros(5), np.ones(5), merge_tol=0.0)
    bn = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU()).to(F64).train()
    with pytest.raises(ValueError, match="training mode"):
        T.trace_line(bn, np.zeros(5), np.ones(5))
    with pytest.raises(RuntimeError, match="max_events"):
        T.trace_line(net, *line((5,), 0, length=10.0), max_events=1)


def test_threads_restored():
    net, shape = dense_relu()
    before = torch.get_num_threads()
    T.trace_line(net, *line(shape, 1))
    assert torch.get_num_threads() == before


def test_torch_threads_checks_and_restores():
    # the tracer's and the training units' thread option: a bad count names the argument, and
    # the count comes back even when the block raises
    from smp._threads import torch_threads

    before = torch.get_num_threads()
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            with torch_threads(bad):
                pass
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside the block")
    assert torch.get_num_threads() == before
