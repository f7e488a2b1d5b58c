"""Chapter 7's landmark CNN: refined models for the layers the conditional block models miss.

The stored measurement (:mod:`smp.experiments._landmark_trained`, table
``trained_landmark_smp``) misses at the first ReLU and pooling on paths through data and at
every conv / linear layer fed by shared kink events.  This run measures the same checkpoints on
the same seeded paths again and adds the ingredients of three refined models, all statistics of
each block's *input* over the ensemble of paths of one kind:

* ReLU: Kac-Rice with measured one-time ingredients (:func:`smp.models.kernel_births`) for the
  births, and the measured fraction of active paths at every t for the pass-through
  (:func:`smp.models.independent_pass_through`);
* max pooling: the same for the window's switches and zero crossings
  (:func:`smp.models.kernel_switch_births`), the measured probability that each input is the
  positive argmax for the pass-through; with two diagnostics, the measured density of the
  window's top-two gap at zero over a Gaussian window's (chapter 5's model, measured means and
  covariances) and the conditional slope's factor;
* conv and linear layers: the events' measured second moments ``M = sum_e J_e J_e^T`` of the
  input jump vectors with the layer's actual weights (:func:`smp.models.aligned_events`), with
  the diagnostics that explain what is left: the shape factor ``sum_e |w.J_e| / (sum_e |J_e|
  sqrt(w^T M w / sum_e |J_e|^2))`` (``sqrt(2/pi) = 0.798`` for the model's Gaussian) and the
  kurtosis of ``w.J_e / |J_e|`` across events (3 for a Gaussian);
* on lines between images, the first block's exact pair models (:func:`smp.models.pair_births`,
  :func:`smp.models.pair_maxpool`) from single images.

The kernel ingredients are taken on a grid of ``KERNEL_TIMES[kind]`` times per path (all paths
of a kind at once: a kernel estimate needs the ensemble at every t); the event sums in the
breakpoint measurement (:func:`smp.experiments._landmark_trained.measure_landmark` with
``events=True``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .. import data as _data
from .. import models
from .._exact_smp import iter_frozen

__all__ = [
    "KERNEL_TIMES",
    "event_sums",
    "kernel_landmark",
    "refined_predictions",
    "refined_summary",
    "run_refined",
    "summarise_refined",
    "write_refined_table",
]

#: times per path of the kernel estimates' grid (a refinement of the N_STAT grid: every
#: ``(KERNEL_TIMES - 1) / (N_STAT - 1)``-th time is a time of it)
KERNEL_TIMES = {"train": 201, "held_out": 201, "circle": 401}

#: grid times per forward pass of the kernel run (memory: about 60 kB per sample and time)
TIME_CHUNK = 10


def _patches(layer: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """The inputs each output unit's weight row sees: ``(G, D, positions)``."""
    if isinstance(layer, nn.Linear):
        return a.reshape(a.shape[0], -1, 1)
    return F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)


def event_sums(layer: nn.Module, jump_in: torch.Tensor, jump_out: torch.Tensor) -> dict:
    """Sums over the events of one batch of intervals (one event each) for a conv/linear layer.

    ``jump_in`` ``(g, n, *input_shape)`` the input's jumps in every interval, ``jump_out`` the
    layer's.  Per output position ``l`` (one for a linear layer), ``J`` the patch of the input
    jump vector the position's weights see.  An event that moves one input of the patch
    (*single*) passes ``|w_i J_i|`` exactly: ``ev_single`` ``(D, L)`` sums ``|J|`` over them.
    Over the events that move several inputs (*shared*): ``ev_m2`` ``(L, D, D)`` ``sum J J^T``,
    ``ev_l1`` / ``ev_l2`` ``(L,)`` ``sum |J|`` / ``sum |J|^2``, ``ev_count`` their number;
    per output unit ``(C_out, L)``: ``ev_y2`` / ``ev_y4`` ``sum (x/|J|)^2`` / ``sum (x/|J|)^4``
    with ``x = w.J`` the output jump.  An entry counts as moved if it exceeds ``1e-12`` of the
    patch's largest (rounding of the frozen-pattern slopes).
    """
    a = jump_in.reshape(-1, *jump_in.shape[2:])
    patches = _patches(layer, a)  # (G, D, L)
    size = patches.abs()
    moved = (size > 1e-12 * size.amax(1, keepdim=True)) & (size > 0)
    count = moved.sum(1)  # (G, L)
    single, shared = count == 1, count > 1
    multi = patches * shared[:, None]
    norms = multi.norm(dim=1)  # (G, L)
    x = (
        jump_out.reshape(a.shape[0], -1, patches.shape[2])
        if isinstance(layer, nn.Conv2d)
        else jump_out.reshape(a.shape[0], -1, 1)
    )
    y = torch.where(shared[:, None], x / torch.where(shared, norms, 1.0)[:, None], 0.0)
    return {
        "ev_single": (size * single[:, None]).sum(0).numpy(),
        "ev_m2": torch.einsum("gdl,gel->lde", multi, multi).numpy(),
        "ev_l1": norms.sum(0).numpy(),
        "ev_l2": (norms**2).sum(0).numpy(),
        "ev_count": shared.sum(0).to(torch.float64).numpy(),
        "ev_y2": (y**2).sum(0).numpy(),
        "ev_y4": (y**4).sum(0).numpy(),
    }


def _windows(a: np.ndarray) -> np.ndarray:
    """``(P, N, C, H, W)`` -> ``(P, N, C * H/2 * W/2, 4)``: the 2x2 pooling windows' inputs."""
    p, n, c, h, w = a.shape
    a = a.reshape(p, n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 3, 5, 4, 6)
    return a.reshape(p, n, c * (h // 2) * (w // 2), 4)


def kernel_landmark(state: dict[str, torch.Tensor], kind: str, n_paths: int, seed: int):
    """The kernel ingredients of every ReLU and pooling on all ``n_paths`` paths of one kind.

    Per ReLU (key: its index): ``kernel_births``, ``density`` / ``gauss_density`` (the kernel /
    Gaussian density at zero, integrated over t, summed over units), ``density_births`` (measured
    density with the Gaussian conditional slope), ``p_active`` ``(N_STAT, U)``.  Per pooling:
    ``switch``, ``zero`` (kernel births), ``switch_density``, ``zero_density``,
    ``density_births`` (:class:`smp.models.KernelSwitchBirths`), ``gauss_switch_density``,
    ``gauss_zero_density`` (a Gaussian window with the ensemble's means and covariances, chapter
    5's :func:`smp.models.maxpool_window`, on every ``POOL_STEP``-th time of the N_STAT grid),
    ``p_arg`` ``(N_STAT, windows, 4)`` (P(input is the positive argmax)).  On lines also
    ``pair`` at the first ReLU and pooling (:func:`smp.models.pair_births`,
    :func:`smp.models.pair_maxpool` over the kind's images).
    """
    from ._landmark_trained import N_STAT, POOL_STEP, LandmarkPaths, _as_net

    net = _as_net(state)
    layers = list(net)
    paths = LandmarkPaths(kind, n_paths, seed=seed)
    n_times = KERNEL_TIMES[kind]
    every = (n_times - 1) // (N_STAT - 1)
    t = torch.linspace(0, paths.t_length, n_times, dtype=torch.float64)
    w = models.trapezoid_weights(n_times, paths.t_length)
    index = torch.arange(n_paths)
    w_pool = models.trapezoid_weights((N_STAT - 1) // POOL_STEP + 1, paths.t_length)
    out: dict = {}
    # chunks of about TIME_CHUNK times (each at least 2: the frozen pass needs two samples)
    for times in np.array_split(np.arange(n_times), -(-n_times // TIME_CHUNK)):
        ts, ws = t[times], w[times]
        on_stat = times % every == 0
        stat_at = times[on_stat] // every
        x, dx = paths(index, ts[None].expand(n_paths, -1))
        for layer in iter_frozen(net, x, dx):
            k = layer.index
            if not (k + 1 < len(layers) and isinstance(layers[k + 1], nn.ReLU)):
                continue
            z, dz = layer.value.numpy(), layer.slope.numpy()
            flat, dflat = z.reshape(*z.shape[:2], -1), dz.reshape(*z.shape[:2], -1)
            kb = models.kernel_births(flat, dflat, ws)
            mu, sigma = flat.mean(0), flat.std(0, ddof=1)
            dmu, dsigma = dflat.mean(0), dflat.std(0, ddof=1)
            cov = ((flat - mu) * (dflat - dmu)).sum(0) / (n_paths - 1)
            slope2 = models.gaussian_conditional_slope2(mu, sigma, dmu, dsigma, cov)
            relu = out.setdefault(
                k + 1, {"p_active": np.zeros((N_STAT, flat.shape[2]))}
            )
            for key, value in (
                ("kernel_births", kb.births.sum()),
                ("density", kb.density.sum()),
                ("gauss_density", kb.gaussian_density.sum()),
                ("density_births", (ws @ (kb.density_t * slope2)).sum()),
            ):
                relu[key] = relu.get(key, 0.0) + float(value)
            relu["p_active"][stat_at] = (flat[:, on_stat] > 0).mean(0)
            if k + 2 < len(layers) and isinstance(layers[k + 2], nn.MaxPool2d):
                zw, dw = _windows(z), _windows(dz)
                ks = models.kernel_switch_births(zw, dw, ws)
                pool = out.setdefault(
                    k + 2, {"p_arg": np.zeros((N_STAT, zw.shape[2], 4))}
                )
                for key, value in zip(ks._fields, ks):
                    pool[key] = pool.get(key, 0.0) + float(value.sum())
                full = np.concatenate([zw, np.zeros(zw.shape[:-1] + (1,))], -1)
                top = full.argmax(-1)[:, on_stat]
                pool["p_arg"][stat_at] = (top[..., None] == np.arange(4)).mean(0)
                for n_local, n_stat in zip(np.flatnonzero(on_stat), stat_at):
                    if n_stat % POOL_STEP:
                        continue
                    g = _gaussian_window_density(
                        zw[:, n_local], w_pool[n_stat // POOL_STEP]
                    )
                    for key, value in g.items():
                        pool[key] = pool.get(key, 0.0) + value
    if paths.images is not None:
        with torch.no_grad():
            z1 = net[0](paths.images.to(torch.float64)).numpy()
        out[1]["pair"] = float(models.pair_births(z1.reshape(len(z1), -1)).sum())
        out[2]["pair"] = float(models.pair_maxpool(_windows(z1[:, None])[:, 0]).sum())
    return out


def _gaussian_window_density(values: np.ndarray, weight: float) -> dict:
    """Chapter 5's Gaussian window (the ensemble's means and covariances at one t): the density
    of each pair's difference at zero with the others below, summed over windows and pairs, times
    the pooling grid's quadrature ``weight``.  With ``dcov = I/2`` the model's slope weight
    ``c^T D c`` is 1 for a pair of inputs and 1/2 for an input with the constant 0, so its switch
    births are the switch density and twice its zero births the zero density."""
    from ._landmark_trained import WINDOW_DRAWS

    p = values.shape[0]
    mean = values.mean(0)
    centred = values - mean
    cov = np.einsum("pwi,pwj->wij", centred, centred) / (p - 1)
    res = models.maxpool_window(
        mean,
        cov,
        np.broadcast_to(0.5 * np.eye(4), cov.shape),
        length=weight,
        relu=True,
        n_draws=WINDOW_DRAWS,
        seed=0,
    )
    return {
        "gauss_switch_density": float(res.switch_births.sum()),
        "gauss_zero_density": float(2 * res.zero_births.sum()),
    }


def _event_unit(unit: tuple) -> dict:
    from ._landmark_trained import measure_landmark

    step, state, kind, index, n_paths, seed = unit
    return measure_landmark(state, kind, index, n_paths, seed, events=True)


def _kernel_unit(unit: tuple) -> dict:
    step, state, kind, n_paths, seed = unit
    return {"kernel": kernel_landmark(state, kind, n_paths, seed)}


def summarise_refined(
    net: nn.Sequential, parts: list[dict], kernel: dict, length: float
) -> pd.DataFrame:
    """One row per layer: the measurement (as :func:`summarise_landmark`) and the refined models.

    Columns ``layer``, ``name``, ``units``, ``smp``, ``births``, ``pass_through`` with
    ``*_sem``; ``ref_births``, ``ref_pass`` and ``refined`` (their sum): ReLU and pooling the
    kernel models with the measured activity for the pass-through, conv and linear layers
    ``sum |w_i J_i|`` over the events that move one input of a weight row's patch (exact) and
    :func:`smp.models.aligned_events` over the others (``single_share``: the first part's share
    of the measured SMP); ``pair`` (first ReLU and pooling on lines);
    ``density_ratio`` (kernel density at zero / Gaussian's), ``slope_ratio`` (kernel births /
    births with the measured density and the Gaussian's conditional (ReLU) or unconditional
    (pooling) slope); conv and linear layers ``shape`` (the shared events' measured
    ``sum |w.J| / (sum |J| sqrt(w^T M w / sum |J|^2))``, 0.798 for the model) and ``kurtosis``
    (median over output units of the kurtosis of ``w.J / |J|`` across events).
    """
    from ._landmark_trained import _combine, _mean_sem, _unit_shapes

    found = _combine(parts)
    shapes = _unit_shapes(net)
    layers = list(net)
    p = len(found["multi"])
    rows = []
    for k in sorted(key for key in found if isinstance(key, int)):
        entry, layer = found[k], layers[k]
        row = {"layer": k, "name": entry["name"], "units": len(entry["smp_unit"])}
        for key, name in (
            ("smp", "smp_path"),
            ("births", "births_path"),
            ("pass_through", "pass_path"),
        ):
            row[key], row[key + "_sem"] = _mean_sem(entry[name])
        births = passed = np.nan
        if isinstance(layer, nn.ReLU):
            kb = kernel[k]
            births = kb["kernel_births"]
            passed = float(
                models.independent_pass_through(
                    kb["p_active"], found[k - 1]["binned"] / p
                ).sum()
            )
            row["density_ratio"] = kb["density"] / kb["gauss_density"]
            row["slope_ratio"] = kb["kernel_births"] / kb["density_births"]
        elif isinstance(layer, nn.MaxPool2d):
            kb = kernel[k]
            births = kb["switch_births"]
            jumps = _windows(
                (found[k - 2]["binned"] / p).reshape(1, -1, *shapes[k - 2])
            )
            passed = kb["zero_births"] + float((kb["p_arg"] * jumps[0]).sum())
            density = kb["switch_density"] + kb["zero_density"]
            gauss = kb["gauss_switch_density"] + kb["gauss_zero_density"]
            row["density_ratio"] = density / gauss
            row["switch_density_ratio"] = (
                kb["switch_density"] / kb["gauss_switch_density"]
            )
            row["slope_ratio"] = (kb["switch_births"] + kb["zero_births"]) / kb[
                "density_births"
            ]
        elif isinstance(layer, (nn.Conv2d, nn.Linear)):
            births, passed = 0.0, 0.0
            if k > 0:
                weight = layer.weight.detach().to(torch.float64).numpy()
                weight = weight.reshape(weight.shape[0], -1)
                m2, l1, l2 = entry["ev_m2"], entry["ev_l1"], entry["ev_l2"]
                single = float((np.abs(weight) @ entry["ev_single"]).sum()) / p
                aligned = float(models.aligned_events(weight, m2, l1, l2).sum()) / p
                passed = single + aligned
                row["single_share"] = single / row["smp"] if row["smp"] > 0 else np.nan
                quad = np.einsum("ui,lij,uj->ul", weight, m2, weight)  # (C_out, L)
                scale = l1 * np.sqrt(quad / np.where(l2 > 0, l2, 1.0))
                # the shared events' measured sum |w.J| (the single ones pass exactly)
                total = float(scale.sum())
                row["shape"] = (
                    (row["smp"] - single) * p / total if total > 0 else np.nan
                )
                y2, y4 = entry["ev_y2"], entry["ev_y4"]
                kurt = entry["ev_count"] * y4 / np.where(y2 > 0, y2, 1.0) ** 2
                row["kurtosis"] = float(np.median(kurt[y2 > 0])) if y2.any() else np.nan
        row["ref_births"], row["ref_pass"] = births, passed
        row["refined"] = births + passed
        row["pair"] = kernel.get(k, {}).get("pair", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _refined_unit(unit: tuple) -> dict:
    """One unit of :func:`run_refined`: ``("kernel", args)`` or ``("events", args)``."""
    what, args = unit
    return (_kernel_unit if what == "kernel" else _event_unit)(args)


def run_refined(
    nets: dict[int, nn.Sequential],
    *,
    n_paths: int = 60,
    n_circles: int = 12,
    batch: int = 10,
    circle_batch: int = 3,
    kinds=None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Measure and predict with the refined models every layer of every checkpoint and kind.

    The paths, units and seeds of :func:`smp.experiments._landmark_trained.run_landmark` (so the
    measured columns equal the stored table's), one more unit per checkpoint and kind for the
    kernel estimates.  Adds ``step``, ``paths``, ``n_paths``, ``t_length``, ``seconds``.
    """
    from ._landmark_trained import (
        LANDMARK_PATH_KINDS,
        path_batches,
        path_length,
        results_by_kind,
        stamp_table,
        timed_unit,
    )
    from ._parallel import run_units

    kinds = LANDMARK_PATH_KINDS if kinds is None else tuple(kinds)
    units = []
    for step, state, kind, count, kind_seed, batches in path_batches(
        nets, kinds, n_paths, n_circles, batch, circle_batch, seed
    ):
        units.append(("kernel", (step, state, kind, count, kind_seed)))
        units += [
            ("events", (step, state, kind, index, count, kind_seed))
            for index in batches
        ]
    results = run_units(
        partial(timed_unit, _refined_unit),
        units,
        workers=workers,
        progress=progress,
        desc="refined units",
    )
    tables = []
    for step, kind, mine, seconds in results_by_kind(
        nets, kinds, results, [u[1][:3:2] for u in units]
    ):
        kernel = next(part["kernel"] for part in mine if "kernel" in part)
        parts = [part for part in mine if "kernel" not in part]
        table = summarise_refined(nets[step], parts, kernel, path_length(kind))
        tables.append(stamp_table(table, step, kind, n_paths, n_circles, seconds))
    return pd.concat(tables, ignore_index=True)


def write_refined_table(
    *,
    n_paths: int = 60,
    n_circles: int = 12,
    seed: int = 0,
    workers: int | None = 2,
    progress: bool = True,
    directory: str | None = None,
) -> list:
    """Measure the stored checkpoints with the refined models (the registry's producer).

    Reads ``trained_landmark`` from ``directory`` (default: the package's ``data/``) and writes
    ``trained_landmark_refined`` (:func:`run_refined`) there.
    """
    from ._landmark_trained import load_landmark_checkpoints

    nets = load_landmark_checkpoints(_data.load("trained_landmark", directory))
    table = run_refined(
        nets,
        n_paths=n_paths,
        n_circles=n_circles,
        seed=seed,
        workers=workers,
        progress=progress,
    )
    return [_data.write("trained_landmark_refined", table, directory)]


def refined_predictions(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`run_refined`'s table with every refined prediction's error.

    Adds ``ref_error`` (refined / measured - 1), ``ref_z`` (in standard errors of the
    measurement), ``ref_births_error`` (ReLU and pooling), ``pair_error`` (first ReLU: births;
    first pooling: total) and ``ref_holds`` (``|ref_error| <= 5 %`` or ``|ref_z| <= 3``).
    """
    from ._landmark_trained_summary import HOLD_ERROR, HOLD_Z, measured_totals, miss

    out = table.copy()
    measured, births = measured_totals(out)
    out["ref_error"], out["ref_z"] = miss(out["refined"], measured, out["smp_sem"])
    out["ref_births_error"], out["ref_births_z"] = miss(
        out["ref_births"], births, out["births_sem"]
    )
    target = np.where(out["name"] == "ReLU", out["births"], out["smp"])
    out["pair_error"] = out["pair"] / np.where(target > 0, target, np.nan) - 1
    out["ref_holds"] = (out["ref_error"].abs() <= HOLD_ERROR) | (
        out["ref_z"].abs() <= HOLD_Z
    )
    return out


def refined_summary(pred: pd.DataFrame) -> dict:
    """The chapter's numbers for the refined models (keys for :func:`smp.book.glue_all`).

    ``lm-ref-ok`` / ``lm-ref-all`` measured (step, kind, layer) cells where the refined model
    holds, ``lm-ref-misses`` the others (``lm-ref-misses-out`` of them at the output layer);
    ``lm-ref-births-ok`` / ``lm-ref-births-all`` held-out birth cells within 10 % and
    ``lm-ref-births-worst``; worst errors (%): ``lm-ref-relu-worst`` / ``lm-ref-pool-worst``
    (totals), ``lm-pool1-pair-worst`` (first pooling, pair model, lines) and the ranges over
    lines of its factors ``lm-pool1-slope-min`` / ``-max``, ``lm-pool1-density-min`` /
    ``-max``; for conv 3 and linear 1
    (``aligned``) and the output layer (``out``): ``lm-<key>-worst`` / ``-best`` errors (%),
    the ranges of the shape factor ``-shape-min`` / ``-shape-max`` and of the kurtosis
    ``-kurt-min`` / ``-kurt-max``; after training on held-out lines: the first pooling's factors
    ``lm-pool1-density``, ``lm-pool1-switch-density``, ``lm-pool1-slope`` and the share (%) of
    conv 3's and linear 1's SMP passed by single-input events, ``lm-single-conv3``,
    ``lm-single-lin1``.
    """
    from ._landmark_trained_summary import HOLD_BIRTHS, LANDMARK_LAYER_NAMES

    cells = pred[pred["layer"].isin(list(LANDMARK_LAYER_NAMES))]
    final = int(pred["step"].max())
    out = {"lm-ref-ok": int(cells["ref_holds"].sum()), "lm-ref-all": len(cells)}
    held = cells[
        (cells["paths"] == "held_out") & cells["name"].isin(["ReLU", "MaxPool2d"])
    ]
    held = held[held["births"] > 0]
    out["lm-ref-births-ok"] = int((held["ref_births_error"].abs() <= HOLD_BIRTHS).sum())
    out["lm-ref-births-all"] = len(held)
    out["lm-ref-births-worst"] = 100 * float(held["ref_births_error"].abs().max())
    for name, key in (("ReLU", "relu"), ("MaxPool2d", "pool")):
        sub = cells[cells["name"] == name]
        out[f"lm-ref-{key}-worst"] = 100 * float(sub["ref_error"].abs().max())
    lines = cells[cells["paths"] != "circle"]
    out["lm-pool1-pair-worst"] = 100 * float(
        lines[lines["layer"] == 2]["pair_error"].abs().max()
    )
    for key, layers in (("aligned", [6, 10]), ("out", [12])):
        fed = cells[cells["layer"].isin(layers)]
        out[f"lm-{key}-worst"] = 100 * float(fed["ref_error"].abs().max())
        out[f"lm-{key}-best"] = 100 * float(fed["ref_error"].abs().min())
        out[f"lm-{key}-shape-min"] = float(fed["shape"].min())
        out[f"lm-{key}-shape-max"] = float(fed["shape"].max())
        out[f"lm-{key}-kurt-min"] = float(fed["kurtosis"].min())
        out[f"lm-{key}-kurt-max"] = float(fed["kurtosis"].max())
    pool1 = lines[lines["layer"] == 2]
    for key in ("slope", "density"):
        out[f"lm-pool1-{key}-min"] = float(pool1[f"{key}_ratio"].min())
        out[f"lm-pool1-{key}-max"] = float(pool1[f"{key}_ratio"].max())
    misses = cells[~cells["ref_holds"]]
    out["lm-ref-misses"] = len(misses)
    out["lm-ref-misses-out"] = int((misses["layer"] == 12).sum())
    at = pred[(pred["step"] == final) & (pred["paths"] == "held_out")].set_index(
        "layer"
    )
    out["lm-pool1-density"] = float(at.loc[2, "density_ratio"])
    out["lm-pool1-switch-density"] = float(at.loc[2, "switch_density_ratio"])
    out["lm-pool1-slope"] = float(at.loc[2, "slope_ratio"])
    out["lm-single-conv3"] = 100 * float(at.loc[6, "single_share"])
    out["lm-single-lin1"] = 100 * float(at.loc[10, "single_share"])
    return out
