"""Execute chapter notebooks top to bottom and keep only the outputs nbval checks.

Usage: python scripts/store_outputs.py chapters/04_relu.ipynb [more.ipynb ...]

Every cell is executed in a fresh kernel (so stored outputs come from a clean run); then the outputs
of all cells are dropped except those whose source starts with ``# NBVAL_CHECK_OUTPUT``. Execution
counts are kept on the checked cells (nbval needs them) and cleared elsewhere.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "# NBVAL_CHECK_OUTPUT"


def store(path: Path, timeout: int = 600) -> None:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    elapsed = time.perf_counter() - start
    kept = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop(
            "execution", None
        )  # timestamps: they change on every run and carry nothing
        if cell.source.lstrip().startswith(MARK):
            kept += 1
            cell.outputs = [
                o for o in cell.outputs if o.get("output_type") != "display_data"
            ]
        else:
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(
        f"{path}: executed in {elapsed:.1f} s, kept outputs of {kept} checked cell(s)"
    )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python scripts/store_outputs.py NOTEBOOK.ipynb [...]")
    for name in sys.argv[1:]:
        store(Path(name))
