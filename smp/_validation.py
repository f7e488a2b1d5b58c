"""Argument checks shared by the whole package: the same bad input raises the same exception.

A value of the wrong *type* (a string, a bool, 1.5 where an integer is needed) raises ``TypeError``;
a value of the right type outside its range (0 samples, a negative std, NaN) raises ``ValueError``.
Every message names the argument and what was expected.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

try:  # torch is a dependency, but the checks of signals need only numpy
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = [
    "check_int",
    "check_real",
    "check_array",
    "check_choice",
    "pool_windows",
    "pool_window_indices",
]


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` >= ``minimum``; ``TypeError`` if it is not an integer.

    Parameters
    ----------
    name : str
        the argument's name, for the message.
    value : Any
        the value to check; a ``bool`` is not an integer here.
    minimum : int
        the smallest allowed value.

    Returns
    -------
    int
        ``value`` as a plain ``int``.

    Raises
    ------
    TypeError
        ``value`` is not an integer (a float, a string, a bool).
    ValueError
        ``value < minimum``.

    Example
    -------
    >>> check_int("n_samples", 5), check_int("n_kinks", np.int64(0), minimum=0)
    (5, 0)
    >>> check_int("n_samples", 0)
    Traceback (most recent call last):
    ...
    ValueError: n_samples must be an integer >= 1, got 0
    >>> check_int("n_samples", True)
    Traceback (most recent call last):
    ...
    TypeError: n_samples must be an integer >= 1, got True
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strict: bool = True,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite ``float`` within optional bounds.

    Above ``minimum`` (``>`` if ``strict`` else ``>=``) and below ``maximum`` (``<``)
    where given; ``TypeError`` if it is not a real number.

    Parameters
    ----------
    name : str
        the argument's name, for the message.
    value : Any
        the value to check.
    minimum : float, optional
        the lower bound.
    strict : bool
        ``value > minimum`` (True) or ``value >= minimum`` (False).
    maximum : float, optional
        the (strict) upper bound.

    Returns
    -------
    float
        ``value`` as a ``float``.

    Raises
    ------
    TypeError
        ``value`` is not a real number (a string, a bool, None).
    ValueError
        ``value`` is NaN or infinite, or outside the bounds.

    Example
    -------
    >>> check_real("weight_std", 0.5, minimum=0)
    0.5
    >>> check_real("weight_std", -1.0, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: weight_std must be a finite number > 0, got -1.0
    >>> check_real("level", 1.0, minimum=0, maximum=1)
    Traceback (most recent call last):
    ...
    ValueError: level must be a finite number > 0 and < 1, got 1.0
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


def check_array(
    name: str, value: Any, *, positive: bool = False, nonnegative: bool = False
) -> np.ndarray:
    """``value`` (a number or array-like) as a finite float64 array.

    Optionally every entry > 0 (``positive``) or >= 0 (``nonnegative``).

    Parameters
    ----------
    name : str
        the argument's name, for the message.
    value : Any
        a real number or array-like.
    positive : bool
        require every entry > 0.
    nonnegative : bool
        require every entry >= 0.

    Returns
    -------
    ndarray
        ``value`` as a float64 array (0-d for a number).

    Raises
    ------
    TypeError
        ``value`` is a string, a bool, or not convertible to a float array.
    ValueError
        an entry is NaN or infinite, or breaks the sign requirement.

    Example
    -------
    >>> check_array("std", [1.0, 2.0], positive=True)
    array([1., 2.])
    >>> check_array("std", [1.0, 0.0], positive=True)
    Traceback (most recent call last):
    ...
    ValueError: std must be > 0, got [1.0, 0.0]
    """
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"{name} must be a real number or array, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a real number or array, got {value!r}"
        ) from err
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not (arr > 0).all():
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not (arr >= 0).all():
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return arr


def check_choice(name: str, value: Any, options: Any) -> Any:
    """``options[value]`` for a mapping (or ``value`` for a sequence).

    ``ValueError`` listing the options if ``value`` is not one of them.

    Parameters
    ----------
    name : str
        the argument's name, for the message.
    value : Any
        the choice.
    options : dict or sequence
        the allowed choices (a dict's keys).

    Returns
    -------
    Any
        ``options[value]`` for a dict, else ``value``.

    Raises
    ------
    ValueError
        ``value`` is not one of ``options`` (the message lists them, sorted).

    Example
    -------
    >>> check_choice("layout", "slots", ("slots", "uniform"))
    'slots'
    >>> check_choice("pooling", "max", {"max": "MaxPool2d", "avg": "AvgPool2d"})
    'MaxPool2d'
    >>> check_choice("layout", "grid", ("slots", "uniform"))
    Traceback (most recent call last):
    ...
    ValueError: layout must be one of ['slots', 'uniform'], got 'grid'
    """
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return options[value] if isinstance(options, dict) else value


def pool_window_indices(shape: tuple[int, int], pool: int) -> np.ndarray:
    """Flat indices of the non-overlapping ``pool x pool`` windows of an ``(H, W)`` map.

    In ``nn.MaxPool2d(pool)`` order (row-major over windows, row-major inside a window;
    floor mode: a ragged edge is dropped).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``, the map's shape.
    pool : int
        the window side (and stride).

    Returns
    -------
    ndarray of int, shape (H//pool * W//pool, pool*pool)
        the flat index ``i * W + j`` of every element of every window.

    Raises
    ------
    ValueError
        the map is smaller than one window.

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
    """The values in each pooling window: ``(..., H, W) -> (..., n_windows, k*k)``.

    ``k = pool``, ``n_windows = H//k * W//k``; the windows of
    :func:`pool_window_indices`.

    Parameters
    ----------
    maps : ndarray, shape (..., H, W)
        the maps; leading axes are a batch.
    pool : int
        the window side (and stride).

    Returns
    -------
    ndarray, shape (..., H//pool * W//pool, pool*pool)
        the window values.

    Example
    -------
    >>> pool_windows(np.arange(8.0).reshape(2, 4), 2)
    array([[0., 1., 4., 5.],
           [2., 3., 6., 7.]])

    The window maxima are ``nn.MaxPool2d``'s output:

    >>> import torch
    >>> maps = np.random.default_rng(0).standard_normal((3, 6, 6))
    >>> pooled = torch.nn.functional.max_pool2d(torch.as_tensor(maps), 2).numpy()
    >>> bool(np.array_equal(pool_windows(maps, 2).max(axis=-1), pooled.reshape(3, -1)))
    True
    """
    *lead, h, w = maps.shape
    return maps.reshape(*lead, h * w)[..., pool_window_indices((h, w), pool)]


# the checks of smp.feature's signals and detector options


def _as_float_array(y: Any, name: str = "y") -> tuple[np.ndarray, np.dtype, bool]:
    """Return (float64 numpy view/copy, dtype whose eps sets the floor, came-from-torch)."""
    is_torch = torch is not None and isinstance(y, torch.Tensor)
    if is_torch:
        if y.is_complex() or y.dtype == torch.bool:
            raise TypeError(
                f"{name} must be a real numeric tensor, got dtype {y.dtype}"
            )
        arr = y.detach().cpu().numpy()
    elif isinstance(y, np.ndarray):
        arr = y
    elif isinstance(y, (str, bytes)):
        raise TypeError(
            f"{name} must be a numeric array, got a {type(y).__name__}: {y!r:.40}"
        )
    else:
        try:
            arr = np.asarray(y)
        except (ValueError, TypeError) as err:
            raise TypeError(
                f"{name} must be a numeric array (ragged or mixed input): {err}"
            ) from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be a real numeric array (integer or float), got dtype {arr.dtype}"
        )
    source_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    # float32 and float64 stay as they are (the detector converts a chunk at a time to float64)
    keep = arr.dtype in (np.float32, np.float64)
    return (arr if keep else arr.astype(np.float64)), source_dtype, is_torch


def _check_dt(dt: Any) -> float:
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real):
        raise TypeError(
            f"dt must be a positive real number (the grid step), got {dt!r}"
        )
    dt = float(dt)
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive finite grid step, got {dt}")
    return dt


def _check_options(kappa: float, window: int, floor_eps: float) -> None:
    if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) or not kappa > 0:
        raise ValueError(
            f"kappa must be a positive number (threshold over the local level), got {kappa!r}"
        )
    if (
        isinstance(window, bool)
        or not isinstance(window, numbers.Integral)
        or window < 3
    ):
        raise ValueError(
            f"window must be an integer >= 3 (samples per median block), got {window!r}"
        )
    if (
        isinstance(floor_eps, bool)
        or not isinstance(floor_eps, numbers.Real)
        or floor_eps < 0
    ):
        raise ValueError(f"floor_eps must be a non-negative number, got {floor_eps!r}")


def _prepare(y: Any, axis: int) -> tuple[np.ndarray, np.dtype, bool]:
    """Validate ``y`` (all but NaN and inf, see below) and return it with the signal axis last:
    float32 and float64 as given, other real types as float64."""
    arr, source_dtype, is_torch = _as_float_array(y)
    if arr.ndim == 0:
        raise ValueError("y must have at least one axis of samples, got a scalar")
    if not isinstance(axis, numbers.Integral) or not -arr.ndim <= axis < arr.ndim:
        raise ValueError(
            f"axis={axis!r} is out of range for y with {arr.ndim} dimension(s)"
        )
    arr = np.moveaxis(arr, axis, -1)
    if arr.shape[-1] < 3:
        raise ValueError(
            f"y needs at least 3 samples along axis {axis} for a second difference, got {arr.shape[-1]}"
        )
    # NaN and inf are refused by the detector (smp._detector._analyse), from the extremes of
    # each signal it computes anyway: a separate check here was one more pass over the data
    return arr, source_dtype, is_torch


def _not_finite_error(arr: np.ndarray) -> ValueError:
    """The error for samples ``arr`` that hold NaN or inf (with their count)."""
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    return ValueError(
        f"y contains {bad} NaN or infinite value(s); SMP needs finite samples"
    )


def _as_path(path: Any) -> torch.Tensor:
    if isinstance(path, np.ndarray):
        path = torch.from_numpy(path)
    if not isinstance(path, torch.Tensor):
        raise TypeError(
            f"path must be a numpy array or torch tensor of shape (N, ...), got {type(path).__name__}"
        )
    if path.ndim < 1 or path.shape[0] < 3:
        raise ValueError(
            f"path needs at least 3 samples along its first (batch) axis, got shape {tuple(path.shape)}"
        )
    if not torch.is_floating_point(path):
        raise TypeError(f"path must be floating point, got dtype {path.dtype}")
    return path.to(torch.float64)
