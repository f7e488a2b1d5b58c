"""Argument checks and small helpers shared by the closed-form models."""

from __future__ import annotations

import numpy as np

SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def as_array(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> np.ndarray:
    if isinstance(value, (str, bytes)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number or array, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a real number or array, got {value!r}") from err
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not (arr > 0).all():
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not (arr >= 0).all():
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return arr


def to_output(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


def phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
