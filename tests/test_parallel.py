"""Sweeps give the same bits on 1 worker, 2 local workers and a dask.distributed cluster.

The tables of ``data/`` are regenerated in parallel (``make data``); a table must not depend on
how many workers computed its units, nor on which finished first.  Every comparison here is exact
(``check_exact``, and the CSV bytes ``smp.data.write`` would store): the units carry their own
seeds and run single-threaded wherever they run, so there is no rounding difference to tolerate.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from smp.experiments import _parallel, conv, forensics, maxpool, relu, stack
from smp.experiments._parallel import (
    capacity,
    run_units,
    run_until,
    run_until_each,
    unit_seed,
)


def _weights(trained: dict) -> pd.DataFrame:
    """Every trained parameter of :func:`forensics.train_landmark_nets`, one row per entry."""
    return pd.DataFrame(
        [
            (kind, name, i, value)
            for kind, (state, _) in trained.items()
            for name, tensor in state.items()
            for i, value in enumerate(tensor.flatten().tolist())
        ],
        columns=["kind", "parameter", "index", "value"],
    )


def reduced_tables(**where) -> dict[str, pd.DataFrame]:
    """An adaptive sweep (repeats until the s.e. is small), a fixed one, one whose matrix-vector
    products differ in the last bit between 1 and 2 BLAS threads (the great circle's Fourier
    coefficients), the dense stacks (one unit per network, each replaying the ensemble's draws of
    measured units), and the forensics chapter's training (float32, on its own thread count),
    predictions (two forward batches per network) and AUC table, a few seconds each."""
    run = forensics.run_trajectories(10, 128, seed=5, **where)  # 5130 frames each
    return {
        "conv": conv.conv_sweep(
            ((1, 2, 1.0), (4, 2, 0.3)),
            out_channels=8,
            min_repeats=3,
            max_repeats=12,
            target_rel_sem=0.03,
            seed=3,
            **where,
        ),
        "maxpool": maxpool.maxpool_sweep(
            ((2, 0.0), (4, 0.6)),
            n_paths=12,
            n_samples=2001,
            batch_paths=5,
            seed=3,
            **where,
        ),
        "great_circle": relu.relu_great_circle(
            (-1.0, 0.5), units=300, n_samples=2048, **where
        ),
        "dense_stack": stack.dense_stack_sweep(
            gains=(1.0, 1.2),
            widths=(32,),
            depth=2,
            in_features=16,
            n_networks=3,
            n_samples=4000,
            max_units=12,
            **where,
        ),
        "dense_bias": stack.dense_bias_sweep(
            widths=(24, 40), n_networks=3, n_samples=3000, max_units=16, **where
        ),
        "forensics_training": _weights(
            forensics.train_landmark_nets(steps=3, batch_size=8, **where)
        ),
        "forensics_trajectories": pd.DataFrame(
            {kind: run[kind].ravel() for kind in ("truth", "relu", "smooth")}
        ),
        "forensics_auc": forensics.forensic_table(
            run, snrs_db=(np.inf, 80), strides=(1, 4), n_boot=100, **where
        ),
    }


def assert_identical(tables: dict, reference: dict) -> None:
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table, reference[name], check_exact=True)
        # the bytes smp.data.write would store
        assert table.to_csv(index=False, float_format="%.10g") == reference[
            name
        ].to_csv(index=False, float_format="%.10g")


@pytest.fixture(scope="module")
def serial():
    return reduced_tables(workers=1)


def test_the_adaptive_sweep_stops_somewhere_in_between(serial):
    # the test is only worth something if the stopping rule decided somewhere: neither min nor max
    repeats = serial["conv"].repeats
    assert ((repeats > 3) & (repeats < 12)).any()


def test_two_local_workers_give_the_same_bits(serial):
    assert_identical(reduced_tables(workers=2), serial)


def test_a_dask_cluster_gives_the_same_bits(serial):
    distributed = pytest.importorskip(
        "dask.distributed",
        reason="the cluster case needs the 'cluster' extra: pip install -e '.[cluster]'",
    )
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        try:
            assert capacity(scheduler=cluster.scheduler_address) == 2
            assert_identical(
                reduced_tables(scheduler=cluster.scheduler_address), serial
            )
        finally:
            client = _parallel._CLIENTS.pop(cluster.scheduler_address, None)
            if client is not None:
                client.close()


def test_unit_seed_is_the_sweeps_seed_sequence():
    # the seed the sweeps of chapters 3-5 have always given batch b of point i
    assert unit_seed(0, 2, 5) == int(
        np.random.SeedSequence([0, 2, 5]).generate_state(1)[0]
    )
    assert len({unit_seed(0, i, b) for i in range(10) for b in range(10)}) == 100


def _noisy_unit(key, i):
    return float(np.random.default_rng(unit_seed(key, i)).normal())


def _noisy_rule(
    key, values
):  # a random walk leaving a band: the stopping point varies by key
    return abs(sum(values)) > 2.0 + key


@pytest.mark.parametrize("workers", [1, 2])
def test_the_stopping_point_is_the_serial_loops(workers):
    keys, most = [0, 1, 2, 3], [9, 40, 40, 40]
    got = run_until_each(
        _noisy_unit, _noisy_rule, keys, min_units=2, max_units=most, workers=workers
    )
    expected = []
    for key, m in zip(keys, most):  # the serial loop, one unit at a time
        values = []
        for i in range(m):
            values.append(_noisy_unit(key, i))
            if len(values) >= 2 and _noisy_rule(key, values):
                break
        expected.append(values)
    assert got == expected
    # the case is worth testing: one key runs to its maximum, the others stop in between
    assert len(expected[0]) == 9 and all(2 < len(v) < 40 for v in expected[1:])


def test_run_until_is_the_one_key_case():
    assert run_until(
        lambda i: i, lambda r: sum(r) >= 6, min_units=1, max_units=10, workers=1
    ) == [0, 1, 2, 3]
    # max_units reached without the rule holding
    assert (
        run_until(lambda i: 0, lambda r: False, min_units=2, max_units=5, workers=1)
        == [0] * 5
    )
    # min_units: the rule is not asked before
    assert run_until(
        lambda i: i, lambda r: True, min_units=3, max_units=5, workers=1
    ) == [0, 1, 2]


def _warn_and_square(x):
    warnings.warn(f"unit {x} warned", UserWarning)
    return x * x


def test_warnings_of_workers_reach_the_caller():
    with pytest.warns(UserWarning) as caught:
        assert run_units(_warn_and_square, [1, 2, 3], workers=2) == [1, 4, 9]
    assert sorted(str(w.message) for w in caught) == [
        "unit 1 warned",
        "unit 2 warned",
        "unit 3 warned",
    ]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="workers"):
        run_units(abs, [1], workers=0)
    with pytest.raises(TypeError, match="workers"):
        run_units(abs, [1], workers=1.5)
    with pytest.raises(TypeError, match="scheduler"):
        run_units(abs, [1], scheduler=8786)
    with pytest.raises(ValueError, match="max_units"):
        run_until(abs, all, min_units=5, max_units=2, workers=1)
    with pytest.raises(ValueError, match="one per key"):
        run_until_each(
            lambda k, i: i,
            lambda k, r: True,
            [0, 1],
            min_units=1,
            max_units=[3],
            workers=1,
        )
