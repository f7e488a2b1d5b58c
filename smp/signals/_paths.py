"""Smooth paths: the time grid, stationary Gaussian processes, great circles, line segments."""

from __future__ import annotations

import numbers
from typing import NamedTuple, Sequence

import numpy as np

from .._validation import check_int, check_real

__all__ = [
    "time_grid",
    "GaussianProcess",
    "gaussian_process",
    "great_circle",
    "line_segment",
]


def time_grid(n_samples: int, length: float = 1.0) -> tuple[np.ndarray, float]:
    """Uniform grid ``t_n = n*h`` on ``[0, length]`` with ``n_samples`` points.

    Parameters
    ----------
    n_samples : int
        number of grid points, at least 2.
    length : float
        the grid's span ``L`` in units of t (> 0).

    Returns
    -------
    t : ndarray, shape (n_samples,)
        the grid, float64, ``t[0] = 0`` and ``t[-1] = length``.
    h : float
        the step ``length / (n_samples - 1)``.

    Example
    -------
    >>> t, h = time_grid(5, length=2.0)
    >>> t
    array([0. , 0.5, 1. , 1.5, 2. ])
    >>> h
    0.5
    """
    n_samples = check_int("n_samples", n_samples, 2)
    length = check_real("length", length, minimum=0)
    h = length / (n_samples - 1)
    return np.arange(n_samples) * h, h


class GaussianProcess(NamedTuple):
    """Samples of a stationary Gaussian process on a uniform grid.

    Produced by :func:`gaussian_process`.

    Attributes
    ----------
    t : ndarray, shape (N,)
        sample times (units of t).
    h : float
        the grid step.
    y : ndarray, shape (n_paths, N)
        the paths (units of y).
    dy : ndarray, shape (n_paths, N)
        their exact derivative in t (units of y per unit t).

    Example
    -------
    >>> gp = gaussian_process(3, 101, seed=0)
    >>> gp.y.shape, gp.dy.shape, gp.t.shape
    ((3, 101), (3, 101), (101,))
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
    n_paths : int
        number of independent paths.
    n_samples : int
        samples per path (at least ``4 length / ell + 1``).
    length : float
        path length ``L`` in units of t.
    mean, std : float
        ``mu`` and ``sigma`` of the process (units of y).
    dstd : float
        ``sigma'``, the standard deviation of the derivative (units of y per unit t).
    seed : int
        seed of the numpy generator.

    Returns
    -------
    GaussianProcess
        ``(t, h, y, dy)``, float64.

    Raises
    ------
    ValueError
        the grid does not resolve the length-scale ``ell`` (the message says how many
        samples do).

    Example
    -------
    The ensemble has the requested ``std`` and ``dstd``, and ``dy`` is the derivative of
    ``y`` (central differences agree to ``O(h**2)``):

    >>> gp = gaussian_process(1000, 101, std=1.0, dstd=10.0, seed=0)
    >>> round(float(gp.y.std()), 1), round(float(gp.dy.std()), 1)
    (1.0, 10.1)
    >>> central = (gp.y[:, 2:] - gp.y[:, :-2]) / (2 * gp.h)
    >>> bool(np.abs(central - gp.dy[:, 1:-1]).max() < 0.05 * 10.0)
    True
    """
    n_paths = check_int("n_paths", n_paths, 1)
    t, h = time_grid(n_samples, length)
    std = check_real("std", std, minimum=0)
    dstd = check_real("dstd", dstd, minimum=0)
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
        raise ValueError(
            f"shape must hold at least 2 entries for two orthogonal directions, got {shape}"
        )
    u = rng.standard_normal(size)
    v = rng.standard_normal(size)
    u /= np.linalg.norm(u)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    r = np.sqrt(size) if radius is None else check_real("radius", radius, minimum=0)
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

    Parameters
    ----------
    shape : sequence of int
        shape of one input sample (at least 2 entries in all), e.g. ``(C, H, W)``.
    n_samples : int
        number of points on the circle, at least 3.
    radius : float, optional
        norm of every point; default ``sqrt(prod(shape))``.
    seed : int
        seed of the numpy generator that draws ``u`` and ``v``.

    Returns
    -------
    t : ndarray, shape (N,)
        angles ``n h`` (radians).
    h : float
        the step ``2 pi / N``.
    x : ndarray, shape (N, *shape)
        the points, float64, sample axis first (a torch batch).

    Example
    -------
    Every point has norm ``sqrt(3 * 4)``:

    >>> t, h, x = great_circle((3, 4), 16, seed=0)
    >>> x.shape
    (16, 3, 4)
    >>> np.round(np.linalg.norm(x.reshape(16, -1), axis=1), 6)[:4]
    array([3.464102, 3.464102, 3.464102, 3.464102])
    >>> round(float(np.sqrt(12)), 6), round(h * 16 / np.pi, 6)
    (3.464102, 2.0)
    """
    n_samples = check_int("n_samples", n_samples, 3)
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

    Through a piecewise-linear network every unit is exactly piecewise linear in t (the
    ground truth of ``smp.trace``).

    Parameters
    ----------
    x0 : array_like
        the start point, one input sample of any shape.
    direction : array_like
        ``d``, the same shape as ``x0``; the segment ends at ``x0 + d``.
    n_samples : int
        number of points, at least 2.

    Returns
    -------
    t : ndarray, shape (N,)
        the grid on [0, 1].
    h : float
        the step ``1 / (N - 1)``.
    x : ndarray, shape (N, *x0.shape)
        the points, float64, sample axis first.

    Example
    -------
    >>> t, h, x = line_segment(np.zeros(2), np.array([1.0, 2.0]), 5)
    >>> x.shape, h
    ((5, 2), 0.25)
    >>> x[-1], x[2]
    (array([1., 2.]), array([0.5, 1. ]))
    """
    x0 = np.asarray(x0, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    if x0.shape != direction.shape:
        raise ValueError(
            f"x0 and direction must have the same shape, got {x0.shape} and {direction.shape}"
        )
    t, h = time_grid(n_samples, 1.0)
    return t, h, x0[None] + t.reshape((-1,) + (1,) * x0.ndim) * direction[None]
