"""The data registry (smp.data): every stored file is registered, none is stale, and a changed file
is caught."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from smp import data


def test_every_stored_file_is_registered_and_every_registered_file_exists():
    stored = {p.name for p in data.data_dir().iterdir() if p.name != data.HASH_FILE}
    registered = {entry.file for entry in data.REGISTRY.values()}
    assert stored == registered


def test_no_stored_file_is_stale():
    # a stale file: edited by hand or regenerated without smp.data.write (which records the hash)
    assert data.stale() == []


def test_a_modified_table_is_stale(tmp_path):
    for entry in data.REGISTRY.values():
        shutil.copy(data.data_dir() / entry.file, tmp_path / entry.file)
    shutil.copy(data.data_dir() / data.HASH_FILE, tmp_path / data.HASH_FILE)
    assert data.stale(tmp_path) == []
    table = data.load("relu_sweep", tmp_path)
    table.loc[0, "measured"] *= 1.03  # a several-percent shift of one stored number
    table.to_csv(data.path("relu_sweep", tmp_path), index=False, float_format="%.10g")
    assert data.stale(tmp_path) == ["relu_sweep"]


def test_write_then_load_round_trips_tables_and_weights(tmp_path):
    table = pd.DataFrame({"a": [1.0, 2.5], "b": ["x", "y"]})
    data.write("conv_sweep", table, tmp_path)
    pd.testing.assert_frame_equal(data.load("conv_sweep", tmp_path), table)
    weights = {"w": torch.arange(3, dtype=torch.float64)}
    data.write("forensics_relu", weights, tmp_path)
    assert torch.equal(data.load("forensics_relu", tmp_path)["w"], weights["w"])
    assert data.stale(tmp_path, names=["conv_sweep", "forensics_relu"]) == []


def test_bad_names_and_objects_are_refused(tmp_path):
    with pytest.raises(ValueError, match="registered files"):
        data.path("no_such_table")
    with pytest.raises(TypeError, match="registry name"):
        data.load(3)
    with pytest.raises(TypeError, match="DataFrame"):
        data.write("conv_sweep", {"a": 1}, tmp_path)
    with pytest.raises(FileNotFoundError, match="regenerate"):
        data.load("conv_sweep", tmp_path)
