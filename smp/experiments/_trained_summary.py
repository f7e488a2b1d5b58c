"""The trained-networks chapter's summaries: the chapter glues these, never its own logic
(re-exported by :mod:`smp.experiments.trained`)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ._digits import PATH_KINDS

__all__ = [
    "HOLD_ERROR",
    "HOLD_Z",
    "LAYER_NAMES",
    "KIND_NAMES",
    "step_table",
    "holds",
    "misses",
    "births_and_pass",
    "summary",
]

#: how the chapter names the layers (index into the Sequential) and the path kinds
LAYER_NAMES = {1: "ReLU 1", 2: "Linear 2", 3: "ReLU 2", 4: "Linear 3", 5: "ReLU 3"}
LAYER_NAMES[6] = "Linear 4 (output)"
KIND_NAMES = {"train": "training pairs", "held_out": "held-out pairs"}
KIND_NAMES["circle"] = "great circles"
#: a prediction holds within this relative error or within this many standard errors
HOLD_ERROR, HOLD_Z = 0.05, 3.0


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        paths=frame["paths"].map(KIND_NAMES), layer=frame["layer"].map(LAYER_NAMES)
    )


def step_table(
    pred: pd.DataFrame,
    cell: str | Callable[[pd.Series], object],
    *,
    kinds: Sequence[str] = PATH_KINDS,
    layers: Sequence[int] | None = None,
    steps: Sequence[int] | None = None,
) -> pd.DataFrame:
    """One row per (path kind, layer), one column per training step (``"step N"``).

    ``cell`` is a column of ``pred`` (:func:`predictions`) or a function of one row returning the
    cell; ``layers`` defaults to the measured layers (1-6), ``steps`` to every checkpoint.
    """
    layers = list(LAYER_NAMES) if layers is None else list(layers)
    steps = sorted(pred["step"].unique()) if steps is None else list(steps)
    rows = pred[pred["paths"].isin(kinds) & pred["layer"].isin(layers)]
    rows = rows[rows["step"].isin(steps)]
    values = rows[cell] if isinstance(cell, str) else rows.apply(cell, axis=1)
    wide = rows.assign(cell=values).pivot_table(
        index=["paths", "layer"], columns="step", values="cell", aggfunc="first"
    )
    wide = wide.reindex([(k, n) for k in kinds for n in layers])
    wide.columns = [f"step {s}" for s in wide.columns]
    return _named(wide.reset_index())


def holds(pred: pd.DataFrame) -> pd.Series:
    """Whether the conditional prediction holds (``HOLD_ERROR`` or ``HOLD_Z``), measured rows."""
    rows = pred[pred["smp"] > 0]
    return (rows["conditional_error"].abs() < HOLD_ERROR) | (
        rows["conditional_z"].abs() < HOLD_Z
    )


def misses(pred: pd.DataFrame) -> pd.DataFrame:
    """Every (checkpoint, path kind, layer) where the conditional prediction misses, with its
    cause in numbers: for a ReLU the Gaussian births' error and its two factors (``density_ratio``:
    measured over Gaussian density at zero; ``slope_ratio``: measured over Gaussian conditional
    slope) and the refined (Kac-Rice, measured ingredients) prediction's error; for a linear layer
    ``refined_error`` equals the conditional one (the cause is the weights' arrangement, measured
    by :func:`alignment_check`)."""
    ok = holds(pred)
    rows = pred.loc[ok.index[~ok]]
    keep = ["step", "paths", "layer", "name", "conditional_error", "conditional_z"]
    keep += ["births_gauss_error", "density_ratio", "slope_ratio", "refined_error"]
    return _named(rows[keep]).reset_index(drop=True)


def births_and_pass(pred: pd.DataFrame, step: int) -> pd.DataFrame:
    """Measured births and pass-through of every layer at checkpoint ``step``, one row per layer,
    columns ``<kind> births`` and ``<kind> passed`` (mean over paths) for every path kind.  A
    linear layer creates no kinks: its births are 0 and its whole SMP is passed through.

    Example
    -------
    >>> from smp import data
    >>> from smp.experiments.trained import predictions
    >>> table = births_and_pass(predictions(data.load("trained_digits_smp")), 0)
    >>> table.loc[table["layer"] == "Linear 2", "circle births"].item()
    0.0
    """
    rows = pred[(pred["step"] == step) & pred["layer"].isin(list(LAYER_NAMES))]
    if rows.empty:
        raise ValueError(f"step must be a checkpoint of the table, got {step!r}")
    wide = rows.pivot_table(
        index="layer", columns="paths", values=["births", "pass_through"]
    )
    out = pd.DataFrame({"layer": [LAYER_NAMES[n] for n in wide.index]})
    for kind in PATH_KINDS:
        out[f"{kind} births"] = wide["births", kind].to_numpy()
        out[f"{kind} passed"] = wide["pass_through", kind].to_numpy()
    return out


def summary(pred: pd.DataFrame) -> dict[str, float]:
    """The chapter's headline numbers from :func:`predictions`' table, by name.

    Counts (``ok-cells``, ``all-cells``, ``misses``: (checkpoint, kind, layer) cells where the
    conditional prediction holds by :func:`holds`, or not); worst errors in percent (``*-worst``,
    ``births-*``, ``mf-*``: prediction / measured - 1); ``*-zb``, ``pair-z-worst`` in standard
    errors; ``held1-*``: the held-out first ReLU after training; factors and ``pact-*`` (fraction
    of active paths) as plain ratios.

    Example
    -------
    >>> from smp import data
    >>> from smp.experiments.trained import predictions
    >>> numbers = summary(predictions(data.load("trained_digits_smp")))
    >>> numbers["ok-cells"] + numbers["misses"] == numbers["all-cells"]
    True
    """
    ok, relu = holds(pred), pred[pred["name"] == "ReLU"]
    measured, final = pred[pred["smp"] > 0], max(pred["step"])
    held, circle = relu[relu["paths"] == "held_out"], relu[relu["paths"] == "circle"]
    held0, train0 = held[held["step"] == 0], relu[relu["paths"] == "train"]
    train0 = train0[train0["step"] == 0]
    held1 = held[(held["step"] == final) & (held["layer"] == 1)].iloc[0]
    mf = measured["mean_field_error"].abs()
    mf0 = mf[measured["step"] == 0]
    on_circles = measured["paths"] == "circle"
    pair_z = relu["births_pair_error"] * relu["births"] / relu["births_sem"]
    passed = 1 - relu[relu["layer"] > 1]["birth_share"]
    return {
        "ok-cells": int(ok.sum()),
        "all-cells": len(ok),
        "misses": int((~ok).sum()),
        "pass-share": float(np.floor(100 * passed.min())),
        "pass-gauss-worst": 100 * relu["pass_gauss_error"].abs().max(),
        "pass-indep-worst": 100 * relu["pass_indep_error"].abs().max(),
        "births-worst": 100 * held["births_gauss_error"].max(),
        "births-worst-zb": held.loc[
            held["births_gauss_error"].idxmax(), "births_gauss_zb"
        ],
        "births-worst-init": 100 * held0["births_gauss_error"].max(),
        "births-init-zb": held0["births_gauss_zb"].max(),
        "births-train-init": 100 * train0["births_gauss_error"].max(),
        "births-circle-worst": 100 * circle["births_gauss_error"].max(),
        "kernel-worst": 100 * relu["births_kernel_error"].abs().max(),
        "pair-worst": 100 * relu["births_pair_error"].abs().max(),
        "pair-z-worst": pair_z.abs().max(),
        "density-worst": 100 * (relu["density_ratio"].max() - 1),
        "slope-worst": 100 * relu["slope_ratio"].min(),
        "held1-density": float(held1["density_ratio"]),
        "held1-slope": float(held1["slope_ratio"]),
        "held1-gauss": 100 * float(held1["births_gauss_error"]),
        "mf-circle0": 100 * mf0[on_circles].max(),
        "mf-line0": 100 * mf0[~on_circles].max(),
        "mf-worst": 100 * mf.max(),
        "pact-min": relu["p_active"].min(),
        "pact-max": relu["p_active"].max(),
        "final-step": int(final),
    }
