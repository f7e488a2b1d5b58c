"""scripts/make_data.py calls each producer with only the arguments it takes."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_data.py"


@pytest.fixture(scope="module")
def make_data():
    spec = importlib.util.spec_from_file_location("make_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_producer(monkeypatch, function) -> str:
    module = types.ModuleType("fake_producers")
    module.write_tables = function
    monkeypatch.setitem(sys.modules, "fake_producers", module)
    return "fake_producers:write_tables"


def test_a_producer_without_scheduler_gets_workers_only(make_data, monkeypatch, capsys):
    received = {}

    def write_tables(*, progress=False, directory=None, workers=None):
        received.update(progress=progress, directory=directory, workers=workers)

    producer = fake_producer(monkeypatch, write_tables)
    make_data.run(
        producer, workers=3, scheduler="tcp://h:1", directory="d", progress=True
    )
    assert received == {"progress": True, "directory": "d", "workers": 3}
    assert "takes no scheduler" in capsys.readouterr().out


def test_a_producer_with_scheduler_gets_both(make_data, monkeypatch):
    received = {}

    def write_tables(*, workers=None, scheduler=None):
        received.update(workers=workers, scheduler=scheduler)

    producer = fake_producer(monkeypatch, write_tables)
    make_data.run(
        producer, workers=2, scheduler="tcp://h:1", directory=None, progress=False
    )
    assert received == {"workers": 2, "scheduler": "tcp://h:1"}


def test_a_serial_producer_gets_neither(make_data, monkeypatch, capsys):
    received = {}

    def write_tables(*, directory=None):
        received.update(directory=directory)

    producer = fake_producer(monkeypatch, write_tables)
    make_data.run(producer, workers=2, scheduler=None, directory="d", progress=False)
    assert received == {"directory": "d"}
    assert "runs in this process" in capsys.readouterr().out


def test_a_benchmark_table_is_the_same_result_apart_from_its_times(tmp_path):
    from smp import data

    stored = data.path("trace_speed")
    table = pd.read_csv(stored)
    rerun = table.copy()
    rerun["events_per_s"] *= 1.3  # another machine, another load
    rerun["ratio"] *= 1.3
    file = tmp_path / "rerun.csv"
    rerun.to_csv(file, index=False, float_format="%.10g")
    assert data.same_result("trace_speed", file, stored)
    rerun.loc[0, "events"] += 1  # a breakpoint count is deterministic: a real change
    rerun.to_csv(file, index=False, float_format="%.10g")
    assert not data.same_result("trace_speed", file, stored)


def test_other_tables_must_be_byte_identical(tmp_path):
    from smp import data

    stored = data.path("relu_sweep")
    file = tmp_path / "rerun.csv"
    file.write_bytes(stored.read_bytes() + b"\n")
    assert not data.same_result("relu_sweep", file, stored)


def test_every_producer_writes_where_it_is_told():
    # make data --directory compares a fresh run with the stored files: a producer that ignored
    # the directory would overwrite them and compare them with nothing
    import inspect

    from smp import data

    for producer in {entry.producer for entry in data.REGISTRY.values()}:
        parameters = inspect.signature(data.resolve(producer)).parameters
        assert "directory" in parameters, producer


def test_a_producer_without_directory_is_refused(make_data, monkeypatch):
    producer = fake_producer(monkeypatch, lambda *, workers=None: None)
    with pytest.raises(SystemExit, match="takes no directory"):
        make_data.run(
            producer, workers=1, scheduler=None, directory="elsewhere", progress=False
        )


def _rewritten(tmp_path, name, change) -> Path:
    """The stored table ``name`` with ``change(table)`` applied, written as make data would."""
    from smp import data

    table = pd.read_csv(data.path(name))
    change(table)
    file = tmp_path / data.REGISTRY[name].file
    table.to_csv(file, index=False, float_format=data.REGISTRY[name].float_format)
    return file


def test_a_thread_order_change_is_within_tolerance(tmp_path):
    from smp import data

    stored = data.path("stack_cnn_networks")
    column = pd.read_csv(stored).select_dtypes("number").columns[-1]

    def nudge(factor):
        def change(table):
            table.loc[7, column] *= factor

        return change

    # the 10th significant digit: what a different thread count did (registry reason)
    file = _rewritten(tmp_path, "stack_cnn_networks", nudge(1 + 3e-10))
    assert data.differences("stack_cnn_networks", file, stored) == []
    file = _rewritten(tmp_path, "stack_cnn_networks", nudge(1 + 1e-6))
    (problem,) = data.differences("stack_cnn_networks", file, stored)
    assert column in problem and "tolerance" in problem


def test_a_retrained_network_is_judged_by_its_test_error(tmp_path):
    import torch

    from smp import data
    from smp.experiments import forensics

    stored = data.path("forensics_models")

    def scale_error(factor):
        def change(table):
            table["test_rmse_px"] *= factor
            table["train_seconds"] *= 3  # a measured time: never compared

        return change

    file = _rewritten(tmp_path, "forensics_models", scale_error(1.01))
    assert data.differences("forensics_models", file, stored) == []
    file = _rewritten(tmp_path, "forensics_models", scale_error(1.2))
    assert data.differences("forensics_models", file, stored)

    # the weights: the same network passes, a damaged one (its last layer halved) does not
    state = torch.load(data.path("forensics_relu"), weights_only=True)
    last = [k for k in state if k.endswith("weight")][-1]
    state[last] = state[last] / 2
    damaged = tmp_path / "forensics_relu.pt"
    torch.save(state, damaged)
    (problem,) = data.differences(
        "forensics_relu", damaged, data.path("forensics_relu")
    )
    assert "test error" in problem
    assert (
        forensics.same_trained_network(
            data.path("forensics_relu"), data.path("forensics_relu")
        )
        == []
    )


def test_an_auc_must_stay_inside_half_its_interval(tmp_path):
    from smp import data

    stored = data.path("forensics_auc")
    half = (pd.read_csv(stored).eval("auc_high - auc_low") / 2)[3]

    def shift(by):
        def change(table):
            table.loc[3, "auc"] += by

        return change

    file = _rewritten(tmp_path, "forensics_auc", shift(0.5 * half))
    assert data.differences("forensics_auc", file, stored) == []
    file = _rewritten(tmp_path, "forensics_auc", shift(1.5 * half))
    (problem,) = data.differences("forensics_auc", file, stored)
    assert problem.startswith("auc: 1 of")

    def rename(table):
        table.loc[0, "score"] = "another score"  # a setting: must be identical

    file = _rewritten(tmp_path, "forensics_auc", rename)
    assert "score" in data.differences("forensics_auc", file, stored)[0]
