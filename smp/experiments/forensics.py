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

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import data
from .._threads import torch_threads
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
from ._parallel import run_units

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
    "TRAINING_THREADS",
    "train_landmark_nets",
    "ForensicRun",
    "run_trajectories",
    "forensic_table",
    "N_TRAJ",
    "snr_threshold",
    "write_tables",
    "same_trained_network",
    "same_auc",
]


# not a pytest test: pytest collects test_* functions of a module named on its command
# line (pytest --doctest-modules smp/experiments/forensics.py)
test_error.__test__ = False


#: torch threads of a training unit, wherever it runs: float32 training sums in an order that
#: depends on the thread count, and the stored weights were trained on 2 threads
#: (``scripts/train_forensics.py``); measurement units run on one thread (float64)
TRAINING_THREADS = 2


#: frames per forward pass of :func:`run_trajectories` (:func:`predict`'s default), one unit each
PREDICT_BATCH = 4096


def _train_unit(unit: tuple) -> tuple[dict, float]:
    """One unit of :func:`train_landmark_nets`: one network, on ``TRAINING_THREADS`` threads."""
    kind, options = unit
    with torch_threads(TRAINING_THREADS):
        net, seconds = train_landmark_net(kind, progress=False, **options)
    return {k: v.double() for k, v in net.state_dict().items()}, seconds


def train_landmark_nets(
    *,
    steps: int = 1000,
    batch_size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> dict[str, tuple[dict, float]]:
    """Train every kind of ``LANDMARK_KINDS`` by :func:`train_landmark_net`, one unit per network.

    Each network is one unit of work (:func:`smp.experiments._parallel.run_units` over ``workers``
    processes or the ``scheduler``'s cluster) trained on ``TRAINING_THREADS`` torch threads, so its
    weights do not depend on where it ran (training is not split further: its float32 sums, and
    with them the weights, depend on the thread count).

    Parameters
    ----------
    steps, batch_size, seed : int
        as for :func:`train_landmark_net` (the same seed for every kind).
    workers, scheduler : as for :func:`smp.experiments._parallel.run_units`.
    progress : bool
        a tqdm bar over the networks.

    Returns
    -------
    dict
        ``kind -> (state_dict, seconds)``: the float64 state dict and the training wall time.

    Example
    -------
    >>> trained = train_landmark_nets(steps=2, batch_size=4, workers=1)
    >>> sorted(trained), trained["relu"][0]["0.weight"].dtype
    (['relu', 'smooth'], torch.float64)
    """
    options = dict(steps=steps, batch_size=batch_size, seed=seed)
    results = run_units(
        _train_unit,
        [(kind, options) for kind in LANDMARK_KINDS],
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="training",
    )
    return dict(zip(LANDMARK_KINDS, results))


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


#: trajectories per network in :func:`run_trajectories` (and per class of every AUC)
N_TRAJ = 64


def run_trajectories(
    n_traj: int = N_TRAJ,
    frames_per_px: int = 128,
    *,
    length: float = 4.0,
    seed: int = 0,
    nets: dict | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> ForensicRun:
    """Predicted trajectories of both stored networks over seeded smooth trajectories.

    The trajectories are drawn here; each forward batch of :func:`predict` (``PREDICT_BATCH``
    consecutive frames of all trajectories, one after the other) of each network is one unit of
    work (:func:`smp.experiments._parallel.run_units`).  Units are those batches, not
    trajectories, because a frame's float64 prediction depends in its last bits on which frames
    share its forward pass (the kernels differ with the batch size), and these are the batches
    a single call of :func:`predict` forms.

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
    workers, scheduler : as for :func:`smp.experiments._parallel.run_units`.
    progress : bool
        show a tqdm bar over the units.

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
    # (M N, 2): the frames of one trajectory after another, as predict flattens them
    frames = np.moveaxis(truth, 1, -1).reshape(-1, 2)
    starts = range(0, len(frames), PREDICT_BATCH)
    batches = run_units(
        _predict_unit,
        [
            (nets[kind], frames[start : start + PREDICT_BATCH])
            for kind in LANDMARK_KINDS
            for start in starts
        ],
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="networks along trajectories",
    )
    for k, kind in enumerate(LANDMARK_KINDS):
        predicted = np.concatenate(batches[k * len(starts) : (k + 1) * len(starts)])
        run[kind] = np.moveaxis(predicted.reshape(truth.shape[0], -1, 2), -1, 1)
    return run


def _predict_unit(unit: tuple) -> np.ndarray:
    """One unit of :func:`run_trajectories`: one network on one forward batch of frames."""
    net, frames = unit
    return predict(net, frames, batch_size=PREDICT_BATCH)


_SCORES = {"SMP": smp_score, "TV of D": tv_score}


def forensic_table(
    run: ForensicRun,
    *,
    snrs_db: Sequence[float] = (np.inf, 120, 100, 90, 85, 80, 75, 70, 65, 60, 50),
    strides: Sequence[int] = (1, 2, 4, 8, 16, 32),
    n_boot: int = 2000,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """AUC with 95 % bootstrap interval for every setting.

    Rows: ``sweep`` ("noise": SNR sweep at the full frame rate; "sampling": every ``stride``-th
    frame, no noise), ``snr_db``, ``frames_per_px``, ``comparison`` ("ReLU vs smooth net",
    "ReLU vs true"), ``score`` ("SMP", "TV of D"), ``auc``, ``auc_low``, ``auc_high``.
    The noise of each SNR is drawn once per class from seeds ``seed + 1000 i + min(snr, 10^6)``
    (class ``i``: the ReLU net, the smooth net, the truth; independent between them), the bootstrap
    from ``seed``: every setting is one unit of work (:func:`smp.experiments._parallel.run_units`),
    its rows independent of the others.

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
    workers, scheduler : as for :func:`smp.experiments._parallel.run_units`.
    progress : bool
        a tqdm bar over the settings.

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
    settings = [("noise", snr, 1) for snr in snrs_db] + [
        ("sampling", np.inf, s) for s in strides
    ]
    rows = run_units(
        _table_unit,
        [(run, setting, n_boot, seed) for setting in settings],
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="detector settings",
    )
    return pd.DataFrame([row for setting_rows in rows for row in setting_rows])


def _table_unit(unit: tuple) -> list[dict]:
    """One unit of :func:`forensic_table`: the rows of one setting."""
    run, (sweep, snr, stride), n_boot, seed = unit
    dt = run["dt"]
    sig = {
        name: add_noise(
            run[name], run["truth"], snr, seed=seed + 1000 * i + int(min(snr, 1e6))
        )[..., ::stride]
        for i, name in enumerate(("relu", "smooth", "truth"))
    }
    rows = []
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
    return rows


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


def write_tables(
    *,
    progress: bool = False,
    directory: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict:
    """Retrain both landmark networks, store their weights, measure the detector, store the tables.

    Trains every kind by :func:`train_landmark_nets` (seed 0, one unit per network on
    ``TRAINING_THREADS`` threads), stores the float64 state dicts (``forensics_relu``,
    ``forensics_smooth``), reloads what was stored, measures its test error, then runs
    :func:`run_trajectories` and :func:`forensic_table` and stores ``forensics_models``
    (training time, test error) and ``forensics_auc``.  Every step runs as units of work on
    ``workers`` processes or the ``scheduler``'s cluster; the weights and ``forensics_auc`` do not
    depend on their number (``train_seconds``, a wall-clock time, does).  About a minute on 2
    cores.

    Parameters
    ----------
    progress : bool
        show progress bars and each network's training time and test error.
    directory : str, optional
        the data directory; default :func:`smp.data.data_dir`.
    workers, scheduler : as for :func:`smp.experiments._parallel.run_units`.

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
    parallel = dict(workers=workers, scheduler=scheduler, progress=progress)
    trained = train_landmark_nets(seed=0, **parallel)
    nets = {}
    for kind, (state, _) in trained.items():
        data.write(f"forensics_{kind}", state, directory)
        nets[kind] = landmark_net(kind).double()
        nets[kind].load_state_dict(
            data.load(f"forensics_{kind}", directory)
        )  # measure what was stored
        nets[kind].eval()
    errors = run_units(test_error, list(nets.values()), **parallel, desc="test error")
    rows = []
    for (kind, (_, seconds)), error in zip(trained.items(), errors):
        activation, pooling = LANDMARK_KINDS[kind]
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
    table = forensic_table(run_trajectories(nets=nets, **parallel), **parallel)
    tables = {"forensics_auc": table, "forensics_models": pd.DataFrame(rows)}
    data.write_many(tables, directory)
    return tables


def same_trained_network(new: str | Path, stored: str | Path) -> list[str]:
    """How a retrained landmark network's weights file differs from the stored one in what it
    does (:class:`smp.data.Tolerance` check of ``forensics_relu`` / ``forensics_smooth``).

    Float32 training sums in an order that depends on the thread count and the CPU, so weights
    retrained on another machine differ (by up to 0.038 in one weight, measured) and are judged
    by their test error (:func:`test_error`): it must be within the relative tolerance of
    ``forensics_models``'s ``test_rmse_px``.  The parameters' names and shapes must agree.

    Parameters
    ----------
    new, stored : str or pathlib.Path
        the two state dict files; the kind is read from the name (``forensics_<kind>.pt``).

    Returns
    -------
    list of str
        the problems (empty when the retrained network is the same result).

    Example
    -------
    >>> same_trained_network(data.path("forensics_relu"), data.path("forensics_relu"))
    []
    """
    kind = Path(stored).stem.removeprefix("forensics_")
    if kind not in LANDMARK_KINDS:
        raise ValueError(
            f"stored must be a forensics_<kind>.pt file, kind one of {sorted(LANDMARK_KINDS)}, "
            f"got {Path(stored).name!r}"
        )
    states = [torch.load(f, weights_only=True) for f in (new, stored)]
    shapes = [{k: tuple(v.shape) for k, v in state.items()} for state in states]
    if shapes[0] != shapes[1]:
        return [f"parameters differ: {shapes[0]} against {shapes[1]}"]
    errors = []
    for state in states:
        net = landmark_net(kind).double()
        net.load_state_dict(state)
        errors.append(test_error(net.eval()))
    rtol = data.REGISTRY["forensics_models"].tolerance.rtol
    change = errors[0] / errors[1] - 1
    if abs(change) <= rtol:
        return []
    return [
        f"test error {errors[0]:.4g} px against the stored network's {errors[1]:.4g} px "
        f"({change:+.1%}, tolerance {rtol:.0%})"
    ]


def same_auc(new: str | Path, stored: str | Path) -> list[str]:
    """How a regenerated ``forensics_auc`` table differs from the stored one beyond the AUCs'
    own uncertainty (:class:`smp.data.Tolerance` check).

    The networks are retrained (float32, not bit-reproducible across machines), so their
    scores differ slightly; every AUC and both bounds of its interval must stay within half the
    stored bootstrap interval's width of the stored value (the interval is the AUC's sampling
    uncertainty from the finite trajectories; a retrained network that moved an AUC further
    would change a conclusion of the chapter), or within ``1 / N_TRAJ``: one trajectory of
    ``N_TRAJ`` per class changing its rank against the whole other class moves an AUC by that
    much, and an interval of zero width (every score tied, e.g. SMP 0 on every trajectory) gives
    no other bound.  The interval's bounds, quantiles of the bootstrap resamples and noisier
    than the AUC, may move twice as far.

    Example
    -------
    >>> same_auc(data.path("forensics_auc"), data.path("forensics_auc"))
    []
    """
    fresh, kept = (pd.read_csv(f) for f in (new, stored))
    width = (kept["auc_high"] - kept["auc_low"]).to_numpy()
    problems = []
    # the bounds, quantiles of the bootstrap resamples, are noisier than the AUC: twice the bound
    for column, factor in (("auc", 1), ("auc_low", 2), ("auc_high", 2)):
        bound = factor * np.maximum(width / 2, 1 / N_TRAJ)
        moved = np.abs(fresh[column].to_numpy() - kept[column].to_numpy())
        beyond = moved > bound
        if beyond.any():
            worst = int(np.argmax(moved - bound))
            problems.append(
                f"{column}: {beyond.sum()} of {len(kept)} rows moved by more than "
                f"{factor} x max(half the stored interval, 1/{N_TRAJ}) (worst: row {worst}, "
                f"{moved[worst]:.3f} > {bound[worst]:.3f})"
            )
    return problems
