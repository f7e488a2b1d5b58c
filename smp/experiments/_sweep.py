"""Shared by the sweeps: stop a seeded run when its standard error is small, summarise ratios."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._parallel import run_until


def ratio_sem_below(rows: list, target_rel_sem: float) -> bool:
    """Whether the per-repeat ratios ``row[0] / row[1]`` of ``rows`` have a standard error below
    ``target_rel_sem`` times their mean (the stopping rule of :func:`repeat_until`)."""
    runs = np.asarray(rows)
    ratio = runs[:, 0] / runs[:, 1]
    return bool(ratio.std(ddof=1) / np.sqrt(len(ratio)) < target_rel_sem * ratio.mean())


def repeat_until(
    one_repeat: Callable[[int], Any],
    min_repeats: int,
    max_repeats: int,
    target_rel_sem: float,
    progress: bool,
    desc: str,
    *,
    workers: int | None = 1,
    scheduler: str | None = None,
) -> np.ndarray:
    """Run ``one_repeat(r)`` -> (measured, model, ...) until the s.e. of measured / model is below
    target (at least ``min_repeats``, at most ``max_repeats``); the rows as an array.

    The repeats run through :func:`smp.experiments._parallel.run_until`: the stopping point is
    the one a serial loop finds, for any ``workers``.
    """
    rows = run_until(
        one_repeat,
        lambda rows: ratio_sem_below(rows, target_rel_sem),
        min_units=min_repeats,
        max_units=max_repeats,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc=desc,
    )
    return np.asarray(rows)


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
