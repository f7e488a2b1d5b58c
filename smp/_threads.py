"""Torch thread count for a block of work: the tracer's speed options and the experiments'
training units (float32 training sums in an order that depends on the thread count)."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads (``None``: unchanged), then restore.

    Example
    -------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    saved = torch.get_num_threads()
    if threads is not None:
        if not isinstance(threads, numbers.Integral) or threads < 1:
            raise ValueError(
                f"threads must be a positive integer or None, got {threads!r}"
            )
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)
