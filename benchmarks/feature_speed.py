"""Speed and memory of smp.smp against the bare second difference, measured in the same run.

Usage: python benchmarks/feature_speed.py [--rows 1000] [--cols 10000] [--repeat 5]

Times ``smp.smp`` of a (rows, cols) array (a random walk: every sample is rough, so the detector's
full work is done, including every warning check) against ``np.diff(y, n=2, axis=-1)`` of the same
array, each the best of ``--repeat`` runs (the four functions interleaved in every repeat), for
float64 and float32 input, and prints the ratios.
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


def best_times(functions: dict, repeat: int) -> dict:
    """Best wall and CPU time of each function, the functions interleaved in every repeat.

    Interleaving gives each function the same share of a loaded machine's quiet and busy
    moments, so the ratios between them (float32 against float64 above all) are not biased by
    the load drifting between one function's repeats and the next's.
    """
    wall = {key: [] for key in functions}
    cpu = {key: [] for key in functions}
    for _ in range(repeat):
        for key, fn in functions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[key].append(time.process_time() - start_cpu)
            wall[key].append(time.perf_counter() - start_wall)
    return {key: (min(wall[key]), min(cpu[key])) for key in functions}


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
    print(f"array: {args.rows} x {args.cols}, best of {args.repeat} (interleaved)")
    arrays = {dtype: walk.astype(dtype) for dtype in ("float64", "float32")}
    functions = {}
    for dtype, y in arrays.items():
        functions[("diff", dtype)] = lambda y=y: np.diff(y, n=2, axis=-1)
        functions[("smp", dtype)] = lambda y=y: smp.smp(y)
    with warnings.catch_warnings():
        # a random walk is all noise, on purpose
        warnings.simplefilter("ignore", smp.SMPWarning)
        best = best_times(functions, args.repeat)
        memory = {
            dtype: peak_memory(lambda y=y: smp.smp(y)) for dtype, y in arrays.items()
        }
    print(
        f"{'dtype':8s} {'np.diff ms':>11s} {'smp.smp ms':>11s} {'ratio':>6s} "
        f"{'CPU ratio':>9s} {'peak extra':>11s} {'vs f64 diff':>11s} {'CPU':>6s}"
    )
    f64_diff = best[("diff", "float64")]
    for dtype, y in arrays.items():
        (diff_wall, diff_cpu), (smp_wall, smp_cpu) = (
            best[("diff", dtype)],
            best[("smp", dtype)],
        )
        print(
            f"{dtype:8s} {diff_wall * 1e3:11.1f} {smp_wall * 1e3:11.1f} "
            f"{smp_wall / diff_wall:6.2f} {smp_cpu / diff_cpu:9.2f} "
            f"{memory[dtype] / y.nbytes:8.2f} x input {smp_wall / f64_diff[0]:11.2f} "
            f"{smp_cpu / f64_diff[1]:6.2f}"
        )
    dtype_ratio = [
        best[("smp", "float32")][k] / best[("smp", "float64")][k] for k in (0, 1)
    ]
    print(
        f"smp.smp float32 / float64 time: {dtype_ratio[0]:.2f} (CPU {dtype_ratio[1]:.2f})"
    )
    worst = max(best[("smp", d)][1] / f64_diff[1] for d in arrays)
    extra = max(memory[d] / y.nbytes for d, y in arrays.items())
    print(
        "issue 12 goal, against the float64 np.diff (the issue's baseline), CPU time: "
        f"ratio <= 4 for both dtypes ({worst:.2f}: {'met' if worst <= 4 else 'missed'}), "
        f"float32 / float64 <= 1 ({dtype_ratio[1]:.2f}), peak extra <= 3 x input "
        f"({extra:.2f}: {'met' if extra <= 3 else 'missed'})"
    )


if __name__ == "__main__":
    main()
