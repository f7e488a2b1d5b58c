"""Every stored file in ``data/``: one registry, one loader, one writer.

The Monte-Carlo tables and trained weights the chapters compare against take longer to produce than a
chapter may run, so they are stored.  Each has an entry here: its file, the function that produces
it, the seed it was produced with, and (in ``data/SHA256SUMS``) the SHA-256 of its bytes.  Chapters
and tests reach ``data/`` only through :func:`load`, :func:`path` and :func:`write`; a file whose
bytes no longer match ``SHA256SUMS`` (edited by hand, or regenerated without :func:`write`) is
*stale* and :func:`stale` names it (a test asserts the list is empty).

The directory is anchored at the package (``<repository>/data`` for the editable install the book
uses), not at the current directory, so a notebook in ``chapters/`` and a test in ``tests/`` read
the same files.  ``SMP_DATA_DIR`` overrides it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "Entry",
    "REGISTRY",
    "HASH_FILE",
    "Tolerance",
    "differences",
    "same_result",
    "resolve",
    "data_dir",
    "path",
    "load",
    "write",
    "write_many",
    "sha256",
    "stale",
]

#: the hash file inside the data directory, in ``sha256sum`` format (``sha256sum -c`` checks it)
HASH_FILE = "SHA256SUMS"


class Tolerance(NamedTuple):
    """How far a regeneration may move a file whose computation is not bit-reproducible, and why.

    A table's ``columns`` (every numeric column but the timing ones when empty) may move by
    ``rtol`` relative to the stored value (with ``rtol`` 0, only ``check`` judges them); every
    other column must be identical as written.  ``check`` (``module:function``, called with the new and the stored path, returning a list of
    problems) judges what a column tolerance cannot: a retrained network by its test error, an
    AUC by its stored confidence interval.

    Attributes
    ----------
    reason : str
        why the file is not bit-reproducible and why the bound is the right one (measured).
    rtol : float
        relative tolerance of ``columns``.
    columns : tuple of str
        the columns the tolerance governs.
    check : str
        ``module:function(new, stored) -> list[str]``, or empty.

    Example
    -------
    >>> REGISTRY["stack_cnn_networks"].tolerance.rtol
    1e-09
    """

    reason: str
    rtol: float = 0.0
    columns: tuple[str, ...] = ()
    check: str = ""


class Entry(NamedTuple):
    """One stored file of the registry.

    Attributes
    ----------
    file : str
        the file's name in ``data/``.
    producer : str
        the function that computes it and calls :func:`write`, as ``module:function``.
    seed : int
        the seed it was produced with.
    float_format : str
        ``printf`` format of the floats of a CSV table (empty for a state dict).
    description : str
        one line saying what it holds.
    timing_columns : tuple of str
        columns that are measured times (or ratios of them): they depend on the machine and its
        load, so a regeneration cannot reproduce them; :func:`same_result` compares every other
        column.
    tolerance : Tolerance or None
        for a file whose computation is not bit-reproducible (float32 training, thread-dependent
        sums): what a regeneration must match instead of the bytes.

    Example
    -------
    >>> entry = REGISTRY["relu_sweep"]
    >>> entry.file, entry.producer, entry.seed
    ('04_relu.csv', 'smp.experiments.relu:write_tables', 0)
    """

    file: str
    producer: str
    seed: int
    float_format: str
    description: str
    timing_columns: tuple[str, ...] = ()
    tolerance: Tolerance | None = None


_TABLE = "%.10g"
#: a network retrained in float32 is judged by its test error, not its bytes
_RETRAINED = Tolerance(
    "float32 training sums in an order that depends on the thread count and the CPU: weights "
    "retrained on another machine differ (up to 0.038 in one weight) while the ReLU network's "
    "test error moved by 0.23 %; a retrained network must be within 5 % of the stored test error "
    "(the chapter compares networks whose errors differ by 28 %)",
    rtol=0.05,
    columns=("test_rmse_px",),
)
#: every stored file, by name
REGISTRY: dict[str, Entry] = {
    "conv_sweep": Entry(
        "03_convolution.csv",
        "smp.experiments.conv:write_tables",
        0,
        _TABLE,
        "chapter 3: conv layer, independent kink times, fan-in and weight-std sweep",
    ),
    "conv_shared": Entry(
        "03_convolution_shared.csv",
        "smp.experiments.conv:write_tables",
        0,
        _TABLE,
        "chapter 3: conv layer, kinks shared across channels",
    ),
    "conv_resolution": Entry(
        "03_convolution_resolution.csv",
        "smp.experiments.conv:write_tables",
        0,
        _TABLE,
        "chapter 3: conv output SMP against samples per kink",
    ),
    "trace_speed": Entry(
        "09_trace_speed.csv",
        "smp.experiments.tracer:write_tables",
        0,
        _TABLE,
        "chapter 9: layer-wise tracer against regioncam and the event walker (CPU time)",
        ("events_per_s", "reference_per_s", "ratio", "load_average"),
    ),
    "relu_sweep": Entry(
        "04_relu.csv",
        "smp.experiments.relu:write_tables",
        0,
        _TABLE,
        "chapter 4: ReLU bias sweep, Gaussian processes with and without input kinks",
    ),
    "maxpool_sweep": Entry(
        "05_maxpool.csv",
        "smp.experiments.maxpool:write_tables",
        0,
        _TABLE,
        "chapter 5: max pooling of i.i.d. and equicorrelated windows",
    ),
    "maxpool_cnn": Entry(
        "05_maxpool_cnn.csv",
        "smp.experiments.maxpool:write_tables",
        0,
        _TABLE,
        "chapter 5: 2x2 max pooling inside a Conv-ReLU stack, window models",
    ),
    "stack_dense": Entry(
        "06_stacked_dense.csv",
        "smp.experiments.stack:write_tables",
        0,
        _TABLE,
        "chapter 6: dense ReLU stack, per-layer model against measurement, three gains",
    ),
    "stack_width": Entry(
        "06_stacked_width.csv",
        "smp.experiments.stack:write_tables",
        0,
        _TABLE,
        "chapter 6: dense ReLU stack, width sweep",
    ),
    "stack_cnn": Entry(
        "06_stacked_cnn.csv",
        "smp.experiments.stack:write_tables",
        0,
        _TABLE,
        "chapter 6: Conv-ReLU-MaxPool stack, per-layer model against measurement",
    ),
    "stack_resolution": Entry(
        "06_stacked_resolution.csv",
        "smp.experiments.stack:write_tables",
        0,
        _TABLE,
        "chapter 6: measured per-layer SMP against the number of samples",
    ),
    "stack_cnn_networks": Entry(
        "06_stacked_cnn_networks.csv",
        "smp.experiments.stack:write_tables",
        0,
        _TABLE,
        "chapter 6: CNN stacks, per-network per-layer measurement (four architectures, 200 networks each)",
        tolerance=Tolerance(
            "float64 convolutions sum in an order that depends on the thread count: two reruns "
            "on 2 loaded workers each moved 1 of its 72,000 numbers, by 1.1e-10 relative",
            rtol=1e-9,
        ),
    ),
    "stack_dense_bias": Entry(
        "06_stacked_dense_bias.csv",
        "smp.experiments.stack:write_tables",
        0,
        _TABLE,
        "chapter 6: dense ReLU stack with biases and unequal widths, model against measurement",
    ),
    "forensics_auc": Entry(
        "08_forensics_auc.csv",
        "smp.experiments.forensics:write_tables",
        0,
        "%.6g",
        "forensics chapter: AUC of SMP and the TV baseline with bootstrap intervals",
        tolerance=Tolerance(
            "the two networks are retrained in float32 (see forensics_models); every AUC must "
            "stay within half its stored bootstrap interval or one trajectory's rank, 1/64, "
            "its bounds within twice that (measured: AUC 0.0156, bounds 0.023 at most)",
            columns=("auc", "auc_low", "auc_high"),
            check="smp.experiments.forensics:same_auc",
        ),
    ),
    "forensics_models": Entry(
        "08_forensics_models.csv",
        "smp.experiments.forensics:write_tables",
        0,
        "%.6g",
        "forensics chapter: training time and test error of the two landmark networks",
        ("train_seconds",),
        _RETRAINED,
    ),
    "forensics_relu": Entry(
        "forensics_relu.pt",
        "smp.experiments.forensics:write_tables",
        0,
        "",
        "forensics chapter: ReLU + max-pool landmark CNN, float64 state dict",
        tolerance=Tolerance(
            _RETRAINED.reason, check="smp.experiments.forensics:same_trained_network"
        ),
    ),
    "forensics_smooth": Entry(
        "forensics_smooth.pt",
        "smp.experiments.forensics:write_tables",
        0,
        "",
        "forensics chapter: GELU + average-pool landmark CNN, float64 state dict",
        tolerance=Tolerance(
            _RETRAINED.reason, check="smp.experiments.forensics:same_trained_network"
        ),
    ),
    "trained_digits": Entry(
        "trained_digits.pt",
        "smp.experiments.trained:write_tables",
        0,
        "",
        "trained networks: digits ReLU autoencoder, float64 checkpoints (steps 0, 30, 300, 3000)",
    ),
    "trained_digits_training": Entry(
        "07_trained_training.csv",
        "smp.experiments.trained:write_tables",
        0,
        _TABLE,
        "trained networks: reconstruction error of the digits autoencoder at every checkpoint",
    ),
    "trained_digits_weights": Entry(
        "07_trained_weights.csv",
        "smp.experiments.trained:write_tables",
        0,
        _TABLE,
        "trained networks: weight distribution of every linear layer at every checkpoint",
    ),
    "trained_digits_smp": Entry(
        "07_trained_smp.csv",
        "smp.experiments.trained:write_tables",
        0,
        _TABLE,
        "trained networks: exact per-layer SMP (births, pass-through) and the block models' predictions",
    ),
    "trained_landmark": Entry(
        "trained_landmark.pt",
        "smp.experiments._landmark_trained:write_landmark_tables",
        0,
        "",
        "trained networks: ReLU landmark CNN, float64 checkpoints (steps 0, 30, 300, 3000)",
    ),
    "trained_landmark_training": Entry(
        "07_trained_landmark_training.csv",
        "smp.experiments._landmark_trained:write_landmark_tables",
        0,
        _TABLE,
        "trained networks: test error (pixels) of the landmark CNN at every checkpoint",
        ("seconds",),
    ),
    "trained_landmark_smp": Entry(
        "07_trained_landmark_smp.csv",
        "smp.experiments._landmark_trained:write_landmark_tables",
        0,
        _TABLE,
        "trained networks: landmark CNN, exact per-layer SMP by breakpoints and the block models",
        ("seconds",),
    ),
    "trained_landmark_refined": Entry(
        "07_trained_landmark_refined.csv",
        "smp.experiments._landmark_trained_refined:write_refined_table",
        0,
        _TABLE,
        "trained networks: landmark CNN, the refined models (kernel Kac-Rice, event moments)",
        ("seconds",),
    ),
}


def data_dir() -> Path:
    """The data directory: ``$SMP_DATA_DIR`` if set, else ``<repository>/data``.

    Returns
    -------
    pathlib.Path
        the directory (not created here).

    Example
    -------
    The directory holds the hash file that :func:`write` keeps:

    >>> (data_dir() / HASH_FILE).is_file()
    True
    """
    override = os.environ.get("SMP_DATA_DIR")
    return (
        Path(override) if override else Path(__file__).resolve().parent.parent / "data"
    )


def _entry(name: str) -> Entry:
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a registry name (str), got {type(name).__name__}"
        )
    if name not in REGISTRY:
        raise ValueError(
            f"name must be one of the registered files {sorted(REGISTRY)}, got {name!r}"
        )
    return REGISTRY[name]


def path(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Path of the stored file ``name`` (in ``directory``, default :func:`data_dir`).

    Parameters
    ----------
    name : str
        a key of :data:`REGISTRY`.
    directory : str or os.PathLike, optional
        the data directory; default :func:`data_dir`.

    Returns
    -------
    pathlib.Path
        the file's path (it may not exist yet).

    Raises
    ------
    TypeError
        ``name`` is not a string.
    ValueError
        ``name`` is not registered (the message lists the names).

    Example
    -------
    >>> from smp import data
    >>> data.path("relu_sweep").name
    '04_relu.csv'
    >>> data.path("relu_sweep", directory="/tmp/elsewhere").as_posix()
    '/tmp/elsewhere/04_relu.csv'
    """
    return (data_dir() if directory is None else Path(directory)) / _entry(name).file


def load(name: str, directory: str | os.PathLike | None = None) -> Any:
    """Load a stored file by name: a CSV as a ``pandas.DataFrame``, a ``.pt`` file as a state dict.

    Parameters
    ----------
    name : str
        a key of :data:`REGISTRY`.
    directory : str or os.PathLike, optional
        the data directory; default :func:`data_dir`.

    Returns
    -------
    pandas.DataFrame or dict of torch.Tensor
        the table, or the state dict (loaded with ``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        the file is missing (the message names its producer).

    Example
    -------
    >>> from smp import data
    >>> table = data.load("relu_sweep")
    >>> "measured" in table.columns
    True
    >>> weights = data.load("forensics_relu")
    >>> tuple(weights["0.weight"].shape), weights["0.weight"].dtype
    ((4, 1, 3, 3), torch.float64)
    """
    file = path(name, directory)
    if not file.exists():
        producer = _entry(name).producer
        raise FileNotFoundError(
            f"{file} is missing: regenerate it with {producer} (see README, 'make data')"
        )
    if file.suffix == ".csv":
        import pandas as pd

        return pd.read_csv(file)
    import torch

    return torch.load(file, weights_only=True)


def sha256(file: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (what ``sha256sum`` prints).

    Parameters
    ----------
    file : str or os.PathLike
        the file to hash (read in 1 MiB blocks).

    Returns
    -------
    str
        64 hexadecimal digits.

    Example
    -------
    The digest of the three bytes ``abc`` is the FIPS 180-2 test vector:

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = os.path.join(tmp, "abc.txt")
    ...     with open(file, "wb") as handle:
    ...         _ = handle.write(b"abc")
    ...     sha256(file)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def differences(
    name: str, new: str | os.PathLike, stored: str | os.PathLike
) -> list[str]:
    """How the regenerated file ``new`` differs from ``stored`` (both of the table ``name``)
    beyond what the registry allows; an empty list when they hold the same result.

    Byte-identical files hold the same result.  Otherwise a table's ``timing_columns`` are
    ignored (measured times: no rerun reproduces them) and, for an entry with a
    :class:`Tolerance`, its numeric columns may move by ``rtol`` and its ``check`` judges the
    rest; every other column must be identical as written.  A state dict without a ``check``
    must be byte-identical.

    Parameters
    ----------
    name : str
        a key of :data:`REGISTRY`.
    new, stored : str or os.PathLike
        the two files.

    Returns
    -------
    list of str
        one line per problem, naming the column (and the largest relative change) or the check.

    Example
    -------
    >>> differences("relu_sweep", path("relu_sweep"), path("relu_sweep"))
    []
    """
    entry = _entry(name)
    missing = [str(f) for f in (new, stored) if not Path(f).exists()]
    if missing:
        return [f"missing: {', '.join(missing)}"]
    if sha256(new) == sha256(stored):
        return []
    tolerance = entry.tolerance
    if Path(stored).suffix != ".csv":
        if tolerance is None or not tolerance.check:
            return [
                "the bytes differ (a state dict without a tolerance must be identical)"
            ]
        return list(resolve(tolerance.check)(new, stored))
    if not entry.timing_columns and tolerance is None:
        return ["the bytes differ"]
    import numpy as np
    import pandas as pd

    tables = [pd.read_csv(f) for f in (new, stored)]
    if list(tables[0].columns) != list(tables[1].columns) or len(tables[0]) != len(
        tables[1]
    ):
        return [
            f"the tables' shapes or columns differ: {tables[0].shape} {list(tables[0].columns)}"
            f" against {tables[1].shape} {list(tables[1].columns)}"
        ]
    ignored = set(entry.timing_columns)
    problems = []
    if tolerance is not None:
        numeric = [
            c
            for c in tables[1].columns
            if c not in ignored and pd.api.types.is_numeric_dtype(tables[1][c])
        ]
        governed = tolerance.columns or tuple(numeric)
        for column in governed if tolerance.rtol > 0 else ():
            a, b = (t[column].to_numpy(dtype=float) for t in tables)
            both_nan = np.isnan(a) & np.isnan(b)
            scale = np.where(np.abs(b) > 0, np.abs(b), 1.0)
            change = np.where(both_nan, 0.0, np.abs(a - b) / scale)
            change[~both_nan & (np.isnan(a) | np.isnan(b))] = np.inf
            if change.max(initial=0.0) > tolerance.rtol:
                problems.append(
                    f"{column}: moved by up to {change.max():.3g} relative "
                    f"(tolerance {tolerance.rtol:g}: {tolerance.reason})"
                )
        ignored.update(governed)  # with rtol 0, its check judges them
    rest = [c for c in tables[1].columns if c not in ignored]
    written = [
        t[rest].to_csv(index=False, float_format=entry.float_format) for t in tables
    ]
    if written[0] != written[1]:
        changed = [c for c in rest if not tables[0][c].equals(tables[1][c])]
        problems.append(f"columns that must be identical differ: {', '.join(changed)}")
    if tolerance is not None and tolerance.check:
        problems += resolve(tolerance.check)(new, stored)
    return problems


def resolve(spec: str):
    """The function a registry entry names as ``module:function`` (a producer or a check).

    Example
    -------
    >>> resolve(REGISTRY["relu_sweep"].producer).__name__
    'write_tables'
    """
    import importlib

    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def same_result(name: str, new: str | os.PathLike, stored: str | os.PathLike) -> bool:
    """Whether the file ``new`` holds the same result as ``stored``: :func:`differences` is empty.

    Example
    -------
    >>> same_result("relu_sweep", path("relu_sweep"), path("relu_sweep"))
    True
    """
    return not differences(name, new, stored)


def _read_hashes(directory: Path) -> dict[str, str]:
    hash_file = directory / HASH_FILE
    if not hash_file.exists():
        return {}
    hashes = {}
    for line in hash_file.read_text().splitlines():
        if line.strip():
            digest, file = line.split(maxsplit=1)
            hashes[file.lstrip("*")] = digest
    return hashes


def _write_hashes(directory: Path, hashes: dict[str, str]) -> None:
    lines = [f"{hashes[file]}  {file}\n" for file in sorted(hashes)]
    (directory / HASH_FILE).write_text("".join(lines))


def write(name: str, obj: Any, directory: str | os.PathLike | None = None) -> Path:
    """Store ``obj`` as the registered file ``name`` and record its hash in ``SHA256SUMS``.

    A ``pandas.DataFrame`` is written as CSV without the index, floats with the entry's
    ``float_format``; a state dict (``dict`` of tensors) with ``torch.save``.

    Parameters
    ----------
    name : str
        a key of :data:`REGISTRY`.
    obj : pandas.DataFrame or dict
        a table for a ``.csv`` entry, a state dict for a ``.pt`` entry.
    directory : str or os.PathLike, optional
        the data directory (created if needed); default :func:`data_dir`.

    Returns
    -------
    pathlib.Path
        the path written.

    Raises
    ------
    TypeError
        ``obj`` is not of the kind the entry's file needs.

    Example
    -------
    >>> import tempfile, pandas as pd
    >>> from smp import data
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = data.write("relu_sweep", pd.DataFrame({"x": [0.5]}), directory=tmp)
    ...     data.stale(tmp, names=["relu_sweep"])
    []
    """
    entry = _entry(name)
    directory = data_dir() if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / entry.file
    if file.suffix == ".csv":
        if not hasattr(obj, "to_csv"):
            raise TypeError(
                f"obj for {name!r} ({entry.file}) must be a pandas.DataFrame, got {type(obj).__name__}"
            )
        obj.to_csv(file, index=False, float_format=entry.float_format)
    else:
        import torch

        if not isinstance(obj, dict):
            raise TypeError(
                f"obj for {name!r} ({entry.file}) must be a state dict, got {type(obj).__name__}"
            )
        torch.save(obj, file)
    hashes = _read_hashes(directory)
    hashes[entry.file] = sha256(file)
    _write_hashes(directory, hashes)
    return file


def stale(
    directory: str | os.PathLike | None = None, names: list[str] | None = None
) -> list[str]:
    """Names of registered files that are missing or differ from ``SHA256SUMS``.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        the data directory; default :func:`data_dir`.
    names : list of str, optional
        the registry names to check; default all of :data:`REGISTRY`.

    Returns
    -------
    list of str
        the stale names, in the order checked (empty when every file is as written).

    Example
    -------
    A file edited after :func:`write` is stale, and so is a missing one:

    >>> import tempfile, pandas as pd
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = write("relu_sweep", pd.DataFrame({"x": [0.5]}), directory=tmp)
    ...     fresh = stale(tmp, names=["relu_sweep"])
    ...     with open(file, "a") as handle:
    ...         _ = handle.write("0.25")
    ...     fresh, stale(tmp, names=["relu_sweep", "conv_sweep"])
    ([], ['relu_sweep', 'conv_sweep'])
    """
    directory = data_dir() if directory is None else Path(directory)
    hashes = _read_hashes(directory)
    out = []
    for name in REGISTRY if names is None else names:
        file = directory / _entry(name).file
        if not file.exists() or hashes.get(file.name) != sha256(file):
            out.append(name)
    return out


def write_many(
    tables: dict[str, Any], directory: str | os.PathLike | None = None
) -> list[Path]:
    """:func:`write` every ``name: obj`` of ``tables``.

    Parameters
    ----------
    tables : dict
        registry name -> table or state dict.
    directory : str or os.PathLike, optional
        the data directory; default :func:`data_dir`.

    Returns
    -------
    list of pathlib.Path
        the paths written, in the order of ``tables``.

    Example
    -------
    >>> import tempfile, pandas as pd
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = write_many({"relu_sweep": pd.DataFrame({"x": [1.0]}),
    ...                         "maxpool_sweep": pd.DataFrame({"x": [2.0]})}, tmp)
    ...     [f.name for f in files], stale(tmp, names=["relu_sweep", "maxpool_sweep"])
    (['04_relu.csv', '05_maxpool.csv'], [])
    """
    return [write(name, obj, directory) for name, obj in tables.items()]
