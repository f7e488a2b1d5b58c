"""Trained networks, landmark CNN (smp.experiments._landmark_trained): the breakpoint measurement
against the event-resolved exact method, the stored checkpoints and tables against recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smp import data
from smp._exact_smp import exact_path_smp
from smp.experiments import _landmark_trained as lt
from smp.networks import landmark_net

NAMES = ["trained_landmark", "trained_landmark_training", "trained_landmark_smp"]


@pytest.fixture(scope="module")
def nets():
    return lt.load_landmark_checkpoints()


@pytest.fixture(scope="module")
def table():
    return data.load("trained_landmark_smp")


def test_stored_files_are_registered_and_fresh():
    assert data.stale(names=NAMES) == []


def test_initial_checkpoint_is_the_seeded_constructor(nets):
    fresh = landmark_net("relu", seed=0).double().state_dict()
    for key, value in nets[0].state_dict().items():
        assert torch.equal(value, fresh[key]), key
    assert sorted(nets) == list(lt.LANDMARK_CHECKPOINTS)
    assert all(p.dtype == torch.float64 for p in nets[3000].parameters())


def test_checkpoints_reproduce_the_stored_test_errors(nets):
    from smp.experiments._landmark import test_error

    stored = data.load("trained_landmark_training").set_index("step")["test_rmse_px"]
    for step, net in nets.items():
        # float64 evaluation of the stored float64 weights: only rounding differs
        assert test_error(net) == pytest.approx(stored[step], rel=1e-9)
    assert stored[3000] < 0.2 < stored[0]  # the network learned the task


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_breakpoint_measurement_equals_the_event_resolved_exact_method(nets, dtype):
    """The midpoint grid between the tracer's breakpoints holds one event per interval, so its
    frozen-pattern jumps are exact: the per-layer SMP agrees with exact_path_smp (every interval
    with more than one pattern change refined) to rounding.  A float32 state dict is measured in
    float64 (the same numbers up to the weights' float32 rounding)."""
    net = nets[3000]
    state = {k: v.to(dtype) for k, v in net.state_dict().items()}
    paths = lt.LandmarkPaths("held_out", 40, seed=1)
    index = [0, 1]
    ours = lt.measure_landmark(state, "held_out", index, 40, 1)
    reference = lt._as_net(state)

    def pick(i, t):
        return paths(torch.as_tensor(index)[i], t)

    exact = exact_path_smp(
        reference, pick, torch.linspace(0, 1, 400, dtype=torch.float64), 2
    )
    assert ours["multi"].sum() == 0
    for layer in exact:
        assert ours[layer.index]["smp_path"] == pytest.approx(
            layer.smp.sum(1), rel=1e-8, abs=1e-9
        ), layer.index
        if (
            layer.name == "ReLU"
        ):  # max pooling splits births differently (module docstring)
            assert ours[layer.index]["births_path"] == pytest.approx(
                layer.births.sum(1), rel=1e-8, abs=1e-9
            )


def test_chords_locate_the_circles_breakpoints(table):
    # intervals of a circle with more than one pattern change, against all intervals: the chords'
    # deviation from the arc separated all but a small fraction of the events
    circles = table[(table["paths"] == "circle") & (table["layer"] == 0)]
    share = circles["multi"] / (circles["samples"] * circles["n_paths"])
    assert (share < 0.003).all()


def test_reduced_rerun_within_standard_errors(nets, table):
    """The first 10 held-out lines (kind seed 1) of the final checkpoint against the stored 60:
    each layer's mean within 4 standard errors of the difference (the reduced mean's s.e.
    dominates; a changed measurement or path set would move the means by far more), and the
    birth/pass split of every ReLU the same way."""
    stored = table[(table["step"] == 3000) & (table["paths"] == "held_out")]
    part = lt.measure_landmark(nets[3000].state_dict(), "held_out", range(10), 60, 1)
    small = lt.summarise_landmark(nets[3000], [part], 1.0)
    assert list(small["layer"]) == list(stored["layer"])
    for (_, full), (_, row) in zip(stored.iterrows(), small.iterrows()):
        for key in ("smp", "births"):
            gap = abs(row[key] - full[key])
            assert gap <= 4 * np.hypot(row[key + "_sem"], full[key + "_sem"]) + 1e-12


def test_paths_reject_bad_input():
    with pytest.raises(ValueError, match="kind"):
        lt.LandmarkPaths("bogus", 3)
    with pytest.raises(ValueError, match="n_paths"):
        lt.LandmarkPaths("train", 0)
    with pytest.raises(ValueError, match="checkpoints"):
        lt.train_landmark_checkpoints(steps=3, checkpoints=(0, 5), progress=False)


def test_births_and_pass_add_up_and_predictions_have_errors(table):
    pred = lt.landmark_predictions(table)
    assert np.allclose(pred["births"] + pred["pass_through"], pred["smp"])
    relu = pred[(pred["name"] == "ReLU") & (pred["births"] > 0)]
    assert relu["births_error"].notna().all()
    # the second conv's inputs (the first pooling) never kink together: the independent-times
    # identity sum |w| SMP(x) is exact there
    conv2 = pred[pred["layer"] == 3]
    # (lines: to rounding; circles: 0.07 % of intervals hold two pattern changes, see above)
    assert np.allclose(conv2["conditional"], conv2["smp"], rtol=1e-4)
    lines = conv2[conv2["paths"] != "circle"]
    assert np.allclose(lines["conditional"], lines["smp"], rtol=1e-9)
    conv = pred[(pred["name"] == "Conv2d") & (pred["layer"] > 0)]
    assert conv["shared_error"].notna().all()


# --- the refined models (smp.models._refined, smp.experiments._landmark_trained_refined) ---

from smp import models  # noqa: E402
from smp.experiments import _landmark_trained_refined as rf  # noqa: E402


def _envelope_smp(za: np.ndarray, zb: np.ndarray) -> float:
    """Total slope increase of max(0, (1-t) za + t zb) on [0, 1], by dense sampling."""
    t = np.linspace(0, 1, 200001)
    lines = np.concatenate([(1 - t)[:, None] * za + t[:, None] * zb, 0 * t[:, None]], 1)
    slope = np.diff(lines.max(1)) / np.diff(t)
    return float(np.abs(np.diff(slope)).sum())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pair_maxpool_is_the_mean_over_pairs_of_the_exact_envelope(dtype):
    rng = np.random.default_rng(3)
    z = rng.normal(0.3, 1.0, size=(6, 1, 3)).astype(dtype)
    brute = np.mean(
        [_envelope_smp(z[a, 0], z[b, 0]) for a in range(6) for b in range(6) if a != b]
    )
    # the dense grid resolves every kink to 1e-5 of its size
    assert models.pair_maxpool(z)[0] == pytest.approx(brute, rel=1e-4)
    # one input: the pair births of a ReLU
    assert models.pair_maxpool(z[:, :, :1])[0] == pytest.approx(
        models.pair_births(z[:, 0, :1])[0], rel=1e-6
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_switch_births_matches_the_gaussian_window_model(dtype):
    """For a Gaussian window (correlated inputs, a ReLU) the kernel estimate agrees with
    chapter 5's window model; 4000 draws per time, 40 times: the estimate's sampling error is
    about 1 %, the window model's Monte-Carlo error 0.5 %."""
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]])
    mean = np.array([0.3, 0.0, -0.2])
    root = np.linalg.cholesky(cov)
    x = mean + rng.normal(size=(4000, 40, 1, 3)) @ root.T
    dx = rng.normal(size=x.shape) @ root.T  # derivative covariance = cov
    w = np.full(40, 1 / 40)
    ks = models.kernel_switch_births(x.astype(dtype), dx.astype(dtype), w)
    ref = models.maxpool_window(mean, cov, cov, relu=True, n_draws=200000, seed=0)
    assert ks.switch_births[0] == pytest.approx(ref.switch_births, rel=0.04)
    assert ks.zero_births[0] == pytest.approx(ref.zero_births, rel=0.04)
    # a 10 % wrong model would fail
    assert abs(1.1 * ref.switch_births / ks.switch_births[0] - 1) > 0.04


def test_kernel_switch_births_rejects_bad_input():
    with pytest.raises(ValueError, match="x and dx"):
        models.kernel_switch_births(
            np.zeros((20, 3, 2)), np.zeros((20, 3, 2)), np.ones(3)
        )
    with pytest.raises(ValueError, match="10 paths"):
        models.kernel_switch_births(
            np.zeros((5, 3, 1, 2)), np.zeros((5, 3, 1, 2)), [1] * 3
        )
    with pytest.raises(ValueError, match="weights"):
        models.kernel_switch_births(
            np.zeros((20, 3, 1, 2)), np.zeros((20, 3, 1, 2)), [1]
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_aligned_events_is_exact_for_a_gaussian_scale_mixture(dtype):
    """Events J = s u with u ~ N(0, S) in 200 dimensions (so |u| is nearly constant and
    w.J / |J| nearly Gaussian, the model's assumption) and heavy-tailed sizes s: the model
    predicts sum |w.J| within 3 % (20000 events: sampling error about 1 %, the residual
    spread of |u| 0.5 %); a 10 % error would fail.  Sizes lognormal with sigma 0.5: heavier
    tails would leave too few events dominating the second moments for a 3 % test."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 200)) / np.sqrt(200)
    u = rng.normal(size=(20000, 200)) @ (a + np.eye(200)).T  # correlated directions
    s = rng.lognormal(0.0, 0.5, size=(20000, 1))
    jumps = (s * u).astype(dtype)
    w = rng.normal(size=(3, 200)) @ (a + np.eye(200))  # aligned with the events
    truth = np.abs(jumps.astype(np.float64) @ w.T).sum(0)
    norms = np.linalg.norm(jumps.astype(np.float64), axis=1)
    m2 = jumps.astype(np.float64).T @ jumps.astype(np.float64)
    pred = models.aligned_events(w, m2, norms.sum(), (norms**2).sum())
    assert pred == pytest.approx(truth, rel=0.03)
    assert not 1.1 * pred == pytest.approx(truth, rel=0.03)
    with pytest.raises(ValueError, match="m2"):
        models.aligned_events(w, np.eye(3), 1.0, 1.0)


def test_reduced_refined_rerun_closes_the_first_block():
    """20 held-out lines of the final checkpoint, measured and predicted by the refined models.
    The kernel births of the first ReLU and pooling are within 5 % of the measurement on the
    same paths (observed: within 2 %; both use the same 20 paths, so the paths' spread, 17 % of
    the mean, largely cancels); the Gaussian models miss them by more than 20 % (stored table),
    and a 10 % error of the refined model would fail."""
    net = lt.load_landmark_checkpoints()[3000]
    pred = rf.refined_predictions(
        rf.run_refined({3000: net}, n_paths=20, kinds=("held_out",), workers=1)
    ).set_index("layer")
    for layer in (1, 2):
        error = pred.loc[layer, "ref_births_error"]
        assert abs(error) < 0.05, (layer, error)
        assert abs((1 + error) * 1.1 - 1) > 0.05
    assert abs(pred.loc[2, "ref_error"]) < 0.05
    # the event model of conv 3 and linear 1 (single-input events exact, second moments of
    # the others): within 5 % there (observed: within 2 %); conv 2 exact
    for layer in (6, 10):
        assert abs(pred.loc[layer, "ref_error"]) < 0.05, layer
    assert pred.loc[3, "ref_error"] == pytest.approx(0, abs=1e-9)


def test_stored_refined_table_measures_what_the_stored_table_measured(table):
    """Same checkpoints, paths and tracer: the measured columns agree to rounding; the refined
    models hold where the issue asks."""
    assert data.stale(names=["trained_landmark_refined"]) == []
    ref = rf.refined_predictions(data.load("trained_landmark_refined"))
    keys = ["step", "paths", "layer"]
    both = ref.merge(table, on=keys, suffixes=("", "_stored"))
    assert len(both) == len(table)
    for key in ("smp", "births"):
        assert np.allclose(both[key], both[key + "_stored"], rtol=1e-9, atol=1e-12)
    births = ref[
        (ref["paths"] == "held_out")
        & ref["name"].isin(["ReLU", "MaxPool2d"])
        & (ref["births"] > 0)
    ]
    ok = births["ref_births_error"].abs() <= 0.10
    # all but two held-out birth cells within 10 %; those two hold few births (under 2 % of
    # their layer's SMP: few crossings for the kernel to see) and are within 2 s.e.
    assert ok.sum() >= len(births) - 2
    few = births[~ok]
    assert (few["births"] < 0.02 * few["smp"]).all()
    assert (few["ref_births_z"].abs() <= 2).all()
    # conv 2's inputs never kink together: the single-input part is all of it, exact
    conv2 = ref[ref["layer"] == 3]
    lines = conv2[conv2["paths"] != "circle"]
    assert np.allclose(lines["refined"], lines["smp"], rtol=1e-9)
