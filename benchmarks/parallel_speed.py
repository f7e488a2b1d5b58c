"""Speed-up of the seeded sweeps with 2 local workers against 1, measured in the same run.

Usage: python benchmarks/parallel_speed.py [--paths 120] [--repeat 2]

Runs a reduced chapter-5 max-pool sweep (fixed units: 180 batches of 10 paths) and a reduced
chapter-4 ReLU great-circle sweep (8 units, one per mean: an even count, so neither worker idles
at the end), each with ``workers=1`` and ``workers=2``, checks that the tables are
identical, and prints the wall times and the ratio (best of ``--repeat``).  Goal (issue 18):
a speed-up of at least 1.8x on this 2-core machine.  The ratio is only meaningful on an idle
machine: another process on either core takes its share from the 2-worker run.
Measured on an idle machine (load 0.4-1.1, 2026-11-27): max pool 12.03 s / 6.24 s = 1.93x,
great circle 36.09 s / 17.97 s = 2.01x, identical tables.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from smp.experiments import maxpool, relu


def best_wall(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sweeps = {
        "maxpool_sweep": lambda workers: maxpool.maxpool_sweep(
            ((2, 0.0), (4, 0.6), (9, 0.0)),
            n_paths=args.paths,
            batch_paths=10,
            seed=1,
            workers=workers,
        ),
        "relu_great_circle": lambda workers: relu.relu_great_circle(
            (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
            units=4000,
            n_samples=16384,
            workers=workers,
        ),
    }
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{'sweep':20s} {'1 worker s':>11s} {'2 workers s':>12s} {'speed-up':>9s} same bits"
    )
    for name, sweep in sweeps.items():
        serial, table_1 = best_wall(lambda: sweep(1), args.repeat)
        parallel, table_2 = best_wall(lambda: sweep(2), args.repeat)
        same = table_1.equals(table_2) if isinstance(table_1, pd.DataFrame) else None
        print(
            f"{name:20s} {serial:11.2f} {parallel:12.2f} {serial / parallel:9.2f} {same}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
