"""Tests of the layer-wise tracer (smp.trace.trace_lines / trace_line, smp._trace_pieces).

Two independent references: the event walker ``trace_line_walk`` (one forward pass per event, the
previous implementation) and the brute force ``brute_force_breakpoints`` (the real torch modules on a
dense grid, sign changes refined by bisection).  Residual networks are beyond the walker, so they are
checked against the brute force and against the network's own outputs and forward-mode slopes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smp import networks
from smp import trace as T
from smp._threads import torch_threads
from smp.experiments import tracer as TX
from smp.networks import _seeded_float64

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small batches: torch threads only add contention on 2 shared cores."""
    with torch_threads(1):
        yield


# ------------------------------------------------------------------------------------------
# networks


def mlp(widths, seed, leaky=False):
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths[:-1]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2) if leaky else nn.ReLU()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return _seeded_float64(nn.Sequential(*layers), seed)


def cnn(pool: dict, seed: int, leaky: bool = False):
    """Conv-ReLU-MaxPool twice on a 1x10x10 image, a linear head of 2 outputs."""
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.LeakyReLU(0.2) if leaky else nn.ReLU(),
        nn.MaxPool2d(**pool),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.MaxPool2d(**pool),  # straight after a convolution: no ties at 0
        nn.ReLU(),
        nn.Flatten(),
    )
    n_flat = net(torch.zeros(1, 1, 10, 10)).shape[1]
    return _seeded_float64(nn.Sequential(*net, nn.Linear(n_flat, 2)), seed)


POOLS = {
    "k2s2": {"kernel_size": 2},
    "k3s2p1": {"kernel_size": 3, "stride": 2, "padding": 1},
    "k2s1-overlap": {"kernel_size": 2, "stride": 1},
    "k3s2-ceil": {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    "k2s1-dilation2": {"kernel_size": 2, "stride": 1, "dilation": 2},
}


def resnet(seed: int, inplace: bool = False):
    """Stem, an identity block, a strided block with a 1x1 projection (4 -> 6 channels)."""
    return networks.res_net((4, 6), inplace=inplace, seed=seed)


def segments(shape, seeds, length=2.0):
    pairs = [TX.random_segment(shape, s, length=length) for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _jump_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest jump difference relative to the largest jump."""
    return float(np.abs(a - b).max() / np.abs(b).max())


# ------------------------------------------------------------------------------------------
# agreement with the walker and the brute force


CASES = {
    "mlp-5-16-16-3": (lambda: mlp([5, 16, 16, 3], 1), (5,)),
    "mlp-8-12x4-2": (lambda: mlp([8, 12, 12, 12, 12, 2], 2), (8,)),
    "mlp-leaky": (lambda: mlp([6, 20, 20, 1], 3, leaky=True), (6,)),
    **{
        f"cnn-{k}": (lambda pool=pool, i=i: cnn(pool, 10 + i), (1, 10, 10))
        for i, (k, pool) in enumerate(POOLS.items())
    },
    "cnn-leaky-k3s2p1": (lambda: cnn(POOLS["k3s2p1"], 20, leaky=True), (1, 10, 10)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_agrees_with_walker_and_brute_force(name):
    build, shape = CASES[name]
    net = build()
    x0, d = segments(shape, seeds=[len(name), len(name) + 1, len(name) + 2])
    traces = T.trace_lines(net, x0, d)  # three segments in one call
    for i, tr in enumerate(traces):
        walk = T.trace_line_walk(net, x0[i], d[i])
        assert len(tr.t) >= 10, "the test segment must cross several regions"
        # the same events (positions carry only rounding, ~1e-15 here)
        assert len(tr.t) == len(walk.t), (name, i, len(tr.t), len(walk.t))
        assert np.abs(tr.t - walk.t).max() < 1e-9
        assert np.array_equal(tr.layer, walk.layer)
        # jumps: both exact up to rounding (difference quotients on regions >= 1e-5 long carry
        # ~1e-16 / 1e-5 of the slope scale, the walker's forward-mode slopes ~1e-15)
        assert _jump_gap(tr.jumps, walk.jumps) < 1e-9, (name, i)
        np.testing.assert_array_equal(tr.n_pieces, walk.n_pieces)
        np.testing.assert_allclose(
            tr.values, walk.values, rtol=0, atol=1e-12 * np.abs(walk.values).max()
        )
    # grid step 5e-5: on these small nets no unit crosses twice within one grid interval (the
    # brute force is slow: one segment of the three)
    brute = TX.brute_force_breakpoints(net, x0[0], d[0], n_grid=20_001)
    assert TX.breakpoint_gap(traces[0].t, brute) < 1e-9, name
    assert len(brute) == len(traces[0].t)


def _check_against_walker_and_product(net, x0, d, traces, by_product) -> None:
    """Each trace has the walker's breakpoints, jumps and pieces (exact up to rounding, as in
    test_agrees_with_walker_...) and the plain product route's values."""
    for tr, ref, i in zip(traces, by_product, range(len(traces))):
        walk = T.trace_line_walk(net, x0[i], d[i])
        assert len(tr.t) >= 10
        assert len(tr.t) == len(walk.t) == len(ref.t)
        assert np.abs(tr.t - walk.t).max() < 1e-9
        assert _jump_gap(tr.jumps, walk.jumps) < 1e-9
        np.testing.assert_array_equal(tr.n_pieces, walk.n_pieces)
        # values: the correction sums over <= 24 units, as rounded as the product
        np.testing.assert_allclose(
            tr.values, ref.values, rtol=0, atol=1e-12 * np.abs(ref.values).max()
        )


@pytest.mark.parametrize("leaky", [False, True])
def test_relu_linear_correction_route_agrees_with_the_walker(monkeypatch, leaky):
    """The fused ReLU+Linear step: its correction route (interpolation of the Linear's values plus
    a per-piece sum over the crossing units), which a cost estimate picks on wide layers only,
    forced here on a small MLP for every piece: the walker's breakpoints and jumps."""
    from smp import _trace_pieces as P

    net = mlp([6, 24, 24, 24, 2], 5, leaky=leaky)
    x0, d = segments((6,), seeds=[1, 2, 3])
    by_product = T.trace_lines(net, x0, d)
    monkeypatch.setattr(P, "FORMULA_SHARE", 1)  # pieces of up to in_features crossings
    monkeypatch.setattr(P, "NS_PER_CALL", 0.0)  # the route always "pays"
    monkeypatch.setattr(P, "MACS_PER_NS", 1e-3)
    products = []
    bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda *a: products.append(1) or bmm(*a))
    traces = T.trace_lines(net, x0, d)
    assert len(products) >= 6, "the correction route must run (several count classes)"
    _check_against_walker_and_product(net, x0, d, traces, by_product)


def _record_results(monkeypatch, module, name: str) -> list:
    """Let ``module.name`` run as before, recording each call's result in the returned list."""
    results = []
    original = getattr(module, name)
    monkeypatch.setattr(
        module, name, lambda *a: results.append(original(*a)) or results[-1]
    )
    return results


@pytest.mark.parametrize("leaky", [False, True])
def test_crowded_pieces_cut_at_anchors_agree_with_the_walker(monkeypatch, leaky):
    """Crowded pieces (the first ReLU's: a whole segment is one piece) cut at every other
    crossing (anchors through the product, the crossings between them through the correction
    route), forced on a small MLP: the walker's breakpoints, jumps and pieces, and the values of
    the plain product route."""
    from smp import _trace_pieces as P

    net = mlp([6, 24, 24, 24, 2], 5, leaky=leaky)
    x0, d = segments((6,), seeds=[1, 2, 3])
    by_product = T.trace_lines(net, x0, d)
    monkeypatch.setattr(P, "NS_PER_CALL", 0.0)  # the correction route always "pays"
    monkeypatch.setattr(P, "MACS_PER_NS", 1e-3)
    monkeypatch.setattr(P, "ANCHOR_EVERY", 2)
    cuts = _record_results(monkeypatch, P, "_split_crowded")
    traces = T.trace_lines(net, x0, d)
    assert any(cuts), "anchors must be inserted"
    _check_against_walker_and_product(net, x0, d, traces, by_product)


@pytest.mark.parametrize(
    "pool, leaky",
    [(k, False) for k in POOLS] + [("k3s2p1", True), ("k2s1-overlap", True)],
)
def test_first_relu_pool_block_matches_the_separate_steps(monkeypatch, pool, leaky):
    """The first ReLU and its max pooling traced per line in one step (breakpoints from the
    lines' ends, pooled output without the ReLU's output) against the ReLU step followed by the
    max-pool step: the same breakpoints, layers, values and jumps up to rounding."""
    from smp import _trace_pieces as P

    net = cnn(POOLS[pool], 30, leaky=leaky)
    x0, d = segments((1, 10, 10), seeds=[4, 5, 6, 7])
    ran = _record_results(monkeypatch, P, "_first_relu_pool")
    fused = T.trace_lines(net, x0, d)
    assert any(ran), "the fused block must run"
    monkeypatch.setattr(P, "_first_relu_pool", lambda *a: False)
    separate = T.trace_lines(net, x0, d)
    for a, b in zip(fused, separate):
        assert len(a.t) == len(b.t) >= 10
        # positions: rounding of a crossing's fraction (~1e-16); values: of the window maxima
        assert np.abs(a.t - b.t).max() < 1e-12
        np.testing.assert_array_equal(a.layer, b.layer)
        np.testing.assert_allclose(
            a.values, b.values, rtol=0, atol=1e-12 * np.abs(b.values).max()
        )
        assert _jump_gap(a.jumps, b.jumps) < 1e-9


def test_wide_mlp_takes_the_correction_route_and_agrees_with_the_walker(monkeypatch):
    """On the benchmark's widest MLP (784-256x3-1) the cost estimate picks the correction route
    by itself (on enough segments to pay for its fixed cost): the walker's breakpoints, jumps
    and region counts on two of them."""
    from smp.experiments._trace_speed import speed_mlp

    net = speed_mlp(784, 256, 3)
    x0, d = segments((784,), seeds=range(12))
    products = []
    bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda *a: products.append(1) or bmm(*a))
    traces = T.trace_lines(net, x0, d)
    assert products, "the correction route must run on 256-wide layers"
    for i, tr in enumerate(traces[:2]):
        walk = T.trace_line_walk(net, x0[i], d[i])
        assert len(tr.t) == len(walk.t) > 100
        assert np.abs(tr.t - walk.t).max() < 1e-9
        assert _jump_gap(tr.jumps, walk.jumps) < 1e-9
        np.testing.assert_array_equal(tr.n_pieces, walk.n_pieces)


def test_kept_buffers_do_not_leak_into_results():
    """Large buffers are reused by the next call: earlier results must not change, and a
    repeated call must give the same bits."""
    wide = networks.dense_net(30, 128, 2, seed=0)  # > 1 MB per layer: kept buffers used
    other = networks.dense_net(30, 96, 3, seed=1)
    x0, d = segments((30,), seeds=range(8))
    first = T.trace_lines(wide, x0, d)
    saved = [(tr.t.copy(), tr.values.copy(), tr.jumps.copy()) for tr in first]
    T.trace_lines(other, x0, d)  # reuses the buffers
    again = T.trace_lines(wide, x0, d)
    assert sum(len(tr.t) for tr in first) > 500
    for tr, tr2, (t, values, jumps) in zip(first, again, saved):
        np.testing.assert_array_equal(tr.t, t)
        np.testing.assert_array_equal(tr.values, values)
        np.testing.assert_array_equal(tr.jumps, jumps)
        np.testing.assert_array_equal(tr2.values, values)


def test_comparison_with_the_walker_can_fail():
    """A 1e-7 change of one bias moves the breakpoints and jumps by far more than 1e-9."""
    net = mlp([5, 16, 16, 3], 1)
    x0, d = segments((5,), seeds=[7])
    before = T.trace_lines(net, x0, d)[0]
    with torch.no_grad():
        net[0].bias += 1e-7
    after = T.trace_line_walk(net, x0[0], d[0])
    assert TX.breakpoint_gap(before.t, after.t) > 1e-9


def test_trace_line_is_the_one_segment_form():
    net = mlp([5, 16, 16, 3], 4)
    x0, d = segments((5,), seeds=[1, 2])
    both = T.trace_lines(net, x0, d)
    for i in range(2):
        one = T.trace_line(net, x0[i], d[i])
        # equal up to rounding: a matrix product sums in a different order for another batch size
        assert len(one.t) == len(both[i].t) > 0
        np.testing.assert_allclose(one.t, both[i].t, rtol=0, atol=1e-13)
        np.testing.assert_allclose(
            one.jumps, both[i].jumps, rtol=0, atol=1e-11 * np.abs(one.jumps).max()
        )
        np.testing.assert_allclose(
            one.values, both[i].values, rtol=0, atol=1e-13 * np.abs(one.values).max()
        )


# ------------------------------------------------------------------------------------------
# residual networks


@pytest.mark.parametrize("seed", [0, 1])
def test_residual_network_against_brute_force(seed):
    net = resnet(seed)
    x0, d = segments((1, 8, 8), seeds=[seed, seed + 10])
    for i, tr in enumerate(T.trace_lines(net, x0, d)):
        assert len(tr.t) >= 50
        brute = TX.brute_force_breakpoints(net, x0[i], d[i], n_grid=20_001)
        assert TX.breakpoint_gap(tr.t, brute) < 1e-9
        assert len(brute) == len(tr.t)
        # the knots reproduce the network (rounding only: ~1e-16 per operation)
        t = np.random.default_rng(seed).uniform(0, 1, 1000)
        x = (
            torch.as_tensor(x0[i])[None]
            + torch.as_tensor(t).reshape(-1, 1, 1, 1) * torch.as_tensor(d[i])[None]
        )
        with torch.no_grad():
            y = net(x).numpy()
        assert np.abs(T.evaluate(tr, t) - y).max() < 1e-12 * np.abs(y).max()
        # region slopes equal torch's forward-mode derivative at the regions' midpoints
        mids = 0.5 * (tr.knots[:-1] + tr.knots[1:])
        xm = (
            torch.as_tensor(x0[i])[None]
            + torch.as_tensor(mids).reshape(-1, 1, 1, 1) * torch.as_tensor(d[i])[None]
        )
        _, jvp = torch.func.jvp(net, (xm,), (torch.as_tensor(d[i]).expand_as(xm),))
        assert (
            np.abs(jvp.detach().numpy() - tr.slopes).max()
            < 1e-10 * np.abs(tr.slopes).max()
        )


def test_residual_in_place_relu_and_sum_leave_the_skip_alone():
    """torchvision blocks use ReLU(inplace=True) and ``out += identity``: same trace as without."""
    x0, d = segments((1, 8, 8), seeds=[3])
    a = T.trace_lines(resnet(2, inplace=False), x0, d)[0]
    b = T.trace_lines(resnet(2, inplace=True), x0, d)[0]
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_allclose(
        a.jumps, b.jumps, rtol=0, atol=1e-12 * np.abs(a.jumps).max()
    )


def test_functional_activations_and_pooling():
    """F.relu, F.leaky_relu, F.max_pool2d and a sum inside a custom forward."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3, padding=1)
            self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
            self.head = nn.Linear(3 * 3 * 3, 2)

        def forward(self, x):
            h = F.leaky_relu(self.conv(x), 0.1)
            h = F.relu(self.conv2(h) + h)
            h = F.max_pool2d(h, 3, stride=2, padding=1)
            return self.head(h.reshape(h.shape[0], -1))

    net = _seeded_float64(Net(), 5)
    x0, d = segments((1, 6, 6), seeds=[4])
    tr = T.trace_lines(net, x0, d)[0]
    t = np.linspace(0, 1, 20_001)
    x = (
        torch.as_tensor(x0[0])[None]
        + torch.as_tensor(t).reshape(-1, 1, 1, 1) * torch.as_tensor(d[0])[None]
    )
    with torch.no_grad():
        y = net(x).numpy()
    assert len(tr.t) >= 10
    assert np.abs(T.evaluate(tr, t) - y).max() < 1e-12 * np.abs(y).max()
    # every traced breakpoint is a kink of some output or a switch that leaves the outputs smooth;
    # conversely every kink of the sampled outputs (second difference far above rounding) lies
    # within one grid step of a traced breakpoint
    second = np.abs(np.diff(y, 2, axis=0)).max(axis=1)
    kinks = t[1:-1][second > 1e-9 * np.abs(y).max()]
    assert np.abs(kinks[:, None] - tr.t[None, :]).min(axis=1).max() <= 1.0 / 20_000


# ------------------------------------------------------------------------------------------
# regioncam: the same breakpoints


def test_breakpoint_counts_equal_regioncam():
    regioncam = pytest.importorskip(
        "regioncam",
        reason="regioncam (pip install regioncam) is a test-only dependency",
    )
    body = networks.dense_net(20, 16, 3, seed=0)
    net = (
        nn.Sequential(body, networks.dense_net(16, 1, 1, seed=1)[0])
        .eval()
        .to(torch.float32)
    )
    x0, d = segments((20,), seeds=range(5))
    x0, d = (
        x0.astype(np.float32),
        d.astype(np.float32),
    )  # both tools on the same segments
    counts = []
    for i in range(len(x0)):
        rc = regioncam.Regioncam1D((0.0, 1.0))
        rc.linear(d[i][None, :], x0[i])  # t -> x0 + t d
        rc.add(net)
        counts.append(rc.num_vertices - 2)
    ours = [
        len(tr.t)
        for tr in T.trace_lines(net, x0.astype(np.float64), d.astype(np.float64))
    ]
    assert min(ours) >= 10
    assert ours == counts


# ------------------------------------------------------------------------------------------
# input handling


def test_float32_model_traced_in_float64():
    net32 = mlp([5, 16, 16, 3], 6).to(torch.float32)
    x0, d = segments((5,), seeds=[2])
    tr32 = T.trace_lines(net32, x0.astype(np.float32), d.astype(np.float32))[0]
    assert next(net32.parameters()).dtype == torch.float32  # left alone
    assert tr32.values.dtype == np.float64 and tr32.jumps.dtype == np.float64
    # the float64 trace of the float32 weights: the float64 net rounded to float32 is a different
    # network, so compare with a float64 copy of the float32 one
    tr64 = T.trace_lines(
        net32.to(F64),
        torch.as_tensor(x0.astype(np.float32)),
        torch.as_tensor(d.astype(np.float32)),
    )[0]
    np.testing.assert_array_equal(tr32.t, tr64.t)
    assert len(tr32.t) > 0


def test_unsupported_operations_raise_type_error_naming_them():
    x0, d = np.zeros((1, 3)), np.ones((1, 3))
    with pytest.raises(TypeError, match="GELU"):
        T.trace_lines(nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1)), x0, d)

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)

        def forward(self, x):
            return F.gelu(self.lin(x))

    with pytest.raises(TypeError, match="gelu"):
        T.trace_lines(Functional(), x0, d)

    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return self.lin(x)
            return -self.lin(x)

    with pytest.raises(TypeError, match="data-dependent control flow"):
        T.trace_lines(Branch(), x0, d)

    class Product(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)

        def forward(self, x):
            h = self.lin(x)
            return h * h

    with pytest.raises(TypeError, match="mul of two tensors"):
        T.trace_lines(Product(), x0, d)


def test_bad_arguments():
    net = mlp([5, 8, 1], 0)
    with pytest.raises(ValueError, match="directions"):
        T.trace_lines(net, np.zeros((2, 5)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="batch"):
        T.trace_lines(net, np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        T.trace_lines(net, np.full((1, 5), np.nan), np.ones((1, 5)))
    with pytest.raises(ValueError, match="training mode"):
        T.trace_lines(resnet(0).train(), np.zeros((1, 1, 8, 8)), np.ones((1, 1, 8, 8)))
    with pytest.raises(RuntimeError, match="max_events"):
        T.trace_lines(net, *segments((5,), seeds=[0], length=10.0), max_events=1)


def test_release_buffers_frees_the_kept_buffers_and_results_stay():
    """smp.trace.release_buffers returns the kept buffers' memory; the next call allocates
    afresh and gives the same bits."""
    from smp import _trace_pieces as P

    wide = networks.dense_net(30, 128, 2, seed=0)  # > 1 MB per layer: kept buffers used
    x0, d = segments((30,), seeds=range(8))
    first = T.trace_lines(wide, x0, d)
    kept = sum(b.numel() * 8 for b in P._BUFFERS.free)
    assert kept >= P._Buffers.MIN_BYTES
    assert T.release_buffers() == kept
    assert not P._BUFFERS.free and T.release_buffers() == 0
    again = T.trace_lines(wide, x0, d)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.t, b.t)
        np.testing.assert_array_equal(a.values, b.values)
