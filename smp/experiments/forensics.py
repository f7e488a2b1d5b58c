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

from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .. import data
from ..forensics import add_noise, bootstrap_auc, smp_score, tv_score
from ..networks import LANDMARK_KINDS, landmark_net
from ._landmark import (  # noqa: F401  (the task, re-exported)
    BLOB_WIDTH,
    IMAGE_SIZE,
    MARGIN,
    load_net,
    predict,
    render,
    smooth_trajectories,
    test_error,
    train_landmark_net,
)

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


# not a pytest test: pytest collects test_* functions of a module named on its command
# line (pytest --doctest-modules smp/experiments/forensics.py)
test_error.__test__ = False


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
    for kind in tqdm(
        list(LANDMARK_KINDS), disable=not progress, desc="networks along trajectories"
    ):
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
    settings = [("noise", snr, 1) for snr in snrs_db] + [
        ("sampling", np.inf, s) for s in strides
    ]
    rows = []
    for sweep, snr, stride in settings:
        sig = {
            name: add_noise(
                run[name], run["truth"], snr, seed=seed + 1000 * i + int(min(snr, 1e6))
            )[..., ::stride]
            for i, name in enumerate(("relu", "smooth", "truth"))
        }
        for score_name, score in _SCORES.items():
            s = {name: score(y, dt * stride) for name, y in sig.items()}
            for comparison, neg in (
                ("ReLU vs smooth net", "smooth"),
                ("ReLU vs true", "truth"),
            ):
                a, lo, hi = bootstrap_auc(s["relu"], s[neg], n_boot=n_boot, seed=seed)
                rows.append(
                    dict(
                        sweep=sweep,
                        snr_db=snr,
                        frames_per_px=1 / (dt * stride),
                        comparison=comparison,
                        score=score_name,
                        auc=a,
                        auc_low=lo,
                        auc_high=hi,
                    )
                )
    return pd.DataFrame(rows)


def snr_threshold(
    table: pd.DataFrame, comparison: str, score: str, level: float = 0.9
) -> float:
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
    rows = table[
        (table.sweep == "noise")
        & (table.comparison == comparison)
        & (table.score == score)
    ]
    rows = rows[np.isfinite(rows.snr_db)].sort_values("snr_db", ascending=False)
    snr, a = rows.snr_db.to_numpy(), rows.auc.to_numpy()
    below = np.flatnonzero(a < level)
    if below.size == 0:
        return float("nan")
    i = below[0]
    if i == 0:
        return float(snr[0])
    return float(
        snr[i - 1] + (level - a[i - 1]) * (snr[i] - snr[i - 1]) / (a[i] - a[i - 1])
    )


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
        data.write(
            f"forensics_{kind}",
            {k: v.double() for k, v in net.state_dict().items()},
            directory,
        )
        nets[kind] = landmark_net(kind).double()
        nets[kind].load_state_dict(
            data.load(f"forensics_{kind}", directory)
        )  # measure what was stored
        nets[kind].eval()
        activation, pooling = LANDMARK_KINDS[kind]
        error = test_error(nets[kind])
        rows.append(
            dict(
                network=kind,
                activation=activation,
                pooling=pooling,
                train_seconds=seconds,
                test_rmse_px=error,
            )
        )
        if progress:
            print(f"{kind}: trained in {seconds:.1f} s, test RMS error {error:.3f} px")
    table = forensic_table(run_trajectories(nets=nets, progress=progress))
    tables = {"forensics_auc": table, "forensics_models": pd.DataFrame(rows)}
    data.write_many(tables, directory)
    return tables
