"""Signals with known kinks: the ground truth for the SMP estimator and the block identities."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import check_choice, check_int, check_real
from ._paths import GaussianProcess, gaussian_process, time_grid

__all__ = [
    "PiecewiseLinear",
    "piecewise_linear",
    "smooth_plus_kinks",
    "KinkedFeatureMap",
    "KINK_SLOT_SAMPLES",
    "kinked_feature_map",
    "TentedProcess",
    "add_tents",
]


class PiecewiseLinear(NamedTuple):
    """Piecewise-linear signals with known kinks (see :func:`piecewise_linear`).

    Attributes
    ----------
    t : ndarray, shape (N,)
        sample times.
    h : float
        the grid step.
    y : ndarray, shape (n_signals, N)
        the signals.
    kink_times : ndarray, shape (n_signals, n_kinks)
        the kink times, sorted, in units of t.
    slope_jumps : ndarray, shape (n_signals, n_kinks)
        the slope jump at each kink (units of y per unit t).

    Example
    -------
    >>> pl = piecewise_linear(2, 101, 3, seed=0)
    >>> pl.y.shape, pl.kink_times.shape, pl.slope_jumps.shape
    ((2, 101), (2, 3), (2, 3))
    """

    t: np.ndarray
    h: float
    y: np.ndarray
    kink_times: np.ndarray
    slope_jumps: np.ndarray


def piecewise_linear(
    n_signals: int,
    n_samples: int,
    n_kinks: int,
    *,
    length: float = 1.0,
    min_separation: float = 3.0,
    jump_std: float = 1.0,
    seed: int = 0,
) -> PiecewiseLinear:
    """Piecewise-linear signals ``y(t) = a + b t + sum_k Ds_k max(t - t_k, 0)`` with known kinks.

    Kink times are uniform off-grid, at least ``min_separation`` samples apart and at least 2 samples
    from either end (a kink in the first or last interval is not fully seen by the second
    difference).  Slope jumps ``Ds_k ~ N(0, jump_std**2)``; ``a, b ~ N(0, 1)``.
    The ground truth of SMP is ``sum_k |Ds_k|``.

    Parameters
    ----------
    n_signals : int
        number of independent signals.
    n_samples : int
        samples per signal.
    n_kinks : int
        kinks per signal (0 allowed).
    length : float
        signal length in units of t.
    min_separation : float
        smallest distance between two kinks, in samples.
    jump_std : float
        standard deviation of the slope jumps (units of y per unit t).
    seed : int
        seed of the numpy generator.

    Returns
    -------
    PiecewiseLinear
        ``(t, h, y, kink_times, slope_jumps)``, float64.

    Raises
    ------
    ValueError
        the kinks do not fit in the grid at the requested separation.

    Example
    -------
    The SMP of a piecewise-linear signal is the sum of its absolute slope jumps:

    >>> from smp import smp
    >>> pl = piecewise_linear(2, 1001, 3, seed=0)
    >>> np.round(smp(pl.y, dt=pl.h), 6)
    array([2.954816, 1.930022])
    >>> np.round(np.abs(pl.slope_jumps).sum(axis=1), 6)
    array([2.954816, 1.930022])
    """
    n_signals = check_int("n_signals", n_signals, 1)
    n_kinks = check_int("n_kinks", n_kinks, 0)
    t, h = time_grid(n_samples, length)
    min_separation = check_real("min_separation", min_separation, minimum=0)
    jump_std = check_real("jump_std", jump_std, minimum=0)
    margin = 2 * h
    slack = length - 2 * margin - max(n_kinks - 1, 0) * min_separation * h
    if slack <= 0:
        raise ValueError(
            f"{n_kinks} kinks at least {min_separation} samples apart do not fit in {n_samples} samples"
        )
    rng = np.random.default_rng(seed)
    # sorted uniforms on the slack, then spread by the minimum gap: uniform among admissible layouts
    base = np.sort(rng.uniform(0.0, slack, (n_signals, n_kinks)), axis=-1)
    kink_times = margin + base + np.arange(n_kinks) * min_separation * h
    slope_jumps = rng.normal(0.0, jump_std, (n_signals, n_kinks))
    offset, slope = rng.standard_normal((2, n_signals, 1))
    y = offset + slope * t
    for k in range(
        n_kinks
    ):  # a loop over kinks (few), each step vectorised over signals and samples
        y += slope_jumps[:, k : k + 1] * np.maximum(t - kink_times[:, k : k + 1], 0.0)
    return PiecewiseLinear(t, h, y, kink_times, slope_jumps)


def smooth_plus_kinks(
    n_signals: int,
    n_samples: int,
    n_kinks: int,
    *,
    length: float = 1.0,
    std: float = 1.0,
    dstd: float = 10.0,
    jump_std: float = 10.0,
    min_separation: float = 3.0,
    seed: int = 0,
) -> PiecewiseLinear:
    """A smooth Gaussian process plus kinks at known times: ``y = gp + sum_k Ds_k max(t - t_k, 0)``.

    The smooth part is :func:`gaussian_process` (mean 0, ``std``, ``dstd``), the kinks those of
    :func:`piecewise_linear` without its affine part, both from ``seed`` (independent streams).  The
    ground truth of SMP is ``sum_k |Ds_k|``; the estimate converges to it like ``O(h)``.

    Parameters
    ----------
    n_signals, n_samples, n_kinks : int
        as in :func:`piecewise_linear`.
    length : float
        signal length in units of t.
    std, dstd : float
        ``sigma`` and ``sigma'`` of the smooth part (units of y, and y per unit t).
    jump_std : float
        standard deviation of the slope jumps (units of y per unit t).
    min_separation : float
        smallest distance between two kinks, in samples.
    seed : int
        seed of the smooth part; the kinks use ``seed + 1``.

    Returns
    -------
    PiecewiseLinear
        the record of :func:`piecewise_linear`, ``y`` being the sum.

    Example
    -------
    At 4001 samples the SMP of each signal is within a few per cent of its total slope
    jump:

    >>> from smp import smp
    >>> sk = smooth_plus_kinks(2, 4001, 3, seed=0)
    >>> np.round(smp(sk.y, dt=sk.h) / np.abs(sk.slope_jumps).sum(axis=1), 2)
    array([1.01, 0.97])
    """
    gp = gaussian_process(
        n_signals, n_samples, length=length, std=std, dstd=dstd, seed=seed
    )
    kinks = piecewise_linear(
        n_signals,
        n_samples,
        n_kinks,
        length=length,
        min_separation=min_separation,
        jump_std=jump_std,
        seed=seed + 1,
    )
    kink_part = np.zeros_like(gp.y)
    for k in range(n_kinks):
        kink_part += kinks.slope_jumps[:, k : k + 1] * np.maximum(
            gp.t - kinks.kink_times[:, k : k + 1], 0.0
        )
    return PiecewiseLinear(
        gp.t, gp.h, gp.y + kink_part, kinks.kink_times, kinks.slope_jumps
    )


class KinkedFeatureMap(NamedTuple):
    """Feature maps whose units are piecewise-linear signals with known kinks.

    Attributes
    ----------
    t : ndarray, shape (N,)
        sample times on [0, 1].
    h : float
        the grid step.
    x : ndarray, shape (N, C, H, W)
        the maps along the path (sample axis first, a torch batch).
    kink_times : ndarray, shape (C, H, W, n_kinks)
        every unit's kink times, sorted.
    slope_jumps : ndarray, shape (C, H, W, n_kinks)
        every unit's slope jumps (units of x per unit t).

    Example
    -------
    >>> fm = kinked_feature_map(201, 2, 4, 3, 1, seed=0)
    >>> fm.x.shape, fm.kink_times.shape
    ((201, 2, 4, 4), (2, 4, 4, 1))
    """

    t: np.ndarray
    h: float
    x: np.ndarray
    kink_times: np.ndarray
    slope_jumps: np.ndarray


#: samples per time slot of :func:`kinked_feature_map`; a kink sits at least ``_SLOT_MARGIN`` samples
#: inside its slot, so kinks of different slots are >= 3 samples apart: their second-difference
#: samples never overlap and the medians of the SMP detector stay at the rounding level.
KINK_SLOT_SAMPLES = 8


_SLOT_MARGIN = 1.5


def kinked_feature_map(
    n_samples: int,
    channels: int,
    size: int,
    kernel_size: int,
    n_kinks: int,
    *,
    jump_std: float = 1.0,
    shared_channels: bool = False,
    layout: str = "slots",
    seed: int = 0,
) -> KinkedFeatureMap:
    """Input maps for a ``kernel_size`` convolution, every unit ``a + b t + sum_k Ds_k max(t - t_k, 0)``.

    ``layout="slots"`` guarantees distinct, resolvable kink times inside every receptive field: units
    are split into classes ``(c, i mod k, j mod k)`` (a k x k window holds each class once), the time
    axis into slots of 8 samples, every class owns its own random set of slots and every unit puts its
    ``n_kinks`` kinks in ``n_kinks`` of its class's slots (off-grid, uniform inside the slot, 1.5
    samples from its edges).  Any two kinks seen by one output unit are then >= 3 samples apart.
    ``shared_channels=True`` makes the classes ``(i mod k, j mod k)``: all channels of a pixel kink at
    the same times, with independent jumps (one jump *vector* per event, as after a 1x1 mixing of one
    kinked unit).  ``layout="uniform"`` draws every unit's kink times independently and uniformly
    (kinks of different units may fall closer than the grid resolves).

    Slope jumps ``Ds ~ N(0, jump_std**2)`` (units of x per unit t), ``a, b ~ N(0, 1)``; the expected
    input SMP is ``n_kinks * jump_std * sqrt(2/pi)``.

    Parameters
    ----------
    n_samples : int
        samples along the path (t in [0, 1]); ``"slots"`` needs at least
        ``n_classes * n_kinks * 8 + 5``.
    channels : int
        ``C``, input channels.
    size : int
        side of the square maps (``H = W = size``).
    kernel_size : int
        ``k``, the side of the convolution the maps are made for.
    n_kinks : int
        kinks per unit.
    jump_std : float
        standard deviation of the slope jumps (> 0).
    shared_channels : bool
        all channels of a pixel kink at the same times (``"slots"`` only).
    layout : {"slots", "uniform"}
        how kink times are drawn (above).
    seed : int
        seed of the numpy generator.

    Returns
    -------
    KinkedFeatureMap
        ``(t, h, x, kink_times, slope_jumps)``, float64.

    Example
    -------
    Every unit's SMP along the path is the sum of its absolute slope jumps:

    >>> from smp import smp
    >>> fm = kinked_feature_map(201, 1, 4, 3, 1, seed=0)
    >>> unit_smp = smp(fm.x, dt=fm.h, axis=0)
    >>> unit_smp.shape
    (1, 4, 4)
    >>> bool(np.allclose(unit_smp, np.abs(fm.slope_jumps).sum(axis=-1), atol=1e-9))
    True
    """
    n_samples, channels, size, kernel_size, n_kinks = (
        check_int(name, value)
        for name, value in (
            ("n_samples", n_samples),
            ("channels", channels),
            ("size", size),
            ("kernel_size", kernel_size),
            ("n_kinks", n_kinks),
        )
    )
    check_choice("layout", layout, ("slots", "uniform"))
    if not jump_std > 0:
        raise ValueError(f"jump_std must be > 0, got {jump_std!r}")
    h = 1.0 / (n_samples - 1)
    t = np.arange(n_samples) * h
    rng = np.random.default_rng(seed)
    shape = (channels, size, size)
    if layout == "uniform":
        # 2 samples from either end: a kink in the first or last interval is not seen by D
        times = np.sort(rng.uniform(2 * h, 1 - 2 * h, shape + (n_kinks,)), axis=-1)
    else:
        k = kernel_size
        ii, jj = np.meshgrid(np.arange(size) % k, np.arange(size) % k, indexing="ij")
        pixel_class = ii * k + jj  # (size, size)
        n_classes = k * k if shared_channels else channels * k * k
        n_slots = (n_samples - 5) // KINK_SLOT_SAMPLES
        per_class = n_slots // n_classes
        if per_class < n_kinks:
            need = n_classes * n_kinks * KINK_SLOT_SAMPLES + 5
            raise ValueError(
                f"n_samples={n_samples} too small for distinct kink slots; need >= {need}"
            )
        class_slots = rng.permutation(n_slots)[: n_classes * per_class].reshape(
            n_classes, per_class
        )
        if shared_channels:
            unit_class = np.broadcast_to(pixel_class, (1, size, size))
        else:
            unit_class = np.arange(channels)[:, None, None] * k * k + pixel_class
        # n_kinks distinct slots of the unit's class, chosen at random
        pick = np.argsort(rng.random(unit_class.shape + (per_class,)), axis=-1)[
            ..., :n_kinks
        ]
        slots = np.take_along_axis(class_slots[unit_class], pick, axis=-1)
        offset = rng.uniform(
            _SLOT_MARGIN, KINK_SLOT_SAMPLES - _SLOT_MARGIN, slots.shape
        )
        times = np.sort((2 + slots * KINK_SLOT_SAMPLES + offset) * h, axis=-1)
        times = np.broadcast_to(times, shape + (n_kinks,)).copy()
    jumps = rng.normal(0.0, jump_std, shape + (n_kinks,))
    a, b = rng.standard_normal((2,) + shape)
    x = a + b * t.reshape(-1, 1, 1, 1)
    for kk in range(
        n_kinks
    ):  # few kinks; each step vectorised over the path and the map
        x += jumps[..., kk] * np.maximum(t.reshape(-1, 1, 1, 1) - times[..., kk], 0.0)
    return KinkedFeatureMap(t, h, x, times, jumps)


class TentedProcess(NamedTuple):
    """A stationary Gaussian process plus sparse tents with known kinks (see :func:`add_tents`).

    Attributes
    ----------
    t : ndarray, shape (N,)
        sample times.
    h : float
        the grid step.
    x, dx : ndarray, shape (n_paths, N)
        the paths and their exact derivative.
    kink_times, slope_jumps : ndarray, shape (n_paths, 3 * tents)
        the tents' kinks (units of t) and slope jumps (units of x per unit t).
    std, dstd : float
        the ensemble sigma and sigma' of x (Gaussian part and tents together).
    smp_in : ndarray, shape (n_paths,)
        the exact input SMP per path.

    Example
    -------
    >>> gp = gaussian_process(2, 3001, length=3.0, seed=0)
    >>> add_tents(gp, std=1.0, dstd=10.0, seed=0).x.shape
    (2, 3001)
    """

    t: np.ndarray
    h: float
    x: np.ndarray
    dx: np.ndarray
    kink_times: np.ndarray
    slope_jumps: np.ndarray
    std: float
    dstd: float
    smp_in: np.ndarray


def add_tents(
    process: GaussianProcess,
    *,
    std: float,
    dstd: float,
    tent_spacing: float = 10.0,
    tent_height: float = 0.1,
    tent_halfwidth: float = 0.1,
    seed: int = 0,
) -> TentedProcess:
    """A Gaussian process (:func:`gaussian_process`) plus tents: input kinks at times independent of x.

    A ReLU's input inside a network carries kinks of its own whose times are set elsewhere (other
    units' crossings).  Here they come from tents ``c max(0, 1 - |t - t_j| / w)`` of height
    ``c = +-tent_height * std`` (random sign) and half-width ``w = tent_halfwidth * ell``
    (``ell = std/dstd``), one per slot of ``tent_spacing * ell``, jittered inside its slot (uniform over
    the middle 60 %), random in every path.  Each tent has three kinks, jumps ``c/w, -2c/w, c/w``:
    input SMP ``4 |c| / w`` per tent.  The tents are small in value (``0.1 sigma`` by default) and
    short, so x stays close to Gaussian, and every kink is at least ``w`` from the next (10 samples
    at 100 samples per ``ell``).  Ensemble statistics with tents, used by the model:
    ``std^2 + (2 w / S) c^2 / 3`` and ``dstd^2 + (2 w / S) (c/w)^2`` (``S`` the slot length).

    Parameters
    ----------
    process : the Gaussian process, from :func:`gaussian_process` (its arrays are not modified).
    std, dstd : the ``std`` and ``dstd`` the process was drawn with (they set ``ell`` and the tents'
        size, and enter the returned ensemble statistics).
    tent_spacing, tent_height, tent_halfwidth : slot length, height (in units of ``std``) and half-width
        (in units of ``ell``) of the tents; ``tent_spacing = 0`` gives no tents.
    seed : seed of the tents' positions and signs.

    Returns
    -------
    TentedProcess
        the paths with tents, their kinks, ensemble ``std``, ``dstd`` and ``smp_in``.

    Example
    -------
    >>> gp = gaussian_process(2, 3001, length=3.0, std=1.0, dstd=10.0, seed=0)
    >>> tented = add_tents(gp, std=1.0, dstd=10.0, seed=0)
    >>> tented.kink_times.shape  # 3 tents of 3 kinks per path
    (2, 9)

    Each tent (``c = 0.1``, ``w = 0.01``) carries ``4 |c| / w = 40`` of input SMP, and
    the ensemble statistics grow as stated above:

    >>> np.round(tented.smp_in, 6)
    array([120., 120.])
    >>> round(tented.std, 6), round(tented.dstd, 6)
    (1.000033, 10.099505)
    """
    std = check_real("std", std, minimum=0)
    dstd = check_real("dstd", dstd, minimum=0)
    gp = process
    n_paths, n_samples = gp.y.shape
    length = float(gp.t[-1] - gp.t[0])
    x, dx = gp.y.copy(), gp.dy.copy()

    ell = std / dstd
    slot = tent_spacing * ell
    # 1e-9: the grid's last time may round to just below a whole number of slots
    n_tents = int(np.floor(length / slot + 1e-9)) if tent_spacing > 0 else 0
    if n_tents == 0:
        empty = np.zeros((n_paths, 0))
        return TentedProcess(
            gp.t, gp.h, x, dx, empty, empty, float(std), float(dstd), np.zeros(n_paths)
        )
    w, c0 = tent_halfwidth * ell, tent_height * std
    if not (0 < w < 0.2 * slot):
        raise ValueError(
            f"tent_halfwidth must be in (0, 0.2 * tent_spacing), got {tent_halfwidth!r}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]).generate_state(1)[0])
    centres = (
        np.arange(n_tents) + 0.5 + 0.6 * (rng.uniform(size=(n_paths, n_tents)) - 0.5)
    ) * slot
    heights = c0 * rng.choice([-1.0, 1.0], size=(n_paths, n_tents))
    # the tents do not overlap: add each on its own few samples (fancy indexing, no Python loop)
    span = int(np.ceil(w / gp.h)) + 1
    first = np.floor((centres - w) / gp.h).astype(int)
    idx = np.clip(first[..., None] + np.arange(2 * span + 1), 0, n_samples - 1)
    offset = gp.t[idx] - centres[..., None]
    shape = np.clip(1.0 - np.abs(offset) / w, 0.0, None)
    slope = np.where(shape > 0, -np.sign(offset) / w, 0.0)
    rows = np.arange(n_paths)[:, None, None]
    x[rows, idx] += heights[..., None] * shape
    dx[rows, idx] += heights[..., None] * slope
    kink_times = np.stack([centres - w, centres, centres + w], axis=-1).reshape(
        n_paths, -1
    )
    slope_jumps = (heights[..., None] / w * np.array([1.0, -2.0, 1.0])).reshape(
        n_paths, -1
    )
    fraction = 2 * w / slot
    total_std = float(np.sqrt(std**2 + fraction * c0**2 / 3))
    total_dstd = float(np.sqrt(dstd**2 + fraction * (c0 / w) ** 2))
    return TentedProcess(
        gp.t,
        gp.h,
        x,
        dx,
        kink_times,
        slope_jumps,
        total_std,
        total_dstd,
        np.abs(slope_jumps).sum(axis=1),
    )
