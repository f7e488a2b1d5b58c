"""Chapter 6, stacked blocks: the dense and CNN stack models against per-layer measurement.

Dense ReLU stacks over gains and widths (:func:`dense_stack_sweep`), Conv-ReLU-MaxPool stacks
(:func:`conv_stack_sweep`) and the convergence of the measurement in the number of samples
(:func:`stack_resolution_sweep`); :func:`write_tables` stores them through :mod:`smp.data`.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import data, networks, signals
from .._validation import check_int
from ..measure import stack_measurement, summarise_networks
from ..models import conv_stack, dense_stack
from ._parallel import run_units, unit_seed

__all__ = [
    "CNN_ARCHITECTURES",
    "dense_stack_sweep",
    "dense_bias_sweep",
    "unequal_dense_net",
    "cnn_settings",
    "conv_stack_networks",
    "layer_labels",
    "describe_architecture",
    "cnn_summary",
    "relu_pass_fraction",
    "conv_stack_sweep",
    "stack_resolution_sweep",
    "write_tables",
]

#: the chapter's CNN and three held-out architectures (other kernel and pool sizes, input
#: channels and sizes, biases and widths); the model was developed on the first only
CNN_ARCHITECTURES: dict[str, dict] = {
    "chapter": dict(
        channels=(1, 8, 16, 16), input_size=16, kernel_size=3, pool_size=2, bias_std=0.0
    ),
    "kernel 5, bias": dict(
        channels=(3, 4, 8, 8), input_size=16, kernel_size=5, pool_size=2, bias_std=0.2
    ),
    "pool 3": dict(
        channels=(2, 6, 8, 8), input_size=27, kernel_size=3, pool_size=3, bias_std=0.0
    ),
    # four input channels, widths that narrow and widen again, and a 5 x 5 map before the
    # third pool (floor mode drops its last row and column)
    "input 4x20x20": dict(
        channels=(4, 12, 8, 24), input_size=20, kernel_size=3, pool_size=2, bias_std=0.0
    ),
}

#: the published measurement settings of :func:`conv_stack_networks` (write_tables): 200 networks,
#: each on an eighth of its own great circle at the grid of 40,000 samples per circle
#: (within 0.7 % of the SMP at 80,000, chapter 6's resolution table), 64 units per layer
CNN_SETTINGS = dict(n_networks=200, n_samples=40000, arc=0.125, max_units=64)
#: per-architecture overrides of ``CNN_SETTINGS``: the 27 x 27 network costs twice as much per
#: sample, so it runs on a sixteenth of its circle (same grid)
CNN_OVERRIDES: dict[str, dict] = {"pool 3": dict(arc=0.0625)}


def cnn_settings(architecture: str) -> dict:
    """``CNN_SETTINGS`` with the architecture's overrides (the published measurement settings)."""
    return {**CNN_SETTINGS, **CNN_OVERRIDES.get(architecture, {})}


def _measure_dense(unit: tuple) -> pd.DataFrame:
    """One unit of the dense sweeps: network ``index`` of an ensemble, on the sweep's great circle.

    ``unit = (make_net, net_seed, shape, n_samples, seed, index, max_units)``: the network
    ``make_net(seed=net_seed)`` run along :func:`smp.signals.great_circle` ``(shape, n_samples,
    seed=seed)`` by :func:`stack_measurement` (``per_network=True``, ``network`` set to ``index``).
    :func:`stack_measurement` of an ensemble draws every network's unit subsets from one generator
    seeded with ``seed``, network after network; the draws of the ``index`` networks before this one
    are replayed here (they depend on the layer widths alone), so the network measured alone gets
    the very units it gets in the ensemble, and the pooled rows are the ensemble's, bit for bit.
    """
    make_net, net_seed, shape, n_samples, seed, index, max_units = unit
    net = make_net(seed=net_seed)
    _, dt, path = signals.great_circle(shape, n_samples, seed=seed)
    with torch.no_grad():  # each layer's number of units, from one sample
        h, widths = torch.as_tensor(path[:1]), []
        for child in net:
            h = child(h)
            widths.append(h[0].numel())
    subsets = np.random.default_rng(seed)
    # the subsets of the networks before this one, drawn as stack_measurement draws them
    for _ in range(index):
        for units in widths:
            if max_units is not None and units > max_units:
                subsets.choice(units, size=max_units, replace=False)
    rows = stack_measurement(
        [net], path, dt, max_units=max_units, seed=subsets, per_network=True
    )
    rows["network"] = index
    return rows


def _measure_ensembles(
    ensembles: list[tuple],
    *,
    n_networks: int,
    max_units: int | None,
    seed: int,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
    desc: str,
) -> list[pd.DataFrame]:
    """The summaries of :func:`stack_measurement` of several ensembles, one unit per network.

    ``ensembles`` holds ``(make_net, shape, n_samples)``: network ``i`` of an ensemble is
    ``make_net(seed=seed + i)`` (the seeds the sweeps have always used), every ensemble on the great
    circle and with the unit subsets of ``seed``.  The units run on
    :func:`smp.experiments._parallel.run_units`; the result does not depend on ``workers``.
    """
    check_int("n_networks", n_networks, 2)  # a standard error over networks
    units = [
        (make_net, seed + i, shape, n_samples, seed, i, max_units)
        for make_net, shape, n_samples in ensembles
        for i in range(n_networks)
    ]
    rows = run_units(
        _measure_dense,
        units,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc=desc,
    )
    return [
        summarise_networks(
            pd.concat(rows[k * n_networks : (k + 1) * n_networks], ignore_index=True)
        )
        for k in range(len(ensembles))
    ]


def _with_dense_model(table: pd.DataFrame, model: pd.DataFrame) -> pd.DataFrame:
    """``table`` (pooled measurement, one row per layer) with :func:`smp.models.dense_stack`'s
    prediction beside it: ``model``, ``model_rms``, ``model_drms`` and ``error`` (model /
    measured - 1; NaN where nothing was measured)."""
    table["model"] = model["smp"].to_numpy()
    table["model_rms"] = model["rms"].to_numpy()
    table["model_drms"] = model["drms"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["error"] = table["model"] / table["smp"] - 1
    return table


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
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
):
    """Model against measurement for dense ReLU stacks on a great circle, every layer, every (gain, width).

    Networks :func:`smp.networks.dense_net` (seeds ``seed .. seed + n_networks - 1``) are run along
    :func:`smp.signals.great_circle` ``((in_features,), n_samples, seed=seed)`` with
    :func:`stack_measurement`; the model is :func:`smp.models.dense_stack` for the same
    architecture (input coordinates of unit second moment, path length 2 pi).  One unit of work per
    network (:func:`smp.experiments._parallel.run_units` over ``workers`` processes or the
    ``scheduler``'s cluster; the table is the same for any number of workers).

    Returns a pandas.DataFrame: the columns of :func:`stack_measurement` plus ``gain``, ``width``,
    ``model`` (predicted total SMP), ``model_rms``, ``model_drms`` and ``error`` (model / measured - 1).

    Example
    -------
    >>> table = dense_stack_sweep(gains=(1.0,), widths=(8,), depth=2, in_features=4,
    ...                           n_networks=2, n_samples=2000, workers=1)
    >>> list(table["kind"]), table["n_networks"].unique().tolist()
    (['linear', 'relu', 'linear', 'relu'], [2])
    """
    settings = [(width, gain) for width in widths for gain in gains]
    measured = _measure_ensembles(
        [
            (
                partial(
                    networks.dense_net, in_features, width, depth, weight_gain=gain
                ),
                (in_features,),
                n_samples,
            )
            for width, gain in settings
        ],
        n_networks=n_networks,
        max_units=max_units,
        seed=seed,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="dense networks",
    )
    tables = []
    for (width, gain), table in zip(settings, measured):
        table.insert(0, "width", width)
        table.insert(0, "gain", gain)
        model = dense_stack(in_features, width, depth, weight_gain=gain)
        tables.append(_with_dense_model(table, model))
    return pd.concat(tables, ignore_index=True)


def unequal_dense_net(
    in_features: int, widths: Sequence[int], *, bias_std: float = 0.0, seed: int = 0
) -> nn.Sequential:
    """``Linear -> ReLU`` blocks of the given (unequal) ``widths``, He init ``N(0, 2 / fan_in)``,
    biases ``N(0, bias_std**2)``, float64 (as :func:`smp.networks.dense_net`, whose widths are equal)."""
    gen = torch.Generator().manual_seed(int(seed))
    layers: list[nn.Module] = []
    fan_in = in_features
    for width in widths:
        linear = nn.Linear(fan_in, int(width), dtype=torch.float64)
        with torch.no_grad():
            linear.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
            if bias_std > 0:
                linear.bias.normal_(0.0, bias_std, generator=gen)
            else:
                linear.bias.zero_()
        layers += [linear, nn.ReLU()]
        fan_in = int(width)
    return nn.Sequential(*layers).eval()


def dense_bias_sweep(
    *,
    widths: Sequence[int] = (192, 320, 128, 256),
    bias_std: float = 0.5,
    in_features: int = 64,
    n_networks: int = 24,
    n_samples: int = 40000,
    max_units: int | None = 64,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Model against measurement for a dense ReLU stack *with biases and unequal widths*.

    Without biases a ReLU network is positively homogeneous, so the weight-gain sweep of
    :func:`dense_stack_sweep` is one experiment scaled; biases break the homogeneity (the ratio
    bias / pre-activation scale changes from layer to layer) and unequal widths break the
    equal-width growth law.  Networks :func:`unequal_dense_net` (seeds ``seed ..``) on
    :func:`smp.signals.great_circle`; model :func:`smp.models.dense_stack` with ``bias_std``.
    Returns the columns of :func:`stack_measurement` plus ``bias_std``, ``model``,
    ``model_rms``, ``model_drms`` and ``error``.  One unit of work per network, as
    :func:`dense_stack_sweep`.
    """
    (table,) = _measure_ensembles(
        [
            (
                partial(
                    unequal_dense_net, in_features, tuple(widths), bias_std=bias_std
                ),
                (in_features,),
                n_samples,
            )
        ],
        n_networks=n_networks,
        max_units=max_units,
        seed=seed,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc="dense networks with biases",
    )
    table.insert(0, "bias_std", bias_std)
    model = dense_stack(in_features, list(widths), bias_std=bias_std)
    return _with_dense_model(table, model)


def _measure_cnn(unit: tuple) -> pd.DataFrame:
    """One unit of :func:`conv_stack_networks`: one network on its own great-circle arc."""
    name, index, net_seed, n_samples, arc, max_units = unit
    arch = CNN_ARCHITECTURES[name]
    size = arch["input_size"]
    net = networks.conv_net(
        arch["channels"],
        kernel_size=arch["kernel_size"],
        pool_size=arch["pool_size"],
        bias_std=arch["bias_std"],
        seed=net_seed,
    )
    _, dt, path = signals.great_circle(
        (arch["channels"][0], size, size), n_samples, seed=net_seed
    )
    kept = int(round(arc * n_samples))
    rows = stack_measurement(
        [net], path[:kept], dt, max_units=max_units, seed=net_seed, per_network=True
    )
    rows.insert(0, "seed", net_seed)
    rows["network"] = index
    rows.insert(0, "architecture", name)
    rows["length"] = kept * dt
    return rows


def conv_stack_networks(
    architecture: str = "chapter",
    *,
    n_networks: int = 200,
    n_samples: int = 40000,
    arc: float = 0.25,
    max_units: int | None = 64,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-network measurement of a Conv-ReLU-MaxPool stack: one row per (network, layer).

    Network ``i`` is :func:`smp.networks.conv_net` of ``CNN_ARCHITECTURES[architecture]`` with
    seed ``unit_seed(seed, i)``, run along the first ``arc`` of its *own* great circle (same seed;
    the grid of a full circle of ``n_samples``): every network sees another path, and by the
    circle's rotation symmetry an arc of length ``2 pi arc`` carries that fraction of a circle's
    expected SMP at the same resolution, at a fraction of the cost.  Units run in parallel with
    :func:`smp.experiments._parallel.run_units` (identical results for any number of workers).

    Returns the rows of :func:`smp.measure.stack_measurement` (``per_network=True``) with
    ``architecture``, ``seed`` and ``length`` (the arc's length in t).
    """
    if architecture not in CNN_ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {sorted(CNN_ARCHITECTURES)}, got {architecture!r}"
        )
    if not 0 < arc <= 1:
        raise ValueError(f"arc must be in (0, 1], got {arc!r}")
    units = [
        (architecture, i, unit_seed(seed, i), n_samples, arc, max_units)
        for i in range(n_networks)
    ]
    rows = run_units(
        _measure_cnn,
        units,
        workers=workers,
        progress=progress,
        desc=f"cnn {architecture}",
    )
    return pd.concat(rows, ignore_index=True)


#: short names of a CNN stack's layers in the book's figures and tables
LAYER_NAMES = {"conv2d": "conv", "relu": "ReLU", "maxpool2d": "pool"}


def layer_labels(table: pd.DataFrame) -> list[str]:
    """``"conv 1", "ReLU 1", "pool 1", ...``: the layers of rows of :func:`conv_stack_sweep`.

    Example
    -------
    >>> layer_labels(pd.DataFrame({"kind": ["conv2d", "relu"], "block": [2, 2]}))
    ['conv 2', 'ReLU 2']
    """
    return [f"{LAYER_NAMES[k]} {int(b)}" for k, b in zip(table["kind"], table["block"])]


def describe_architecture(name: str) -> str:
    """One line for ``CNN_ARCHITECTURES[name]``: channels, kernel, pool, input side, bias std.

    Example
    -------
    >>> describe_architecture("chapter")
    'channels 1-8-16-16, kernel 3, pool 2, input 16 x 16, bias 0'
    """
    arch = CNN_ARCHITECTURES[name]
    return (
        f"channels {'-'.join(map(str, arch['channels']))}, kernel {arch['kernel_size']}, "
        f"pool {arch['pool_size']}, input {arch['input_size']} x {arch['input_size']}, "
        f"bias {arch['bias_std']:g}"
    )


def cnn_summary(table: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Per architecture of a :func:`conv_stack_sweep` table: how close the model is at every layer.

    Over the layers with a measured SMP (the first convolution has none), with the relative
    standard error ``s = smp_sem / smp`` and ``error = model / smp - 1``:
    ``networks`` (fewest per layer), ``layers``, ``within`` (layers with
    ``|error| <= max(tolerance, 3 s)``, issue 14's criterion), ``worst_error`` (signed, at the
    largest ``|error|``), ``worst_layer`` (its :func:`layer_labels` name), ``worst_z``
    (``error / s`` there) and ``max_z`` (largest ``|error| / s`` of any layer).

    Parameters
    ----------
    table : pandas.DataFrame
        rows of :func:`conv_stack_sweep` for one or more architectures.
    tolerance : float
        the relative error accepted whatever the standard error.

    Returns
    -------
    pandas.DataFrame
        one row per architecture, in the order of ``table``, indexed by its name.

    Example
    -------
    >>> rows = pd.DataFrame({"architecture": "a", "block": [1, 1, 1],
    ...     "kind": ["conv2d", "relu", "maxpool2d"], "smp": [0.0, 100.0, 50.0],
    ...     "smp_sem": [0.0, 2.0, 1.0], "model": [0.0, 108.0, 51.0],
    ...     "n_networks": 200})
    >>> row = cnn_summary(rows).loc["a"]
    >>> int(row.layers), int(row.within), row.worst_layer, round(float(row.worst_z), 1)
    (2, 1, 'ReLU 1', 4.0)
    """
    measured = table[table["smp"] > 0]
    out = {}
    for name, rows in measured.groupby("architecture", sort=False):
        rel_sem = (rows["smp_sem"] / rows["smp"]).to_numpy()
        error = (rows["model"] / rows["smp"] - 1).to_numpy()
        worst = int(np.argmax(np.abs(error)))
        out[name] = dict(
            networks=int(rows["n_networks"].min()),
            layers=len(rows),
            within=int(np.sum(np.abs(error) <= np.maximum(tolerance, 3 * rel_sem))),
            worst_error=float(error[worst]),
            worst_layer=layer_labels(rows)[worst],
            worst_z=float(error[worst] / rel_sem[worst]),
            max_z=float(np.max(np.abs(error) / rel_sem)),
        )
    return pd.DataFrame.from_dict(out, orient="index")


def relu_pass_fraction(
    per_network: pd.DataFrame, table: pd.DataFrame, architecture: str, block: int
) -> dict[str, float]:
    """The fraction of a convolution's measured SMP that the ReLU after it passes on.

    Over the ensemble a ReLU passes exactly half of its input's SMP (the symmetry ``w -> -w``
    of the convolution's weights and biases flips the unit's sign, not the size of its
    jumps), and a convolution's output is positive exactly half the time.  Over ``n``
    measured networks both fluctuate together: a sample whose convolution units happen to be
    positive less often passes less.  With per-network SMP ``c_i`` (convolution) and ``r_i``
    (ReLU) and the model's ReLU births ``B``, this returns

    - ``pass`` = ``(mean r - B) / mean c`` and ``pass_sem``, the ratio of means' standard
      error from the paired residuals ``(r_i - R c_i) / mean c`` (``R = mean r / mean c``);
    - ``p_positive`` and ``p_positive_sem``: the fraction ``p_i`` of the convolution's
      (unit, t) with a positive value, whose ensemble mean is exactly 1/2;
    - ``pass_controlled`` and ``pass_controlled_sem``: ``pass - beta (mean p - 1/2)``, the
      same estimate with ``p`` as a control variate (``beta`` the regression slope of the
      residuals on ``p_i``): unbiased to first order, since ``E p = 1/2`` is known exactly,
      with the sign fluctuation removed;
    - ``relu_controlled``: the ReLU's mean SMP with that control, ``B + mean c *
      pass_controlled``;
    - ``beta`` and ``births_share`` (``B / mean r``).

    Parameters
    ----------
    per_network : pandas.DataFrame
        rows of :func:`conv_stack_networks` (``per_network=True`` rows with ``network``,
        ``layer``, ``smp``, ``p_positive``).
    table : pandas.DataFrame
        rows of :func:`conv_stack_sweep` for the same architecture (its ``model`` column
        gives the births ``B`` = model ReLU - model convolution / 2).
    architecture : str
        a key of ``CNN_ARCHITECTURES``.
    block : int
        the block (2 or later: the first convolution carries no kinks).

    Returns
    -------
    dict of str to float

    Example
    -------
    A ReLU that passes exactly the fraction of time its convolution is positive, on 50
    networks whose units happened to be positive 49.6 % of the time:

    >>> rng = np.random.default_rng(1)
    >>> p = 0.5 + 0.1 * rng.standard_normal(50)
    >>> rows = pd.DataFrame({"architecture": "a", "network": np.repeat(np.arange(50), 2),
    ...     "layer": np.tile([4, 5], 50), "smp": np.c_[100 + 0 * p, 100 * p].ravel(),
    ...     "p_positive": np.repeat(p, 2)})
    >>> model = pd.DataFrame({"architecture": "a", "layer": [4, 5], "model": [100.0, 50.0]})
    >>> check = relu_pass_fraction(rows, model, "a", 2)
    >>> {k: round(check[k], 3) for k in ("pass", "pass_controlled")}
    {'pass': 0.496, 'pass_controlled': 0.5}
    >>> bool(check["pass_controlled_sem"] < 1e-9 < check["pass_sem"])
    True
    """
    conv_layer, relu_layer = 3 * int(block) - 2, 3 * int(block) - 1
    rows = per_network[per_network["architecture"] == architecture]
    smp = rows.pivot(index="network", columns="layer", values="smp")
    conv, relu = smp[conv_layer].to_numpy(), smp[relu_layer].to_numpy()
    sign = rows.pivot(index="network", columns="layer", values="p_positive")
    p = sign[conv_layer].to_numpy()
    model = table[table["architecture"] == architecture].set_index("layer")["model"]
    births = float(model.loc[relu_layer] - model.loc[conv_layer] / 2)
    n = len(conv)
    ratio = relu.mean() / conv.mean()
    residual = (relu - ratio * conv) / conv.mean()
    beta = float(np.cov(residual, p)[0, 1] / p.var(ddof=1))
    passed = ratio - births / conv.mean()
    return {
        "pass": float(passed),
        "pass_sem": float(residual.std(ddof=1) / np.sqrt(n)),
        "p_positive": float(p.mean()),
        "p_positive_sem": float(p.std(ddof=1) / np.sqrt(n)),
        "pass_controlled": float(passed - beta * (p.mean() - 0.5)),
        "pass_controlled_sem": float((residual - beta * p).std(ddof=1) / np.sqrt(n)),
        "beta": beta,
        "births_share": float(births / relu.mean()),
        "relu_controlled": float(conv.mean() * (passed - beta * (p.mean() - 0.5)))
        + births,
    }


def conv_stack_sweep(
    per_network: pd.DataFrame | None = None,
    *,
    architecture: str = "chapter",
    model_draws: int = 20000,
    seed: int = 0,
    progress: bool = False,
    **measurement_options,
) -> pd.DataFrame:
    """Model against measurement for a Conv-ReLU-MaxPool stack on great-circle arcs in image space.

    ``per_network`` are rows of :func:`conv_stack_networks` (measured here with
    ``measurement_options`` if None), pooled over networks by :func:`smp.measure.summarise_networks`;
    the model is :func:`smp.models.conv_stack` for the architecture over the arc's length, with
    correlated windows (``model``), with i.i.d. windows (``model_iid``) and with the receptive-field
    norm's root mean square in place of its mean (``model_no_jensen``, the earlier approximation),
    ``model_draws`` Monte Carlo draws.

    Returns a pandas.DataFrame: the summary columns of :func:`stack_measurement` plus
    ``architecture``, ``block``, ``length``, ``model``, ``model_iid``, ``model_no_jensen``, ``model_rms``, ``model_drms``,
    ``model_p_active``, ``window_rho`` and ``error`` (model / measured - 1).
    """
    if per_network is None:
        per_network = conv_stack_networks(
            architecture, seed=seed, progress=progress, **measurement_options
        )
    rows = per_network[per_network["architecture"] == architecture]
    arch = CNN_ARCHITECTURES[architecture]
    shape = (arch["channels"][0], arch["input_size"], arch["input_size"])
    length = float(rows["length"].iloc[0])
    table = summarise_networks(rows)
    options = dict(
        kernel_size=arch["kernel_size"],
        pool_size=arch["pool_size"],
        bias_std=arch["bias_std"],
        length=length,
        n_draws=model_draws,
        seed=seed,
    )
    model = conv_stack(shape, arch["channels"], **options)
    iid = conv_stack(shape, arch["channels"], correlated_windows=False, **options)
    upper = conv_stack(shape, arch["channels"], jensen=False, **options)
    table.insert(0, "architecture", architecture)
    table.insert(1, "block", model["block"].to_numpy())
    table["length"] = length
    table["model"] = model["smp"].to_numpy()
    table["model_iid"] = iid["smp"].to_numpy()
    table["model_no_jensen"] = upper["smp"].to_numpy()
    table["model_rms"] = model["rms"].to_numpy()
    table["model_drms"] = model["drms"].to_numpy()
    table["model_p_active"] = model["p_active"].to_numpy()
    table["window_rho"] = model["window_rho"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["error"] = table["model"] / table["smp"] - 1
    return table


def stack_resolution_sweep(
    *,
    architecture: str = "dense",
    n_samples: Sequence[int] = (20000, 40000, 80000, 160000),
    weight_gain: float = 1.2,
    n_networks: int = 2,
    max_units: int | None = 64,
    seed: int = 0,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
):
    """Convergence of the measured per-layer SMP in the number of samples N along the great circle.

    The same networks (``dense``: :func:`smp.networks.dense_net` (64, 256, 8); ``cnn``:
    :func:`smp.networks.conv_net` (1, 8, 16, 16) on 16 x 16 images) and the same measured units are
    run at every N; ``relative`` is the SMP at N over the SMP at the largest N, minus 1 (a deficit:
    kinks closer than a few samples merge or cancel in the second difference).  One unit of work
    per (N, network), as :func:`dense_stack_sweep`.

    Returns a pandas.DataFrame with ``architecture, gain, n_samples, layer, kind, smp, relative,
    dense_warning``.
    """
    if architecture == "dense":
        make_net = partial(networks.dense_net, 64, 256, 8, weight_gain=weight_gain)
        shape = (64,)
    elif architecture == "cnn":
        make_net = partial(networks.conv_net, (1, 8, 16, 16), weight_gain=weight_gain)
        shape = (1, 16, 16)
    else:
        raise ValueError(f"architecture must be 'dense' or 'cnn', got {architecture!r}")
    grids = sorted(n_samples)
    measured = _measure_ensembles(
        [(make_net, shape, n) for n in grids],
        n_networks=n_networks,
        max_units=max_units,
        seed=seed,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc=f"{architecture} networks over N",
    )
    tables = []
    for n, table in zip(grids, measured):
        table.insert(0, "n_samples", n)
        table.insert(0, "gain", weight_gain)
        table.insert(0, "architecture", architecture)
        tables.append(
            table[
                [
                    "architecture",
                    "gain",
                    "n_samples",
                    "layer",
                    "kind",
                    "smp",
                    "dense_warning",
                ]
            ]
        )
    out = pd.concat(tables, ignore_index=True)
    finest = out[out["n_samples"] == max(n_samples)].set_index("layer")["smp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["relative"] = (
            out["smp"].to_numpy() / finest.loc[out["layer"]].to_numpy() - 1
        )
    return out


def write_tables(
    *,
    progress: bool = False,
    directory: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run the chapter-6 sweeps with the book's settings and store them.

    - ``stack_dense``: :func:`dense_stack_sweep` at gains 0.8, 1, 1.2 (width 256, depth 8, 36
      networks: the per-network scatter of a deep layer's SMP is ~10 %);
    - ``stack_width``: :func:`dense_stack_sweep` at widths 64 .. 512 (gain 1, depth 4);
    - ``stack_dense_bias``: :func:`dense_bias_sweep` (biases, unequal widths);
    - ``stack_cnn_networks``: :func:`conv_stack_networks` for every architecture of
      ``CNN_ARCHITECTURES`` with ``CNN_SETTINGS`` (200 networks each, on parallel units);
    - ``stack_cnn``: :func:`conv_stack_sweep` of those measurements against the model;
    - ``stack_resolution``: :func:`stack_resolution_sweep`, dense at gain 1.2 and the CNN.

    About an hour of CPU on 2 loaded cores (the CNN networks ~2/3 of it, split over ``workers``).
    Stored through :func:`smp.data.write_many` (``directory`` defaults to the package's ``data/``);
    returns the tables by registry name.
    """
    cnn_networks = pd.concat(
        [
            conv_stack_networks(
                name, workers=workers, progress=progress, **cnn_settings(name)
            )
            for name in CNN_ARCHITECTURES
        ],
        ignore_index=True,
    )
    parallel = dict(workers=workers, scheduler=scheduler, progress=progress)
    tables = {
        "stack_dense": dense_stack_sweep(n_networks=36, **parallel),
        "stack_width": dense_stack_sweep(
            gains=(1.0,),
            widths=(64, 128, 256, 512),
            depth=4,
            n_networks=6,
            max_units=64,
            **parallel,
        ),
        "stack_dense_bias": dense_bias_sweep(**parallel),
        "stack_cnn_networks": cnn_networks,
        "stack_cnn": pd.concat(
            run_units(
                lambda name: conv_stack_sweep(cnn_networks, architecture=name),
                list(CNN_ARCHITECTURES),
                workers=workers,
            ),
            ignore_index=True,
        ),
        "stack_resolution": pd.concat(
            [
                stack_resolution_sweep(**parallel),
                stack_resolution_sweep(
                    architecture="cnn",
                    weight_gain=1.0,
                    n_samples=(20000, 40000, 80000),
                    max_units=256,
                    workers=workers,
                    scheduler=scheduler,
                ),
            ],
            ignore_index=True,
        ),
    }
    data.write_many(tables, directory)
    return tables
