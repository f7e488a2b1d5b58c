"""Chapter 4's result table (data/04_relu.csv): its claims, and a reduced fresh run that reproduces it
within the stated standard errors (regenerate the file with smp.experiments.relu.write_tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smp import data, models
from smp.experiments import relu


def _table() -> pd.DataFrame:
    return data.load("relu_sweep")


def test_table_meets_the_acceptance_criteria():
    table = _table()
    points = [
        (r.mu_over_sigma, r.dstd_over_std, bool(r.tents)) for r in table.itertuples()
    ]
    assert points == [(float(z), float(r), t) for z, r, t in relu.RELU_SWEEP_POINTS]
    # enough paths: the s.e. at the sweep's target (a third of the 2 % goal) at every point, so a
    # 2 % miss would stand at 3 s.e.; 1e-4 of slack for the rounding of the stored CSV
    goal = relu.BLOCK_MODEL_GOAL
    assert (table.rel_sem <= goal / 3 + 1e-4).all()
    _check_goal(table)
    # the sampled SMP against the exact identity (births + passed) on the same paths: the estimator's
    # own error at 100 samples per ell is below 2 % (largest, ~1.6 %, at |mu/sigma| ~ 2)
    assert (table.estimator_error.abs() < 0.02).all()


def test_table_model_column_is_the_closed_form():
    table = _table()
    for r in table.itertuples():
        # the ensemble sigma, sigma' of the inputs: tents add (2w/S)(c/w)^2 = 0.02 sigma'^2 and
        # (2w/S) c^2 / 3 = 6.7e-5 sigma^2 (w = ell/10, S = 10 ell, c = 0.1 sigma)
        std = np.sqrt(1 + 0.02 * 0.01 / 3) if r.tents else 1.0
        dstd = r.dstd_over_std * (np.sqrt(1.02) if r.tents else 1.0)
        expected = models.relu(std, dstd, r.mu_over_sigma, r.length, r.smp_in)
        assert r.model == pytest.approx(expected, rel=1e-9)


# A fresh run with an independent seed, at a 4 % s.e. target (a few seconds): the comparison allows 4
# combined standard errors (a false alarm about once in 16,000 per point), while a broken measurement
# or model (a pass-through term lost: -30 % or more at these points) fails it.
TOLERANCE_SE = 4.0
FRESH_POINTS = [
    (-1.0, 10.0, False),
    (0.0, 10.0, False),
    (1.5, 10.0, False),
    (0.0, 10.0, True),
    (1.0, 10.0, True),
]


def test_fresh_sweep_reproduces_the_table():
    fresh = relu.relu_sweep(FRESH_POINTS, target_rel_sem=0.04, min_paths=16, seed=12345)
    stored = (
        _table()
        .set_index(["mu_over_sigma", "dstd_over_std", "tents"])
        .loc[FRESH_POINTS]
    )
    combined = np.hypot(
        fresh["measured_sem"].to_numpy(), stored["measured_sem"].to_numpy()
    )
    assert (
        np.abs(fresh.measured.to_numpy() - stored.measured.to_numpy())
        <= TOLERANCE_SE * combined
    ).all()
    # and the model against the fresh measurement (its own s.e.)
    assert (
        fresh.rel_error.abs() <= np.maximum(TOLERANCE_SE * fresh.rel_sem, 0.03)
    ).all()


# The per-point criterion: the model meets the block-model goal (2 %) wherever the s.e. (at most
# 0.67 %, so 3 s.e. = 2 %) can tell; a point may exceed 2 % only by less than 3 s.e. (noise).  A
# table shifted by 3 % fails it at the points already 1-1.7 % off in the shift's direction (their
# error grows past 4 %); the mean check below catches any 3 % shift with a wider margin.
def _check_goal(table: pd.DataFrame) -> None:
    excess = table.rel_error.abs() - relu.BLOCK_MODEL_GOAL
    assert (excess <= 3 * table.rel_sem).all(), table.loc[excess > 3 * table.rel_sem]


@pytest.mark.parametrize("shift", [0.97, 1.03])
def test_goal_check_detects_a_3_percent_shift(shift):
    shifted = _table().assign(measured=_table().measured * shift)
    shifted = shifted.assign(rel_error=shifted.model / shifted.measured - 1)
    with pytest.raises(AssertionError):
        _check_goal(shifted)


# Detecting a several-percent shift.  The mean over the 34 independent points of
# model / measured - 1 has s.e. sqrt(sum rel_sem^2) / n = 0.11 %, so requiring it within
# max(3 s.e., 1 %) of 0 holds for the stored table (-0.15 %) and fails for a 3 % shift.
def _check_mean_error(table: pd.DataFrame) -> None:
    error = table.model / table.measured - 1
    sem = np.sqrt(np.sum(table.rel_sem**2)) / len(table)
    assert abs(error.mean()) <= max(3 * sem, 0.01), (error.mean(), sem)


def test_mean_error_over_points():
    _check_mean_error(_table())


@pytest.mark.parametrize("shift", [0.97, 1.03])
def test_mean_error_check_detects_a_3_percent_shift(shift):
    with pytest.raises(AssertionError):
        _check_mean_error(_table().assign(measured=_table().measured * shift))


def test_summary_backs_the_chapter_claim():
    # the chapter's claim: every point within the block-model goal (not only within 3 s.e. of it)
    summary = relu.sweep_summary(_table())
    assert summary["worst_pct"] <= summary["goal_pct"]
    assert summary["meets"] == summary["points"] == len(relu.RELU_SWEEP_POINTS)
    assert summary["misses"] == 0
    # the grid the prose states (100 samples per ell) and the tail it explains (|mu/sigma| = 3)
    assert summary["spe"] == pytest.approx(100.0)
    assert summary["z_end"] == 3.0
    # every point at the sweep's s.e. target, a third of the goal (0.01 %: the CSV's rounding)
    assert summary["max_sem_pct"] <= summary["target_pct"] + 0.01
