"""Shared by the sweeps: the stopping rule on the standard error of ratios, and their summary."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._parallel import run_until_each


def ratio_sem_below(rows: list, target_rel_sem: float) -> bool:
    """Whether the per-repeat ratios ``row[0] / row[1]`` of ``rows`` have a standard error below
    ``target_rel_sem`` times their mean (the stopping rule of the adaptive sweeps)."""
    runs = np.asarray(rows)
    ratio = runs[:, 0] / runs[:, 1]
    return bool(ratio.std(ddof=1) / np.sqrt(len(ratio)) < target_rel_sem * ratio.mean())


def run_until_ratio_sem(
    repeat: Callable[[int, int], Any],
    n_points: int,
    target_rel_sem: float,
    *,
    min_repeats: int,
    max_repeats: int,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
    desc: str,
) -> list:
    """Repeats ``repeat(point, r)`` of every point until :func:`ratio_sem_below` holds for it
    (between ``min_repeats`` and ``max_repeats``), through
    :func:`smp.experiments._parallel.run_until_each`: the rows of each point, in order."""
    return run_until_each(
        repeat,
        lambda _, rows: ratio_sem_below(rows, target_rel_sem),
        range(n_points),
        min_units=min_repeats,
        max_units=max_repeats,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc=desc,
    )


def ratio_summary(measured: np.ndarray, model: np.ndarray, suffix: str = "") -> dict:
    """Per-repeat ratios measured / model: their mean, s.e., the model's relative error and z-score."""
    ratio = measured / model
    mean, sem = ratio.mean(), ratio.std(ddof=1) / np.sqrt(len(ratio))
    return {
        f"ratio{suffix}": mean,
        f"ratio_sem{suffix}": sem,
        f"rel_error{suffix}": 1.0 / mean - 1.0,
        f"z{suffix}": (1.0 - mean) / sem,
    }
