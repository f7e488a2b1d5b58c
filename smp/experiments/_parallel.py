"""Run a sweep's independent units of work on all local cores or on a cluster, with identical results.

A *unit* is one seeded piece of a sweep (one network, one batch of paths).  Its seed is derived
from the sweep's seed and the unit's index alone (:func:`unit_seed`), and results come back in
unit order, so a table does not depend on how many workers ran the units or in which order they
finished.  Workers are joblib's (``loky`` processes locally; joblib's Dask backend on a cluster,
given the address of the user's own ``dask.distributed`` scheduler).  Every unit runs with one
torch thread and one BLAS thread, in a worker or in this process, so that no result depends on
the thread count.

Adaptive sweeps (repeat until the standard error is small) use :func:`run_until_each`: workers
compute units ahead, the stopping rule is evaluated on every prefix in unit order, and units
computed past the stopping point are discarded, so the stopping point, too, is the same for any
number of workers (the discarded units are wasted work: a few per point).

``SMP_WORKERS`` and ``SMP_SCHEDULER`` set the defaults (``make data WORKERS=... SCHEDULER=...``).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .._validation import check_int

__all__ = [
    "unit_seed",
    "default_workers",
    "capacity",
    "run_units",
    "run_until",
    "run_until_each",
]


def unit_seed(seed: int, *index: int) -> int:
    """The seed of unit ``index`` of a sweep seeded with ``seed`` (a 32-bit int, any workers).

    ``np.random.SeedSequence([seed, *index]).generate_state(1)[0]``: the first word of the
    sequence's state, the seed of every batch of :func:`~smp.experiments.relu.relu_sweep` and
    :func:`~smp.experiments.maxpool.maxpool_sweep` (the repeats of
    :func:`~smp.experiments.conv.conv_sweep` draw two or three words of the same sequence).

    Example
    -------
    >>> unit_seed(0, 3) == unit_seed(0, 3) != unit_seed(0, 4)
    True
    """
    return int(
        np.random.SeedSequence([int(seed), *map(int, index)]).generate_state(1)[0]
    )


def default_workers() -> int:
    """``$SMP_WORKERS`` if set, else 1: a chapter's spot check or a test runs in its own process
    (starting a pool costs seconds, more than their small sweeps, and ``make test`` already runs
    two test processes); ``make data`` / ``scripts/make_data.py`` use every local core."""
    value = os.environ.get("SMP_WORKERS")
    return check_int("SMP_WORKERS", int(value)) if value else 1


def _scheduler(scheduler: str | None) -> str | None:
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(
            f"scheduler must be a dask.distributed scheduler address (str), got {scheduler!r}"
        )
    return (
        scheduler if scheduler is not None else os.environ.get("SMP_SCHEDULER") or None
    )


_CLIENTS: dict[str, Any] = {}


def _client(address: str):
    """One ``dask.distributed.Client`` per scheduler address, kept for the session (connecting
    costs about a second; an adaptive sweep calls :func:`run_units` once per round)."""
    try:
        from dask.distributed import Client
    except ImportError as err:
        raise ImportError(
            "scheduler needs dask.distributed: pip install 'smp[cluster]'"
        ) from err
    client = _CLIENTS.get(address)
    if client is None or client.status not in ("running", "connecting"):
        client = _CLIENTS[address] = Client(address, set_as_default=False)
    return client


def capacity(workers: int | None = None, scheduler: str | None = None) -> int:
    """How many units run at once: the cluster's worker threads given a scheduler, else ``workers``
    (default :func:`default_workers`)."""
    scheduler = _scheduler(scheduler)
    if scheduler is not None:
        return max(1, sum(_client(scheduler).nthreads().values()))
    return default_workers() if workers is None else check_int("workers", workers)


def _single_threaded(function: Callable, unit: Any) -> Any:
    """``function(unit)`` in this process with one torch thread and one BLAS thread, restored after.

    One thread per unit wherever it runs: several workers each using every core would
    oversubscribe them, and a reduction split over threads (a convolution, a matrix-vector product)
    can differ in its last bit from the same reduction on one thread, so a unit must compute the
    same way in this process, in a loky worker and on a cluster.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas_threads(1):
            return function(unit)
    finally:
        torch.set_num_threads(threads)


def _blas_threads(limit: int):
    """threadpoolctl's limit on the BLAS threads (a dependency of the ``cluster`` and ``test``
    extras); without it a unit run in this process uses the BLAS's default threads (loky and dask
    workers start with one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def _in_worker(function: Callable, unit: Any) -> tuple[Any, list]:
    """``function(unit)`` in a worker process, single-threaded for good (set, never restored: units
    running concurrently in one dask worker's threads would otherwise restore each other's
    threads), with the warnings it raised recorded so that the caller's process re-raises them
    under its own filters, as a serial run would."""
    import torch

    torch.set_num_threads(1)
    _blas_threads(1)  # applied on creation, kept: the worker runs units only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(unit)
    return result, [(w.message, w.category, w.filename, w.lineno) for w in caught]


def _reraise(recorded: list) -> None:
    for message, category, filename, lineno in recorded:
        warnings.warn_explicit(message, category, filename, lineno)


def _ordered_map(
    function: Callable,
    units: Iterable,
    workers: int,
    scheduler: str | None,
    batch_size: int | str = "auto",
    pre_dispatch: str = "2 * n_jobs",
) -> Iterator:
    """``function(unit)`` for each unit, yielded in unit order as they finish, on joblib's workers.

    ``units`` is consumed lazily, a few ``n_jobs`` ahead of the results (joblib's ``pre_dispatch``),
    so a generator of units may decide what to submit next from the results seen so far
    (``batch_size=1, pre_dispatch="n_jobs"`` keeps that lead short: one unit per worker).
    """
    import joblib

    jobs = (joblib.delayed(_in_worker)(function, unit) for unit in units)
    if scheduler is not None:
        config = joblib.parallel_config(backend="dask", client=_client(scheduler))
        n_jobs = -1  # every thread of the cluster
    else:
        config = joblib.parallel_config(backend="loky", inner_max_num_threads=1)
        n_jobs = workers  # the same pool size every call: loky reuses its workers
    with config:
        parallel = joblib.Parallel(
            n_jobs=n_jobs,
            return_as="generator",
            batch_size=batch_size,
            pre_dispatch=pre_dispatch,
        )
        for result, recorded in parallel(jobs):
            _reraise(recorded)
            yield result


def run_units(
    function: Callable[[Any], Any],
    units: Sequence[Any],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str = "units",
) -> list:
    """``[function(unit) for unit in units]``, computed by ``workers`` processes, in unit order.

    Parameters
    ----------
    function : a picklable function of one unit (cloudpickle: closures are fine; a module-level
        function or a ``functools.partial`` of one pickles smallest).
    units : the units of work, each carrying everything its result depends on (its seed included).
    workers : local worker processes (default :func:`default_workers`); 1 runs in this process.
    scheduler : address of a running ``dask.distributed`` scheduler, e.g. ``"tcp://host:8786"``
        (default ``$SMP_SCHEDULER``); when given, the units run on its workers through joblib's
        Dask backend (needs the ``cluster`` extra, ``pip install 'smp[cluster]'``, and ``smp``
        installed on the workers) and ``workers`` is ignored.
    progress : a tqdm bar over finished units.

    Example
    -------
    >>> run_units(abs, [-1, 2, -3], workers=1)
    [1, 2, 3]
    """
    units = list(units)
    scheduler = _scheduler(scheduler)
    workers = default_workers() if workers is None else check_int("workers", workers)
    # the bar stays on screen when done: its elapsed time is the sweep's
    bar = tqdm(total=len(units), disable=not progress, desc=desc)
    try:
        if scheduler is None and (workers == 1 or len(units) <= 1):
            values: Iterable = (_single_threaded(function, unit) for unit in units)
        else:
            values = _ordered_map(function, units, workers, scheduler)
        results = []
        for value in values:
            results.append(value)
            bar.update()
        return results
    finally:
        bar.close()


def run_until_each(
    function: Callable[[Hashable, int], Any],
    done: Callable[[Hashable, list], bool],
    keys: Sequence[Hashable],
    *,
    min_units: int | Sequence[int],
    max_units: int | Sequence[int],
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str = "points",
) -> list[list]:
    """Several adaptive sweeps at once: for each key, units ``function(key, 0), function(key, 1),
    ...`` until ``done(key, results)`` holds, with the same result for any number of workers.

    For each key the result is the shortest prefix (of length >= ``min_units``) that ``done``
    accepts, or all ``max_units`` units: exactly what computing the units one at a time and
    checking ``done`` after each gives, which is what one worker does.  Several workers compute
    ahead: units of the keys still running are submitted in turn, a few per worker ahead of the
    results (joblib's ``pre_dispatch``); results are taken in unit order, ``done`` is checked on
    each new prefix, and the units a key's workers computed past its stopping point are discarded
    (wasted work, a few units per key, never a different table).

    Parameters
    ----------
    function : ``function(key, index)`` -> the unit's result; it must derive every random draw from
        ``key`` and ``index`` (e.g. :func:`unit_seed`) and be picklable.
    done : ``done(key, results)`` -> whether the sweep of ``key`` may stop after ``results`` (called
        in this process).
    keys : the sweeps' keys (e.g. a point's index), in the order of the returned lists.
    min_units, max_units : bounds on each sweep's units, one number for all keys or one per key.
    workers, scheduler : as for :func:`run_units`.
    progress : a tqdm bar over finished keys.

    Returns
    -------
    one list of results per key.

    Example
    -------
    >>> run_until_each(lambda k, i: k * i, lambda k, r: sum(r) >= 6, [1, 2], min_units=1,
    ...                max_units=10, workers=1)
    [[0, 1, 2, 3], [0, 2, 4]]
    """
    keys = list(keys)
    low = _per_key("min_units", min_units, len(keys), 1)
    high = [
        check_int("max_units", m, lo)
        for m, lo in zip(_per_key("max_units", max_units, len(keys), 1), low)
    ]
    scheduler = _scheduler(scheduler)
    workers = default_workers() if workers is None else check_int("workers", workers)
    results: list[list] = [[] for _ in keys]
    finished = [False] * len(keys)
    bar = tqdm(total=len(keys), disable=not progress, desc=desc)

    def take(j: int, value: Any) -> None:
        # a key's results arrive in index order; past its stopping point they are discarded
        if finished[j]:
            return
        results[j].append(value)
        if (len(results[j]) >= low[j] and done(keys[j], results[j])) or len(
            results[j]
        ) >= high[j]:
            finished[j] = True
            bar.set_postfix(units=sum(map(len, results)), refresh=False)
            bar.update()

    unit = _KeyedUnit(function, keys)
    try:
        if scheduler is None and workers == 1:
            for j in range(len(keys)):
                index = 0
                while not finished[j]:
                    take(*_single_threaded(unit, (j, index)))
                    index += 1
        else:
            submitted = [0] * len(keys)

            def units() -> Iterator[tuple[int, int]]:
                # read by joblib as workers free up: the keys still running, in turn
                while True:
                    running = [
                        j
                        for j in range(len(keys))
                        if not finished[j] and submitted[j] < high[j]
                    ]
                    if not running:
                        return
                    for j in running:
                        if not finished[j]:
                            submitted[j] += 1
                            yield j, submitted[j] - 1

            # one unit per worker in flight: few units computed past a stopping point
            for j, value in _ordered_map(
                unit, units(), workers, scheduler, batch_size=1, pre_dispatch="n_jobs"
            ):
                take(j, value)
    finally:
        bar.close()
    return results


class _KeyedUnit:
    """``(j, function(keys[j], i))`` for the unit ``(j, i)``: a small picklable wrapper."""

    def __init__(self, function: Callable, keys: list):
        self.function, self.keys = function, keys

    def __call__(self, unit: tuple[int, int]) -> tuple[int, Any]:
        j, i = unit
        return j, self.function(self.keys[j], i)


def _per_key(name: str, value: int | Sequence[int], n: int, minimum: int) -> list[int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [check_int(name, value, minimum)] * n
    values = [check_int(name, v, minimum) for v in value]
    if len(values) != n:
        raise ValueError(
            f"{name} must be one integer or one per key ({n}), got {len(values)}"
        )
    return values


def run_until(
    function: Callable[[int], Any],
    done: Callable[[list], bool],
    *,
    min_units: int,
    max_units: int,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    desc: str = "units",
) -> list:
    """Units ``function(0), function(1), ...`` until ``done(results)`` holds (at least ``min_units``,
    at most ``max_units``), with the same result for any number of workers.

    :func:`run_until_each` with one key: ``done`` is checked on every prefix in order and the first
    prefix (of length >= ``min_units``) it accepts is returned; units that workers computed ahead
    of it are discarded, so the stopping point does not depend on the number of workers.

    Example
    -------
    >>> run_until(lambda i: i, lambda r: sum(r) >= 6, min_units=1, max_units=10, workers=1)
    [0, 1, 2, 3]
    """
    (results,) = run_until_each(
        _Unkeyed(function),
        _Unkeyed(done),
        [None],
        min_units=min_units,
        max_units=max_units,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        desc=desc,
    )
    return results


class _Unkeyed:
    """``function(argument)`` called as ``function(key, argument)`` (picklable)."""

    def __init__(self, function: Callable):
        self.function = function

    def __call__(self, key: Any, argument: Any) -> Any:
        return self.function(argument)
