"""Speed of the exact tracer: the layer-wise engine against regioncam and against the event walker.

Part 1, regioncam side by side (PyPI ``regioncam`` 0.5.2, Rust, float32, ``Regioncam1D``), three
random He-initialised ReLU MLPs with one linear output, 50 random segments each
(``smp.experiments.tracer.random_segment``, seeds 0..49): 784-64-64-64-1, 100-32x6-1, 784-256-256-256-1.  Both
tools get the same float32 weights and the same float32-rounded segments; regioncam maps
``t in [0, 1]`` to the segment with one linear layer (weight ``d``, bias ``x0``) and then runs the
network's layers (weights handed over as float32 arrays once, outside the timing); smp traces all 50
segments in one ``trace_lines`` call, in float64, slopes, jumps and exact SMP included.  Breakpoints
counted by both, per segment; breakpoints per second and the ratio smp / regioncam.

Part 2, events per second against the event walker (``trace_line_walk``, one forward pass per
breakpoint) on the chapter-9 CNN (``networks.conv_net((1, 4, 8), input_size=8, head=3)``) and on a
small ResNet (stem Conv-BN-ReLU-MaxPool, a basic block, a strided block with a 1x1 projection
shortcut, global average pooling, linear head), which the walker cannot trace: there the baseline
is the layer-wise engine run one segment at a time.

Timings: CPU time of this process (``time.process_time``), best of ``--repeats`` rounds in which
the two contestants alternate, after one warm-up call each; ``--threads`` torch threads for smp
(default 1; regioncam is single-threaded).  On a shared, loaded machine CPU time is the fair
measure of single-threaded work (wall time mostly measures the wait for a core).

Usage: python benchmarks/trace_speed.py [--repeats 5] [--lines 50] [--walk-lines 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from smp import networks
from smp.experiments._trace_speed import best_times, regioncam_counts
from smp.experiments._trace_speed import speed_mlp as mlp
from smp.experiments.tracer import random_segment
from smp.trace import trace_line, trace_line_walk, trace_lines

F64 = torch.float64


def part_regioncam(n_lines: int, repeats: int, threads: int) -> None:
    try:
        import regioncam
    except ImportError:
        print("regioncam is not installed (pip install regioncam): part 1 skipped")
        return
    print(
        f"Part 1: regioncam {regioncam.__version__ if hasattr(regioncam, '__version__') else ''} (Rust, float32, 1 thread) "
        f"vs smp.trace_lines (float64, {threads} torch thread(s)), {n_lines} segments each, CPU seconds"
    )
    header = f"{'MLP':20s} {'breakpoints rc':>14s} {'smp':>8s} {'differ':>6s} {'rc bp/s':>10s} {'smp bp/s':>10s} {'smp/rc':>7s}"
    print(header)
    print("-" * len(header))
    for n_in, width, depth in [(784, 64, 3), (100, 32, 6), (784, 256, 3)]:
        net = mlp(n_in, width, depth)
        segments = [random_segment((n_in,), seed) for seed in range(n_lines)]
        x0 = np.stack([s[0] for s in segments]).astype(np.float32)
        d = np.stack([s[1] for s in segments]).astype(np.float32)
        x0_64, d_64 = x0.astype(np.float64), d.astype(np.float64)  # the same segments
        (t_rc, t_smp), (counts_rc, traces) = best_times(
            [
                lambda net=net, x0=x0, d=d: regioncam_counts(net, x0, d),
                lambda net=net, x0=x0_64, d=d_64: trace_lines(
                    net, x0, d, threads=threads
                ),
            ],
            repeats,
        )
        counts_smp = [len(tr.t) for tr in traces]
        differ = sum(a != b for a, b in zip(counts_rc, counts_smp))
        name = f"{n_in}-{width}x{depth}-1"
        n_rc, n_smp = sum(counts_rc), sum(counts_smp)
        print(
            f"{name:20s} {n_rc:14d} {n_smp:8d} {differ:6d} {n_rc / t_rc:10.0f} {n_smp / t_smp:10.0f} "
            f"{(n_smp / t_smp) / (n_rc / t_rc):7.2f}"
        )
    print(
        "differ = segments whose breakpoint counts differ; smp/rc = ratio of breakpoints per second"
    )


def part_walker(n_lines: int, n_walk: int, repeats: int, threads: int) -> None:
    print()
    print(
        f"Part 2: events/s, layer-wise ({n_lines} segments in one call, {threads} thread(s)) vs the walker / one segment at a time ({n_walk} segments)"
    )
    header = f"{'network':28s} {'events':>7s} {'layer-wise ev/s':>15s} {'baseline':>22s} {'ev/s':>9s} {'speed-up':>8s}"
    print(header)
    print("-" * len(header))
    cases = [
        (
            "chapter-9 CNN (1x8x8)",
            networks.conv_net((1, 4, 8), input_size=8, head=3, seed=0),
            (1, 8, 8),
            trace_line_walk,
            "event walker",
        ),
        (
            "small ResNet (1x8x8)",
            networks.res_net((4, 8), seed=0),
            (1, 8, 8),
            trace_line,
            "layer-wise, 1 segment/call",
        ),
    ]
    for name, net, shape, baseline, base_name in cases:
        segments = [random_segment(shape, seed) for seed in range(n_lines)]
        x0 = np.stack([s[0] for s in segments])
        d = np.stack([s[1] for s in segments])
        (t_all, t_base), (traces, base) = best_times(
            [
                lambda net=net, x0=x0, d=d: trace_lines(net, x0, d, threads=threads),
                lambda net=net, segments=segments, baseline=baseline: [
                    baseline(net, *segments[i], threads=threads) for i in range(n_walk)
                ],
            ],
            repeats,
        )
        n_all = sum(len(tr.t) for tr in traces)
        n_base = sum(len(tr.t) for tr in base)
        # the same breakpoints on the segments both traced
        assert all(
            len(a.t) == len(b.t) and np.abs(a.t - b.t).max(initial=0) < 1e-9
            for a, b in zip(traces, base)
        ), name
        rate, base_rate = n_all / t_all, n_base / t_base
        print(
            f"{name:28s} {n_all:7d} {rate:15.0f} {base_name:>22s} {base_rate:9.0f} {rate / base_rate:8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument(
        "--walk-lines",
        type=int,
        default=5,
        help="segments for the (slow) walker baseline",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    # the whole process at the thread count smp uses: an idle OpenMP pool of more threads spins
    # and would be charged to the CPU time measured here
    torch.set_num_threads(args.threads)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; torch {torch.__version__}"
    )
    part_regioncam(args.lines, args.repeats, args.threads)
    part_walker(args.lines, args.walk_lines, args.repeats, args.threads)


if __name__ == "__main__":
    main()
