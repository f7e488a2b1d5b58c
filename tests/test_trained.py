"""Trained networks (smp.experiments.trained): stored checkpoints and tables against recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from smp import data
from smp.experiments import trained

NAMES = [
    "trained_digits",
    "trained_digits_training",
    "trained_digits_weights",
    "trained_digits_smp",
]


@pytest.fixture(scope="module")
def split():
    return trained.load_digits_split()


@pytest.fixture(scope="module")
def nets():
    return trained.load_checkpoints()


@pytest.fixture(scope="module")
def table():
    return data.load("trained_digits_smp")


def test_stored_files_are_registered_and_fresh():
    assert data.stale(names=NAMES) == []


def test_split_is_seeded_and_standardised(split):
    again = trained.load_digits_split()
    assert torch.equal(again.train, split.train) and torch.equal(
        again.held_out, split.held_out
    )
    assert len(split.train) + len(split.held_out) == 1797
    # standardised with the training set's statistics: mean 0, std 1 on its non-constant pixels
    assert float(split.train.mean(0).abs().max()) < 1e-12
    varying = split.std != 1
    np.testing.assert_allclose(split.train[:, varying].std(0).numpy(), 1.0, rtol=1e-12)


def test_checkpoints_reproduce_the_stored_errors_and_weights(nets, split):
    assert sorted(nets) == list(trained.CHECKPOINTS)
    losses = data.load("trained_digits_training")
    for row in losses.itertuples():
        # the table stores 10 significant digits
        assert trained.reconstruction_error(
            nets[row.step], split.train
        ) == pytest.approx(row.train_mse, rel=1e-9)
        assert trained.reconstruction_error(
            nets[row.step], split.held_out
        ) == pytest.approx(row.held_out_mse, rel=1e-9)
    # training learns: the held-out error falls at every checkpoint
    assert np.all(np.diff(losses["held_out_mse"]) < 0)
    stored = data.load("trained_digits_weights")
    pd.testing.assert_frame_equal(
        trained.weight_table(nets), stored, rtol=1e-9, check_dtype=False
    )


def test_initial_checkpoint_is_the_seeded_constructor(nets):
    fresh = trained.digits_autoencoder(seed=0)
    for key, value in fresh.state_dict().items():
        assert torch.equal(nets[0].state_dict()[key], value)


def test_retraining_reproduces_the_first_checkpoints(nets, split):
    # 30 seeded float64 steps on one thread: identical up to summation order (1e-10 is generous)
    states, _ = trained.train_autoencoder(split, steps=30, checkpoints=(30,))
    for key, value in states[30].items():
        np.testing.assert_allclose(
            value.numpy(), nets[30].state_dict()[key].numpy(), rtol=0, atol=1e-10
        )


def test_deterministic_columns_are_reproduced(nets, split, table):
    # pair births (first ReLU, from single images) and the mean field depend on the weights and the
    # seeded paths only, not on the Monte-Carlo of the kinks: reproduced to the stored digits
    for step in (0, 3000):
        for k, kind in enumerate(trained.PATH_KINDS):
            rows = table[(table["step"] == step) & (table["paths"] == kind)]
            paths = trained.DigitPaths(
                kind, split, int(rows["n_paths"].iloc[0]), seed=k
            )
            mf = trained._mean_field(nets[step], paths, int(rows["n_samples"].iloc[0]))
            np.testing.assert_allclose(
                mf["smp"].to_numpy(), rows["mf_smp"].to_numpy(), rtol=1e-8
            )
            if kind != "circle":
                from smp import models

                with torch.no_grad():
                    z = nets[step][0](paths.images).numpy()
                stored = rows[rows["layer"] == 1]["pair_births"].iloc[0]
                assert models.pair_births(z).sum() == pytest.approx(stored, rel=1e-8)


@pytest.mark.parametrize("kind", ["train", "held_out"])
def test_reduced_rerun_within_standard_errors(nets, split, table, kind):
    # 25 other seeded lines (seed 100) at the trained checkpoint: the measured SMP, births and
    # pass-through of every layer must agree with the stored means within 4 combined standard
    # errors (the s.e. of a 25-path mean, estimated from the stored spread, is sem * sqrt(n/25))
    n_new = 25
    stored = table[(table["step"] == 3000) & (table["paths"] == kind)].reset_index(
        drop=True
    )
    paths = trained.DigitPaths(kind, split, n_new, seed=100)
    new = trained.measure_network(nets[3000], paths, 200, kernel=False)
    n = int(stored["n_paths"].iloc[0])
    for key in ("smp", "births", "pass_through"):
        measured = stored[key].to_numpy() > 0
        diff = np.abs(new[key].to_numpy() - stored[key].to_numpy())[measured]
        tolerance = (
            4 * stored[key + "_sem"].to_numpy()[measured] * np.sqrt(1 + n / n_new)
        )
        assert np.all(diff < tolerance), (key, diff, tolerance)


def test_measurement_does_not_depend_on_the_grid(nets, split, table):
    # every kink event is resolved, so a 4x coarser grid gives the same SMP on the same paths
    paths = trained.DigitPaths("held_out", split, 5, seed=1)
    fine = trained.measure_network(nets[3000], paths, 400, kernel=False)
    coarse = trained.measure_network(nets[3000], paths, 100, kernel=False)
    np.testing.assert_allclose(coarse["smp"], fine["smp"], rtol=1e-9)


def test_the_chapters_claims_hold_on_the_stored_table(table):
    # the chapter's statements, as checks that a regenerated table must still pass
    p = trained.predictions(table)
    relu = p[p["name"] == "ReLU"]
    # Kac-Rice with measured ingredients: within 2 % at every ReLU row (stored: 0.6 %)
    assert relu["births_kernel_error"].abs().max() < 0.02
    # first-layer births from single images: within 3 s.e. of the measurement (no path noise in
    # the prediction, which uses every image of the set)
    pair = relu.dropna(subset=["pair_births"])
    assert len(pair) == 8
    z = (pair["pair_births"] - pair["births"]) / pair["births_sem"]
    assert z.abs().max() < 3
    # on great circles the Gaussian births hold (within 10 %); on held-out lines after training
    # they miss by more than 20 % at every layer, beyond 2 paired-bootstrap s.e.
    circle = relu[relu["paths"] == "circle"]
    assert circle["births_gauss_error"].abs().max() < 0.10
    held = relu[(relu["paths"] == "held_out") & (relu["step"] == 3000)]
    assert (held["births_gauss_error"] > 0.20).all()
    assert (held["births_gauss_zb"] > 2).all()
    # the output layer: the shared-kink model holds at initialisation, over-predicts after training
    out = p[p["layer"] == 6]
    assert out[out["step"] == 0]["conditional_error"].abs().max() < 0.03
    assert (out[out["step"] == 3000]["conditional_error"] > 0.08).all()


# ----------------------------------------------------------------------------------------------
# the conditional models (smp.models._conditional) on cases with known answers
# ----------------------------------------------------------------------------------------------


def test_gaussian_births_is_chapter_4s_rice_formula_for_a_stationary_input():
    from smp import models

    n, length = 51, 3.0
    mean, std, dstd = 0.4, 1.3, 0.7
    full = np.full((n, 2), 1.0)
    births = models.gaussian_births(
        mean * full,
        std * full,
        0 * full,
        dstd * full,
        0 * full,
        models.trapezoid_weights(n, length),
    )
    np.testing.assert_allclose(
        births, models.relu_births(std, dstd, mean, length), rtol=1e-12
    )
    # float32 statistics give the float64 answer to float32 rounding
    births32 = models.gaussian_births(
        *(np.float32(v) * full for v in (mean, std, 0, dstd, 0)),
        models.trapezoid_weights(n, length),
    )
    np.testing.assert_allclose(births32, births, rtol=1e-6)


def test_kernel_births_recovers_a_correlated_gaussian():
    # (z, z') jointly Gaussian with covariance c: the kernel estimate must match the Gaussian
    # formula; 20000 draws per t and 40 times give a Monte-Carlo error near 0.5 %, so 3 %
    from smp import models

    rng = np.random.default_rng(3)
    p, n = 20000, 40
    mu, sigma, dmu, dsigma, c = 0.3, 1.0, 0.5, 0.8, 0.4
    z = mu + sigma * rng.normal(size=(p, n, 1))
    dz = (
        dmu
        + c / sigma**2 * (z - mu)
        + np.sqrt(dsigma**2 - c**2 / sigma**2) * rng.normal(size=z.shape)
    )
    w = models.trapezoid_weights(n, 1.0)
    full = np.ones((n, 1))
    expected = models.gaussian_births(
        mu * full, sigma * full, dmu * full, dsigma * full, c * full, w
    )
    result = models.kernel_births(z, dz, w)
    np.testing.assert_allclose(result.births, expected, rtol=0.03)
    np.testing.assert_allclose(result.density, result.gaussian_density, rtol=0.03)


def test_pair_births_is_the_mean_over_all_ordered_pairs():
    from smp import models

    z = np.random.default_rng(4).normal(0.2, 1.0, size=(30, 3))
    brute = np.zeros(3)
    for i in range(30):
        for j in range(30):
            if i != j:
                brute += np.where(z[i] * z[j] < 0, np.abs(z[i] - z[j]), 0.0)
    np.testing.assert_allclose(models.pair_births(z), brute / (30 * 29), rtol=1e-12)
    np.testing.assert_allclose(
        models.pair_births(z.astype(np.float32)), brute / 870, rtol=1e-6
    )


def test_mean_field_dense_is_chapter_6s_stack_at_he_initialisation():
    from smp.models import dense_stack, mean_field_dense

    he = [np.sqrt(2 / 64), np.sqrt(2 / 32), np.sqrt(2 / 32)]
    ours = mean_field_dense(
        he,
        [0.0] * 3,
        [32] * 3,
        in_features=64,
        input_m2=1.0,
        input_dm2=1.0,
        length=2 * np.pi,
        relu_after=[True] * 3,
    )
    theirs = dense_stack(64, 32, 3)
    np.testing.assert_allclose(ours["smp"], theirs["smp"], rtol=1e-12)


def test_linear_models_with_actual_weights():
    from smp import models

    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    # one input kinking at a time: |W| @ smp_in exactly
    np.testing.assert_allclose(models.linear_independent(w, [1.0, 2.0]), [5.0, 0.5])
    # shared events: sqrt(2/pi) * sum_j ||W_j||_2 / sqrt(U_in) * event 2-norm
    expected = np.sqrt(2 / np.pi) * (np.sqrt(5) + 0.5) / np.sqrt(2) * 3.0
    assert float(models.linear_shared(w, 3.0)) == pytest.approx(expected, rel=1e-12)


def test_conditional_models_reject_bad_input():
    from smp import models

    with pytest.raises(ValueError, match="weights"):
        models.gaussian_births(*([np.ones((3, 2))] * 5), [1.0, 1.0])
    with pytest.raises(ValueError, match="p_active"):
        models.independent_pass_through(np.full((2, 1), 1.5), np.ones((2, 1)))
    with pytest.raises(ValueError, match="10 paths"):
        models.kernel_births(np.ones((5, 3, 1)), np.ones((5, 3, 1)), [0.5, 1, 0.5])
    with pytest.raises(ValueError, match="n >= 2"):
        models.pair_births(np.ones((1, 3)))
    with pytest.raises(TypeError):
        models.linear_shared("w", 1.0)


# ---- the chapter's summaries ----


@pytest.fixture(scope="module")
def pred(table):
    return trained.predictions(table)


def test_summary_counts_every_measured_cell_once(pred):
    numbers = trained.summary(pred)
    measured = pred[pred["smp"] > 0]
    # 3 path kinds x 6 measured layers x every checkpoint (the first linear layer has SMP 0)
    assert numbers["all-cells"] == len(measured) == 3 * 6 * len(trained.CHECKPOINTS)
    assert numbers["ok-cells"] + numbers["misses"] == numbers["all-cells"]
    assert numbers["final-step"] == max(trained.CHECKPOINTS)
    # the held-out first-layer figures are the same row's, and the worst births miss bounds them
    assert numbers["held1-gauss"] <= numbers["births-worst"]
    assert 0 < numbers["pact-min"] <= numbers["pact-max"] < 1


def test_misses_are_exactly_the_cells_beyond_both_tolerances(pred):
    missed = trained.misses(pred)
    assert len(missed) == trained.summary(pred)["misses"]
    assert (missed["conditional_error"].abs() >= trained.HOLD_ERROR).all()
    assert (missed["conditional_z"].abs() >= trained.HOLD_Z).all()
    relu = missed["name"] == "ReLU"
    # a ReLU miss carries its cause: the births' factors are measured, not missing
    assert missed.loc[relu, ["density_ratio", "slope_ratio"]].notna().all().all()
    assert missed.loc[~relu, "births_gauss_error"].isna().all()
    assert set(missed["paths"]) <= set(trained.KIND_NAMES.values())


def test_births_and_pass_add_up_to_the_measured_smp(pred):
    final = max(trained.CHECKPOINTS)
    table = trained.births_and_pass(pred, final)
    assert list(table["layer"]) == list(trained.LAYER_NAMES.values())
    rows = pred[(pred["step"] == final) & (pred["layer"] >= 1)].set_index(
        ["paths", "layer"]
    )
    for kind in trained.PATH_KINDS:
        total = table[f"{kind} births"] + table[f"{kind} passed"]
        smp = rows.loc[kind]["smp"].sort_index().to_numpy()
        # births and pass-through partition every kink event: equal up to rounding
        np.testing.assert_allclose(total.to_numpy(), smp, rtol=1e-8)
        linear = table["layer"].str.startswith("Linear")
        assert (table.loc[linear, f"{kind} births"] == 0).all()
    with pytest.raises(ValueError, match="step"):
        trained.births_and_pass(pred, 12345)


def test_step_table_has_one_row_per_kind_and_layer(pred):
    wide = trained.step_table(pred, "conditional_error", layers=[1, 3])
    assert len(wide) == len(trained.PATH_KINDS) * 2
    assert list(wide.columns[2:]) == [f"step {s}" for s in trained.CHECKPOINTS]
    row = pred[(pred["paths"] == "circle") & (pred["layer"] == 3) & (pred["step"] == 0)]
    cell = wide[(wide["paths"] == "great circles") & (wide["layer"] == "ReLU 2")]
    assert cell["step 0"].iloc[0] == row["conditional_error"].iloc[0]
