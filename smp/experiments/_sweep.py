"""Shared by the sweeps: repeat a seeded run until its standard error is small, summarise ratios."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets


def repeat_until(one_repeat, min_repeats: int, max_repeats: int, target_rel_sem: float, progress: bool, desc: str):
    """Run ``one_repeat(r)`` -> (measured, model, ...) until the s.e. of measured / model is below target."""
    rows = []
    bar = tqdm(total=max_repeats, disable=not progress, desc=desc, leave=False)
    for r in range(max_repeats):
        rows.append(one_repeat(r))
        bar.update()
        if r + 1 >= min_repeats:
            ratio = np.asarray(rows)[:, 0] / np.asarray(rows)[:, 1]
            if ratio.std(ddof=1) / np.sqrt(len(ratio)) < target_rel_sem * ratio.mean():
                break
    bar.close()
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

