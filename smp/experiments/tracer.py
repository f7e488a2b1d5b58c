"""Chapter 9, the exact kink tracer: its checks and measurements.

Sampling a model along a line (:func:`sample_line`) and the sampled estimator against the traced
truth (:func:`sampled_smp`, :func:`sampled_errors`); linear-region counts against the
Hanin & Rolnick scaling (:func:`region_counts`, :func:`expected_regions`); an independent brute-force
search for breakpoints (:func:`brute_force_breakpoints`); and the tracer's speed
(:func:`benchmark`, and the stored table of :func:`speed_table` against regioncam and the event
walker, ``smp.data.load("trace_speed")``, written by :func:`write_tables`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .._threads import torch_threads
from .._validation import check_int
from ..feature import smp as _smp
from ..networks import float64_model
from ..trace import _as_sample, trace_line
from ._trace_speed import SPEED_MLPS, speed_mlp, speed_table, write_tables  # noqa: F401
from .brute_force import breakpoint_gap, brute_force_breakpoints  # noqa: F401

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
    "check_trace",
    "SPEED_MLPS",
    "speed_mlp",
    "speed_table",
    "write_tables",
]


def sample_line(
    model: nn.Module,
    x0: Any,
    direction: Any,
    n_samples: int,
    *,
    chunk: int = 8192,
    threads: int | None = 1,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The outputs of ``model`` at ``n_samples`` equispaced points of a segment.

    The segment is ``x0 + t*direction``, t in [0, 1].  Computed in float64 by the real
    torch modules (a float64 copy of ``model`` if needed) in chunks of ``chunk`` samples
    (memory), with ``threads`` torch threads (1 by default: measured 4x faster than 2
    on a shared 2-core machine).

    Parameters
    ----------
    model : torch.nn.Module
        the network; one input sample is shaped like ``x0``.
    x0, direction : array or tensor
        start point and direction of the segment, shaped like one input sample.
    n_samples : int
        number of samples ``N``, at least 3.
    chunk : int
        samples per forward pass.
    threads : int or None
        torch intra-op threads (restored afterwards); ``None`` keeps the current
        setting.

    Returns
    -------
    t : ndarray, shape (N,)
        the grid on [0, 1].
    h : float
        the step ``1 / (N - 1)``.
    y : ndarray, shape (N, n_outputs)
        the outputs, float64, flattened per sample.

    Example
    -------
    >>> from smp.networks import dense_net
    >>> net = dense_net(4, 8, 2, seed=0)
    >>> t, h, y = sample_line(net, np.ones(4), np.array([0.0, -2.0, 0.0, 1.0]), 2001)
    >>> t.shape, h, y.shape
    ((2001,), 0.0005, (2001, 8))
    """
    n_samples = check_int("n_samples", n_samples, 3)
    net = float64_model(model)
    x0 = _as_sample("x0", x0)
    d = _as_sample("direction", direction)
    t = np.linspace(0.0, 1.0, n_samples)
    out = []
    with torch.no_grad(), torch_threads(threads):
        for start in range(0, n_samples, chunk):
            tt = torch.as_tensor(t[start : start + chunk]).reshape(
                (-1,) + (1,) * x0.dim()
            )
            out.append(net(x0 + tt * d).reshape(tt.shape[0], -1))
    return t, float(t[1] - t[0]), torch.cat(out).numpy()


def sampled_smp(
    model: nn.Module, x0: Any, direction: Any, n_samples: int, **smp_options
) -> np.ndarray:
    """SMP of every output estimated from ``n_samples`` samples along the line.

    The sampled counterpart of ``trace_line(...).smp``: :func:`smp.smp` of every output
    of :func:`sample_line`, with ``dt = h`` (units: output per unit t).

    Parameters
    ----------
    model : torch.nn.Module
        the network.
    x0, direction : array or tensor
        the segment ``x0 + t*direction``, t in [0, 1].
    n_samples : int
        number of samples.
    **smp_options
        ``kappa``, ``window``, ``floor_eps``, ``warn`` of :func:`smp.smp`.

    Returns
    -------
    ndarray, shape (n_outputs,)
        the estimated SMP of every output.

    Example
    -------
    On 4001 samples the estimate matches the tracer's exact SMP (an output without kinks
    has SMP 0 in both):

    >>> from smp.networks import dense_net
    >>> from smp.trace import trace_line
    >>> net = dense_net(4, 8, 2, seed=0)
    >>> x0, d = quarter_arc_line(4, seed=0)
    >>> estimate = sampled_smp(net, x0, d, 4001, warn=False)
    >>> bool(np.allclose(estimate, trace_line(net, x0, d).smp, rtol=1e-6, atol=1e-9))
    True
    """

    _, h, y = sample_line(model, x0, direction, n_samples)
    return _smp(y.T, dt=h, **smp_options)


def line_angle(x0: Any, direction: Any) -> float:
    """Angle (radians) between the end points ``x0`` and ``x0 + direction`` seen from 0.

    Parameters
    ----------
    x0, direction : array or tensor
        the segment; its end points must be nonzero.

    Returns
    -------
    float
        the angle in ``[0, pi]``.

    Example
    -------
    From ``(1, 0)`` to ``(0, 1)`` the segment sweeps a quarter turn:

    >>> round(line_angle(np.array([1.0, 0.0]), np.array([-1.0, 1.0])) / np.pi, 6)
    0.5
    """
    a = _as_sample("x0", x0).reshape(-1)
    b = a + _as_sample("direction", direction).reshape(-1)
    cos = float(a @ b / (torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)))
    return math.acos(min(1.0, max(-1.0, cos)))


def expected_regions(
    n_neurons: int | np.ndarray, angle: float | np.ndarray
) -> np.ndarray:
    """Mean-field number of linear regions crossed by a segment: ``1 + n_neurons * angle / pi``.

    For a bias-free ReLU network with He initialisation (weights ``N(0, 2/fan_in)``) the
    network is positively homogeneous, so a unit switches where the ray through ``x(t)``
    crosses its zero set: only the angle swept by the segment matters.  A first-layer
    unit ``w.x`` switches on the arc iff its hyperplane separates the end points, with
    probability ``angle/pi``.  Deeper units, given the layer below, are Gaussian
    processes along the arc whose variance and derivative variance He initialisation
    preserves (``sigma'^2_{l+1} = 2 * fan_in/fan_in * P(active) * sigma'^2_l`` with
    ``P(active) = 1/2``), so by the Kac-Rice formula they switch ``1/pi`` times per
    radian too (mean field, i.e. wide layers).  Summed over neurons: the number of
    breakpoints is proportional to the number of neurons (Hanin & Rolnick 2019), here
    with the constant ``angle/pi``.

    Parameters
    ----------
    n_neurons : int or array of int
        number of ReLU units of the network.
    angle : float or array of float
        angle swept by the segment (radians), :func:`line_angle`.

    Returns
    -------
    ndarray
        the expected number of regions (broadcast over the arguments).

    Example
    -------
    A quarter arc crosses the zero sets of half of the neurons:

    >>> expected_regions([10, 100], np.pi / 2)
    array([ 6., 51.])
    """
    return (
        1.0
        + np.asarray(n_neurons, dtype=np.float64)
        * np.asarray(angle, dtype=np.float64)
        / math.pi
    )


def quarter_arc_line(
    dim: int, seed: int, angle: float = math.pi / 2
) -> tuple[np.ndarray, np.ndarray]:
    """A random segment of ``R^dim`` whose end points have norm ``sqrt(dim)`` and subtend ``angle``.

    ``x0 = sqrt(dim) u``, ``x0 + direction = sqrt(dim) (cos(a) u + sin(a) v)`` for a
    random orthonormal pair ``u, v`` drawn with ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    dim : int
        the input dimension (at least 2).
    seed : int
        seed of the pair ``u, v``.
    angle : float
        ``a``, the angle between the end points (radians).

    Returns
    -------
    x0, direction : ndarray, shape (dim,)
        the segment ``x0 + t*direction``, t in [0, 1].

    Example
    -------
    >>> x0, d = quarter_arc_line(4, seed=0)
    >>> round(float(np.linalg.norm(x0)), 6), round(float(np.linalg.norm(x0 + d)), 6)
    (2.0, 2.0)
    >>> round(line_angle(x0, d) / np.pi, 6)
    0.5
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
    depth, seed=...)`` each crossed by one :func:`quarter_arc_line` of the given
    ``angle``; the regions are counted exactly by :func:`smp.trace.trace_line`.

    Parameters
    ----------
    widths, depths : list of int
        the grid of network shapes.
    in_features : int
        the input dimension.
    n_nets : int
        networks (and segments) per shape.
    angle : float
        angle swept by every segment (radians).
    seed : int
        base seed; network ``i`` of shape ``k`` uses ``seed + 1000 k + i``.
    progress : bool
        show a tqdm bar over the shapes.

    Returns
    -------
    pandas.DataFrame
        width, depth, neurons (width*depth), mean and s.e. of the number of regions
        (``regions``, ``sem``), and the mean-field prediction :func:`expected_regions`
        (``predicted``).

    Example
    -------
    >>> table = region_counts([4], [1, 2], n_nets=3, seed=0)
    >>> table[["neurons", "predicted"]].values.tolist()
    [[4.0, 3.0], [8.0, 5.0]]
    >>> np.round(table.regions.to_numpy(), 2)
    array([3.  , 4.33])
    """
    import pandas as pd

    from ..networks import dense_net

    rows = []
    configs = [(w, L) for L in depths for w in widths]
    for k, (w, L) in enumerate(
        tqdm(configs, disable=not progress, desc="region counts")
    ):
        counts = np.empty(n_nets)
        for i in range(n_nets):
            net_seed = seed + 1000 * k + i
            x0, d = quarter_arc_line(in_features, net_seed, angle)
            counts[i] = trace_line(
                dense_net(in_features, w, L, seed=net_seed), x0, d
            ).n_regions
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


def check_trace(
    model: nn.Module,
    x0: Any,
    direction: Any,
    *,
    n_grid: int = 20_001,
    n_check: int = 10_001,
) -> dict:
    """The tracer on one segment against the brute force and against the network itself.

    Breakpoints of :func:`smp.trace.trace_line` against :func:`brute_force_breakpoints` on a
    grid of ``n_grid`` points (an independent search: the real torch modules, sign changes
    refined by bisection), and the traced piecewise-linear output (:func:`smp.trace.evaluate`)
    against the network run on ``n_check`` points of the segment.

    Parameters
    ----------
    model : torch.nn.Module
        the network (any model :func:`smp.trace.trace_line` accepts).
    x0, direction : array or tensor
        the segment ``x0 + t*direction``, t in [0, 1].
    n_grid : int
        grid of the brute force (its step must be below the spacing of a unit's successive
        zero crossings).
    n_check : int
        points where the traced output is compared with the network.

    Returns
    -------
    dict
        ``breakpoints`` (traced), ``brute_force`` (found by the brute force), ``gap`` (largest
        distance in t between the two sets, :func:`breakpoint_gap`), ``output_error`` (largest
        difference between traced and computed outputs, relative to the outputs' range).

    Example
    -------
    >>> from smp.networks import dense_net
    >>> check = check_trace(dense_net(4, 8, 2, seed=0), *quarter_arc_line(4, seed=0))
    >>> check["breakpoints"] == check["brute_force"], check["gap"] < 1e-9
    (True, True)
    """
    from ..trace import evaluate

    traced = trace_line(model, x0, direction)
    brute = brute_force_breakpoints(model, x0, direction, n_grid=n_grid)
    t, _, y = sample_line(model, x0, direction, n_check)
    return {
        "breakpoints": len(traced.t),
        "brute_force": len(brute),
        "gap": breakpoint_gap(traced.t, brute),
        "output_error": float(np.abs(evaluate(traced, t) - y).max() / np.ptp(y)),
    }


class Benchmark(NamedTuple):
    """Timing (seconds) of :func:`smp.trace.trace_line` (layer-wise) against plain forward passes.

    Attributes
    ----------
    n_events : int
        breakpoints found on the segment.
    trace_seconds : float
        best time of one trace.
    events_per_second : float
        ``n_events / trace_seconds``.
    forward_seconds : float
        best time of ``n_events`` plain forward passes of one sample (same run, same
        threads).
    forwards_per_second : float
        ``n_events / forward_seconds``.
    ratio : float
        ``trace_seconds / forward_seconds``: the tracer's cost in forward passes per
        event (below 1 when a whole segment costs less than one pass per breakpoint).

    Example
    -------
    >>> Benchmark._fields[:3]
    ('n_events', 'trace_seconds', 'events_per_second')
    """

    n_events: int
    trace_seconds: float
    events_per_second: float
    forward_seconds: (
        float  # n_events plain forward passes of one sample, same run, same threads
    )
    forwards_per_second: float
    ratio: float  # trace_seconds / forward_seconds: the tracer's cost in forward passes per event


def benchmark(
    model: nn.Module,
    x0: Any,
    direction: Any,
    *,
    repeats: int = 3,
    threads: int | None = 1,
) -> Benchmark:
    """Time the tracer on one segment and ``n_events`` plain forward passes of one sample.

    Best of ``repeats`` for both (the least disturbed by other processes).  Both use
    ``threads`` torch threads.  The baseline is what a brute-force search would pay at
    minimum: one forward evaluation of the network per breakpoint.

    Parameters
    ----------
    model : torch.nn.Module
        the network (any layers :func:`smp.trace.trace_line` supports).
    x0, direction : array or tensor
        the segment ``x0 + t*direction``, t in [0, 1].
    repeats : int
        timing repeats; the best is kept.
    threads : int or None
        torch intra-op threads; ``None`` keeps the current setting.

    Returns
    -------
    Benchmark
        the event count and the timings.

    Example
    -------
    Timings vary from run to run; the event count does not:

    >>> from smp.networks import dense_net
    >>> from smp.trace import trace_line
    >>> net = dense_net(4, 8, 2, seed=0)
    >>> x0, d = quarter_arc_line(4, seed=0)
    >>> result = benchmark(net, x0, d, repeats=1)
    >>> result.n_events == len(trace_line(net, x0, d).t), result.ratio > 0
    (True, True)
    """
    import time

    net = float64_model(model)
    x = _as_sample("x0", x0).unsqueeze(0)
    with torch_threads(threads):
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
    return Benchmark(
        n,
        best_trace,
        n_eff / best_trace,
        best_fwd,
        n_eff / best_fwd,
        best_trace / best_fwd,
    )


def random_segment(
    shape: tuple[int, ...], seed: int, *, length: float = 2.0, offset: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """A random segment through the neighbourhood of the origin, where most units switch.

    ``d = length * z1`` and ``x0 = offset * z2 - d/2`` with ``z1, z2`` standard normal
    of ``shape`` (``numpy.random.default_rng(seed)``): the segment's midpoint lies at
    ``offset * z2``.

    Parameters
    ----------
    shape : tuple of int
        shape of one input sample.
    seed : int
        seed of ``z1, z2``.
    length : float
        scale of the direction.
    offset : float
        scale of the midpoint's distance from the origin.

    Returns
    -------
    x0, d : ndarray, shape ``shape``
        the segment ``x0 + t*d``, t in [0, 1].

    Example
    -------
    >>> x0, d = random_segment((3, 2), seed=0)
    >>> rng = np.random.default_rng(0)
    >>> z1, z2 = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    >>> bool(np.allclose(d, 2.0 * z1) and np.allclose(x0 + d / 2, 0.3 * z2))
    True
    """
    rng = np.random.default_rng(seed)
    d = length * rng.standard_normal(shape)
    return offset * rng.standard_normal(shape) - d / 2, d


def sampled_errors(
    model: nn.Module,
    segments: list[tuple[Any, Any]],
    n_samples: list[int],
    **smp_options,
) -> tuple[np.ndarray, np.ndarray]:
    """Relative error of the sampled SMP against the traced SMP, for every segment, N and output.

    ``error[i, j, k] = SMP_N[k] / exact[i, k] - 1`` with ``SMP_N`` the :func:`smp.smp`
    of output ``k`` sampled at ``N = n_samples[j]`` points of segment ``i``.  Grids
    nest: the network runs once per segment on the finest grid, and every ``N`` with
    ``(N_max - 1) % (N - 1) == 0`` takes every ``(N_max - 1)/(N - 1)``-th sample of it
    (others are sampled separately).

    Parameters
    ----------
    model : torch.nn.Module
        the network (outputs with no kink give ``nan`` errors: 0/0).
    segments : list of (x0, direction)
        the segments.
    n_samples : list of int
        the grid sizes ``N``.
    **smp_options
        options of :func:`smp.smp` (e.g. ``warn=False`` for grids too coarse on
        purpose).

    Returns
    -------
    exact : ndarray, shape (n_segments, n_outputs)
        the traced SMP (:func:`smp.trace.trace_line`).
    error : ndarray, shape (n_segments, len(n_samples), n_outputs)
        the relative errors.

    Example
    -------
    The sum of the units of a ReLU net: 201 samples miss kinks on one segment (7 %),
    1001 samples resolve both segments to rounding:

    >>> import torch
    >>> from smp.networks import dense_net
    >>> net = torch.nn.Sequential(dense_net(4, 8, 2, seed=0),
    ...                           torch.nn.Linear(8, 1, dtype=torch.float64))
    >>> _ = torch.nn.init.ones_(net[1].weight), torch.nn.init.zeros_(net[1].bias)
    >>> segments = [quarter_arc_line(4, seed=0), random_segment((4,), seed=1)]
    >>> exact, error = sampled_errors(net, segments, [201, 1001, 4001], warn=False)
    >>> np.round(exact[:, 0], 3)
    array([37.393, 36.189])
    >>> np.abs(error[..., 0]).round(3)
    array([[0.067, 0.   , 0.   ],
           [0.   , 0.   , 0.   ]])
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
