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
