"""Monte-Carlo measurement: run torch modules along a path (the batch axis) and measure SMP.

The batch axis *is* the path: feeding ``x(t_0 .. t_{N-1})`` as one batch through real torch modules
turns every unit of every layer into a 1-D signal along t.  Everything runs in float64.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .feature import smp as _smp

__all__ = [
    "along_path",
    "layer_smp",
    "UnitStatistics",
    "unit_statistics",
    "mean_sem",
    "stack_measurement",
    "KinkedFeatureMap",
    "kinked_feature_map",
    "random_conv2d",
    "conv_sweep",
    "conv_shared_sweep",
    "dense_stack_sweep",
    "conv_stack_sweep",
    "stack_resolution_sweep",
    "write_stacked_data",
    "conv_resolution",
    "write_conv_tables",
    "TentedProcess",
    "gaussian_process_with_tents",
    "relu_sweep",
    "relu_resolution",
    "relu_great_circle",
    "write_relu_tables",
    "maxpool_sweep",
    "maxpool_cnn",
    "write_maxpool_tables",
    "CONV_SWEEP_POINTS",
    "CONV_TABLES",
    "RELU_SWEEP_POINTS",
    "RELU_TABLES",
    "MAXPOOL_TABLES",
]


def _as_path(path: Any) -> torch.Tensor:
    if isinstance(path, np.ndarray):
        path = torch.from_numpy(path)
    if not isinstance(path, torch.Tensor):
        raise TypeError(f"path must be a numpy array or torch tensor of shape (N, ...), got {type(path).__name__}")
    if path.ndim < 1 or path.shape[0] < 3:
        raise ValueError(f"path needs at least 3 samples along its first (batch) axis, got shape {tuple(path.shape)}")
    if not torch.is_floating_point(path):
        raise TypeError(f"path must be floating point, got dtype {path.dtype}")
    return path.to(torch.float64)


def along_path(
    network: nn.Module,
    path: Any,
    *,
    batch_size: int = 4096,
    progress: bool = False,
    keep: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Outputs of every child of ``network`` (or of the module itself) along ``path``.

    Parameters
    ----------
    network : an ``nn.Sequential`` (every child's output is returned) or any module (its output).
    path : (N, ...) samples of the input path; N is the batch axis.
    batch_size : samples per forward pass (memory bound, the result is the same).
    progress : show a tqdm progress bar over the batches.
    keep : indices of the children whose outputs are returned (default: all); memory is only spent on
        these (e.g. ``keep=[-1]`` for the network's output on a long path).

    Returns
    -------
    list of float64 arrays of shape (N, units), one per kept child, each unit a signal along t.
    """
    path = _as_path(path)
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    children = list(network) if isinstance(network, nn.Sequential) else [network]
    if keep is None:
        kept = list(range(len(children)))
    else:
        try:
            kept = [range(len(children))[i] for i in keep]
        except (IndexError, TypeError) as err:
            raise ValueError(f"keep must list child indices in [-{len(children)}, {len(children)}), got {keep!r}") from err
    chunks: dict[int, list[torch.Tensor]] = {i: [] for i in kept}
    starts = range(0, path.shape[0], batch_size)
    with torch.no_grad():
        for start in tqdm(starts, disable=not progress, desc="forward along path", leave=False):
            h = path[start : start + batch_size]
            for i, child in enumerate(children):
                h = child(h)
                if i in chunks:
                    chunks[i].append(h.reshape(h.shape[0], -1))
    return [torch.cat(chunks[i]).numpy() for i in kept]


def layer_smp(
    network: nn.Module, path: Any, dt: float, *, batch_size: int = 4096, progress: bool = False, **detector_options
) -> list[np.ndarray]:
    """SMP of every unit of every child's output along ``path`` (list of arrays of shape (units,)).

    ``dt`` is the path's step in t, so each value is a total absolute slope jump (units per unit t).
    """
    return [
        _smp(signals, dt, axis=0, **detector_options)
        for signals in along_path(network, path, batch_size=batch_size, progress=progress)
    ]


class UnitStatistics(NamedTuple):
    """Per-unit statistics over time along one path: ``mean`` (mu), ``std`` (sigma), ``dstd`` (sigma')."""

    mean: np.ndarray
    std: np.ndarray
    dstd: np.ndarray


def unit_statistics(signals: np.ndarray, dt: float) -> UnitStatistics:
    """Time averages along axis 0 of (N, units) signals: ``mu``, ``sigma`` and ``sigma'``.

    ``sigma'`` is the root mean square of the centred first difference ``(y[n+1]-y[n])/dt`` (its
    error is ``O(dt * |y''| / |y'|)``, and kinks affect it only at the samples they fall in).
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim < 1 or signals.shape[0] < 3:
        raise ValueError(f"signals must have shape (N >= 3, ...), got {signals.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt!r}")
    slope = np.diff(signals, axis=0) / dt
    return UnitStatistics(signals.mean(axis=0), signals.std(axis=0), slope.std(axis=0))


def mean_sem(values: Sequence[float] | np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (``std(ddof=1)/sqrt(n)``) along ``axis``; needs n >= 2."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n < 2:
        raise ValueError(f"mean_sem needs at least 2 values along axis {axis} for a standard error, got {n}")
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / np.sqrt(n)

def stack_measurement(
    networks: Sequence[nn.Module],
    path: Any,
    dt: float,
    *,
    max_units: int | None = None,
    seed: int = 0,
    batch_size: int = 8192,
    progress: bool = False,
    **detector_options,
):
    """Per-layer total SMP and statistics of real networks along one path, averaged over networks.

    Every child of each ``nn.Sequential`` in ``networks`` (e.g. ``Linear, ReLU, Linear, ...`` or
    ``Conv2d, ReLU, MaxPool2d, ...``) is run along ``path`` (the batch axis is t); its output units
    become signals along t.  For every layer and network this measures

    - ``smp``: the layer's total SMP, the sum over all its units of ``smp.smp(y, dt)`` (units of the
      activation per unit t).  With ``max_units`` only a seeded random subset of that many units is
      measured and the sum is estimated as ``units * mean(subset)`` (unbiased; it saves time on wide
      layers, at the cost of a larger standard error);
    - ``rms``: root mean square of the activation over units and t (the ensemble second moment that
      the mean-field recursion predicts; not centred, because a ReLU output has a positive mean);
    - ``drms``: root mean square of the slope ``(y[n+1] - y[n]) / dt`` over units and t;
    - ``p_positive``: the fraction of (unit, t) with a positive activation (P(active) after a ReLU);
    - ``dense_warning``: whether :class:`smp.DenseKinksWarning` was raised for the layer (kinks too
      dense for the grid: increase the number of samples).

    Parameters
    ----------
    networks : two or more networks of the same architecture (e.g. different seeds); the
        standard errors are across them (``std(ddof=1) / sqrt(n)``).
    path : (N, ...) samples of the input path, N the batch axis.
    dt : the path's grid step in t.
    max_units : measure SMP on at most this many units per layer (None: all).
    seed : seed of the unit subsets.
    batch_size : samples per forward pass (memory only).
    progress : tqdm progress bar over networks and layers.
    detector_options : passed to :func:`smp.smp` (``kappa``, ``window``, ``floor_eps``).

    Returns
    -------
    pandas.DataFrame, one row per layer: ``layer`` (1-based), ``kind`` (the module's class name in
    lower case), ``units``, and ``smp, smp_sem, rms, rms_sem, drms, drms_sem, p_positive,
    p_positive_sem`` (mean and standard error over networks), ``dense_warning`` (fraction of
    networks that raised the warning).
    """
    import warnings

    import pandas as pd

    from .feature import DenseKinksWarning

    networks = list(networks)
    if len(networks) < 2:
        raise ValueError(f"networks must hold at least 2 networks for a standard error, got {len(networks)}")
    if not all(isinstance(net, nn.Sequential) for net in networks):
        raise TypeError("networks must be nn.Sequential modules (each child is one measured layer)")
    n_layers = len(networks[0])
    if any(len(net) != n_layers for net in networks):
        raise ValueError("all networks must have the same number of children (layers)")
    if max_units is not None and (not isinstance(max_units, numbers.Integral) or max_units < 1):
        raise ValueError(f"max_units must be a positive integer or None, got {max_units!r}")
    if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(dt, numbers.Real) and dt > 0):
        raise ValueError(f"dt must be a positive number (the grid step), got {dt!r}")
    path = _as_path(path)
    keys = ("smp", "rms", "drms", "p_positive", "dense_warning")
    values = {key: np.zeros((len(networks), n_layers)) for key in keys}
    units = np.zeros(n_layers, dtype=int)
    kinds = [type(child).__name__.lower() for child in networks[0]]
    rng = np.random.default_rng(seed)
    bar = tqdm(total=len(networks) * n_layers, disable=not progress, desc="layers", leave=False)
    for i, net in enumerate(networks):
        h = path
        for j, child in enumerate(net):
            with torch.no_grad():
                # one child at a time over the whole path: only two layers are ever held in memory
                h = torch.cat([child(h[s : s + batch_size]) for s in range(0, h.shape[0], batch_size)])
            y = h.reshape(h.shape[0], -1).numpy()
            units[j] = y.shape[1]
            values["rms"][i, j] = np.sqrt(np.mean(y**2))
            values["drms"][i, j] = np.sqrt(np.mean((np.diff(y, axis=0) / dt) ** 2))
            values["p_positive"][i, j] = np.mean(y > 0)
            chosen = y
            if max_units is not None and y.shape[1] > max_units:
                chosen = y[:, np.sort(rng.choice(y.shape[1], size=max_units, replace=False))]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DenseKinksWarning)
                per_unit = _smp(chosen, dt, axis=0, **detector_options)
            values["dense_warning"][i, j] = any(issubclass(w.category, DenseKinksWarning) for w in caught)
            values["smp"][i, j] = y.shape[1] * per_unit.mean()
            bar.update()
    bar.close()
    table = {"layer": np.arange(1, n_layers + 1), "kind": kinds, "units": units}
    for key in keys[:-1]:
        table[key], table[key + "_sem"] = mean_sem(values[key], axis=0)
    table["dense_warning"] = values["dense_warning"].mean(axis=0)
    return pd.DataFrame(table)


# ---------------------------------------------------------------------------------------------------
# Convolutional layer (chapter 3): inputs with known kinks, fan-in / weight-std sweep, shared kinks.
# ---------------------------------------------------------------------------------------------------


class KinkedFeatureMap(NamedTuple):
    """Feature maps whose units are piecewise-linear signals with known kinks.

    ``t`` (N,) sample times on [0, 1], ``h`` the step, ``x`` (N, C, H, W) the maps along the path,
    ``kink_times`` and ``slope_jumps`` (C, H, W, n_kinks) every unit's kinks (sorted in time).
    """

    t: np.ndarray
    h: float
    x: np.ndarray
    kink_times: np.ndarray
    slope_jumps: np.ndarray


#: samples per time slot of :func:`kinked_feature_map`; a kink sits at least ``_SLOT_MARGIN`` samples
#: inside its slot, so kinks of different slots are >= 3 samples apart: their second-difference
#: samples never overlap and the medians of the SMP detector stay at the rounding level.
_SLOT_SAMPLES = 8
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
    """
    n_samples, channels, size, kernel_size, n_kinks = (
        _positive_int(name, value)
        for name, value in (
            ("n_samples", n_samples), ("channels", channels), ("size", size),
            ("kernel_size", kernel_size), ("n_kinks", n_kinks),
        )
    )
    if layout not in ("slots", "uniform"):
        raise ValueError(f"layout must be 'slots' or 'uniform', got {layout!r}")
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
        n_slots = (n_samples - 5) // _SLOT_SAMPLES
        per_class = n_slots // n_classes
        if per_class < n_kinks:
            need = n_classes * n_kinks * _SLOT_SAMPLES + 5
            raise ValueError(f"n_samples={n_samples} too small for distinct kink slots; need >= {need}")
        class_slots = rng.permutation(n_slots)[: n_classes * per_class].reshape(n_classes, per_class)
        if shared_channels:
            unit_class = np.broadcast_to(pixel_class, (1, size, size))
        else:
            unit_class = np.arange(channels)[:, None, None] * k * k + pixel_class
        # n_kinks distinct slots of the unit's class, chosen at random
        pick = np.argsort(rng.random(unit_class.shape + (per_class,)), axis=-1)[..., :n_kinks]
        slots = np.take_along_axis(class_slots[unit_class], pick, axis=-1)
        offset = rng.uniform(_SLOT_MARGIN, _SLOT_SAMPLES - _SLOT_MARGIN, slots.shape)
        times = np.sort((2 + slots * _SLOT_SAMPLES + offset) * h, axis=-1)
        times = np.broadcast_to(times, shape + (n_kinks,)).copy()
    jumps = rng.normal(0.0, jump_std, shape + (n_kinks,))
    a, b = rng.standard_normal((2,) + shape)
    x = a + b * t.reshape(-1, 1, 1, 1)
    for kk in range(n_kinks):  # few kinks; each step vectorised over the path and the map
        x += jumps[..., kk] * np.maximum(t.reshape(-1, 1, 1, 1) - times[..., kk], 0.0)
    return KinkedFeatureMap(t, h, x, times, jumps)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def random_conv2d(in_channels: int, out_channels: int, kernel_size: int, weight_std: float, *, bias_std: float = 1.0,
                  seed: int = 0) -> nn.Conv2d:
    """A float64 ``nn.Conv2d`` (no padding, stride 1) with i.i.d. ``N(0, weight_std**2)`` weights and
    ``N(0, bias_std**2)`` biases from a seeded ``torch.Generator`` (the bias shifts y, not its kinks)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        conv.weight.normal_(0.0, float(weight_std), generator=gen)
        conv.bias.normal_(0.0, float(bias_std), generator=gen)
    return conv.eval()


def _repeat_until(one_repeat, min_repeats: int, max_repeats: int, target_rel_sem: float, progress: bool, desc: str):
    """Run ``one_repeat(r)`` -> (measured, model, ...) until the s.e. of measured / model is below target."""
    rows = []
    bar = tqdm(total=max_repeats, disable=not progress, desc=desc, leave=False)
    for r in range(max_repeats):
        rows.append(one_repeat(r))
        bar.update()
        if r + 1 >= min_repeats:
            ratio = np.asarray(rows)[:, 0] / np.asarray(rows)[:, 1]
            if ratio.std(ddof=1) / np.sqrt(len(ratio)) < target_rel_sem * ratio.mean():
                break
    bar.close()
    return np.asarray(rows)


def _ratio_summary(measured: np.ndarray, model: np.ndarray, suffix: str = "") -> dict:
    """Per-repeat ratios measured / model: their mean, s.e., the model's relative error and z-score."""
    ratio = measured / model
    mean, sem = ratio.mean(), ratio.std(ddof=1) / np.sqrt(len(ratio))
    return {
        f"ratio{suffix}": mean,
        f"ratio_sem{suffix}": sem,
        f"rel_error{suffix}": 1.0 / mean - 1.0,
        f"z{suffix}": (1.0 - mean) / sem,
    }


#: the chapter's fan-in sweep: (C_in, kernel size) giving fan-in C_in k^2 = 1, 4, 9, 16, 36, 64 at sw = 1,
#: then the weight-std sweep at fan-in 16.
CONV_SWEEP_POINTS = (
    (1, 1, 1.0), (1, 2, 1.0), (1, 3, 1.0), (4, 2, 1.0), (4, 3, 1.0), (4, 4, 1.0),
    (4, 2, 0.1), (4, 2, 0.3), (4, 2, 3.0),
)


def conv_sweep(
    points: Sequence[tuple[int, int, float]] = CONV_SWEEP_POINTS,
    *,
    n_kinks: int = 2,
    size: int = 8,
    out_channels: int = 64,
    min_samples: int = 256,
    min_repeats: int = 10,
    max_repeats: int = 200,
    target_rel_sem: float = 0.015,
    seed: int = 0,
    progress: bool = False,
):
    """Expected SMP of a real ``nn.Conv2d`` output unit: model :func:`smp.models.conv` vs measurement.

    For each point ``(C_in, k, sw)``: inputs from :func:`kinked_feature_map` (``C_in`` channels,
    ``size x size`` pixels, ``n_kinks`` kinks per unit at distinct resolvable times inside every
    receptive field, jumps ``N(0, 1)``), a :func:`random_conv2d` with ``out_channels`` channels and
    weights ``N(0, sw**2)``; the path has ``max(min_samples, 16 * fan_in * n_kinks + 5)`` samples
    (one output kink per 16 samples at most).  Each repeat draws new inputs and weights (seeded by
    ``(seed, point, repeat)``) and gives the mean measured SMP over all output units (``smp.smp``
    along the path) and the model ``fan_in * sw * sqrt(2/pi) * smp_in`` with ``smp_in`` the mean
    measured SMP of that repeat's input units.  The comparison is made on the per-repeat ratios
    measured / model (the input SMP's fluctuation from repeat to repeat cancels in them); repeats
    continue (at least ``min_repeats``) until the ratio's standard error is below ``target_rel_sem``.

    Returns
    -------
    pandas.DataFrame, one row per point: ``c_in, kernel_size, fan_in, weight_std, n_samples, repeats,
    smp_in, model, measured`` (means over repeats), ``ratio`` and ``ratio_sem`` (mean and s.e. of
    measured / model over repeats), ``rel_error`` (``1/ratio - 1``: the model's error relative to the
    measurement), ``z`` (``(1 - ratio) / ratio_sem``: the miss in standard errors),
    ``estimator_error`` (largest relative difference, over all output units and repeats, between ``smp.smp`` and the exact SMP of the identity ``sum_i |w_i| SMP(x_i)``
    computed from the known jumps), ``dense_warning`` (fraction of repeats in which
    :class:`smp.DenseKinksWarning` was raised, for any unit) and ``flagged_units`` (largest fraction,
    over repeats, of output units that :func:`smp.feature.diagnose` marks unreliable).
    """
    import warnings

    import pandas as pd

    from .feature import DenseKinksWarning, diagnose
    from .models import conv as conv_model

    table = []
    for index, (c_in, k, sw) in enumerate(points):
        fan_in = c_in * k * k
        n_samples = max(int(min_samples), 2 * _SLOT_SAMPLES * fan_in * n_kinks + 5)

        def one_repeat(r: int, c_in=c_in, k=k, sw=sw, n_samples=n_samples, index=index):
            seeds = np.random.SeedSequence([seed, index, r]).generate_state(2)
            maps = kinked_feature_map(n_samples, c_in, size, k, n_kinks, seed=int(seeds[0]))
            layer = random_conv2d(c_in, out_channels, k, sw, seed=int(seeds[1]))
            (y,) = along_path(layer, maps.x)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DenseKinksWarning)
                smp_in = _smp(maps.x.reshape(n_samples, -1), maps.h, axis=0).mean()
                smp_y = _smp(y, maps.h, axis=0)
            # the identity SMP(y) = sum_i |w_i| SMP(x_i) is itself a convolution of the exact input
            # SMP map with |w| (kink times are distinct in every receptive field by construction)
            exact_in = torch.from_numpy(np.abs(maps.slope_jumps).sum(axis=-1))[None]
            exact_y = nn.functional.conv2d(exact_in, layer.weight.detach().abs()).numpy().ravel()
            estimator_error = np.abs(smp_y / exact_y - 1).max()
            warned = any(issubclass(w.category, DenseKinksWarning) for w in caught)
            # which output units the warning is about (diagnose repeats the detector: only when warned)
            flagged = diagnose(y, axis=0).unreliable.mean() if warned else 0.0
            return smp_y.mean(), conv_model(sw, fan_in, smp_in), smp_in, estimator_error, warned, flagged

        runs = _repeat_until(one_repeat, min_repeats, max_repeats, target_rel_sem, progress, f"conv C_in={c_in} k={k}")
        measured, model, smp_in = runs[:, :3].mean(axis=0)
        table.append(
            dict(
                c_in=c_in, kernel_size=k, fan_in=fan_in, weight_std=float(sw), n_samples=n_samples,
                repeats=len(runs), smp_in=smp_in, model=model, measured=measured,
                **_ratio_summary(runs[:, 0], runs[:, 1]),
                estimator_error=runs[:, 3].max(), dense_warning=runs[:, 4].mean(), flagged_units=runs[:, 5].max(),
            )
        )
    return pd.DataFrame(table)


def conv_shared_sweep(
    in_channels: Sequence[int] = (1, 2, 4, 8, 16),
    *,
    kernel_size: int = 3,
    weight_std: float = 1.0,
    upstream_channels: int = 1,
    size: int = 8,
    out_channels: int = 32,
    n_samples: int = 2048,
    std: float = 1.0,
    dstd: float = 5.0,
    min_repeats: int = 10,
    max_repeats: int = 200,
    target_rel_sem: float = 0.015,
    seed: int = 0,
    progress: bool = False,
):
    """Kinks shared by the channels of a pixel, as after a common upstream ReLU: both models vs measurement.

    Real modules: ``u`` is ``upstream_channels`` maps of independent stationary Gaussian processes
    (``std``, ``dstd``, :func:`smp.signals.gaussian_process`), ``z = ReLU(u)`` kinks at u's zero
    crossings, a 1x1 ``nn.Conv2d`` with ``N(0, 1)`` weights ``V`` (C_in x upstream_channels) mixes
    ``z`` into ``C_in`` channels that all kink when one ``z`` unit does, with jump vector
    ``J = V[:, c0] * s`` (``s`` the ReLU's slope jump); then the tested ``nn.Conv2d(C_in,
    out_channels, kernel_size)`` with weights ``N(0, weight_std**2)``.  Per repeat:

    - independent-times model :func:`smp.models.conv` with ``fan_in = C_in k^2`` and the measured
      mean SMP of the C_in input units (it assumes every input kinks alone);
    - shared-kink model :func:`smp.models.conv_shared`: ``k^2 * sw sqrt(2/pi) sum_c0 ||V[:, c0]||_2
      SMP(z_c0)`` with the measured mean SMP of the ReLU units (events of different pixels and
      upstream channels at distinct times);
    - measured: mean ``smp.smp`` over the tested layer's output units.

    Returns a pandas.DataFrame, one row per ``C_in``: ``c_in, kernel_size, fan_in, weight_std,
    repeats, smp_in, model_independent, model_shared, measured`` (means over repeats) and, for each
    model (suffix ``_shared``, ``_independent``), ``ratio``, ``ratio_sem``, ``rel_error``, ``z`` as in
    :func:`conv_sweep` (per-repeat ratios measured / model; repeats continue until the shared model's
    ratio has a relative s.e. below ``target_rel_sem``).
    """
    import pandas as pd

    from .models import conv as conv_model
    from .models.conv import conv_shared
    from .signals import gaussian_process

    k = _positive_int("kernel_size", kernel_size)
    table = []
    for index, c_in in enumerate(in_channels):
        c_in = _positive_int("in_channels", c_in)

        def one_repeat(r: int, c_in=c_in, index=index):
            seeds = np.random.SeedSequence([seed, index, r]).generate_state(3)
            gp = gaussian_process(upstream_channels * size * size, n_samples, std=std, dstd=dstd, seed=int(seeds[0]))
            u = gp.y.T.reshape(n_samples, upstream_channels, size, size)
            mix = random_conv2d(upstream_channels, c_in, 1, 1.0, bias_std=0.0, seed=int(seeds[1]))
            tested = random_conv2d(c_in, out_channels, k, weight_std, seed=int(seeds[2]))
            z, x, y = along_path(nn.Sequential(nn.ReLU(), mix, tested), u)
            smp_z = _smp(z, gp.h, axis=0).reshape(upstream_channels, size * size).mean(axis=1)
            smp_in = _smp(x, gp.h, axis=0).mean()
            measured = _smp(y, gp.h, axis=0).mean()
            v = mix.weight.detach().numpy()[:, :, 0, 0]  # (C_in, upstream_channels)
            shared = k * k * conv_shared(weight_std, (v * smp_z).T)  # one row per upstream channel
            return measured, shared, conv_model(weight_std, c_in * k * k, smp_in), smp_in

        runs = _repeat_until(one_repeat, min_repeats, max_repeats, target_rel_sem, progress, f"shared C_in={c_in}")
        measured, shared, independent, smp_in = runs.mean(axis=0)
        table.append(
            dict(
                c_in=c_in, kernel_size=k, fan_in=c_in * k * k, weight_std=float(weight_std), repeats=len(runs),
                smp_in=smp_in, model_independent=independent, model_shared=shared, measured=measured,
                **_ratio_summary(runs[:, 0], runs[:, 1], "_shared"),
                **_ratio_summary(runs[:, 0], runs[:, 2], "_independent"),
            )
        )
    return pd.DataFrame(table)

def dense_stack_sweep(
    *,
    gains: Sequence[float] = (0.8, 1.0, 1.2),
    widths: Sequence[int] = (256,),
    depth: int = 8,
    in_features: int = 64,
    n_networks: int = 6,
    n_samples: int = 80000,
    max_units: int | None = 64,
    seed: int = 0,
    progress: bool = False,
):
    """Model against measurement for dense ReLU stacks on a great circle, every layer, every (gain, width).

    Networks :func:`smp.networks.dense_net` (seeds ``seed .. seed + n_networks - 1``) are run along
    :func:`smp.signals.great_circle` ``((in_features,), n_samples, seed=seed)`` with
    :func:`stack_measurement`; the model is :func:`smp.models.stack.dense_stack` for the same
    architecture (input coordinates of unit second moment, path length 2 pi).

    Returns a pandas.DataFrame: the columns of :func:`stack_measurement` plus ``gain``, ``width``,
    ``model`` (predicted total SMP), ``model_rms``, ``model_drms`` and ``error`` (model / measured - 1).
    """
    import pandas as pd

    from . import networks as _networks
    from . import signals as _signals
    from .models.stack import dense_stack

    _, dt, path = _signals.great_circle((in_features,), n_samples, seed=seed)
    tables = []
    for width in widths:
        for gain in gains:
            nets = [
                _networks.dense_net(in_features, width, depth, weight_gain=gain, seed=seed + i)
                for i in range(n_networks)
            ]
            table = stack_measurement(nets, path, dt, max_units=max_units, seed=seed, progress=progress)
            model = dense_stack(in_features, width, depth, weight_gain=gain)
            table.insert(0, "n_networks", n_networks)
            table.insert(0, "width", width)
            table.insert(0, "gain", gain)
            table["model"] = model["smp"].to_numpy()
            table["model_rms"] = model["rms"].to_numpy()
            table["model_drms"] = model["drms"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                table["error"] = table["model"] / table["smp"] - 1
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def conv_stack_sweep(
    *,
    channels: Sequence[int] = (1, 8, 16, 16),
    input_size: int = 16,
    gains: Sequence[float] = (1.0,),
    n_networks: int = 24,
    n_samples: int = 40000,
    max_units: int | None = 128,
    model_draws: int = 20000,
    seed: int = 0,
    progress: bool = False,
):
    """Model against measurement for Conv-ReLU-MaxPool stacks on a great circle in image space.

    Networks :func:`smp.networks.conv_net` ``(channels)`` without a head (seeds ``seed ..``) run
    along :func:`smp.signals.great_circle` ``((channels[0], input_size, input_size), n_samples)``;
    the model is :func:`smp.models.stack.conv_stack` with correlated windows (``model``) and with
    i.i.d. windows (``model_iid``), both with ``model_draws`` Monte Carlo draws.

    Returns a pandas.DataFrame: the columns of :func:`stack_measurement` plus ``gain``, ``block``,
    ``model``, ``model_iid``, ``model_rms``, ``model_drms``, ``model_p_active``, ``window_rho``
    and ``error`` (model / measured - 1).
    """
    import pandas as pd

    from . import networks as _networks
    from . import signals as _signals
    from .models.stack import conv_stack

    shape = (channels[0], input_size, input_size)
    _, dt, path = _signals.great_circle(shape, n_samples, seed=seed)
    tables = []
    for gain in gains:
        nets = [_networks.conv_net(channels, weight_gain=gain, seed=seed + i) for i in range(n_networks)]
        table = stack_measurement(nets, path, dt, max_units=max_units, seed=seed, progress=progress)
        model = conv_stack(shape, channels, weight_gain=gain, n_draws=model_draws, seed=seed)
        iid = conv_stack(shape, channels, weight_gain=gain, n_draws=model_draws, seed=seed, correlated_windows=False)
        table.insert(0, "n_networks", n_networks)
        table.insert(0, "gain", gain)
        table.insert(2, "block", model["block"].to_numpy())
        table["model"] = model["smp"].to_numpy()
        table["model_iid"] = iid["smp"].to_numpy()
        table["model_rms"] = model["rms"].to_numpy()
        table["model_drms"] = model["drms"].to_numpy()
        table["model_p_active"] = model["p_active"].to_numpy()
        table["window_rho"] = model["window_rho"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            table["error"] = table["model"] / table["smp"] - 1
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def stack_resolution_sweep(
    *,
    architecture: str = "dense",
    n_samples: Sequence[int] = (20000, 40000, 80000, 160000),
    weight_gain: float = 1.2,
    n_networks: int = 2,
    max_units: int | None = 64,
    seed: int = 0,
    progress: bool = False,
):
    """Convergence of the measured per-layer SMP in the number of samples N along the great circle.

    The same networks (``dense``: :func:`smp.networks.dense_net` (64, 256, 8); ``cnn``:
    :func:`smp.networks.conv_net` (1, 8, 16, 16) on 16 x 16 images) and the same measured units are
    run at every N; ``relative`` is the SMP at N over the SMP at the largest N, minus 1 (a deficit:
    kinks closer than a few samples merge or cancel in the second difference).

    Returns a pandas.DataFrame with ``architecture, gain, n_samples, layer, kind, smp, relative,
    dense_warning``.
    """
    import pandas as pd

    from . import networks as _networks
    from . import signals as _signals

    if architecture == "dense":
        nets = [_networks.dense_net(64, 256, 8, weight_gain=weight_gain, seed=seed + i) for i in range(n_networks)]
        shape = (64,)
    elif architecture == "cnn":
        nets = [_networks.conv_net((1, 8, 16, 16), weight_gain=weight_gain, seed=seed + i) for i in range(n_networks)]
        shape = (1, 16, 16)
    else:
        raise ValueError(f"architecture must be 'dense' or 'cnn', got {architecture!r}")
    tables = []
    for n in sorted(n_samples):
        _, dt, path = _signals.great_circle(shape, n, seed=seed)
        table = stack_measurement(nets, path, dt, max_units=max_units, seed=seed, progress=progress)
        table.insert(0, "n_samples", n)
        table.insert(0, "gain", weight_gain)
        table.insert(0, "architecture", architecture)
        tables.append(table[["architecture", "gain", "n_samples", "layer", "kind", "smp", "dense_warning"]])
    out = pd.concat(tables, ignore_index=True)
    finest = out[out["n_samples"] == max(n_samples)].set_index("layer")["smp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["relative"] = out["smp"].to_numpy() / finest.loc[out["layer"]].to_numpy() - 1
    return out


def write_stacked_data(directory: str = "data", *, progress: bool = False) -> dict:
    """Run the chapter-6 sweeps with the book's settings and write ``<directory>/06_stacked_*.csv``.

    - ``06_stacked_dense.csv``: :func:`dense_stack_sweep` at gains 0.8, 1, 1.2 (width 256, depth 8,
      36 networks: the per-network scatter of a deep layer's SMP is ~10 %);
    - ``06_stacked_width.csv``: :func:`dense_stack_sweep` at widths 64 .. 512 (gain 1, depth 4);
    - ``06_stacked_cnn.csv``: :func:`conv_stack_sweep` (channels 1, 8, 16, 16 on 16 x 16 images);
    - ``06_stacked_resolution.csv``: :func:`stack_resolution_sweep`, dense at gain 1.2 and the CNN.

    Takes some minutes on 2 cores; returns the three tables by file name.
    """
    import os

    import pandas as pd

    tables = {
        "06_stacked_dense.csv": dense_stack_sweep(n_networks=36, progress=progress),
        "06_stacked_width.csv": dense_stack_sweep(
            gains=(1.0,), widths=(64, 128, 256, 512), depth=4, n_networks=6, max_units=64, progress=progress
        ),
        "06_stacked_cnn.csv": conv_stack_sweep(progress=progress),
        "06_stacked_resolution.csv": pd.concat(
            [stack_resolution_sweep(progress=progress), stack_resolution_sweep(
                architecture="cnn", weight_gain=1.0, n_samples=(20000, 40000, 80000), max_units=256)],
            ignore_index=True,
        ),
    }
    os.makedirs(directory, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(os.path.join(directory, name), index=False, float_format="%.10g")
    return tables


def conv_resolution(
    n_samples: Sequence[int] = (256, 512, 1024, 2048, 4096),
    *,
    in_channels: int = 4,
    kernel_size: int = 4,
    n_kinks: int = 2,
    weight_std: float = 1.0,
    size: int = 8,
    out_channels: int = 16,
    seed: int = 0,
):
    """When kinks fall closer than the grid resolves: ``smp.smp`` of a conv output against the identity.

    Inputs from :func:`kinked_feature_map` with ``layout="uniform"`` (every unit's kink times drawn
    independently, so kinks seen by one output unit may fall within a few samples of each other), a
    :func:`random_conv2d`; the same continuous-time signals (same seed) sampled with each of
    ``n_samples``.  The exact SMP of every output unit is the identity ``sum_i |w_i| SMP(x_i)`` (kink
    times are distinct with probability 1).  Returns a pandas.DataFrame, one row per grid:
    ``n_samples``, ``kinks_per_output`` (fan_in * n_kinks), ``spacing`` (mean samples between
    output kinks), ``measured``, ``exact`` (means over output units), ``ratio`` (measured / exact),
    ``worst_ratio`` (smallest unit-wise ratio) and ``dense_warning`` (whether ``smp.smp`` raised
    :class:`smp.DenseKinksWarning` for any unit).
    """
    import warnings

    import pandas as pd

    from .feature import DenseKinksWarning

    fan_in = in_channels * kernel_size * kernel_size
    layer = random_conv2d(in_channels, out_channels, kernel_size, weight_std, seed=seed + 1)
    table = []
    for n in n_samples:
        maps = kinked_feature_map(int(n), in_channels, size, kernel_size, n_kinks, layout="uniform", seed=seed)
        (y,) = along_path(layer, maps.x)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DenseKinksWarning)
            measured = _smp(y, maps.h, axis=0)
        exact_in = torch.from_numpy(np.abs(maps.slope_jumps).sum(axis=-1))[None]
        exact = nn.functional.conv2d(exact_in, layer.weight.detach().abs()).numpy().ravel()
        table.append(
            dict(
                n_samples=int(n), kinks_per_output=fan_in * n_kinks, spacing=(int(n) - 1) / (fan_in * n_kinks),
                measured=measured.mean(), exact=exact.mean(), ratio=measured.mean() / exact.mean(),
                worst_ratio=(measured / exact).min(),
                dense_warning=any(issubclass(w.category, DenseKinksWarning) for w in caught),
            )
        )
    return pd.DataFrame(table)


#: the files of chapter 3's result tables, written by :func:`write_conv_tables`
CONV_TABLES = {
    "sweep": "03_convolution.csv",
    "shared": "03_convolution_shared.csv",
    "resolution": "03_convolution_resolution.csv",
}


def write_conv_tables(directory: str = "data", *, progress: bool = False) -> dict:
    """Run chapter 3's three measurements with their default (published) settings and write the CSVs.

    ``03_convolution.csv`` (:func:`conv_sweep`: independent kink times, fan-in and weight-std sweep),
    ``03_convolution_shared.csv`` (:func:`conv_shared_sweep`: kinks shared after an upstream ReLU) and
    ``03_convolution_resolution.csv`` (:func:`conv_resolution`: kinks closer than the grid resolves),
    in ``directory``.  Returns the three DataFrames by key (``sweep``, ``shared``, ``resolution``).
    """
    from pathlib import Path

    tables = {
        "sweep": conv_sweep(progress=progress),
        "shared": conv_shared_sweep(progress=progress),
        "resolution": conv_resolution(),
    }
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for key, frame in tables.items():
        frame.to_csv(out / CONV_TABLES[key], index=False, float_format="%.10g")
    return tables


# ----------------------------------------------------------------------------------------------------
# Chapter 4: the ReLU.


class TentedProcess(NamedTuple):
    """A stationary Gaussian process plus sparse tents with known kinks (see :func:`gaussian_process_with_tents`).

    ``t`` (N,), step ``h``, ``x`` and its exact derivative ``dx`` (n_paths, N), ``kink_times`` and
    ``slope_jumps`` (n_paths, 3 * tents), ``std`` and ``dstd`` the ensemble sigma and sigma' of x
    (Gaussian part and tents together) and ``smp_in`` the exact input SMP per path (n_paths,).
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


def gaussian_process_with_tents(
    n_paths: int,
    n_samples: int,
    *,
    length: float = 1.0,
    mean: float = 0.0,
    std: float = 1.0,
    dstd: float = 10.0,
    tent_spacing: float = 10.0,
    tent_height: float = 0.1,
    tent_halfwidth: float = 0.1,
    seed: int = 0,
) -> TentedProcess:
    """Gaussian process (:func:`smp.signals.gaussian_process`) plus tents: input kinks at times independent of x.

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
    n_paths, n_samples, length, mean, std, dstd, seed : as in :func:`smp.signals.gaussian_process`.
    tent_spacing, tent_height, tent_halfwidth : slot length, height (in units of ``std``) and half-width
        (in units of ``ell``) of the tents; ``tent_spacing = 0`` gives no tents.
    """
    from . import signals as _signals

    gp = _signals.gaussian_process(n_paths, n_samples, length=length, mean=mean, std=std, dstd=dstd, seed=seed)
    x, dx = gp.y, gp.dy
    ell = std / dstd
    slot = tent_spacing * ell
    n_tents = int(np.floor(length / slot)) if tent_spacing > 0 else 0
    if n_tents == 0:
        empty = np.zeros((n_paths, 0))
        return TentedProcess(gp.t, gp.h, x, dx, empty, empty, float(std), float(dstd), np.zeros(n_paths))
    w, c0 = tent_halfwidth * ell, tent_height * std
    if not (0 < w < 0.2 * slot):
        raise ValueError(f"tent_halfwidth must be in (0, 0.2 * tent_spacing), got {tent_halfwidth!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]).generate_state(1)[0])
    centres = (np.arange(n_tents) + 0.5 + 0.6 * (rng.uniform(size=(n_paths, n_tents)) - 0.5)) * slot
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
    kink_times = np.stack([centres - w, centres, centres + w], axis=-1).reshape(n_paths, -1)
    slope_jumps = (heights[..., None] / w * np.array([1.0, -2.0, 1.0])).reshape(n_paths, -1)
    fraction = 2 * w / slot
    total_std = float(np.sqrt(std**2 + fraction * c0**2 / 3))
    total_dstd = float(np.sqrt(dstd**2 + fraction * (c0 / w) ** 2))
    return TentedProcess(gp.t, gp.h, x, dx, kink_times, slope_jumps, total_std, total_dstd,
                         np.abs(slope_jumps).sum(axis=1))


#: the chapter's sweep points ``(mu/sigma, sigma'/sigma, tents)``: the bias sweep without and with input
#: kinks at sigma'/sigma = 10, then sigma'/sigma from 2.5 to 40 at mu = 0.
RELU_SWEEP_POINTS = tuple(
    [(float(z), 10.0, False) for z in np.arange(-3.0, 3.01, 0.5)]
    + [(float(z), 10.0, True) for z in np.arange(-3.0, 3.01, 0.5)]
    + [(0.0, r, tents) for tents in (False, True) for r in (2.5, 5.0, 20.0, 40.0)]
)


def relu_sweep(
    points: Sequence[tuple[float, float, bool]] = RELU_SWEEP_POINTS,
    *,
    length: float = 31.0,
    samples_per_ell: int = 100,
    batch_samples: int = 2_000_000,
    min_paths: int = 32,
    max_samples: int = 300_000_000,
    target_rel_sem: float = 0.019,
    seed: int = 0,
    progress: bool = False,
):
    """Expected SMP of a real ``nn.ReLU`` on stationary Gaussian inputs: model :func:`smp.models.relu` vs measurement.

    For each point ``(z, r, tents)``: paths of :func:`gaussian_process_with_tents` (``std = 1``,
    ``dstd = r``, ``mean = z``, ``length`` L, ``samples_per_ell`` samples per ``ell = 1/r``; input kinks
    from tents if ``tents``), run through ``torch.nn.ReLU`` in float64; ``smp.smp`` along each path
    (``dt`` = the grid step) is the measurement.  Batches of paths (about ``batch_samples`` samples
    each, seeded by ``(seed, point, batch)``) are added until the standard error of the mean over
    paths is below ``target_rel_sem`` of the mean, or ``max_samples`` samples were used (then the
    s.e. stays larger and the table says so).  The model is
    ``L phi(z') s'^2 / s + Phi(z') smp_in`` with the process's ensemble ``s``, ``s'`` (tents included),
    ``z' = z / s`` and ``smp_in`` the mean measured (``smp.smp``) input SMP.  Every path is also
    checked against the exact identity (:func:`smp.models.relu.relu_identity`: births from the
    crossings, pass-through from the tents' known kinks): ``estimator_error`` is the mean measured
    SMP over the identity's, minus 1.

    Returns
    -------
    pandas.DataFrame, one row per point: ``mu_over_sigma, dstd_over_std, tents, length, n_samples`` (per
    path), ``paths``, ``crossings`` (mean per path), ``smp_in``, ``model_births``, ``model_pass``,
    ``model``, ``measured``, ``measured_sem``, ``rel_sem``, ``rel_error`` (model / measured - 1), ``z``
    ((model - measured) / sem), ``exact`` (mean identity SMP) and ``estimator_error``.
    """
    import pandas as pd

    from .models.relu import relu as relu_model
    from .models.relu import relu_identity

    relu = nn.ReLU()
    table = []
    for index, (z, r, tents) in enumerate(points):
        ell = 1.0 / r
        n_samples = int(round(samples_per_ell * length / ell)) + 1
        per_batch = max(1, batch_samples // n_samples)
        measured, smp_in, exact, crossings = [], [], [], []
        used = 0
        bar = tqdm(total=max_samples, disable=not progress, desc=f"relu z={z:+.1f} r={r:g} tents={tents}", leave=False)
        batch = 0
        while True:
            bseed = int(np.random.SeedSequence([seed, index, batch]).generate_state(1)[0])
            proc = gaussian_process_with_tents(
                per_batch, n_samples, length=length, mean=z, std=1.0, dstd=r,
                tent_spacing=10.0 if tents else 0.0, seed=bseed,
            )
            y = relu(torch.from_numpy(proc.x)).numpy()
            measured.append(_smp(y, proc.h, axis=-1, warn=False))
            smp_in.append(_smp(proc.x, proc.h, axis=-1, warn=False) if tents else np.zeros(per_batch))
            ident = relu_identity(proc.t, proc.x, proc.dx, proc.kink_times, proc.slope_jumps)
            exact.append(ident.born + ident.passed)
            crossings.append(ident.crossings)
            used += per_batch * n_samples
            bar.update(per_batch * n_samples)
            batch += 1
            values = np.concatenate(measured)
            if values.size >= min_paths and values.size >= 2:
                mean, sem = values.mean(), values.std(ddof=1) / np.sqrt(values.size)
                if (mean > 0 and sem < target_rel_sem * mean) or used + per_batch * n_samples > max_samples:
                    break
        bar.close()
        s_in = float(np.concatenate(smp_in).mean())
        births = float(relu_model(proc.std, proc.dstd, z, length))
        model = float(relu_model(proc.std, proc.dstd, z, length, s_in))
        ex = float(np.concatenate(exact).mean())
        table.append(dict(
            mu_over_sigma=z, dstd_over_std=r, tents=bool(tents), length=length, n_samples=n_samples,
            paths=values.size, crossings=float(np.concatenate(crossings).mean()), smp_in=s_in,
            model_births=births, model_pass=model - births, model=model, measured=mean, measured_sem=sem,
            rel_sem=sem / mean, rel_error=model / mean - 1, z=(model - mean) / sem, exact=ex,
            estimator_error=mean / ex - 1,
        ))
    return pd.DataFrame(table)


def relu_resolution(
    samples_per_ell: Sequence[int] = (10, 20, 50, 100, 200),
    *,
    mu_over_sigma: float = 0.0,
    length: float = 31.0,
    n_paths: int = 16,
    seed: int = 0,
):
    """How finely the grid must sample a ReLU output for ``smp.smp`` to see its births.

    The same Gaussian paths (``std = 1``, ``dstd = 10``, mean ``mu_over_sigma``) are sampled at each
    ``samples_per_ell``; ``ratio`` is the measured SMP of ``nn.ReLU`` output over the exact identity
    (:func:`smp.models.relu.relu_identity`), pooled over paths, and ``ratio_sem`` its s.e. over paths.
    A crossing with small slope ``|x'|`` makes a kink smaller than the curvature's second difference
    ``h^2 |x''|`` times ``kappa`` and is missed: the loss falls like ``h^3`` (slopes near a crossing
    have density ``~|x'|``, the missed SMP ``~ |x'|^2 d|x'|``).

    Returns a pandas.DataFrame: ``samples_per_ell, n_samples, ratio, ratio_sem, worst_path``.
    """
    import pandas as pd

    from .models.relu import relu_identity

    rows = []
    for spe in samples_per_ell:
        n_samples = int(round(spe * length * 10.0)) + 1
        proc = gaussian_process_with_tents(n_paths, n_samples, length=length, mean=mu_over_sigma, std=1.0,
                                           dstd=10.0, tent_spacing=0.0, seed=seed)
        y = nn.ReLU()(torch.from_numpy(proc.x)).numpy()
        measured = _smp(y, proc.h, axis=-1, warn=False)
        ident = relu_identity(proc.t, proc.x, proc.dx)
        ratio = measured.sum() / ident.born.sum()
        # s.e. of a ratio of means (delta method): the paired residuals measured - ratio * exact
        sem = (measured - ratio * ident.born).std(ddof=1) / np.sqrt(n_paths) / ident.born.mean()
        has = ident.born > 0
        per_path = measured[has] / ident.born[has]
        rows.append(dict(samples_per_ell=int(spe), n_samples=n_samples, ratio=ratio, ratio_sem=sem,
                         worst_path=float(per_path[np.argmax(np.abs(per_path - 1))])))
    return pd.DataFrame(rows)


def relu_great_circle(
    mu_over_sigma: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0),
    *,
    in_features: int = 64,
    units: int = 4000,
    n_samples: int = 4096,
    seed: int = 0,
):
    """First-layer ReLU units on a great circle: Rice per path against Rice for the ensemble.

    A ``nn.Linear(in_features, units)`` (float64, weights ``N(0, 1/in_features)``, every bias
    ``b = mu_over_sigma``) on :func:`smp.signals.great_circle` (radius ``sqrt(in_features)``): each unit
    is ``x(t) = A cos(t + p) + b`` with ``(A cos p, -A sin p) = (w.u, w.v)`` i.i.d. ``N(0, 1)`` over the
    ensemble of units, so over the ensemble x(t) is stationary Gaussian with ``sigma = sigma' = 1``, but
    along one path its values follow the arcsine law of a sinusoid.  Per point:

    - ``measured``: mean over units of ``smp.smp`` of ``nn.ReLU`` output (``dt = 2 pi / n_samples``);
    - ``exact``: mean of :func:`smp.models.relu.relu_sinusoid` (``2 sqrt(A^2 - b^2)``);
    - ``model_ensemble``: :func:`smp.models.relu` with ``sigma = sigma' = 1``, ``mu = b``, ``L = 2 pi``;
    - ``model_pathwise``: mean over units of :func:`smp.models.relu` with each unit's own time
      statistics (:func:`unit_statistics`).

    Returns a pandas.DataFrame with these, ``measured_sem`` (s.e. of ``measured`` over units) and the relative errors
    ``rel_error_ensemble``, ``rel_error_pathwise`` (model / measured - 1) and ``z_ensemble``.
    """
    import pandas as pd

    from . import signals as _signals
    from .models.relu import relu as relu_model
    from .models.relu import relu_sinusoid

    _, h, path = _signals.great_circle((in_features,), n_samples, seed=seed)
    rows = []
    for index, b in enumerate(mu_over_sigma):
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
        layer = nn.Linear(in_features, units).double()
        with torch.no_grad():
            layer.weight.normal_(0.0, 1.0 / np.sqrt(in_features), generator=gen)
            layer.bias.fill_(float(b))
        x, y = along_path(nn.Sequential(layer, nn.ReLU()), path)
        measured = _smp(y, h, axis=0, warn=False)
        # the sinusoid's amplitude from its two Fourier coefficients along the closed path
        t = np.arange(n_samples) * h
        amp = 2.0 / n_samples * np.hypot(np.cos(t) @ x, np.sin(t) @ x)
        exact = relu_sinusoid(amp, float(b))
        stats = unit_statistics(x, h)
        pathwise = relu_model(stats.std, stats.dstd, stats.mean, 2 * np.pi)
        ensemble = float(relu_model(1.0, 1.0, float(b), 2 * np.pi))
        mean, sem = mean_sem(measured)
        rows.append(dict(
            mu_over_sigma=float(b), units=units, measured=float(mean), measured_sem=float(sem), exact=float(exact.mean()),
            model_ensemble=ensemble, model_pathwise=float(pathwise.mean()),
            rel_error_ensemble=ensemble / mean - 1, z_ensemble=(ensemble - mean) / sem,
            rel_error_pathwise=float(pathwise.mean()) / mean - 1,
            estimator_error=float(np.abs(measured - exact).sum() / exact.sum()),
        ))
    return pd.DataFrame(rows)


#: the files of chapter 4's result tables, written by :func:`write_relu_tables`
RELU_TABLES = {"sweep": "04_relu.csv"}


def write_relu_tables(directory: str = "data", *, progress: bool = False) -> dict:
    """Run chapter 4's sweep (:func:`relu_sweep` with its defaults) and write ``04_relu.csv``.

    Several minutes on 2 cores (the points at ``|mu/sigma| >= 2.5`` need 1e8 samples: crossings are rare).
    """
    from pathlib import Path

    tables = {"sweep": relu_sweep(progress=progress)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for key, frame in tables.items():
        frame.to_csv(out / RELU_TABLES[key], index=False, float_format="%.10g")
    return tables


# ---------------------------------------------------------------------------------------------
# Chapter 5: max pooling (model vs measurement on GP windows and inside a Conv-ReLU stack)
# ---------------------------------------------------------------------------------------------

MAXPOOL_SWEEP_POINTS: tuple[tuple[int, float], ...] = (
    (2, 0.0), (3, 0.0), (4, 0.0), (9, 0.0), (4, 0.3), (4, 0.6), (4, 0.9),
)
MAXPOOL_TABLES = {"sweep": "05_maxpool.csv", "cnn": "05_maxpool_cnn.csv"}


def maxpool_sweep(
    points: Sequence[tuple[int, float]] = MAXPOOL_SWEEP_POINTS,
    *,
    n_paths: int = 200,
    n_samples: int = 20001,
    length: float = 10.0,
    dstd: float = 10.0,
    batch_paths: int = 50,
    seed: int = 0,
    progress: bool = False,
):
    """Expected SMP of a real ``nn.MaxPool2d`` on Gaussian windows: model vs measurement.

    For each point ``(k, rho)``: ``n_paths`` windows of K inputs ``x_i = sqrt(rho) g_0 + sqrt(1-rho) g_i``
    with ``g_0, g_i`` independent unit Gaussian processes (:func:`smp.signals.gaussian_process`,
    ``std = 1``, ``dstd``; derivative correlation ``drho = rho``) over ``length``, with ``n_samples``
    samples (defaults: 200 samples per ``ell = 1/dstd``; at 100 per ell and rho = 0.9 the small
    switch kinks of ``sqrt(1-rho)``-scaled differences fall below the detector's threshold, -8 %).
    The window is the tensor ``(N, paths, 1, K)`` (batch axis = t) through
    ``nn.MaxPool2d((1, K))`` in float64; ``smp.smp`` of every output (``dt`` = grid step) is the
    measurement.  Model: :func:`smp.models.maxpool_correlated` ``(k, 1, dstd, rho, rho, length)``
    (no input kinks, births only).  ``exact`` is the mean of the exact identity
    (:func:`smp.models.maxpool_identity` with exact derivatives), ``estimator_error`` = measured /
    exact - 1.  Batches of ``batch_paths`` paths are seeded by ``(seed, point, batch)``.

    Returns
    -------
    pandas.DataFrame, one row per point: ``k, rho, length, dstd, n_samples, paths, switches`` (mean per
    path), ``model, measured, measured_sem, rel_sem, rel_error`` (model / measured - 1), ``z``
    ((model - measured) / sem), ``exact, estimator_error``.
    """
    import pandas as pd

    from .models.maxpool import maxpool_correlated, maxpool_identity
    from .signals import gaussian_process

    rows = []
    for index, (k, rho) in enumerate(tqdm(points, disable=not progress, desc="maxpool sweep", leave=False)):
        k = _positive_int("k", k)
        if not 0 <= rho < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        pool = nn.MaxPool2d((1, k))
        measured, exact, switches = [], [], []
        for batch, start in enumerate(range(0, n_paths, batch_paths)):
            p = min(batch_paths, n_paths - start)
            bseed = int(np.random.SeedSequence([seed, index, batch]).generate_state(1)[0])
            t, h, y, dy = gaussian_process(p * (k + 1), n_samples, length=length, std=1.0, dstd=dstd, seed=bseed)
            y, dy = y.reshape(p, k + 1, -1), dy.reshape(p, k + 1, -1)
            a, b = np.sqrt(rho), np.sqrt(1.0 - rho)
            x, dx = a * y[:, :1] + b * y[:, 1:], a * dy[:, :1] + b * dy[:, 1:]
            with torch.no_grad():
                out = pool(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[:, :, None, :])))
            out = out.numpy().reshape(n_samples, p)
            measured.append(_smp(out, h, axis=0, warn=False))
            ident = maxpool_identity(t, x, dx)
            exact.append(ident.born)
            switches.append(ident.switches)
        values = np.concatenate(measured)
        mean, sem = mean_sem(values)
        model = float(maxpool_correlated(k, 1.0, dstd, rho, rho, length))
        ex = float(np.concatenate(exact).mean())
        rows.append(dict(
            k=k, rho=float(rho), length=float(length), dstd=float(dstd), n_samples=int(n_samples), paths=int(values.size),
            switches=float(np.concatenate(switches).mean()), model=model, measured=float(mean),
            measured_sem=float(sem), rel_sem=float(sem / mean), rel_error=model / float(mean) - 1,
            z=(model - float(mean)) / float(sem), exact=ex, estimator_error=float(mean) / ex - 1,
        ))
    return pd.DataFrame(rows)


def _pool_windows(maps: np.ndarray, pool: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H//pool, W//pool, pool*pool) non-overlapping windows (as nn.MaxPool2d)."""
    n, c, hh, ww = maps.shape
    ho, wo = hh // pool, ww // pool
    m = maps[:, :, : ho * pool, : wo * pool].reshape(n, c, ho, pool, wo, pool)
    return m.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, pool * pool)


def maxpool_cnn(
    channels: Sequence[int] = (1, 8, 16, 16),
    *,
    input_size: int = 16,
    n_samples: int = 20000,
    n_networks: int = 4,
    seed: int = 0,
    full_draws: int = 2000,
    progress: bool = False,
):
    """The 2x2 max pools of a real Conv-ReLU-MaxPool stack on a great circle: window models vs measurement.

    Networks :func:`smp.networks.conv_net` ``(channels, input_size=input_size, seed=seed + r)``, path
    :func:`smp.signals.great_circle` ``((C_0, S, S), n_samples, seed=seed + r)`` (length ``2 pi``).  At
    every block the conv output (pre-ReLU) of each 2x2 window gives, *measured from the activations*:
    per input ``mu, sigma, sigma'`` (:func:`unit_statistics`), ``smp_in`` (``smp.smp``), and the
    window's mean pairwise correlation of values ``rho`` and of slopes ``drho``.  The ReLU + pool is
    ``max(0, x_1..x_4)``; per window the prediction is :func:`smp.models.relu_maxpool` with the
    window's mean ``mu``, root-mean-square ``sigma, sigma'``, mean ``smp_in`` and either ``rho = drho =
    0`` (``iid``) or the measured ``rho, drho`` (``corr``; clipped to [0, 0.999]); third,
    :func:`smp.models.relu_maxpool_window` with every input's own ``mu_i, sigma_i, sigma_i', smp_in_i``
    (``window``: independent inputs, unequal statistics); fourth, :func:`smp.models.maxpool_window`
    with ``relu=True``, every input's own mean and ``smp_in`` and the window's measured 4x4 covariance of
    values and of slopes (``full``: correlated inputs, unequal statistics; ``full_draws`` Monte-Carlo
    draws per window and pair, seeded).  The measurement is
    ``smp.smp`` of the real ``nn.MaxPool2d`` output units.  Also recorded: the births counted by the
    exact identity (:func:`smp.models.maxpool_identity` with interval slopes, argmax of
    ``(0, x_1..x_4)``) against the two models' births.  Totals over the windows of a block; mean and
    s.e. over networks.

    Returns
    -------
    pandas.DataFrame, one row per block: ``block, windows, networks, n_samples, rho, drho`` (mean over
    windows), ``measured, measured_sem`` (total SMP of the pool output, mean over networks),
    ``iid, corr, window, full`` (predicted totals), ``*_error`` (prediction / measured - 1, mean over networks
    of the ratios) and ``*_error_sem``, ``births_counted, births_iid, births_corr, births_window,
    births_full`` (mean
    totals over networks), ``smp_in`` (total measured input SMP over windows) and ``mean_spread``
    (mean over windows of the std of the 4 inputs' means over their rms sigma).
    """
    import pandas as pd

    from .models.maxpool import maxpool_identity, maxpool_window, relu_maxpool_parts, relu_maxpool_window
    from .networks import conv_net
    from .signals import great_circle

    n_blocks = len(channels) - 1
    per_net = []
    for r in tqdm(range(n_networks), disable=not progress, desc="maxpool cnn", leave=False):
        net = conv_net(tuple(channels), input_size=input_size, seed=seed + r)
        t, h, x = great_circle((channels[0], input_size, input_size), n_samples, seed=seed + r)
        length = float(h * n_samples)
        keep = [i for b in range(n_blocks) for i in (3 * b, 3 * b + 2)]
        outs = along_path(net, torch.from_numpy(x), keep=keep)
        side = input_size
        for b in range(n_blocks):
            conv_out, pool_out = outs[2 * b], outs[2 * b + 1]
            maps = conv_out.reshape(n_samples, channels[b + 1], side, side)
            side //= 2
            win = _pool_windows(maps, 2).reshape(n_samples, -1, 4)  # (N, windows, 4)
            stats = unit_statistics(win.reshape(n_samples, -1), h)
            mu = stats.mean.reshape(-1, 4)
            sig = stats.std.reshape(-1, 4)
            dsig = stats.dstd.reshape(-1, 4)
            s_in = _smp(win.reshape(n_samples, -1), h, axis=0, warn=False).reshape(-1, 4)
            centred = win - win.mean(axis=0)
            slope = np.diff(win, axis=0) / h
            slope -= slope.mean(axis=0)
            iu = np.triu_indices(4, 1)

            cov = np.einsum("nwi,nwj->wij", centred, centred) / n_samples  # (windows, 4, 4)
            dcov = np.einsum("nwi,nwj->wij", slope, slope) / slope.shape[0]

            def mean_corr(c):
                d = np.sqrt(np.einsum("wii->wi", c))
                corr = c / (d[:, :, None] * d[:, None, :] + 1e-300)
                return corr[:, iu[0], iu[1]].mean(axis=1)

            rho = np.clip(mean_corr(cov), 0.0, 0.999)
            drho = np.clip(mean_corr(dcov), 0.0, 0.999)
            sig_w = np.sqrt((sig**2).mean(axis=1))
            dsig_w = np.sqrt((dsig**2).mean(axis=1))
            live = sig_w > 0  # dead windows (constant inputs) carry no SMP
            args = (4, sig_w[live], dsig_w[live], mu.mean(axis=1)[live], length, s_in.mean(axis=1)[live])
            iid_parts = np.array(relu_maxpool_parts(*args, 0.0, 0.0))
            corr_parts = np.array(relu_maxpool_parts(*args, rho[live], drho[live]))
            window_parts = np.array(relu_maxpool_window(mu[live], sig[live], dsig[live], length, s_in[live]))
            full = maxpool_window(mu[live], cov[live], dcov[live], length, s_in[live], relu=True, n_draws=full_draws,
                                  seed=seed + 1000 * r + b)
            measured = float(_smp(pool_out, h, axis=0, warn=False).sum())
            ident = maxpool_identity(t, win.transpose(1, 2, 0), None, relu=True)
            per_net.append(dict(
                block=b + 1, network=r, windows=win.shape[1], rho=float(rho.mean()), drho=float(drho.mean()),
                measured=measured, iid=float(iid_parts.sum()), corr=float(corr_parts.sum()),
                births_counted=float(ident.born.sum()), births_iid=float(iid_parts[:2].sum()),
                births_corr=float(corr_parts[:2].sum()), smp_in=float(s_in.sum()),
                window=float(window_parts.sum()), births_window=float(window_parts[:2].sum()),
                full=float(full.births.sum() + full.passed.sum()), births_full=float(full.births.sum()),
                mean_spread=float(np.mean(mu[live].std(axis=1) / sig_w[live])),
            ))
    frame = pd.DataFrame(per_net)
    rows = []
    for b, g in frame.groupby("block"):
        m, s = mean_sem(g.measured.to_numpy()) if len(g) > 1 else (g.measured.iloc[0], np.nan)
        row = dict(block=int(b), windows=int(g.windows.iloc[0]), networks=len(g), n_samples=int(n_samples),
                   rho=float(g.rho.mean()), drho=float(g.drho.mean()), measured=float(m), measured_sem=float(s))
        for name in ("iid", "corr", "window", "full"):
            ratio = g[name].to_numpy() / g.measured.to_numpy() - 1
            row[name] = float(g[name].mean())
            row[f"{name}_error"] = float(ratio.mean())
            row[f"{name}_error_sem"] = float(ratio.std(ddof=1) / np.sqrt(len(g))) if len(g) > 1 else np.nan
        for name in ("births_counted", "births_iid", "births_corr", "births_window", "births_full", "smp_in",
                     "mean_spread"):
            row[name] = float(g[name].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def write_maxpool_tables(directory: str = "data", *, progress: bool = False) -> dict:
    """Write chapter 5's tables: ``05_maxpool.csv`` (:func:`maxpool_sweep`, defaults) and
    ``05_maxpool_cnn.csv`` (:func:`maxpool_cnn`, defaults).  Returns the tables by key."""
    from pathlib import Path

    tables = {"sweep": maxpool_sweep(progress=progress), "cnn": maxpool_cnn(progress=progress)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for key, frame in tables.items():
        frame.to_csv(out / MAXPOOL_TABLES[key], index=False, float_format="%.10g")
    return tables
