"""Tests of smp.forensics: AUC/ROC, bootstrap, stored weights, detector, and the stored table."""

import numpy as np
import pandas as pd
import pytest

from smp import data, networks
from smp import forensics as fx
from smp.experiments import forensics as fexp


def test_auc_known_cases():
    assert fx.auc([2.0, 3.0], [0.0, 1.0]) == 1.0  # perfectly separated
    assert fx.auc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert fx.auc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5  # all tied
    x = np.random.default_rng(0).normal(size=50)
    assert fx.auc(x, x) == 0.5  # identical samples: symmetric, ties count half


def test_auc_matches_brute_force_pairwise_count():
    rng = np.random.default_rng(1)
    pos = np.round(rng.normal(0.5, 1.0, size=37), 1)  # rounding makes ties
    neg = np.round(rng.normal(0.0, 1.0, size=23), 1)
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (
        pos.size * neg.size
    )
    assert fx.auc(pos, neg) == pytest.approx(brute, abs=1e-12)
    # the ROC curve's trapezoid area is the same number
    fpr, tpr = fx.roc_curve(pos, neg)
    assert np.trapezoid(tpr, fpr) == pytest.approx(brute, abs=1e-12)
    assert fpr[-1] == 1.0 and tpr[-1] == 1.0


def test_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        fx.auc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        fx.auc([np.nan], [1.0])


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(1.0, 1.0, 60), rng.normal(0.0, 1.0, 60)
    a, lo, hi = fx.bootstrap_auc(pos, neg, n_boot=500, seed=3)
    assert a == fx.auc(pos, neg)
    assert lo < a < hi
    # a 95 % interval for ~60 + 60 samples at AUC ~0.76 is ~+-0.08 wide (Hanley-McNeil s.e. ~0.04)
    assert 0.05 < hi - lo < 0.25
    assert fx.bootstrap_auc(pos, neg, n_boot=500, seed=3) == (a, lo, hi)
    assert fx.bootstrap_auc(pos, neg, n_boot=500, seed=4) != (a, lo, hi)


@pytest.fixture(scope="module")
def nets():
    return {kind: fexp.load_net(kind) for kind in networks.LANDMARK_KINDS}


def test_stored_weights_reach_stored_test_error(nets):
    models = data.load("forensics_models").set_index("network")
    for kind, net in nets.items():
        # 500 fresh seeded centres instead of the stored 2000: the RMS error's sampling spread is
        # ~ error/sqrt(2*500) ~ 3 %; 15 % leaves room for it and fails on any wrong/stale weights
        err = fexp.test_error(net, n=500, seed=7)
        assert err == pytest.approx(models.loc[kind, "test_rmse_px"], rel=0.15)
        assert err < 0.5  # both networks localise the blob to well under a pixel
        # the stored test set itself reproduces exactly (float64 forward of stored float64 weights)
        assert fexp.test_error(net) == pytest.approx(
            models.loc[kind, "test_rmse_px"], rel=1e-4
        )


def test_smooth_net_has_no_peaks_relu_net_does(nets):
    run = fexp.run_trajectories(n_traj=8, frames_per_px=128, seed=11, nets=nets)
    s_relu = fx.smp_score(run["relu"], run["dt"])
    s_smooth = fx.smp_score(run["smooth"], run["dt"])
    assert np.all(
        s_smooth < 1e-3
    )  # a GELU/avg-pool output is C-infinity: no peak stands out
    assert (
        np.median(s_relu) > 0.05
    )  # ReLU/max-pool kinks: measured 0.1-0.5 px/px per 4-px path
    assert fx.smp_score(run["truth"], run["dt"]).max() < 1e-3


def test_reduced_table_row_matches_stored_within_ci(nets):
    """The noise-free ReLU-vs-smooth TV row, at 32 frames per pixel, recomputed on 32 fresh trajectories."""
    stored = data.load("forensics_auc")
    row = stored[
        (stored.sweep == "sampling")
        & (stored.frames_per_px == 32)
        & (stored.comparison == "ReLU vs smooth net")
        & (stored.score == "TV of D")
    ].iloc[0]
    # fewer frames: at 32 frames per pixel (the stored row's sampling) evaluate directly
    run = fexp.run_trajectories(n_traj=32, frames_per_px=32, seed=0, nets=nets)
    a = fx.auc(
        fx.tv_score(run["relu"], run["dt"]), fx.tv_score(run["smooth"], run["dt"])
    )
    # trajectories are seeded per call, so the 32 here are fresh draws of the same distribution: the
    # stored 95 % interval (64 trajectories) widened by sqrt(2) covers a half-size resample
    half = (row.auc_high - row.auc_low) / 2 * np.sqrt(2)
    assert abs(a - row.auc) < half


def test_trajectories_have_exact_length_and_stay_inside():
    traj, dt = fexp.smooth_trajectories(5, 64, length=4.0, seed=0)
    arc = np.sqrt((np.diff(traj, axis=-1) ** 2).sum(axis=1)).sum(axis=-1)
    np.testing.assert_allclose(arc, 4.0, rtol=1e-12)
    assert dt == pytest.approx(1 / 64)
    assert (
        traj.min() >= fexp.MARGIN - 1e-9
        and traj.max() <= fexp.IMAGE_SIZE - 1 - fexp.MARGIN + 1e-9
    )
    with pytest.raises(ValueError, match="n_traj"):
        fexp.smooth_trajectories(0)


def test_add_noise_has_requested_snr():
    traj, _ = fexp.smooth_trajectories(4, 256, seed=1)
    noisy = fx.add_noise(traj, traj, 20.0, seed=0)
    power = ((traj - traj.mean(-1, keepdims=True)) ** 2).mean(axis=(-1, -2))
    noise_power = ((noisy - traj) ** 2).mean(axis=(-1, -2))
    # 2 * 1025 noise samples per trajectory: the estimated power is within ~3 % (1 s.e.); 15 %
    np.testing.assert_allclose(10 * np.log10(power / noise_power), 20.0, atol=0.6)
    assert fx.add_noise(traj, traj, np.inf) is not None and np.array_equal(
        fx.add_noise(traj, traj, np.inf), traj
    )


def test_landmark_net_depends_on_seed_alone_and_leaves_global_rng():
    import torch

    torch.manual_seed(99)
    before = torch.get_rng_state()
    a, b = networks.landmark_net("relu", seed=4), networks.landmark_net("relu", seed=4)
    assert torch.equal(
        torch.get_rng_state(), before
    )  # the caller's stream is untouched
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    other = networks.landmark_net("relu", seed=5)
    assert not torch.equal(next(a.parameters()), next(other.parameters()))
    # the same initial weights as seeding the global generator directly (the code before the fork)
    torch.manual_seed(4)
    direct = torch.nn.Conv2d(1, networks.LANDMARK_WIDTHS[0], 3, padding=1)
    assert torch.equal(next(a.parameters()), direct.weight)


def test_training_units_are_the_serial_training_on_its_threads():
    # a unit trains on TRAINING_THREADS threads wherever it runs (the stored weights' setting):
    # the same float32 sums, the same bits, as training in this process on that many threads
    import torch

    trained = fexp.train_landmark_nets(steps=4, batch_size=8, seed=2, workers=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(fexp.TRAINING_THREADS)
    try:
        serial, _ = fexp.train_landmark_net(
            "relu", steps=4, batch_size=8, seed=2, progress=False
        )
    finally:
        torch.set_num_threads(threads)
    state, seconds = trained["relu"]
    assert seconds > 0 and list(state) == list(serial.state_dict())
    for name, value in serial.state_dict().items():
        assert torch.equal(state[name], value), name


def test_trajectory_units_are_one_predict_call(nets):
    # the units are predict's own forward batches: the same bits as one call over every frame
    # (units of whole trajectories would change the batches, and with them the last bits)
    run = fexp.run_trajectories(5, 1024, seed=4, nets=nets, workers=1)  # 20485 frames
    frames = np.moveaxis(run["truth"], 1, -1)
    assert frames.shape[0] * frames.shape[1] > 4 * fexp.PREDICT_BATCH
    for kind, net in nets.items():
        assert np.array_equal(
            run[kind], np.moveaxis(fexp.predict(net, frames), -1, 1)
        ), kind


def test_forensic_table_units_are_independent_settings(nets):
    # a setting's rows do not depend on the other settings computed with it
    run = fexp.run_trajectories(6, 32, seed=1, nets=nets)
    both = fexp.forensic_table(run, snrs_db=(np.inf, 70), strides=(2,), n_boot=50)
    alone = fexp.forensic_table(run, snrs_db=(70.0,), strides=(), n_boot=50)
    noisy = both[both.snr_db == 70].reset_index(drop=True)
    assert len(noisy) == 4
    pd.testing.assert_frame_equal(noisy, alone, check_exact=True)
