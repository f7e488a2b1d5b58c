"""Small helpers shared by the closed-form models (argument checks live in :mod:`smp._validation`)."""

from __future__ import annotations

import numpy as np

SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def to_output(x: np.ndarray):
    """A 0-d result as a Python float, anything else unchanged."""
    return float(x) if np.ndim(x) == 0 else x


def phi(z: np.ndarray) -> np.ndarray:
    """The standard normal density."""
    return np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
