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

    ``I[i, j] = exp(-((j-c_x)^2 + (i-c_y)^2) / (2 width^2)) + 0.3 sin(2 pi j/size + 0.5) cos(1.4 pi i/size)``
    (pixel indices ``i`` row, ``j`` column; the background is a mild fixed distractor).  The image
    is an infinitely smooth function of the centre, so a smooth trajectory is a smooth input path.

    Parameters
    ----------
    centres : (B, 2) array or tensor of ``(c_x, c_y)`` in pixels; its float dtype is kept.
    size : image side (pixels). width : blob standard deviation (pixels).
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

    Each step draws ``batch_size`` centres uniformly in ``[MARGIN, size-1-MARGIN]^2`` from a seeded
    generator and minimises the mean squared error of the normalised centre.  float32 for speed.

    Returns the network (float64, eval mode) and the wall-clock training time in seconds.
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
    """Predicted centres (pixels, float64) for centres of any shape ``(..., 2)`` (float64 forward)."""
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
    """Root-mean-square Euclidean error (pixels) on ``n`` seeded uniform centres (float64)."""
    c = _random_centres(check_int("n", n), size, torch.Generator().manual_seed(seed), torch.float64).numpy()
    return float(np.sqrt(((predict(net, c, size=size) - c) ** 2).sum(-1).mean()))


def load_net(kind: str) -> nn.Sequential:
    """Load the stored trained network ``kind`` (``"relu"`` or ``"smooth"``; float64, eval mode).

    Example
    -------
    >>> net = load_net("relu")
    >>> net[-1].out_features
    2
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
    ``a_k, b_k ~ N(0, 1)`` per coordinate, ``A`` chosen so that the sampled path length is exactly
    ``length``, ``c0`` uniform so that the whole path stays ``MARGIN`` pixels inside the image.
    ``N = length * frames_per_px + 1`` frames; time is measured in pixels travelled, so the step is
    ``dt = length / (N-1) = 1/frames_per_px``.  Returns ``(trajectories, dt)``.
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
    """Trajectories of one run: keys ``truth``, ``relu``, ``smooth`` (``(M, 2, N)`` px) and ``dt``."""


def run_trajectories(
    n_traj: int = 64,
    frames_per_px: int = 128,
    *,
    length: float = 4.0,
    seed: int = 0,
    nets: dict | None = None,
    progress: bool = False,
) -> ForensicRun:
    """Predicted trajectories of both stored networks over ``n_traj`` seeded smooth trajectories."""
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

    Linear interpolation in dB between the last sweep point with AUC >= level and the first below
    it (scanning from high to low SNR); ``nan`` if the AUC never falls below ``level``.
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
    (``forensics_relu``, ``forensics_smooth``), reloads what was stored, measures its test error,
    then runs :func:`run_trajectories` and :func:`forensic_table` and stores ``forensics_models``
    (training time, test error) and ``forensics_auc``.  About a minute on 2 cores.  Returns the
    two tables by registry name.
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
