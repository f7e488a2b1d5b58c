"""Measure each chapter's kernel peak memory (peak resident set size), one notebook at a time.

Usage: python scripts/kernel_memory.py [chapters/06_stacked_blocks.ipynb ...] [--csv out.csv]
                                      [--setup FILE]

Each notebook runs top to bottom in a fresh kernel (nbclient), with the notebook's folder as working
directory, as the book build runs it. Two figures of the kernel process (``/proc/<pid>/status``):
``VmHWM``, its peak resident set size (exact, but it includes whatever pages of torch's shared
libraries happen to be resident, which varies from run to run on a shared machine), and the peak of
``RssAnon`` (its own arrays; polled every 5 ms, per cell). The script prints, per notebook, both
peaks and the cell with the highest anonymous peak, and optionally writes a CSV.

``--setup FILE`` runs FILE's code in the kernel before the first cell (e.g. a monkeypatch of an
``smp`` function, to measure a memory fix without editing the package or the notebook).

Binder gives one user 2 GB and 1 CPU, so the kernel runs with one thread (``OMP_NUM_THREADS=1``,
as torch would choose on one CPU); nothing of the notebooks is written back. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def _status(pid: int, field: str) -> int:
    """One ``/proc/<pid>/status`` memory field of process ``pid``, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel reports kB (KiB)
    raise RuntimeError(f"no {field} for pid {pid}")


def high_water_mark(pid: int) -> int:
    """Peak resident set size of process ``pid`` so far, in bytes (``VmHWM``)."""
    return _status(pid, "VmHWM")


class AnonymousPeak:
    """Polls a process's anonymous resident memory (``RssAnon``) every ``interval`` s in a thread.

    ``VmHWM`` also counts the pages of mapped files (torch's shared libraries, some 200-400 MiB)
    that happen to be resident, which depends on the page cache and so varies between identical
    runs by up to 200 MiB on this shared machine; ``RssAnon`` is the memory the notebook's own
    arrays take, and it repeats. Polling can miss a spike shorter than ``interval``.
    """

    def __init__(self, pid: int, interval: float = 0.005):
        self.pid, self.interval = pid, interval
        self.peak = self.cell_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                anon = _status(self.pid, "RssAnon")
            except (OSError, RuntimeError):  # the kernel is shutting down
                return
            self.peak, self.cell_peak = max(self.peak, anon), max(self.cell_peak, anon)
            time.sleep(self.interval)

    def __enter__(self) -> "AnonymousPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure(path: Path, timeout: int = 600, setup: str | None = None) -> dict:
    """Run one notebook; return its kernel's peak memory and the cell that set it."""
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    km = KernelManager(kernel_name="python3")
    client = NotebookClient(
        nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    cell_peaks: list[tuple[int, int]] = []  # (cell index, peak RssAnon during it)
    start = time.perf_counter()
    with client.setup_kernel(env=env, cwd=str(path.parent)):
        pid = km.provisioner.process.pid
        if setup:
            # nbclient addresses cells by their index in client.nb, so the setup runs as a real first
            # cell, taken out again before the notebook's own cells run
            nb.cells.insert(0, nbformat.v4.new_code_cell(setup))
            client.execute_cell(nb.cells[0], 0)
            del nb.cells[0]
        with AnonymousPeak(pid) as poller:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                poller.cell_peak = 0
                client.execute_cell(cell, index)
                time.sleep(
                    2 * poller.interval
                )  # let the poller see the cell's last state
                cell_peaks.append((index, poller.cell_peak))
        hwm = high_water_mark(pid)
    elapsed = time.perf_counter() - start
    peak_cell, anon_peak = max(cell_peaks, key=lambda pair: pair[1])
    return {
        "notebook": path.name,
        "vmhwm_mib": hwm / MIB,
        "anon_peak_mib": anon_peak / MIB,
        "peak_cell": peak_cell,
        "peak_cell_first_line": nb.cells[peak_cell].source.strip().splitlines()[0][:60],
        "seconds": elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument(
        "--csv", type=Path, default=None, help="also write the table here"
    )
    parser.add_argument(
        "--setup", type=Path, default=None, help="code to run before the notebook"
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    rows = []
    print(
        f"{'notebook':26s} {'VmHWM MiB':>9s} {'anon MiB':>9s} {'cell':>5s} {'s':>6s}  cell's first line"
    )
    for (
        path
    ) in notebooks:  # one at a time: the machine is shared and Binder runs one kernel
        setup = args.setup.read_text() if args.setup else None
        row = measure(path.resolve(), setup=setup)
        rows.append(row)
        print(
            f"{row['notebook']:26s} {row['vmhwm_mib']:9.0f} {row['anon_peak_mib']:9.0f} "
            f"{row['peak_cell']:5d} {row['seconds']:6.1f}  {row['peak_cell_first_line']}",
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
