"""Paths and synthetic signals: Gaussian processes, great circles, line segments, known kinks.

All generators take an explicit ``seed`` and return float64 numpy arrays, with the sample (path)
axis first for input-space paths (so they can be fed to torch as a batch) and last for 1-D signals.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "time_grid",
    "gaussian_process",
    "great_circle",
    "line_segment",
    "piecewise_linear",
    "smooth_plus_kinks",
    "GaussianProcess",
    "PiecewiseLinear",
]


def _positive(name: str, value, integer: bool = False, minimum: float = 0.0):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a real number'}, got {value!r}")
    if not np.isfinite(value) or not value > minimum:
        raise ValueError(f"{name} must be > {minimum}, got {value!r}")
    return int(value) if integer else float(value)


def time_grid(n_samples: int, length: float = 1.0) -> tuple[np.ndarray, float]:
    """Uniform grid ``t_n = n*h`` on ``[0, length]`` with ``n_samples`` points; returns ``(t, h)``."""
    n_samples = _positive("n_samples", n_samples, integer=True, minimum=1)
    length = _positive("length", length)
    h = length / (n_samples - 1)
    return np.arange(n_samples) * h, h


class GaussianProcess(NamedTuple):
    """Samples of a stationary Gaussian process on a uniform grid.

    ``t`` (N,), ``h`` the step, ``y`` and its exact derivative ``dy`` (n_paths, N).
    """

    t: np.ndarray
    h: float
    y: np.ndarray
    dy: np.ndarray


def gaussian_process(
    n_paths: int,
    n_samples: int,
    *,
    length: float = 1.0,
    mean: float = 0.0,
    std: float = 1.0,
    dstd: float = 10.0,
    seed: int = 0,
) -> GaussianProcess:
    """Stationary Gaussian process with squared-exponential kernel, by spectral synthesis.

    The kernel ``k(tau) = std**2 exp(-tau**2 / (2 ell**2))`` with ``ell = std / dstd`` gives
    ``var y = std**2`` and ``var y' = std**2 / ell**2 = dstd**2`` (``dstd`` is sigma' in the book).
    Independent Gaussian amplitudes on the frequencies ``w_k = 2 pi k / P`` of a periodic grid
    (period ``P >= length + 10 ell``, so the wrap-around correlation is below ``exp(-50)``) make the
    process exactly Gaussian; the amplitudes follow the spectral density
    ``S(w) = std**2 ell sqrt(2 pi) exp(-w**2 ell**2 / 2)``, normalised so that the ensemble
    variance is ``std**2`` exactly.  The derivative ``dy`` is the exact derivative of the synthesised
    series.  The grid must resolve the process: ``h <= ell / 4`` is required.

    Parameters
    ----------
    n_paths, n_samples : number of independent paths and samples per path.
    length : path length ``L`` in units of t.
    mean, std, dstd : ``mu``, ``sigma`` and ``sigma'`` (units of y and of y per unit t).
    seed : seed of the numpy generator.
    """
    n_paths = _positive("n_paths", n_paths, integer=True)
    t, h = time_grid(n_samples, length)
    std = _positive("std", std)
    dstd = _positive("dstd", dstd)
    if not isinstance(mean, numbers.Real) or not np.isfinite(mean):
        raise ValueError(f"mean must be a finite real number, got {mean!r}")
    ell = std / dstd
    if h > ell / 4:
        raise ValueError(
            f"the grid step h={h:.3g} does not resolve the process (ell = std/dstd = {ell:.3g}); "
            f"use n_samples >= {int(np.ceil(4 * length / ell)) + 1}"
        )
    n_fft = int(2 ** np.ceil(np.log2(n_samples + int(np.ceil(10 * ell / h)))))
    freqs = 2 * np.pi * np.fft.rfftfreq(n_fft, d=h)
    weights = np.exp(-0.5 * (freqs * ell) ** 2)
    weights[1:] *= 2.0  # one-sided spectrum: each k > 0 stands for +w and -w
    if n_fft % 2 == 0:
        weights[-1] /= 2.0  # the Nyquist term has no partner
    amplitude = np.sqrt(weights / weights.sum()) * std
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_paths, freqs.size))
    b = rng.standard_normal((n_paths, freqs.size))
    b[:, 0] = 0.0
    if n_fft % 2 == 0:
        b[:, -1] = 0.0
    # y_n = sum_k amp_k (a_k cos(w_k t_n) + b_k sin(w_k t_n)); irfft(X)_n = (1/n) sum over the full spectrum
    coeff = amplitude * (a - 1j * b)
    scale = np.full(freqs.size, n_fft / 2.0)
    scale[0] = n_fft
    if n_fft % 2 == 0:
        scale[-1] = n_fft
    y = np.fft.irfft(coeff * scale, n=n_fft, axis=-1)[:, :n_samples] + mean
    dy = np.fft.irfft(1j * freqs * coeff * scale, n=n_fft, axis=-1)[:, :n_samples]
    return GaussianProcess(t, h, y, dy)


def _random_pair(shape: Sequence[int], rng: np.random.Generator, radius: float | None):
    size = int(np.prod(shape))
    if size < 2:
        raise ValueError(f"shape must hold at least 2 entries for two orthogonal directions, got {shape}")
    u = rng.standard_normal(size)
    v = rng.standard_normal(size)
    u /= np.linalg.norm(u)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    r = np.sqrt(size) if radius is None else _positive("radius", radius)
    return u * r, v * r


def great_circle(
    shape: Sequence[int],
    n_samples: int,
    *,
    radius: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Great circle ``x(t) = cos(t) u + sin(t) v``, ``t in [0, 2 pi)``, in an input space of ``shape``.

    ``u, v`` are seeded Gaussian draws, orthonormalised (Gram-Schmidt) and scaled to the same norm
    ``radius`` (default ``sqrt(prod(shape))``, the typical norm of a standard normal input, so every
    coordinate has unit mean square along the circle).  Every linear function of ``x`` is then a
    sinusoid in t with period ``2 pi``.

    Returns ``(t, h, x)`` with ``t`` (N,), step ``h = 2 pi / N`` and ``x`` of shape ``(N, *shape)``.
    """
    n_samples = _positive("n_samples", n_samples, integer=True, minimum=2)
    shape = tuple(int(s) for s in shape)
    u, v = _random_pair(shape, np.random.default_rng(seed), radius)
    h = 2 * np.pi / n_samples
    t = np.arange(n_samples) * h
    x = np.cos(t)[:, None] * u + np.sin(t)[:, None] * v
    return t, h, x.reshape((n_samples,) + shape)


def line_segment(
    x0: np.ndarray, direction: np.ndarray, n_samples: int
) -> tuple[np.ndarray, float, np.ndarray]:
    """Line segment ``x(t) = x0 + t d``, ``t in [0, 1]``, sampled at ``n_samples`` points.

    Returns ``(t, h, x)`` with ``x`` of shape ``(N, *x0.shape)``.  Through a piecewise-linear network
    every unit is exactly piecewise linear in t (the ground truth of ``smp.trace``).
    """
    x0 = np.asarray(x0, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    if x0.shape != direction.shape:
        raise ValueError(f"x0 and direction must have the same shape, got {x0.shape} and {direction.shape}")
    t, h = time_grid(n_samples, 1.0)
    return t, h, x0[None] + t.reshape((-1,) + (1,) * x0.ndim) * direction[None]


class PiecewiseLinear(NamedTuple):
    """Piecewise-linear signals with known kinks: ``t`` (N,), step ``h``, ``y`` (n_signals, N),
    ``kink_times`` and ``slope_jumps`` (n_signals, n_kinks)."""

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
    """
    n_signals = _positive("n_signals", n_signals, integer=True)
    n_kinks = _positive("n_kinks", n_kinks, integer=True, minimum=-1)
    t, h = time_grid(n_samples, length)
    min_separation = _positive("min_separation", min_separation)
    jump_std = _positive("jump_std", jump_std)
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
    for k in range(n_kinks):  # a loop over kinks (few), each step vectorised over signals and samples
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
    Returns a :class:`PiecewiseLinear` record (``y`` is the sum).
    """
    gp = gaussian_process(n_signals, n_samples, length=length, std=std, dstd=dstd, seed=seed)
    kinks = piecewise_linear(
        n_signals, n_samples, n_kinks, length=length, min_separation=min_separation,
        jump_std=jump_std, seed=seed + 1,
    )
    kink_part = np.zeros_like(gp.y)
    for k in range(n_kinks):
        kink_part += kinks.slope_jumps[:, k : k + 1] * np.maximum(gp.t - kinks.kink_times[:, k : k + 1], 0.0)
    return PiecewiseLinear(gp.t, gp.h, gp.y + kink_part, kinks.kink_times, kinks.slope_jumps)
