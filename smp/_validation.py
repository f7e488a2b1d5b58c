"""Argument checks shared by the whole package: the same bad input raises the same exception.

A value of the wrong *type* (a string, a bool, 1.5 where an integer is needed) raises ``TypeError``;
a value of the right type outside its range (0 samples, a negative std, NaN) raises ``ValueError``.
Every message names the argument and what was expected.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["check_int", "check_real", "check_array", "check_choice", "pool_windows", "pool_window_indices"]


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` >= ``minimum``; ``TypeError`` if it is not an integer.

    Example
    -------
    >>> check_int("n_samples", 5)
    5
    >>> check_int("n_samples", 0)
    Traceback (most recent call last):
    ...
    ValueError: n_samples must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(
    name: str, value: Any, *, minimum: float | None = None, strict: bool = True, maximum: float | None = None
) -> float:
    """``value`` as a finite ``float``, above ``minimum`` (``>`` if ``strict`` else ``>=``) and below
    ``maximum`` (``<``) where given; ``TypeError`` if it is not a real number.

    Example
    -------
    >>> check_real("weight_std", 0.5, minimum=0)
    0.5
    >>> check_real("weight_std", -1.0, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: weight_std must be a finite number > 0, got -1.0
    """
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    bound += "" if maximum is None else f"{' and' if bound else ''} < {maximum:g}"
    expected = f"{name} must be a finite number{bound}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{expected}, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{expected}, got {value!r}")
    if minimum is not None and not (value > minimum if strict else value >= minimum):
        raise ValueError(f"{expected}, got {value!r}")
    if maximum is not None and not value < maximum:
        raise ValueError(f"{expected}, got {value!r}")
    return value


def check_array(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False) -> np.ndarray:
    """``value`` (a number or array-like) as a finite float64 array; optionally all > 0 or all >= 0.

    Example
    -------
    >>> check_array("std", [1.0, 2.0], positive=True)
    array([1., 2.])
    """
    if isinstance(value, (str, bytes, bool)):
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


def check_choice(name: str, value: Any, options: Any) -> Any:
    """``options[value]`` for a mapping (or ``value`` for a sequence); ``ValueError`` listing the options.

    Example
    -------
    >>> check_choice("layout", "slots", ("slots", "uniform"))
    'slots'
    """
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return options[value] if isinstance(options, dict) else value


def pool_window_indices(shape: tuple[int, int], pool: int) -> np.ndarray:
    """``(n_windows, pool*pool)`` flat indices of the non-overlapping ``pool x pool`` windows of an
    ``(H, W)`` map, in ``nn.MaxPool2d(pool)`` order (floor mode: a ragged edge is dropped).

    Example
    -------
    >>> pool_window_indices((2, 4), 2)
    array([[0, 1, 4, 5],
           [2, 3, 6, 7]])
    """
    h, w = shape
    ho, wo = h // pool, w // pool
    if ho < 1 or wo < 1:
        raise ValueError(f"the map {shape} is smaller than the pooling window {pool}")
    i0, j0 = np.meshgrid(np.arange(ho) * pool, np.arange(wo) * pool, indexing="ij")
    di, dj = np.meshgrid(np.arange(pool), np.arange(pool), indexing="ij")
    rows = i0.ravel()[:, None] + di.ravel()[None]
    cols = j0.ravel()[:, None] + dj.ravel()[None]
    return (rows * w + cols).astype(int)


def pool_windows(maps: np.ndarray, pool: int) -> np.ndarray:
    """``(..., H, W) -> (..., H//pool * W//pool, pool*pool)``: the values in each pooling window of
    :func:`pool_window_indices`.

    Example
    -------
    >>> pool_windows(np.arange(8.0).reshape(2, 4), 2)
    array([[0., 1., 4., 5.],
           [2., 3., 6., 7.]])
    """
    *lead, h, w = maps.shape
    return maps.reshape(*lead, h * w)[..., pool_window_indices((h, w), pool)]
