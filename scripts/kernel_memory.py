"""Measure each chapter's kernel peak memory (peak resident set size), one notebook at a time.

Usage: python scripts/kernel_memory.py [chapters/06_stacked_blocks.ipynb ...] [--csv out.csv]

Each notebook runs top to bottom in a fresh kernel (nbclient), with the notebook's folder as working
directory, as the book build runs it. After every code cell the kernel process's high-water mark,
``VmHWM`` in ``/proc/<pid>/status`` (the kernel's own peak RSS since it started, so short spikes
inside a cell are counted too), is read. The script prints, per notebook, the peak and the cell in
which the high-water mark last rose (the cell that sets the peak), and optionally writes a CSV.

Binder gives one user 2 GB and 1 CPU, so the kernel runs with one thread (``OMP_NUM_THREADS=1``,
as torch would choose on one CPU); nothing of the notebooks is written back. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def high_water_mark(pid: int) -> int:
    """Peak resident set size of process ``pid`` so far, in bytes (``VmHWM``, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB (KiB)
    raise RuntimeError(f"no VmHWM for pid {pid}")


def measure(path: Path, timeout: int = 600) -> dict:
    """Run one notebook and return its kernel's peak RSS and the cell that set it."""
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    km = KernelManager(kernel_name="python3")
    client = NotebookClient(
        nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    marks: list[tuple[int, int]] = []  # (cell index, VmHWM after it) for code cells

    def after_cell(cell, cell_index, execute_reply):  # nbclient hook
        marks.append((cell_index, high_water_mark(km.provisioner.process.pid)))

    client.on_cell_executed = after_cell
    start = time.perf_counter()
    with client.setup_kernel(env=env, cwd=str(path.parent)):
        pid = km.provisioner.process.pid
        baseline = high_water_mark(pid)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        peak = high_water_mark(pid)
    elapsed = time.perf_counter() - start
    # the cell in which the high-water mark last rose is the one that holds the peak
    previous, peak_cell, rise = baseline, None, 0
    for index, mark in marks:
        if mark > previous:
            peak_cell, rise = index, mark - previous
        previous = mark
    first_line = nb.cells[peak_cell].source.strip().splitlines()[0] if peak_cell is not None else ""
    return {
        "notebook": path.name,
        "peak_mib": peak / MIB,
        "peak_cell": peak_cell,
        "peak_cell_rise_mib": rise / MIB,
        "peak_cell_first_line": first_line[:70],
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    rows = []
    print(f"{'notebook':32s} {'peak MiB':>9s} {'cell':>5s} {'rise MiB':>9s} {'s':>6s}  first line")
    for path in notebooks:  # one at a time: the machine is shared and Binder runs one kernel
        row = measure(path.resolve())
        rows.append(row)
        print(
            f"{row['notebook']:32s} {row['peak_mib']:9.0f} {row['peak_cell']!s:>5s} "
            f"{row['peak_cell_rise_mib']:9.0f} {row['seconds']:6.1f}  {row['peak_cell_first_line']}",
            flush=True,
        )
    if args.csv is not None:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
