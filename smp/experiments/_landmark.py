"""The forensics chapter's task: a Gaussian blob in an image, smooth trajectories of its centre,
and the two landmark networks trained to find it (re-exported by :mod:`smp.experiments.forensics`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .. import data
from .._validation import check_int
from ..networks import landmark_net

__all__ = [
    "IMAGE_SIZE",
    "BLOB_WIDTH",
    "MARGIN",
    "render",
    "train_landmark_net",
    "predict",
    "test_error",
    "load_net",
    "smooth_trajectories",
]


#: side of the square images (pixels)
IMAGE_SIZE = 24


#: standard deviation of the Gaussian blob (pixels)
BLOB_WIDTH = 2.0


#: blob centres stay at least this far from the border (pixels), in training and on trajectories
MARGIN = 4.0


def render(centres, size: int = IMAGE_SIZE, width: float = BLOB_WIDTH) -> torch.Tensor:
    """Images ``(B, 1, size, size)`` of a Gaussian blob at each centre on a fixed smooth background.

    ``I[i, j] = exp(-((j-c_x)^2 + (i-c_y)^2) / (2 width^2))
    + 0.3 sin(2 pi j/size + 0.5) cos(1.4 pi i/size)`` (pixel indices ``i`` row, ``j``
    column; the background is a mild fixed distractor).  The image is an infinitely
    smooth function of the centre, so a smooth trajectory is a smooth input path.

    Parameters
    ----------
    centres : array or tensor, shape (B, 2)
        ``(c_x, c_y)`` in pixels; its float dtype is kept.
    size : int
        image side (pixels).
    width : float
        blob standard deviation (pixels).

    Returns
    -------
    torch.Tensor, shape (B, 1, size, size)
        the images, in the dtype of ``centres``.

    Example
    -------
    The brightest pixel of a blob at ``(c_x, c_y) = (8, 14)`` is row 14, column 8:

    >>> images = render(torch.tensor([[8.0, 14.0]]))
    >>> images.shape
    torch.Size([1, 1, 24, 24])
    >>> divmod(int(images[0, 0].argmax()), 24)
    (14, 8)
    """
    c = torch.as_tensor(centres)
    if c.ndim != 2 or c.shape[1] != 2 or not torch.is_floating_point(c):
        raise ValueError(
            f"centres must be a float array of shape (B, 2), got {tuple(c.shape)} {c.dtype}"
        )
    g = torch.arange(size, dtype=c.dtype)
    gx = torch.exp(-0.5 * ((g[None, :] - c[:, 0:1]) / width) ** 2)
    gy = torch.exp(-0.5 * ((g[None, :] - c[:, 1:2]) / width) ** 2)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    background = (
        0.3
        * torch.sin(2 * np.pi * xx / size + 0.5)
        * torch.cos(1.4 * np.pi * yy / size)
    )
    return (gy[:, :, None] * gx[:, None, :] + background)[:, None]


def _random_centres(
    n: int, size: int, gen: torch.Generator, dtype=torch.float32
) -> torch.Tensor:
    return MARGIN + (size - 1 - 2 * MARGIN) * torch.rand(
        n, 2, generator=gen, dtype=dtype
    )


def train_landmark_net(
    kind: str,
    *,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 3e-3,
    size: int = IMAGE_SIZE,
    seed: int = 0,
    progress: bool = True,
) -> tuple[nn.Sequential, float]:
    """Train :func:`landmark_net` by Adam (one-cycle learning rate) on fresh random centres.

    Each step draws ``batch_size`` centres uniformly in ``[MARGIN, size-1-MARGIN]^2``
    from a seeded generator and minimises the mean squared error of the normalised
    centre.  float32 for speed.

    Parameters
    ----------
    kind : {"relu", "smooth"}
        the network, a key of ``LANDMARK_KINDS``.
    steps : int
        optimisation steps.
    batch_size : int
        centres per step.
    lr : float
        the peak learning rate of the one-cycle schedule.
    size : int
        image side (pixels).
    seed : int
        seed of the initial weights and of the training centres.
    progress : bool
        show a tqdm bar with the running RMS error (pixels).

    Returns
    -------
    net : torch.nn.Sequential
        the trained network, float64, eval mode.
    seconds : float
        wall-clock training time.

    Example
    -------
    Two tiny steps (the stored networks take 1000 steps of 128):

    >>> net, seconds = train_landmark_net("relu", steps=2, batch_size=4, progress=False)
    >>> next(net.parameters()).dtype, net.training, seconds > 0
    (torch.float64, False, True)
    """
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    net = landmark_net(kind, size=size, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    half = (size - 1) / 2
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, desc=f"training {kind}")
    for step in bar:
        c = _random_centres(batch_size, size, gen)
        loss = ((net(render(c, size)) - (c - half) / half) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            bar.set_postfix(rmse_px=f"{(2 * loss.item()) ** 0.5 * half:.3f}")
    seconds = time.perf_counter() - start
    return net.double().eval(), seconds


def predict(
    net: nn.Module, centres, *, size: int = IMAGE_SIZE, batch_size: int = 4096
) -> np.ndarray:
    """Predicted centres (pixels, float64) for centres of any shape ``(..., 2)``.

    The images are rendered by :func:`render` and run through ``net`` in float64, in
    batches of ``batch_size``; the normalised output is converted to pixels.

    Parameters
    ----------
    net : torch.nn.Module
        a landmark network (:func:`landmark_net`); converted to float64 and eval mode in
        place.
    centres : array_like, shape (..., 2)
        true centres ``(c_x, c_y)`` in pixels.
    size : int
        image side (pixels).
    batch_size : int
        images per forward pass (memory).

    Returns
    -------
    ndarray, shape (..., 2)
        the predicted centres in pixels.

    Example
    -------
    The stored ReLU network finds the blob to a fraction of a pixel:

    >>> centres = np.array([[11.5, 11.5], [8.0, 14.0]])
    >>> np.round(predict(load_net("relu"), centres), 1)
    array([[11.4, 11.6],
           [ 7.9, 14. ]])
    """
    c = torch.as_tensor(np.asarray(centres, dtype=np.float64))
    if c.shape[-1] != 2:
        raise ValueError(
            f"centres must end with an axis of 2 coordinates, got shape {tuple(c.shape)}"
        )
    flat = c.reshape(-1, 2)
    half = (size - 1) / 2
    net = net.double().eval()
    with torch.no_grad():
        out = torch.cat(
            [
                net(render(flat[i : i + batch_size], size))
                for i in range(0, len(flat), batch_size)
            ]
        )
    return (out * half + half).numpy().reshape(c.shape)


def test_error(
    net: nn.Module, *, n: int = 2000, size: int = IMAGE_SIZE, seed: int = 123
) -> float:
    """Root-mean-square Euclidean error (pixels) on ``n`` seeded uniform centres.

    Computed in float64 by :func:`predict`.

    Parameters
    ----------
    net : torch.nn.Module
        a landmark network.
    n : int
        number of test centres, uniform in ``[MARGIN, size-1-MARGIN]^2``.
    size : int
        image side (pixels).
    seed : int
        seed of the test centres (not a training seed).

    Returns
    -------
    float
        ``sqrt(mean |predicted - true|^2)`` in pixels.

    Example
    -------
    The stored ReLU network errs by a sixth of a pixel (``forensics_models`` holds the
    value on 2000 centres):

    >>> round(test_error(load_net("relu"), n=200), 2)
    0.15
    """
    c = _random_centres(
        check_int("n", n), size, torch.Generator().manual_seed(seed), torch.float64
    ).numpy()
    return float(np.sqrt(((predict(net, c, size=size) - c) ** 2).sum(-1).mean()))


def load_net(kind: str) -> nn.Sequential:
    """Load the stored trained network ``kind`` (``"relu"`` or ``"smooth"``; float64, eval mode).

    Parameters
    ----------
    kind : {"relu", "smooth"}
        which network; its weights are the registry entry ``forensics_<kind>``.

    Returns
    -------
    torch.nn.Sequential
        :func:`landmark_net` with the stored weights, float64, eval mode.

    Example
    -------
    >>> net = load_net("relu")
    >>> net[-1].out_features, next(net.parameters()).dtype, net.training
    (2, torch.float64, False)
    """
    net = landmark_net(kind).double()
    net.load_state_dict(data.load(f"forensics_{kind}"))
    return net.eval()


def smooth_trajectories(
    n_traj: int,
    frames_per_px: int = 128,
    *,
    length: float = 4.0,
    n_harmonics: int = 3,
    size: int = IMAGE_SIZE,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Random smooth blob trajectories of path length ``length`` pixels, ``(n_traj, 2, N)`` pixels.

    ``c(s) = c0 + A * sum_{k=1..K} [a_k cos(2 pi k s) + b_k sin(2 pi k s)] / k``, ``s in [0, 1]``,
    ``a_k, b_k ~ N(0, 1)`` per coordinate, ``A`` chosen so that the sampled path length
    is exactly ``length``, ``c0`` uniform so that the whole path stays ``MARGIN`` pixels
    inside the image.  ``N = length * frames_per_px + 1`` frames; time is measured in
    pixels travelled, so the step is ``dt = length / (N-1) = 1/frames_per_px``.

    Parameters
    ----------
    n_traj : int
        number of trajectories.
    frames_per_px : int
        frames per pixel of motion.
    length : float
        path length of every trajectory (pixels).
    n_harmonics : int
        ``K``, the number of Fourier harmonics.
    size : int
        image side (pixels).
    seed : int
        seed of the numpy generator.

    Returns
    -------
    trajectories : ndarray, shape (n_traj, 2, N)
        the centres ``(c_x, c_y)`` along each trajectory, pixels.
    dt : float
        the frame step in pixels travelled.

    Example
    -------
    Every trajectory is 4 pixels long and stays ``MARGIN`` pixels inside the image:

    >>> traj, dt = smooth_trajectories(3, 16, seed=0)
    >>> traj.shape, dt
    ((3, 2, 65), 0.0625)
    >>> np.round(np.sqrt((np.diff(traj, axis=-1) ** 2).sum(axis=1)).sum(axis=-1), 6)
    array([4., 4., 4.])
    >>> bool(traj.min() >= MARGIN and traj.max() <= IMAGE_SIZE - 1 - MARGIN)
    True
    """
    n_traj = check_int("n_traj", n_traj)
    frames_per_px = check_int("frames_per_px", frames_per_px)
    if not length > 0:
        raise ValueError(f"length must be a positive number of pixels, got {length!r}")
    rng = np.random.default_rng(seed)
    n = int(round(length * frames_per_px)) + 1
    s = np.linspace(0.0, 1.0, n)
    k = np.arange(1, n_harmonics + 1)
    a, b = rng.normal(size=(2, n_traj, 2, n_harmonics)) / k
    phase = 2 * np.pi * k[:, None] * s  # (K, N)
    shape = np.einsum("mck,kn->mcn", a, np.cos(phase)) + np.einsum(
        "mck,kn->mcn", b, np.sin(phase)
    )
    arc = np.sqrt((np.diff(shape, axis=-1) ** 2).sum(axis=1)).sum(axis=-1)  # (M,)
    shape *= (length / arc)[:, None, None]
    lo, hi = shape.min(axis=-1), shape.max(axis=-1)  # (M, 2)
    room = (size - 1 - 2 * MARGIN) - (hi - lo)
    if np.any(room < 0):
        raise ValueError(
            f"length={length} px is too long to fit trajectories in a {size}-pixel image"
        )
    c0 = MARGIN - lo + room * rng.uniform(size=room.shape)
    return shape + c0[..., None], length / (n - 1)
