"""Chapter 9, the exact kink tracer: its checks and measurements.

Sampling a model along a line (:func:`sample_line`) and the sampled estimator against the traced
truth (:func:`sampled_smp`, :func:`sampled_errors`); linear-region counts against the
Hanin & Rolnick scaling (:func:`region_counts`, :func:`expected_regions`); an independent brute-force
search for breakpoints (:func:`brute_force_breakpoints`); and the tracer's speed
(:func:`benchmark`).
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .._validation import check_int
from ..feature import smp as _smp
from ..trace import _as_sample, _torch_threads, trace_line

__all__ = [
    "sample_line",
    "sampled_smp",
    "line_angle",
    "expected_regions",
    "quarter_arc_line",
    "region_counts",
    "Benchmark",
    "benchmark",
    "random_segment",
    "sampled_errors",
    "brute_force_breakpoints",
    "breakpoint_gap",
]


def _model_f64(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` (the original is left alone)."""
    if all(p.dtype == torch.float64 for p in model.parameters()) and all(
        b.dtype == torch.float64 for b in model.buffers() if b.is_floating_point()
    ):
        return model
    return copy.deepcopy(model).to(torch.float64)


def sample_line(
    model: nn.Module, x0: Any, direction: Any, n_samples: int, *, chunk: int = 8192, threads: int | None = 1
) -> tuple[np.ndarray, float, np.ndarray]:
    """The outputs of ``model`` at ``n_samples`` equispaced points of ``x0 + t*direction``, t in [0, 1].

    Returns ``(t, h, y)``: grid (N,), step ``h = 1/(N-1)``, outputs ``y`` of shape (N, n_outputs),
    computed in float64 by the real torch modules in chunks of ``chunk`` samples (memory), with
    ``threads`` torch threads (1 by default: measured 4x faster than 2 on a shared 2-core machine).
    """
    n_samples = check_int("n_samples", n_samples, 3)
    net = _model_f64(model)
    x0 = _as_sample("x0", x0)
    d = _as_sample("direction", direction)
    t = np.linspace(0.0, 1.0, n_samples)
    out = []
    with torch.no_grad(), _torch_threads(threads):
        for start in range(0, n_samples, chunk):
            tt = torch.as_tensor(t[start : start + chunk]).reshape((-1,) + (1,) * x0.dim())
            out.append(net(x0 + tt * d).reshape(tt.shape[0], -1))
    return t, float(t[1] - t[0]), torch.cat(out).numpy()


def sampled_smp(model: nn.Module, x0: Any, direction: Any, n_samples: int, **smp_options) -> np.ndarray:
    """SMP of every output estimated from ``n_samples`` samples along the line (``smp.smp``, dt = h).

    The sampled counterpart of ``trace_line(...).smp``; ``smp_options`` go to :func:`smp.smp`.
    """

    _, h, y = sample_line(model, x0, direction, n_samples)
    return _smp(y.T, dt=h, **smp_options)


def line_angle(x0: Any, direction: Any) -> float:
    """Angle (radians) between the segment's end points ``x0`` and ``x0 + direction`` seen from 0."""
    a = _as_sample("x0", x0).reshape(-1)
    b = a + _as_sample("direction", direction).reshape(-1)
    cos = float(a @ b / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))
    return math.acos(min(1.0, max(-1.0, cos)))


def expected_regions(n_neurons: int | np.ndarray, angle: float | np.ndarray) -> np.ndarray:
    """Mean-field number of linear regions crossed by a segment: ``1 + n_neurons * angle / pi``.

    For a bias-free ReLU network with He initialisation (weights ``N(0, 2/fan_in)``) the network is
    positively homogeneous, so a unit switches where the ray through ``x(t)`` crosses its zero set:
    only the angle swept by the segment matters.  A first-layer unit ``w.x`` switches on the arc
    iff its hyperplane separates the end points, with probability ``angle/pi``.  Deeper units, given
    the layer below, are Gaussian processes along the arc whose variance and derivative variance
    He initialisation preserves (``sigma'^2_{l+1} = 2 * fan_in/fan_in * P(active) * sigma'^2_l``
    with ``P(active) = 1/2``), so by the Kac-Rice formula they switch ``1/pi`` times per radian too
    (mean field, i.e. wide layers).  Summed over neurons: the number of breakpoints is proportional
    to the number of neurons (Hanin & Rolnick 2019), here with the constant ``angle/pi``.
    """
    return 1.0 + np.asarray(n_neurons, dtype=np.float64) * np.asarray(angle, dtype=np.float64) / math.pi


def quarter_arc_line(dim: int, seed: int, angle: float = math.pi / 2) -> tuple[np.ndarray, np.ndarray]:
    """A random segment of ``R^dim`` whose end points have norm ``sqrt(dim)`` and subtend ``angle``.

    Returns ``(x0, direction)``: ``x0 = sqrt(dim) u``, ``x0 + direction = sqrt(dim) (cos(a) u +
    sin(a) v)`` for a random orthonormal pair ``u, v`` drawn with ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    u, v = q[:, 0] * math.sqrt(dim), q[:, 1] * math.sqrt(dim)
    return u, math.cos(angle) * u + math.sin(angle) * v - u


def region_counts(
    widths: list[int],
    depths: list[int],
    *,
    in_features: int = 8,
    n_nets: int = 20,
    angle: float = math.pi / 2,
    seed: int = 0,
    progress: bool = False,
):
    """Linear regions crossed by random segments in random bias-free He-initialised ReLU nets.

    For every (width, depth), ``n_nets`` networks ``smp.networks.dense_net(in_features, width,
    depth, seed=...)`` each crossed by one :func:`quarter_arc_line` of the given ``angle``.

    Returns a pandas DataFrame: width, depth, neurons (width*depth), mean and s.e. of the number of
    regions, and the mean-field prediction :func:`expected_regions`.
    """
    import pandas as pd

    from ..networks import dense_net

    rows = []
    configs = [(w, L) for L in depths for w in widths]
    for k, (w, L) in enumerate(tqdm(configs, disable=not progress, desc="region counts")):
        counts = np.empty(n_nets)
        for i in range(n_nets):
            net_seed = seed + 1000 * k + i
            x0, d = quarter_arc_line(in_features, net_seed, angle)
            counts[i] = trace_line(dense_net(in_features, w, L, seed=net_seed), x0, d).n_regions
        rows.append(
            {
                "width": w,
                "depth": L,
                "neurons": w * L,
                "regions": counts.mean(),
                "sem": counts.std(ddof=1) / math.sqrt(n_nets),
                "predicted": float(expected_regions(w * L, angle)),
            }
        )
    return pd.DataFrame(rows)


class Benchmark(NamedTuple):
    """Timing of :func:`trace_line` against one plain forward pass per event (seconds)."""

    n_events: int
    trace_seconds: float
    events_per_second: float
    forward_seconds: float  # n_events plain forward passes of one sample, same run, same threads
    forwards_per_second: float
    ratio: float  # trace_seconds / forward_seconds: the tracer's cost in forward passes per event


def benchmark(model: nn.Module, x0: Any, direction: Any, *, repeats: int = 3, threads: int | None = 1) -> Benchmark:
    """Time the tracer on one segment and ``n_events`` plain forward passes of one sample.

    Best of ``repeats`` for both (the least disturbed by other processes).  Both use ``threads``
    torch threads.  The baseline is what a brute-force search would pay at minimum: one forward
    evaluation of the network per breakpoint.
    """
    import time

    net = _model_f64(model)
    x = _as_sample("x0", x0).unsqueeze(0)
    with _torch_threads(threads):
        best_trace, n = math.inf, 0
        for _ in range(repeats):
            start = time.perf_counter()
            n = len(trace_line(model, x0, direction, threads=None).t)
            best_trace = min(best_trace, time.perf_counter() - start)
        best_fwd = math.inf
        with torch.no_grad():
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(max(n, 1)):
                    net(x)
                best_fwd = min(best_fwd, time.perf_counter() - start)
    n_eff = max(n, 1)
    return Benchmark(n, best_trace, n_eff / best_trace, best_fwd, n_eff / best_fwd, best_trace / best_fwd)


def random_segment(shape: tuple[int, ...], seed: int, *, length: float = 2.0, offset: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A random segment through the neighbourhood of the origin, where most units switch.

    ``d = length * z1`` and ``x0 = offset * z2 - d/2`` with ``z1, z2`` standard normal of ``shape``
    (``numpy.random.default_rng(seed)``): the segment's midpoint lies at ``offset * z2``.
    Returns ``(x0, d)``.
    """
    rng = np.random.default_rng(seed)
    d = length * rng.standard_normal(shape)
    return offset * rng.standard_normal(shape) - d / 2, d


def sampled_errors(model: nn.Module, segments: list[tuple[Any, Any]], n_samples: list[int], **smp_options) -> tuple[np.ndarray, np.ndarray]:
    """Relative error of the sampled SMP against the traced SMP, for every segment, N and output.

    Returns ``(exact, error)``: ``exact`` (n_segments, n_outputs) from :func:`trace_line`, and
    ``error[i, j, k] = SMP_N[k] / exact[i, k] - 1`` with ``SMP_N`` the :func:`smp.smp` of output
    ``k`` sampled at ``N = n_samples[j]`` points of segment ``i``.  Grids nest: the network runs once
    per segment on the finest grid, and every ``N`` with ``(N_max - 1) % (N - 1) == 0`` takes every
    ``(N_max - 1)/(N - 1)``-th sample of it (others are sampled separately).  ``smp_options`` go to
    :func:`smp.smp` (e.g. ``warn=False`` for grids too coarse on purpose).
    """

    n_max = max(n_samples)
    exact = np.stack([trace_line(model, x0, d).smp for x0, d in segments])
    err = np.empty((len(segments), len(n_samples), exact.shape[1]))
    for i, (x0, d) in enumerate(segments):
        _, h, y = sample_line(model, x0, d, n_max)
        for j, n in enumerate(n_samples):
            if (n_max - 1) % (n - 1) == 0:
                stride = (n_max - 1) // (n - 1)
                value = _smp(y[::stride].T, dt=h * stride, **smp_options)
            else:
                value = sampled_smp(model, x0, d, n, **smp_options)
            err[i, j] = value / exact[i] - 1
    return exact, err


# ----------------------------------------------------------------------------------------------
# an independent brute force, to check the tracer


def _captured_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Inputs of every ReLU / LeakyReLU / MaxPool2d of ``model`` (in order) for the batch ``x``."""
    store: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: store.append(inp[0].detach().clone()))
        for m in model.modules()
        if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d))
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return store


def _on_line(x0: torch.Tensor, d: torch.Tensor, t: np.ndarray) -> torch.Tensor:
    return x0[None] + torch.as_tensor(t).reshape((-1,) + (1,) * x0.dim()) * d[None]


def _bisect(model, x0, d, layer: int, lo: np.ndarray, hi: np.ndarray, value_fn, iterations: int = 64) -> np.ndarray:
    """Bisection of ``value_fn(captured input of layer)`` (one scalar per bracket), all brackets at once."""
    f_lo = value_fn(_captured_inputs(model, _on_line(x0, d, lo))[layer])
    for _ in range(iterations):  # 64 halvings take a bracket of 1e-4 below float resolution
        mid = 0.5 * (lo + hi)
        f_mid = value_fn(_captured_inputs(model, _on_line(x0, d, mid))[layer])
        same = np.sign(f_mid) == np.sign(f_lo)
        lo, f_lo, hi = np.where(same, mid, lo), np.where(same, f_mid, f_lo), np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def brute_force_breakpoints(
    model: nn.Module, x0: Any, direction: Any, n_grid: int = 20_001, *, threads: int | None = 1
) -> np.ndarray:
    """Every t in (0, 1) where a ReLU input crosses 0 or a max-pool argmax changes, by brute force.

    Independent of :func:`trace_line`: the real torch modules (hooked) run on a grid of ``n_grid``
    points; a sign change of a ReLU/LeakyReLU input between neighbours, or a change of a max-pool
    window's argmax from ``a`` to ``b`` with ``x_a - x_b`` strictly changing sign, brackets an event,
    and vectorised bisection on the network itself refines it to float resolution.  A change of
    argmax between exactly tied elements (zeros of inactive ReLUs) is left to the ReLU that causes it.
    Events closer than 1e-10 are reported once.  Misses a unit that crosses 0 twice within one grid
    step (choose ``n_grid`` accordingly).  Costs about ``65 * n_layers`` forward passes of batches
    as large as the number of events, plus one of ``n_grid`` points; ``threads`` torch threads.
    """
    with _torch_threads(threads):
        return _brute_force(model, x0, direction, n_grid)


def _brute_force(model: nn.Module, x0: Any, direction: Any, n_grid: int) -> np.ndarray:
    net = _model_f64(model)
    x0 = _as_sample("x0", x0)
    d = _as_sample("direction", direction)
    t = np.linspace(0.0, 1.0, n_grid)
    layers = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d))]
    inputs = _captured_inputs(net, _on_line(x0, d, t))
    roots = []
    for j, (m, h) in enumerate(zip(layers, inputs)):
        n = h.shape[0]
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            z = h.reshape(n, -1).numpy()
            i, unit = np.nonzero(z[:-1] * z[1:] < 0)
            if len(i):

                def unit_value(H, unit=unit):
                    return H.reshape(len(unit), -1).numpy()[np.arange(len(unit)), unit]

                roots.append(_bisect(net, x0, d, j, t[i], t[i + 1], unit_value))
        else:
            _, idx = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, return_indices=True)
            C = h.shape[1]
            hv = h.reshape(n, C, -1).numpy()
            idx = idx.reshape(n, C, -1).numpy()
            i, c, o = np.nonzero(idx[:-1] != idx[1:])
            a, b = idx[i, c, o], idx[i + 1, c, o]
            keep = (hv[i, c, a] - hv[i, c, b] > 0) & (hv[i + 1, c, a] - hv[i + 1, c, b] < 0)
            i, c, a, b = i[keep], c[keep], a[keep], b[keep]
            if len(i):

                def difference(H, c=c, a=a, b=b):
                    Hv = H.reshape(len(c), H.shape[1], -1).numpy()
                    k = np.arange(len(c))
                    return Hv[k, c, a] - Hv[k, c, b]

                roots.append(_bisect(net, x0, d, j, t[i], t[i + 1], difference))
    if not roots:
        return np.empty(0)
    r = np.sort(np.concatenate(roots))
    return r[np.concatenate([[True], np.diff(r) > 1e-10])]


def breakpoint_gap(traced: np.ndarray, brute: np.ndarray) -> float:
    """Largest distance from a breakpoint of either set to the nearest one of the other (inf if
    exactly one set is empty)."""
    traced, brute = np.asarray(traced), np.asarray(brute)
    if traced.size == 0 and brute.size == 0:
        return 0.0
    if traced.size == 0 or brute.size == 0:
        return math.inf
    gaps = np.abs(traced[:, None] - brute[None, :])
    return float(max(gaps.min(axis=1).max(), gaps.min(axis=0).max()))
