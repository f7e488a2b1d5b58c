"""SMP as a forensic feature: does the nonsmoothness of a regression network's output reveal ReLU?

A miniature landmark task.  A ``size x size`` image holds a Gaussian blob of width ``BLOB_WIDTH``
pixels centred at ``c = (c_x, c_y)`` (pixels) on a fixed smooth background; a small CNN regresses
``c``.  Two networks of the same widths are trained to similar error: a ReLU + max-pooling CNN and a
smooth one (GELU + average pooling).

The detector.  The blob moves along a smooth trajectory ``c(t)``; each network's predicted
trajectory ``y(t)`` (2 coordinates, pixels) is sampled on ``N`` frames, and the score is

    score_SMP = SMP(y_x, dt) + SMP(y_y, dt)              (:func:`smp_score`)

with ``t`` measured in *pixels travelled* (every trajectory has path length ``length`` pixels and
constant-rate time, so ``dt = length/(N-1)`` and ``1/dt`` is the number of frames per pixel of
motion).  SMP is then a slope jump in pixels of output per pixel of motion.  The baseline ignores
peaks: ``score_TV = sum_n |D[n]| / dt`` summed over the two coordinates (:func:`tv_score`).

ROC/AUC: the AUC is the Mann-Whitney statistic ``P(s_pos > s_neg) + P(s_pos = s_neg)/2``
(:func:`auc`), with a percentile bootstrap over trajectories (:func:`bootstrap_auc`).

Noise: white Gaussian noise on the outputs at ``SNR_dB = 10 log10(P_signal / sigma^2)``, with
``P_signal`` the trajectory's power, the mean over frames and both coordinates of
``(c(t) - mean_t c)^2`` of the *true* trajectory, computed per trajectory (:func:`add_noise`).

Retraining: ``.venv/bin/python scripts/train_forensics.py`` (writes ``data/forensics_*.pt`` and the
result tables ``data/07_*.csv``).
"""

from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .feature import second_difference
from .feature import smp as _smp

__all__ = [
    "IMAGE_SIZE",
    "BLOB_WIDTH",
    "MARGIN",
    "WIDTHS",
    "HIDDEN",
    "KINDS",
    "DATA_DIR",
    "render",
    "landmark_net",
    "train_landmark_net",
    "test_error",
    "save_net",
    "load_net",
    "smooth_trajectories",
    "predict",
    "smp_score",
    "tv_score",
    "add_noise",
    "auc",
    "roc_curve",
    "bootstrap_auc",
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
#: channels of the three conv blocks and width of the hidden dense layer, the same for both networks
WIDTHS = (4, 8, 8)
HIDDEN = 16
#: the two networks: activation and pooling
KINDS = {"relu": ("relu", "max"), "smooth": ("gelu", "avg")}
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "softplus": nn.Softplus}
_POOL = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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


def landmark_net(kind: str, *, size: int = IMAGE_SIZE, seed: int = 0) -> nn.Sequential:
    """The regressor: 3 x [Conv3x3 -> act -> pool 2] -> Flatten -> Linear(HIDDEN) -> act -> Linear(2).

    ``kind`` is ``"relu"`` (ReLU, max pooling) or ``"smooth"`` (GELU, average pooling); widths
    ``WIDTHS``/``HIDDEN`` are shared.  The output is the centre in normalised units
    ``(c - (size-1)/2) / ((size-1)/2)``; :func:`predict` converts to pixels.  float32 (training).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    act, pool = _ACT[KINDS[kind][0]], _POOL[KINDS[kind][1]]
    # nn layers draw their initial weights from the global generator: seed it inside a fork, so the
    # weights depend on seed alone and the caller's random state is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in WIDTHS:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), act(), pool(2)]
            c_in = c_out
        side = size // 2 ** len(WIDTHS)
        layers += [nn.Flatten(), nn.Linear(c_in * side * side, HIDDEN), act(), nn.Linear(HIDDEN, 2)]
    return nn.Sequential(*layers)


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
    steps = _check_int("steps", steps)
    batch_size = _check_int("batch_size", batch_size)
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
    c = _random_centres(_check_int("n", n), size, torch.Generator().manual_seed(seed), torch.float64).numpy()
    return float(np.sqrt(((predict(net, c, size=size) - c) ** 2).sum(-1).mean()))


def save_net(net: nn.Module, path) -> None:
    """Save the float64 state dict (a few tens of kB)."""
    torch.save({k: v.double() for k, v in net.state_dict().items()}, path)


def load_net(kind: str, path=None) -> nn.Sequential:
    """Load a trained network (float64, eval) from ``path`` (default ``data/forensics_<kind>.pt``)."""
    net = landmark_net(kind).double()
    path = DATA_DIR / f"forensics_{kind}.pt" if path is None else Path(path)
    net.load_state_dict(torch.load(path, weights_only=True))
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
    n_traj = _check_int("n_traj", n_traj)
    frames_per_px = _check_int("frames_per_px", frames_per_px)
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


def smp_score(y: np.ndarray, dt: float, **detector_options) -> np.ndarray:
    """``SMP(y_x) + SMP(y_y)`` for trajectories ``(..., 2, N)``; units: px per px of motion.

    ``warn=False``: densely kinked or noisy trajectories are the point of the sweeps, the score
    is used as a ranking statistic there, not as a calibrated total slope jump.
    """
    return _smp(y, dt, warn=False, **detector_options).sum(axis=-1)


def tv_score(y: np.ndarray, dt: float) -> np.ndarray:
    """Baseline without peak detection: ``sum_n |D[n]| / dt`` summed over both coordinates."""
    return np.abs(second_difference(np.asarray(y, dtype=np.float64))).sum(axis=(-1, -2)) / dt


def add_noise(y: np.ndarray, truth: np.ndarray, snr_db: float, *, seed: int = 0) -> np.ndarray:
    """``y`` plus white Gaussian noise of variance ``P/10^(snr_db/10)`` per trajectory.

    ``P`` is the power of the true trajectory ``truth`` (same shape ``(M, 2, N)``): the mean over
    frames and coordinates of ``(c - mean_t c)^2``.  ``snr_db = inf`` returns ``y`` unchanged.
    """
    y = np.asarray(y, dtype=np.float64)
    if np.isinf(snr_db) and snr_db > 0:
        return y
    power = ((truth - truth.mean(axis=-1, keepdims=True)) ** 2).mean(axis=(-1, -2), keepdims=True)
    sigma = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return y + sigma * np.random.default_rng(seed).normal(size=y.shape)


def _comparison_matrix(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``C[i, j] = 1[pos_i > neg_j] + 0.5 * 1[pos_i == neg_j]``."""
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"auc needs at least one positive and one negative score, got {pos.size} and {neg.size}")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("scores must be finite")
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def auc(pos, neg) -> float:
    """Area under the ROC curve = Mann-Whitney ``P(pos > neg) + P(pos == neg)/2`` (exact, via ranks).

    ``pos`` are the scores of the positive class (ReLU network), ``neg`` of the negative class.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    _comparison_matrix(pos[:1], neg[:1])  # validation of emptiness
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("scores must be finite")
    sorted_neg = np.sort(neg)
    below = np.searchsorted(sorted_neg, pos, side="left")
    not_above = np.searchsorted(sorted_neg, pos, side="right")
    return float((below + 0.5 * (not_above - below)).sum() / (pos.size * neg.size))


def roc_curve(pos, neg) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` over all thresholds ``score >= thr``, from (0, 0) to (1, 1)."""
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (pos[None, :] >= thresholds[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= thresholds[:, None]).mean(axis=1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def bootstrap_auc(
    pos, neg, *, n_boot: int = 2000, level: float = 0.95, paired: bool = True, seed: int = 0
) -> tuple[float, float, float]:
    """AUC and its percentile bootstrap interval over trajectories: ``(auc, low, high)``.

    ``paired=True`` (``pos[i]`` and ``neg[i]`` come from the same input trajectory) resamples
    trajectory indices once for both classes.  With resampling counts ``w_b`` the replicate is
    ``AUC_b = w_b^T C v_b / (M_pos M_neg)`` (``C`` from :func:`auc`'s definition), all replicates
    at once.
    """
    n_boot = _check_int("n_boot", n_boot)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    c = _comparison_matrix(pos, neg)
    m_pos, m_neg = c.shape
    if paired and m_pos != m_neg:
        raise ValueError(f"paired bootstrap needs as many positives as negatives, got {m_pos} and {m_neg}")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(m_pos, np.full(m_pos, 1.0 / m_pos), size=n_boot).astype(np.float64)
    v = w if paired else rng.multinomial(m_neg, np.full(m_neg, 1.0 / m_neg), size=n_boot).astype(np.float64)
    reps = np.einsum("bi,ij,bj->b", w, c, v) / (m_pos * m_neg)
    alpha = (1 - level) / 2
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return float(c.mean()), float(low), float(high)


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
    nets = {kind: load_net(kind) for kind in KINDS} if nets is None else nets
    run = ForensicRun(truth=truth, dt=dt)
    centres = np.moveaxis(truth, 1, -1)  # (M, N, 2)
    for kind in tqdm(list(KINDS), disable=not progress, desc="networks along trajectories"):
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


def write_tables(table: pd.DataFrame, models: pd.DataFrame, directory=None) -> list[Path]:
    """Write ``07_auc.csv`` (the AUC table) and ``07_models.csv`` (training time, test error)."""
    directory = DATA_DIR if directory is None else Path(directory)
    paths = [directory / "07_auc.csv", directory / "07_models.csv"]
    table.to_csv(paths[0], index=False, float_format="%.6g")
    models.to_csv(paths[1], index=False, float_format="%.6g")
    return paths
