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
        module, function = producer.split(":")
        parameters = inspect.signature(
            getattr(importlib.import_module(module), function)
        ).parameters
        assert "directory" in parameters, producer


def test_a_producer_without_directory_is_refused(make_data, monkeypatch):
    producer = fake_producer(monkeypatch, lambda *, workers=None: None)
    with pytest.raises(SystemExit, match="takes no directory"):
        make_data.run(
            producer, workers=1, scheduler=None, directory="elsewhere", progress=False
        )
