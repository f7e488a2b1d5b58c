"""Speed and memory of smp.smp against the bare second difference, measured in the same run.

Usage: python benchmarks/feature_speed.py [--rows 1000] [--cols 10000] [--repeat 5]

Times ``smp.smp`` of a (rows, cols) array (a random walk: every sample is rough, so the detector's
full work is done, including every warning check) against ``np.diff(y, n=2, axis=-1)`` of the same
array, each the best of ``--repeat`` runs, for float64 and float32 input, and prints the ratios.
Goal (issue 12): ratio <= 4 for both dtypes, float32 no slower than float64, peak extra memory
(tracemalloc, numpy allocations) at most 3 arrays the size of the input.  Before issue 12 the
float64 ratio was 5.9-6.2.  Timings are noisy on a shared machine: compare ratios from one run;
the CPU ratio (process time, best of ``--repeat``) is steadier under load than the wall ratio.

Each row's ratio divides by ``np.diff`` of the same dtype: float32's baseline reads half the
bytes, so its ratio is the stricter one.  The last column divides by the float64 ``np.diff``
(the issue's baseline for both dtypes), and the last line compares the two dtypes' ``smp.smp``
times directly.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np

import smp


def best_time(fn, repeat: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def peak_memory(fn) -> int:
    """Peak bytes allocated (through numpy's traced allocator) while ``fn`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cols", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    walk = (
        np.random.default_rng(0).standard_normal((args.rows, args.cols)).cumsum(axis=-1)
    )
    print(f"array: {args.rows} x {args.cols}, best of {args.repeat}")
    print(
        f"{'dtype':8s} {'np.diff ms':>11s} {'smp.smp ms':>11s} {'ratio':>6s} "
        f"{'CPU ratio':>9s} {'peak extra':>11s} {'vs f64 diff':>11s}"
    )
    smp_time, diff_time = {}, {}
    for dtype in (np.float64, np.float32):
        y = walk.astype(dtype)
        baseline = best_time(lambda: np.diff(y, n=2, axis=-1), args.repeat)
        # CPU time of this process as well: on a loaded machine, wall time counts the
        # time the process waited for a core
        baseline_cpu = best_time(
            lambda: np.diff(y, n=2, axis=-1), args.repeat, time.process_time
        )
        with warnings.catch_warnings():
            # a random walk is all noise, on purpose
            warnings.simplefilter("ignore", smp.SMPWarning)
            feature = best_time(lambda: smp.smp(y), args.repeat)
            feature_cpu = best_time(lambda: smp.smp(y), args.repeat, time.process_time)
            memory = peak_memory(lambda: smp.smp(y))
        smp_time[dtype], diff_time[dtype] = feature, baseline
        print(
            f"{np.dtype(dtype).name:8s} {baseline * 1e3:11.1f} {feature * 1e3:11.1f} "
            f"{feature / baseline:6.2f} {feature_cpu / baseline_cpu:9.2f} "
            f"{memory / y.nbytes:8.2f} x input {feature / diff_time[np.float64]:11.2f}"
        )
    print(
        f"smp.smp float32 / float64 time: {smp_time[np.float32] / smp_time[np.float64]:.2f}"
    )
    print(
        "goal: ratio <= 4 for both dtypes, float32 / float64 <= 1, peak extra <= 3 x input"
    )


if __name__ == "__main__":
    main()
