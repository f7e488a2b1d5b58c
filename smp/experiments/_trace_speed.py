"""The tracer's speed table (chapter 9): re-exported by :mod:`smp.experiments.tracer`.

Two comparisons, each measured in one run with the contestants interleaved:

* the layer-wise tracer (:func:`smp.trace.trace_lines`, float64, slopes, jumps and exact SMP
  included) against regioncam (PyPI ``regioncam``, Rust, float32, ``Regioncam1D``) on three random
  He-initialised ReLU MLPs with one linear output, ``n_lines`` random segments each: breakpoints
  per second, and the segments whose breakpoint counts differ;
* the layer-wise tracer on ``n_lines`` segments in one call against the event walker
  (:func:`smp.trace.trace_line_walk`, one forward pass per breakpoint) on the chapter's CNN, and
  against the layer-wise engine run one segment per call on a small residual network (which the
  walker cannot trace): events per second.

Timings are CPU seconds of this process (``time.process_time``), best of ``repeats`` rounds after a
warm-up call each: on a shared, loaded machine the wall time of single-threaded work mostly
measures the wait for a core.  The load average and core count at the start are stored with the
table.
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import networks
from .._threads import torch_threads
from ..trace import trace_line, trace_line_walk, trace_lines

#: the three MLPs of the regioncam comparison: (inputs, width, hidden layers)
SPEED_MLPS = ((784, 64, 3), (100, 32, 6), (784, 256, 3))


def speed_mlp(n_in: int, width: int, depth: int, seed: int = 0) -> nn.Sequential:
    """A bias-free He-initialised ReLU MLP with one linear output, float32 (regioncam's dtype).

    Example
    -------
    >>> speed_mlp(10, 4, 2)(torch.zeros(3, 10)).shape
    torch.Size([3, 1])
    """
    body = networks.dense_net(n_in, width, depth, seed=seed)
    head = networks.dense_net(width, 1, 1, seed=seed + 1)[0]
    return nn.Sequential(body, head).eval().to(torch.float32)


def best_times(fns: list[Callable], repeats: int) -> tuple[list[float], list]:
    """Best CPU seconds of each function over ``repeats`` interleaved rounds, and its last result.

    Every function runs once before timing (warm-up); the rounds alternate the functions, so all
    see the same load.

    Example
    -------
    >>> best, results = best_times([lambda: 1, lambda: 2], repeats=2)
    >>> results, all(b >= 0 for b in best)
    ([1, 2], True)
    """
    results = [fn() for fn in fns]
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.process_time()
            results[i] = fn()
            best[i] = min(best[i], time.process_time() - start)
    return best, results


def regioncam_counts(model: nn.Module, x0: np.ndarray, d: np.ndarray) -> list[int]:
    """Breakpoints of every segment ``x0[i] + t d[i]`` by regioncam: vertices minus the two ends.

    ``model``: ``Linear`` and ``ReLU`` layers (float32); regioncam maps ``t in [0, 1]`` to the
    segment with one linear layer (weight ``d``, bias ``x0``), then runs the network's layers.
    """
    import regioncam

    layers = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            weight = np.ascontiguousarray(m.weight.detach().numpy().T)  # (in, out)
            bias = np.zeros(weight.shape[1], np.float32)
            if m.bias is not None:
                bias = np.ascontiguousarray(m.bias.detach().numpy())
            layers.append((weight, bias))
        elif isinstance(m, nn.ReLU):
            layers.append(None)
    counts = []
    for i in range(len(x0)):
        rc = regioncam.Regioncam1D((0.0, 1.0))
        rc.linear(d[i][None, :], x0[i])
        for layer in layers:
            if layer is None:
                rc.relu()
            else:
                rc.linear(*layer)
        counts.append(rc.num_vertices - 2)
    return counts


def _segments(shape: tuple[int, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    from .tracer import random_segment

    pairs = [random_segment(shape, seed) for seed in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _regioncam_rows(n_lines: int, repeats: int, threads: int) -> list[dict]:
    try:
        import regioncam  # noqa: F401
    except ImportError:
        regioncam = None
    rows = []
    for n_in, width, depth in SPEED_MLPS:
        net = speed_mlp(n_in, width, depth)
        x0, d = (a.astype(np.float32) for a in _segments((n_in,), n_lines))
        x0_64, d_64 = x0.astype(np.float64), d.astype(np.float64)  # the same segments

        def ours(net=net, x0=x0_64, d=d_64):
            return trace_lines(net, x0, d, threads=threads)

        fns = (
            [ours]
            if regioncam is None
            else [ours, lambda: regioncam_counts(net, x0, d)]
        )
        best, results = best_times(fns, repeats)
        counts = [len(tr.t) for tr in results[0]]
        row = {
            "network": f"MLP {n_in}-{width}x{depth}-1",
            "reference": "regioncam",
            "lines": n_lines,
            "events": sum(counts),
            "events_per_s": sum(counts) / best[0],
            "reference_events": math.nan,
            "reference_per_s": math.nan,
            "lines_differ": math.nan,
        }
        if regioncam is not None:
            theirs = results[1]
            row["reference_events"] = sum(theirs)
            row["reference_per_s"] = sum(theirs) / best[1]
            row["lines_differ"] = sum(a != b for a, b in zip(counts, theirs))
        rows.append(row)
    return rows


def _walker_rows(
    n_lines: int, walk_lines: int, repeats: int, threads: int
) -> list[dict]:
    cases = [
        (
            "CNN 1x8x8",
            networks.conv_net((1, 4, 8), input_size=8, head=3, seed=0),
            trace_line_walk,
            "event walker",
        ),
        (
            "ResNet 1x8x8",
            networks.res_net((4, 8), seed=0),
            trace_line,
            "one line per call",
        ),
    ]
    rows = []
    for name, net, baseline, base_name in cases:
        x0, d = _segments((1, 8, 8), n_lines)

        def ours(net=net):
            return trace_lines(net, x0, d, threads=threads)

        def base(net=net, baseline=baseline):
            return [
                baseline(net, x0[i], d[i], threads=threads) for i in range(walk_lines)
            ]

        (t_ours, t_base), (traces, reference) = best_times([ours, base], repeats)
        # lines whose breakpoints differ (count, or position by 1e-9 in t) from the reference
        differ = sum(
            len(a.t) != len(b.t) or np.abs(a.t - b.t).max(initial=0) >= 1e-9
            for a, b in zip(traces, reference)
        )
        n_ours, n_base = (
            sum(len(tr.t) for tr in traces),
            sum(len(tr.t) for tr in reference),
        )
        rows.append(
            {
                "network": name,
                "reference": base_name,
                "lines": n_lines,
                "events": n_ours,
                "events_per_s": n_ours / t_ours,
                "reference_events": n_base,
                "reference_per_s": n_base / t_base,
                "lines_differ": differ,
            }
        )
    return rows


def speed_table(
    *, n_lines: int = 50, walk_lines: int = 5, repeats: int = 7, threads: int = 1
):
    """The layer-wise tracer's events per second against regioncam and against the walker.

    See the module docstring.  ``walk_lines`` of the ``n_lines`` segments go to the slow
    baselines of the CNN and the ResNet.  Without regioncam installed its columns are NaN.

    Parameters
    ----------
    n_lines : int
        segments per network (``random_segment`` seeds ``0 .. n_lines-1``).
    walk_lines : int
        segments for the walker / one-line-per-call baselines (at most ``n_lines``).
    repeats : int
        timing rounds; the best is kept.
    threads : int
        torch threads, for the whole process while timing (an idle pool of more threads
        spins and is charged to the CPU time).

    Returns
    -------
    pandas.DataFrame
        one row per network: ``network``, ``reference`` (what smp is compared with), ``lines``,
        ``events`` (breakpoints found by smp on all lines), ``events_per_s``,
        ``reference_events`` (on the lines the reference traced), ``reference_per_s``,
        ``ratio`` (``events_per_s / reference_per_s``), ``lines_differ`` (lines whose
        breakpoints differ), and the machine: ``load_average`` (1 min, at the start),
        ``cpus``, ``threads``, ``repeats``.

    Example
    -------
    >>> table = speed_table(n_lines=2, walk_lines=1, repeats=1)  # doctest: +SKIP
    >>> table.lines_differ.sum()  # doctest: +SKIP
    0
    """
    import pandas as pd

    walk_lines = min(walk_lines, n_lines)
    load = os.getloadavg()[0]
    with torch_threads(threads):
        rows = _regioncam_rows(n_lines, repeats, threads)
        rows += _walker_rows(n_lines, walk_lines, repeats, threads)
    table = pd.DataFrame(rows)
    table["ratio"] = table["events_per_s"] / table["reference_per_s"]
    table["load_average"] = load
    table["cpus"] = os.cpu_count()
    table["threads"] = threads
    table["repeats"] = repeats
    return table


def write_tables(*, progress: bool = False, directory=None) -> list:
    """Run :func:`speed_table` with the published settings and store it as ``trace_speed``.

    Parameters
    ----------
    progress : bool
        unused (the runs are short); kept for the common ``write_tables`` signature.
    directory : path, optional
        the data directory; default :func:`smp.data.data_dir`.

    Returns
    -------
    list of pathlib.Path
        the files written.
    """
    from .. import data

    return data.write_many({"trace_speed": speed_table()}, directory=directory)
