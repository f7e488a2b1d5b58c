"""Chapter 7's views of the landmark CNN's tables: prediction errors, per-step tables, glued numbers.

Re-exported by :mod:`smp.experiments._landmark_trained` (``smp.experiments.trained.landmark``),
which holds the training and the measurement.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import models

__all__ = [
    "HOLD_BIRTHS",
    "HOLD_ERROR",
    "HOLD_Z",
    "LANDMARK_LAYER_NAMES",
    "first_relu_check",
    "landmark_predictions",
    "landmark_step_table",
    "landmark_summary",
]


def measured_totals(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The measured SMP and births a prediction is divided by: SMP where positive, births of
    ReLU and max-pooling layers where positive (NaN elsewhere: no relative error there)."""
    measured = table["smp"].where(table["smp"] > 0)
    born = table["name"].isin(["ReLU", "MaxPool2d"])
    return measured, table["births"].where(born & (table["births"] > 0))


def miss(
    predicted: pd.Series, measured: pd.Series, sem: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """A prediction's miss: ``predicted / measured - 1`` and the difference in standard errors
    ``sem`` of the measurement."""
    return predicted / measured - 1, (predicted - measured) / sem


def landmark_predictions(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`run_landmark`'s table with every prediction's error.

    Adds ``error`` (conditional / measured - 1), ``z`` (the difference in standard errors of the
    measurement), ``births_error`` (ReLU and max pooling), ``pass_error``, ``shared_error`` (conv
    and linear layers), ``indep_error`` (max pooling with independent window inputs), ``holds``
    (``|error| <= HOLD_ERROR`` or ``|z| <= HOLD_Z``) and ``birth_share`` (births / SMP).
    """
    out = table.copy()
    measured, births = measured_totals(out)
    out["error"], out["z"] = miss(out["conditional"], measured, out["smp_sem"])
    out["births_error"], out["births_z"] = miss(
        out["pred_births"], births, out["births_sem"]
    )
    born = out["name"].isin(["ReLU", "MaxPool2d"])
    passed = out["pass_through"].where(born & (out["pass_through"] > 0))
    out["pass_error"] = out["pred_pass"] / passed - 1
    out["shared_error"] = out["shared"] / measured - 1
    out["indep_error"] = (out["indep_births"] + out["indep_pass"]) / measured - 1
    out["holds"] = (out["error"].abs() <= HOLD_ERROR) | (out["z"].abs() <= HOLD_Z)
    out["birth_share"] = out["births"] / measured
    return out


#: the issue's criteria: a total within 5 % or 3 standard errors, births within 10 %
HOLD_ERROR, HOLD_Z, HOLD_BIRTHS = 0.05, 3.0, 0.10


#: the measured layers' names in the chapter (the first conv has a smooth input and SMP 0; the
#: Flatten repeats the last pooling)
LANDMARK_LAYER_NAMES = {
    1: "ReLU 1",
    2: "MaxPool 1",
    3: "Conv 2",
    4: "ReLU 2",
    5: "MaxPool 2",
    6: "Conv 3",
    7: "ReLU 3",
    8: "MaxPool 3",
    10: "Linear 1",
    11: "ReLU 4",
    12: "Linear 2 (output)",
}


def landmark_step_table(
    pred: pd.DataFrame, kind: str, cell, layers=None
) -> pd.DataFrame:
    """One row per measured layer, one column per training step, ``cell(row)`` in each.

    Example
    -------
    >>> from smp import data
    >>> pred = landmark_predictions(data.load("trained_landmark_smp"))
    >>> table = landmark_step_table(pred, "held_out", lambda r: f"{r['smp']:.0f}")
    >>> list(table.columns)
    ['layer', 'step 0', 'step 30', 'step 300', 'step 3000']
    """
    layers = list(LANDMARK_LAYER_NAMES) if layers is None else list(layers)
    rows = pred[(pred["paths"] == kind) & pred["layer"].isin(layers)]
    out = {"layer": [LANDMARK_LAYER_NAMES[k] for k in layers]}
    for step in sorted(rows["step"].unique()):
        at = rows[rows["step"] == step].set_index("layer")
        out[f"step {step}"] = [cell(at.loc[k]) for k in layers]
    return pd.DataFrame(out)


def landmark_summary(pred: pd.DataFrame) -> dict:
    """The chapter's numbers (keys for :func:`smp.book.glue_all`).

    ``lm-ok`` / ``lm-all``: measured (step, kind, layer) cells where the conditional prediction
    holds (within ``HOLD_ERROR`` or ``HOLD_Z`` s.e.), of all; ``lm-ok-<kind>`` / ``lm-all-<kind>``
    the same per kind; ``lm-births-ok`` / ``lm-births-all``: held-out ReLU and pooling birth cells
    within ``HOLD_BIRTHS``; ``lm-relu1-births-<kind>`` the first ReLU's births error (%) after
    training; ``lm-pool1-indep`` / ``lm-pool1-cov``: the first pooling's error (%) on held-out
    lines after training with independent / measured-covariance windows; ``lm-conv3-indep`` /
    ``lm-conv3-shared``: the third conv's error (%) there, independent kink times / random signs
    within the measured events.
    """
    from ._landmark_trained import LANDMARK_PATH_KINDS  # (it imports this module)

    cells = pred[pred["layer"].isin(list(LANDMARK_LAYER_NAMES))]
    final = int(pred["step"].max())
    out = {"lm-ok": int(cells["holds"].sum()), "lm-all": len(cells)}
    for kind in LANDMARK_PATH_KINDS:
        sub = cells[cells["paths"] == kind]
        out[f"lm-ok-{kind}"], out[f"lm-all-{kind}"] = int(sub["holds"].sum()), len(sub)
    born = cells[
        (cells["paths"] == "held_out") & cells["name"].isin(["ReLU", "MaxPool2d"])
    ]
    born = born[born["births"] > 0]
    out["lm-births-ok"] = int((born["births_error"].abs() <= HOLD_BIRTHS).sum())
    out["lm-births-all"] = len(born)
    at = pred[pred["step"] == final].set_index(["paths", "layer"])
    for kind in LANDMARK_PATH_KINDS:
        out[f"lm-relu1-births-{kind}"] = 100 * at.loc[(kind, 1), "births_error"]
    held = at.loc["held_out"]
    out["lm-pool1-indep"] = 100 * held.loc[2, "indep_error"]
    out["lm-pool1-cov"] = 100 * held.loc[2, "error"]
    out["lm-conv3-indep"] = 100 * held.loc[6, "error"]
    out["lm-conv3-shared"] = 100 * held.loc[6, "shared_error"]
    out["lm-multi-share"] = 100 * float(
        (pred["multi"] / (pred["samples"] * pred["n_paths"]))[pred["layer"] == 0].max()
    )
    out["lm-seconds"] = float(pred.groupby(["step", "paths"])["seconds"].first().sum())
    return out


def first_relu_check(
    nets: dict[int, nn.Sequential], pred: pd.DataFrame, kind: str = "held_out"
) -> pd.DataFrame:
    """The first ReLU's births on lines between images: Gaussian model against the pair model.

    On a line between two images the first conv's pre-activation is itself a straight line
    ``(1-t) z_a + t z_b``, so the expected births over random pairs follow from the
    pre-activations on single images (:func:`smp.models.pair_births`), no Gaussian assumed.  Per
    checkpoint: ``gauss_error`` and ``pair_error`` (prediction / measured - 1) and
    ``kurtosis``, the median over units of the standardised pre-activation's kurtosis over the
    images (3 for a Gaussian).
    """
    from ._landmark_trained import LandmarkPaths  # (it imports this module)

    images = LandmarkPaths(kind, 2).images
    rows = []
    for step, net in nets.items():
        with torch.no_grad():
            z = net[0](images).flatten(1).numpy()
        at = pred[
            (pred["step"] == step) & (pred["paths"] == kind) & (pred["layer"] == 1)
        ]
        measured = float(at["births"].iloc[0])
        centred = (z - z.mean(0)) / np.where(z.std(0) > 0, z.std(0), 1.0)
        rows.append(
            {
                "step": step,
                "gauss_error": float(at["births_error"].iloc[0]),
                "pair_error": float(models.pair_births(z).sum()) / measured - 1,
                "births_z": float(at["births_z"].iloc[0]),
                "kurtosis": float(np.median((centred**4).mean(0))),
            }
        )
    return pd.DataFrame(rows)
