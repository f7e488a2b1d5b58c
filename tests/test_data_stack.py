"""data/06_stacked_*.csv: recompute reduced versions and compare within the stated standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smp import data, measure, models
from smp.experiments import stack
from smp.experiments._parallel import unit_seed


@pytest.fixture(scope="module")
def dense():
    return data.load("stack_dense")


@pytest.fixture(scope="module")
def cnn():
    return data.load("stack_cnn")


def test_dense_model_columns_are_the_model(dense):
    for gain, rows in dense.groupby("gain"):
        model = models.dense_stack(64, 256, 8, weight_gain=gain)
        np.testing.assert_allclose(rows["model"], model["smp"], rtol=1e-9)


def test_dense_done_criterion(dense):
    # the criterion: within 5 % at every layer up to depth 8 at gains 0.8, 1, 1.2
    measured = dense[dense["smp"] > 0]
    assert set(measured["gain"]) == {0.8, 1.0, 1.2}
    assert measured["error"].abs().max() < 0.05


def test_dense_reduced_recomputation(dense):
    # 2 of the stored n networks (seeds 0, 1; the first 3 blocks of a depth-8 net are a depth-3
    # net), 20000 samples (within 0.6 % of the converged SMP for 3 blocks), 64 units: the difference
    # to the stored mean must lie within 4 combined standard errors (the s.e. of a 2-net mean,
    # estimated from the stored n-net spread, is sem_n * sqrt(n / 2)).
    from smp import networks, signals

    _, dt, path = signals.great_circle((64,), 20000, seed=0)
    nets = [networks.dense_net(64, 256, 3, weight_gain=1.0, seed=s) for s in range(2)]
    new = measure.stack_measurement(nets, path, dt, max_units=64, seed=0)
    stored = dense[(dense["gain"] == 1.0) & (dense["layer"] <= 6)]
    ok = stored["smp"].to_numpy() > 0
    diff = np.abs(new["smp"].to_numpy() - stored["smp"].to_numpy())[ok]
    n = int(stored["n_networks"].iloc[0])
    tolerance = 4 * stored["smp_sem"].to_numpy()[ok] * np.sqrt(1 + n / 2)
    assert np.all(diff < tolerance), (diff, tolerance)


def test_dense_units_are_the_ensemble_measurement():
    # one unit per network, each replaying the unit-subset draws of the networks before it, pools to
    # stack_measurement of the whole ensemble: the same units measured, so the same SMP bits; ms is
    # a BLAS dot product whose summation order depends on the BLAS thread count (units run on one
    # thread, this process may not), so rms agrees to rounding (1e-13; a wrong unit subset or
    # network changes it by percents)
    from smp import networks, signals

    options = dict(in_features=16, n_networks=3, n_samples=3000, max_units=12, seed=4)
    table = stack.dense_stack_sweep(gains=(1.1,), widths=(32,), depth=2, **options)
    _, dt, path = signals.great_circle((16,), 3000, seed=4)
    nets = [
        networks.dense_net(16, 32, 2, weight_gain=1.1, seed=4 + i) for i in range(3)
    ]
    whole = measure.stack_measurement(nets, path, dt, max_units=12, seed=4)
    assert table["smp"].to_numpy().tolist() == whole["smp"].to_numpy().tolist()
    np.testing.assert_allclose(table["rms"], whole["rms"], rtol=1e-13)
    # the replay matters: network 2 measured alone with a fresh generator sees other units
    alone = measure.stack_measurement(
        [nets[2]], path, dt, max_units=12, seed=4, per_network=True
    )
    rows = measure.stack_measurement(
        nets, path, dt, max_units=12, seed=4, per_network=True
    )
    assert not np.array_equal(
        alone["smp"].to_numpy(), rows[rows["network"] == 2]["smp"].to_numpy()
    )


def test_width_table_model_and_growth_exponent():
    widths = data.load("stack_width")
    for width, rows in widths.groupby("width"):
        np.testing.assert_allclose(
            rows["model"], models.dense_stack(64, int(width), 4)["smp"], rtol=1e-9
        )
    relu = widths[widths["kind"] == "relu"]
    added = (
        relu[relu["layer"] == 8].set_index("width")["smp"]
        - relu[relu["layer"] == 2].set_index("width")["smp"]
    ) / 3
    slope = np.polyfit(
        np.log(added.index.to_numpy(float)), np.log(added.to_numpy()), 1
    )[0]
    # width^1.5 per layer; the measured increments have ~3 % s.e. each over a factor 8 in width,
    # so the fitted exponent is known to about +-0.03
    assert abs(slope - 1.5) < 0.1


def test_resolution_table_is_converged_where_the_chapter_measures():
    res = data.load("stack_resolution")
    dense = res[(res["architecture"] == "dense") & (res["n_samples"] == 80000)]
    cnn = res[(res["architecture"] == "cnn") & (res["n_samples"] == 40000)]
    # the grids used by the chapter lose < 1 % of the SMP against the finest grid at every layer
    assert dense["relative"].abs().max() < 0.01
    assert cnn["relative"].abs().max() < 0.01


def test_resolution_table_coarsest_grid_is_reproduced():
    # the same seeded networks, path and units at the coarsest grid: deterministic float64 (reruns here
    # agree to ~1e-8; 1e-6 leaves room for another CPU's rounding), while a stale table, e.g. from an
    # older detector, differs by percents at this grid, where kinks are densest
    res = data.load("stack_resolution")
    stored = res[
        (res["architecture"] == "dense") & (res["n_samples"] == 20000)
    ].reset_index(drop=True)
    fresh = stack.stack_resolution_sweep(architecture="dense", n_samples=(20000,))
    np.testing.assert_allclose(
        fresh["smp"].to_numpy(), stored["smp"].to_numpy(), rtol=1e-6
    )


# ---------------------------------------------------------------------------------------------
# Detecting a several-percent shift
# ---------------------------------------------------------------------------------------------
# The dense tables' per-layer s.e. are 1-3 %; the layers of one run share its networks, so their
# errors are correlated and the s.e. of their mean lies between s.e./sqrt(layers) and s.e.  The
# mean over all measured rows of a table of model / measured - 1 (the three gains of stack_dense are
# one experiment scaled; the four widths of stack_width are independent runs of 6 networks) within
# 1.5 % of 0 holds for the stored tables (+0.1 %, +0.9 %, +0.6 % with biases) and fails for a 3 %
# shift of the measurement.
def _check_dense_mean_error(table: pd.DataFrame) -> None:
    measured = table[table["smp"] > 0]
    error = measured["model"] / measured["smp"] - 1
    assert abs(error.mean()) < 0.015, error.mean()


@pytest.mark.parametrize("name", ["stack_dense", "stack_width", "stack_dense_bias"])
def test_dense_mean_error(name):
    _check_dense_mean_error(data.load(name))


@pytest.mark.parametrize("shift", [0.97, 1.03])
@pytest.mark.parametrize("name", ["stack_dense", "stack_width", "stack_dense_bias"])
def test_dense_mean_error_detects_a_3_percent_shift(name, shift):
    table = data.load(name)
    with pytest.raises(AssertionError):
        _check_dense_mean_error(table.assign(smp=table["smp"] * shift))


def test_dense_bias_table():
    # biases break the positive homogeneity of the gain sweep; unequal widths the equal-width law
    table = data.load("stack_dense_bias")
    model = models.dense_stack(
        64, [192, 320, 128, 256], bias_std=float(table["bias_std"].iloc[0])
    )
    np.testing.assert_allclose(table["model"], model["smp"], rtol=1e-9)
    measured = table[table["smp"] > 0]
    rel_sem = measured["smp_sem"] / measured["smp"]
    assert (measured["error"].abs() < np.maximum(3 * rel_sem, 0.05)).all()


@pytest.fixture(scope="module")
def cnn_networks():
    return data.load("stack_cnn_networks")


def test_cnn_done_criterion(cnn):
    # issue 14: within 5 % (or 3 s.e.) at every layer of the chapter's CNN and of at least two
    # held-out architectures shown in the chapter, each over at least 200 networks; every
    # architecture of CNN_ARCHITECTURES is in the stored table (the chapter shows them all)
    assert list(cnn["architecture"].unique()) == list(stack.CNN_ARCHITECTURES)
    assert (cnn["n_networks"] >= 200).all()
    summary = stack.cnn_summary(cnn)
    complete = summary.index[summary["within"] == summary["layers"]]
    assert "chapter" in complete and len(complete.drop("chapter")) >= 2
    # the one remaining miss, explained in chapter 6: ReLU 3 of the pool-3 network, +7.4 %
    # (3.2 s.e.), where the sample's convolution units were positive 0.476 of the time
    # (test_cnn_relu_pass_fraction_is_one_half)
    measured = cnn[cnn["smp"] > 0]
    rel_sem = measured["smp_sem"] / measured["smp"]
    misses = measured[measured["error"].abs() > np.maximum(3 * rel_sem, 0.05)]
    assert [(a, int(l)) for a, l in zip(misses["architecture"], misses["layer"])] in (
        [],
        [("pool 3", 8)],
    )
    assert (misses["error"].abs() < 0.08).all()
    chapter = measured[measured["architecture"] == "chapter"]
    assert chapter["error"].abs().max() < 0.035  # the chapter's CNN: 3.2 % at worst


def _check_pass_fractions(cnn: pd.DataFrame, cnn_networks: pd.DataFrame) -> None:
    # over the ensemble a ReLU passes exactly half of its convolution's SMP and the convolution
    # is positive exactly half the time (the symmetry w -> -w, b -> -b); with that positive
    # fraction as a control variate the measured pass fraction must be 1/2 within 3 s.e. at
    # blocks 2 and 3 of every architecture (s.e. 0.003-0.006, so a 3 % shift of a ReLU's SMP,
    # 0.015 in the fraction, fails at least one of them)
    for name in cnn["architecture"].unique():
        for block in (2, 3):
            check = stack.relu_pass_fraction(cnn_networks, cnn, name, block)
            deviation = check["pass_controlled"] - 0.5
            assert abs(deviation) < 3 * check["pass_controlled_sem"], (name, block)


def test_cnn_relu_pass_fraction_is_one_half(cnn, cnn_networks):
    _check_pass_fractions(cnn, cnn_networks)
    # the cause of the pool-3 miss: its sample's units were positive less than half the time,
    # and its plain pass fraction is low by as many standard errors
    check = stack.relu_pass_fraction(cnn_networks, cnn, "pool 3", 3)
    assert (check["p_positive"] - 0.5) / check["p_positive_sem"] < -2
    assert (check["pass"] - 0.5) / check["pass_sem"] < -2


@pytest.mark.parametrize("shift", [0.97, 1.03])
def test_cnn_pass_fraction_check_detects_a_3_percent_shift(cnn, cnn_networks, shift):
    relu = cnn_networks["kind"] == "relu"
    shifted = cnn_networks.assign(
        smp=np.where(relu, cnn_networks["smp"] * shift, cnn_networks["smp"])
    )
    with pytest.raises(AssertionError):
        _check_pass_fractions(cnn, shifted)


def _check_cnn_summary(cnn: pd.DataFrame, cnn_networks: pd.DataFrame) -> None:
    # the summary is the pooled per-network table (deterministic: 1e-9)
    for name, rows in cnn.groupby("architecture", sort=False):
        pooled = measure.summarise_networks(
            cnn_networks[cnn_networks["architecture"] == name]
        )
        for key in ("smp", "smp_sem", "rms", "drms", "p_positive"):
            np.testing.assert_allclose(
                rows[key].to_numpy(), pooled[key].to_numpy(), rtol=1e-9
            )
        with np.errstate(invalid="ignore"):  # the first convolution: 0 / 0
            expected = rows["model"].to_numpy() / pooled["smp"].to_numpy() - 1
        np.testing.assert_allclose(
            rows["error"].to_numpy(), expected, rtol=0, atol=1e-8
        )  # the CSV keeps 10 digits


def _check_cnn_paired(cnn_networks: pd.DataFrame, fresh: pd.DataFrame) -> None:
    # the same seeded networks, arcs and units: deterministic float64 (1e-6 leaves room for another
    # CPU's rounding), so any shift of the stored measurement fails
    stored = cnn_networks[
        (cnn_networks["architecture"] == "chapter") & (cnn_networks["network"] < 2)
    ]
    np.testing.assert_allclose(
        fresh["smp"].to_numpy(), stored["smp"].to_numpy(), rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(
        fresh["ms"].to_numpy(), stored["ms"].to_numpy(), rtol=1e-6
    )


@pytest.fixture(scope="module")
def fresh_cnn():
    settings = dict(stack.CNN_SETTINGS, n_networks=2)
    return stack.conv_stack_networks("chapter", workers=1, **settings)


def test_cnn_tables_are_consistent_and_reproduced(cnn, cnn_networks, fresh_cnn):
    assert list(fresh_cnn["seed"].unique()) == [unit_seed(0, 0), unit_seed(0, 1)]
    _check_cnn_summary(cnn, cnn_networks)
    _check_cnn_paired(cnn_networks, fresh_cnn)


@pytest.mark.parametrize("shift", [0.97, 1.03])
def test_cnn_checks_detect_a_3_percent_shift(cnn, cnn_networks, fresh_cnn, shift):
    with pytest.raises(AssertionError):
        _check_cnn_summary(cnn.assign(smp=cnn["smp"] * shift), cnn_networks)
    with pytest.raises(AssertionError):
        _check_cnn_paired(
            cnn_networks.assign(smp=cnn_networks["smp"] * shift), fresh_cnn
        )


def test_cnn_model_column_is_the_model(cnn):
    # conv_stack's Monte Carlo (model_draws 20000) against a fresh run with 10000 draws and another
    # seed: the model's own scatter is ~0.5 %, so 1.5 % catches a 3 % shift of the stored column
    rows = cnn[cnn["architecture"] == "chapter"]
    fresh = models.conv_stack(
        (1, 16, 16),
        (1, 8, 16, 16),
        length=float(rows["length"].iloc[0]),
        n_draws=10000,
        seed=7,
    )
    np.testing.assert_allclose(
        fresh["smp"].to_numpy()[1:], rows["model"].to_numpy()[1:], rtol=0.015
    )
