"""The forensics chapter's experiment: does a regression network's SMP reveal ReLU?

A miniature landmark task.  A ``size x size`` image holds a Gaussian blob of width ``BLOB_WIDTH``
pixels centred at ``c = (c_x, c_y)`` (pixels) on a fixed smooth background (:func:`render`); a
small CNN (:func:`smp.networks.landmark_net`) regresses ``c``.  Two networks of the same widths are
trained to similar error (:func:`train_landmark_net`): a ReLU + max-pooling CNN and a smooth one
(GELU + average pooling).

The blob moves along a smooth trajectory ``c(t)`` (:func:`smooth_trajectories`); each network's
predicted trajectory ``y(t)`` (2 coordinates, pixels) is sampled on ``N`` frames, with ``t``
measured in *pixels travelled* (every trajectory has path length ``length`` pixels and
constant-rate time, so ``dt = length/(N-1)`` and ``1/dt`` is the number of frames per pixel of
motion).  The detector scores and ROC statistics are :mod:`smp.forensics`.

Retraining: ``.venv/bin/python scripts/train_forensics.py`` calls :func:`write_tables`.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .. import data
from .._validation import check_int
from ..forensics import add_noise, bootstrap_auc, smp_score, tv_score
from ..networks import LANDMARK_KINDS, landmark_net

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
    "ForensicRun",
    "run_trajectories",
    "forensic_table",
    "snr_threshold",
    "write_tables",
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
        raise ValueError(f"centres must be a float array of shape (B, 2), got {tuple(c.shape)} {c.dtype}")
    g = torch.arange(size, dtype=c.dtype)
    gx = torch.exp(-0.5 * ((g[None, :] - c[:, 0:1]) / width) ** 2)
    gy = torch.exp(-0.5 * ((g[None, :] - c[:, 1:2]) / width) ** 2)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    background = 0.3 * torch.sin(2 * np.pi * xx / size + 0.5) * torch.cos(1.4 * np.pi * yy / size)
    return (gy[:, :, None] * gx[:, None, :] + background)[:, None]


def _random_centres(n: int, size: int, gen: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    return MARGIN + (size - 1 - 2 * MARGIN) * torch.rand(n, 2, generator=gen, dtype=dtype)


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


def predict(net: nn.Module, centres, *, size: int = IMAGE_SIZE, batch_size: int = 4096) -> np.ndarray:
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
        raise ValueError(f"centres must end with an axis of 2 coordinates, got shape {tuple(c.shape)}")
    flat = c.reshape(-1, 2)
    half = (size - 1) / 2
    net = net.double().eval()
    with torch.no_grad():
        out = torch.cat([net(render(flat[i : i + batch_size], size)) for i in range(0, len(flat), batch_size)])
    return (out * half + half).numpy().reshape(c.shape)


def test_error(net: nn.Module, *, n: int = 2000, size: int = IMAGE_SIZE, seed: int = 123) -> float:
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
    c = _random_centres(check_int("n", n), size, torch.Generator().manual_seed(seed), torch.float64).numpy()
    return float(np.sqrt(((predict(net, c, size=size) - c) ** 2).sum(-1).mean()))


# not a pytest test: pytest collects test_* functions of a module named on its command
# line (pytest --doctest-modules smp/experiments/forensics.py)
test_error.__test__ = False


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
    shape = np.einsum("mck,kn->mcn", a, np.cos(phase)) + np.einsum("mck,kn->mcn", b, np.sin(phase))
    arc = np.sqrt((np.diff(shape, axis=-1) ** 2).sum(axis=1)).sum(axis=-1)  # (M,)
    shape *= (length / arc)[:, None, None]
    lo, hi = shape.min(axis=-1), shape.max(axis=-1)  # (M, 2)
    room = (size - 1 - 2 * MARGIN) - (hi - lo)
    if np.any(room < 0):
        raise ValueError(f"length={length} px is too long to fit trajectories in a {size}-pixel image")
    c0 = MARGIN - lo + room * rng.uniform(size=room.shape)
    return shape + c0[..., None], length / (n - 1)


class ForensicRun(dict):
    """Trajectories of one run (:func:`run_trajectories`), a ``dict``.

    Keys: ``truth``, ``relu``, ``smooth`` (``(M, 2, N)`` pixels: the true centres and
    the two networks' predictions) and ``dt`` (the frame step, pixels travelled).

    Example
    -------
    >>> run = run_trajectories(2, 16, seed=0)
    >>> sorted(run), run["relu"].shape
    (['dt', 'relu', 'smooth', 'truth'], (2, 2, 65))
    """


def run_trajectories(
    n_traj: int = 64,
    frames_per_px: int = 128,
    *,
    length: float = 4.0,
    seed: int = 0,
    nets: dict | None = None,
    progress: bool = False,
) -> ForensicRun:
    """Predicted trajectories of both stored networks over seeded smooth trajectories.

    Parameters
    ----------
    n_traj : int
        number of trajectories (:func:`smooth_trajectories`).
    frames_per_px : int
        frames per pixel of motion.
    length : float
        path length of every trajectory (pixels).
    seed : int
        seed of the trajectories.
    nets : dict, optional
        ``kind -> network``; default the stored networks (:func:`load_net`).
    progress : bool
        show a tqdm bar over the networks.

    Returns
    -------
    ForensicRun
        the true and predicted trajectories and ``dt``.

    Example
    -------
    Both networks follow the blob to within half a pixel:

    >>> run = run_trajectories(2, 16, seed=0)
    >>> run["truth"].shape, run["dt"]
    ((2, 2, 65), 0.0625)
    >>> [bool(np.abs(run[kind] - run["truth"]).max() < 0.5) for kind in LANDMARK_KINDS]
    [True, True]
    """
    truth, dt = smooth_trajectories(n_traj, frames_per_px, length=length, seed=seed)
    nets = {kind: load_net(kind) for kind in LANDMARK_KINDS} if nets is None else nets
    run = ForensicRun(truth=truth, dt=dt)
    centres = np.moveaxis(truth, 1, -1)  # (M, N, 2)
    for kind in tqdm(list(LANDMARK_KINDS), disable=not progress, desc="networks along trajectories"):
        run[kind] = np.moveaxis(predict(nets[kind], centres), -1, 1)
    return run


_SCORES = {"SMP": smp_score, "TV of D": tv_score}


def forensic_table(
    run: ForensicRun,
    *,
    snrs_db: Sequence[float] = (np.inf, 120, 100, 90, 85, 80, 75, 70, 65, 60, 50),
    strides: Sequence[int] = (1, 2, 4, 8, 16, 32),
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """AUC with 95 % bootstrap interval for every setting.

    Rows: ``sweep`` ("noise": SNR sweep at the full frame rate; "sampling": every ``stride``-th
    frame, no noise), ``snr_db``, ``frames_per_px``, ``comparison`` ("ReLU vs smooth net",
    "ReLU vs true"), ``score`` ("SMP", "TV of D"), ``auc``, ``auc_low``, ``auc_high``.
    The noise of each SNR is drawn once per class from seeds ``seed + i`` (independent between
    the ReLU net, the smooth net and the truth).

    Parameters
    ----------
    run : ForensicRun
        the trajectories (:func:`run_trajectories`).
    snrs_db : sequence of float
        the noise sweep (dB; ``inf`` for no noise).
    strides : sequence of int
        the frame-rate sweep: every ``stride``-th frame.
    n_boot : int
        bootstrap replicates per AUC.
    seed : int
        seed of the noise and of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        one row per (setting, comparison, score).

    Example
    -------
    One noise level and one stride give 2 settings x 2 comparisons x 2 scores:

    >>> run = run_trajectories(4, 16, seed=0)
    >>> table = forensic_table(run, snrs_db=(np.inf,), strides=(2,), n_boot=50)
    >>> len(table), table.frames_per_px.unique().tolist()
    (8, [16.0, 8.0])
    >>> bool(((table.auc_low <= table.auc) & (table.auc <= table.auc_high)).all())
    True
    """
    dt = run["dt"]
    settings = [("noise", snr, 1) for snr in snrs_db] + [("sampling", np.inf, s) for s in strides]
    rows = []
    for sweep, snr, stride in settings:
        sig = {
            name: add_noise(run[name], run["truth"], snr, seed=seed + 1000 * i + int(min(snr, 1e6)))[..., ::stride]
            for i, name in enumerate(("relu", "smooth", "truth"))
        }
        for score_name, score in _SCORES.items():
            s = {name: score(y, dt * stride) for name, y in sig.items()}
            for comparison, neg in (("ReLU vs smooth net", "smooth"), ("ReLU vs true", "truth")):
                a, lo, hi = bootstrap_auc(s["relu"], s[neg], n_boot=n_boot, seed=seed)
                rows.append(
                    dict(sweep=sweep, snr_db=snr, frames_per_px=1 / (dt * stride), comparison=comparison,
                         score=score_name, auc=a, auc_low=lo, auc_high=hi)
                )
    return pd.DataFrame(rows)


def snr_threshold(table: pd.DataFrame, comparison: str, score: str, level: float = 0.9) -> float:
    """Highest SNR (dB) of the noise sweep at which the AUC is below ``level``, interpolated.

    Linear interpolation in dB between the last sweep point with AUC >= level and the
    first below it (scanning from high to low SNR); ``nan`` if the AUC never falls below
    ``level``.

    Parameters
    ----------
    table : pandas.DataFrame
        a :func:`forensic_table`.
    comparison : str
        ``"ReLU vs smooth net"`` or ``"ReLU vs true"``.
    score : str
        ``"SMP"`` or ``"TV of D"``.
    level : float
        the AUC threshold.

    Returns
    -------
    float
        the SNR in dB (``nan`` if never below ``level``).

    Example
    -------
    The AUC falls from 1.0 at 40 dB to 0.8 at 20 dB: it crosses 0.9 half-way, at 30 dB:

    >>> sweep = dict(snr_db=[np.inf, 40.0, 20.0, 10.0], auc=[1.0, 1.0, 0.8, 0.6])
    >>> labels = dict(sweep="noise", comparison="ReLU vs true", score="SMP")
    >>> table = pd.DataFrame(dict(**labels, **sweep))
    >>> snr_threshold(table, "ReLU vs true", "SMP", level=0.9)
    30.0
    """
    rows = table[(table.sweep == "noise") & (table.comparison == comparison) & (table.score == score)]
    rows = rows[np.isfinite(rows.snr_db)].sort_values("snr_db", ascending=False)
    snr, a = rows.snr_db.to_numpy(), rows.auc.to_numpy()
    below = np.flatnonzero(a < level)
    if below.size == 0:
        return float("nan")
    i = below[0]
    if i == 0:
        return float(snr[0])
    return float(snr[i - 1] + (level - a[i - 1]) * (snr[i] - snr[i - 1]) / (a[i] - a[i - 1]))


def write_tables(*, progress: bool = False, directory: str | None = None) -> dict:
    """Retrain both landmark networks, store their weights, measure the detector, store the tables.

    Trains :func:`train_landmark_net` for every kind (seed 0), stores the float64 state dicts
    (``forensics_relu``, ``forensics_smooth``), reloads what was stored, measures its
    test error, then runs :func:`run_trajectories` and :func:`forensic_table` and stores
    ``forensics_models`` (training time, test error) and ``forensics_auc``.  About a
    minute on 2 cores.

    Parameters
    ----------
    progress : bool
        show progress bars and each network's training time and test error.
    directory : str, optional
        the data directory; default :func:`smp.data.data_dir`.

    Returns
    -------
    dict
        the two tables by registry name.

    Example
    -------
    Too slow for a doctest; the registry entries it produces:

    >>> sorted(name for name, entry in data.REGISTRY.items()
    ...        if entry.producer == "smp.experiments.forensics:write_tables")
    ['forensics_auc', 'forensics_models', 'forensics_relu', 'forensics_smooth']
    """
    nets, rows = {}, []
    for kind in LANDMARK_KINDS:
        net, seconds = train_landmark_net(kind, seed=0, progress=progress)
        data.write(f"forensics_{kind}", {k: v.double() for k, v in net.state_dict().items()}, directory)
        nets[kind] = landmark_net(kind).double()
        nets[kind].load_state_dict(data.load(f"forensics_{kind}", directory))  # measure what was stored
        nets[kind].eval()
        activation, pooling = LANDMARK_KINDS[kind]
        error = test_error(nets[kind])
        rows.append(dict(network=kind, activation=activation, pooling=pooling, train_seconds=seconds,
                         test_rmse_px=error))
        if progress:
            print(f"{kind}: trained in {seconds:.1f} s, test RMS error {error:.3f} px")
    table = forensic_table(run_trajectories(nets=nets, progress=progress))
    tables = {"forensics_auc": table, "forensics_models": pd.DataFrame(rows)}
    data.write_many(tables, directory)
    return tables
