"""Speed of smp.smp against the bare second difference, measured in the same run.

Usage: python benchmarks/feature_speed.py [--rows 1000] [--cols 10000] [--repeat 5]

Times ``smp.smp`` of a (rows, cols) float64 array (a random walk: every sample is rough, so the
detector's full work is done, including the roughness warning check) against
``np.diff(y, n=2, axis=-1)`` of the same array, each the best of ``--repeat`` runs, and prints the
ratio.  Goal (issue 2): ratio <= 10; a per-sample rolling median over 21 samples measured 42.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import smp


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cols", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    y = np.random.default_rng(0).standard_normal((args.rows, args.cols)).cumsum(axis=-1)
    baseline = best_time(lambda: np.diff(y, n=2, axis=-1), args.repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smp.DenseKinksWarning)  # a random walk is all noise, on purpose
        feature = best_time(lambda: smp.smp(y), args.repeat)
    print(f"array: {args.rows} x {args.cols} float64, best of {args.repeat}")
    print(f"np.diff(y, n=2): {baseline * 1e3:8.1f} ms")
    print(f"smp.smp(y):      {feature * 1e3:8.1f} ms")
    print(f"ratio:           {feature / baseline:8.2f}   (goal <= 10)")


if __name__ == "__main__":
    main()
