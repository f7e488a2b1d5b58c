"""Shared by the sweeps: the stopping rule on the standard error of ratios, and their summary."""

from __future__ import annotations

import numpy as np


def ratio_sem_below(rows: list, target_rel_sem: float) -> bool:
    """Whether the per-repeat ratios ``row[0] / row[1]`` of ``rows`` have a standard error below
    ``target_rel_sem`` times their mean (the stopping rule of the adaptive sweeps)."""
    runs = np.asarray(rows)
    ratio = runs[:, 0] / runs[:, 1]
    return bool(ratio.std(ddof=1) / np.sqrt(len(ratio)) < target_rel_sem * ratio.mean())


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
