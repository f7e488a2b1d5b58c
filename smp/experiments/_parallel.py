"""Run a sweep's independent units of work on all local cores or on a cluster, with identical results.

A *unit* is one seeded piece of a sweep (one network, one batch of paths).  Its seed is derived
from the sweep's seed and the unit's index alone (:func:`unit_seed`), and results come back in
unit order, so a table does not depend on how many workers ran the units or in which order they
finished.  Workers are joblib's (``loky`` processes locally; joblib's Dask backend on a cluster,
given the address of the user's own ``dask.distributed`` scheduler).

``SMP_WORKERS`` and ``SMP_SCHEDULER`` set the defaults (``make data WORKERS=... SCHEDULER=...``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm  # plain text bar: tqdm.auto warns in notebooks without ipywidgets

from .._validation import check_int

__all__ = ["unit_seed", "default_workers", "run_units", "run_until"]


def unit_seed(seed: int, *index: int) -> int:
    """The seed of unit ``index`` of a sweep seeded with ``seed`` (a 32-bit int, any workers).

    The first word of ``numpy.random.SeedSequence([seed, *index])``: a function of the
    sweep's seed and the unit's index alone, so a unit draws the same numbers whichever
    worker runs it, and in whatever order.

    Parameters
    ----------
    seed : int
        the sweep's seed (non-negative).
    *index : int
        the unit's position in the sweep, one or more non-negative integers (e.g. the
        width's index and the network's).

    Returns
    -------
    int
        a seed in ``[0, 2**32)``.

    Example
    -------
    >>> unit_seed(0, 3) == unit_seed(0, 3) != unit_seed(0, 4)
    True
    >>> unit_seed(0, 1, 2) != unit_seed(0, 2, 1), 0 <= unit_seed(7, 0) < 2**32
    (True, True)
    """
    return int(np.random.SeedSequence([int(seed), *map(int, index)]).generate_state(1)[0])


def default_workers() -> int:
    """``$SMP_WORKERS`` if set, else every local core (``os.cpu_count()``).

    Returns
    -------
    int
        the number of worker processes :func:`run_units` starts by default.

    Raises
    ------
    ValueError
        ``$SMP_WORKERS`` is not a positive integer.

    Example
    -------
    >>> import os
    >>> saved = os.environ.get("SMP_WORKERS")
    >>> os.environ["SMP_WORKERS"] = "3"
    >>> default_workers()
    3
    >>> _ = os.environ.pop("SMP_WORKERS")
    >>> default_workers() == (os.cpu_count() or 1)
    True
    >>> if saved is not None:
    ...     os.environ["SMP_WORKERS"] = saved
    """
    value = os.environ.get("SMP_WORKERS")
    return check_int("SMP_WORKERS", int(value)) if value else (os.cpu_count() or 1)


def _single_threaded(function: Callable, unit: Any) -> Any:
    # one torch thread per worker: several workers each using every core would oversubscribe them
    import torch

    torch.set_num_threads(1)
    return function(unit)


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
    function : a picklable function of one unit (cloudpickle: closures are fine).
    units : the units of work, each carrying everything its result depends on (its seed included).
    workers : local worker processes (default :func:`default_workers`); 1 runs in this process.
    scheduler : address of a running ``dask.distributed`` scheduler (default ``$SMP_SCHEDULER``);
        when given, the units run on its workers through joblib's Dask backend (needs the
        ``cluster`` extra: ``pip install smp[cluster]``).
    progress : a tqdm bar over finished units.
    desc : the bar's label.

    Returns
    -------
    list
        ``function(unit)`` for every unit, in the order of ``units`` whichever worker
        finished first.

    Example
    -------
    >>> run_units(abs, [-1, 2, -3], workers=1)
    [1, 2, 3]
    """
    units = list(units)
    workers = default_workers() if workers is None else check_int("workers", workers)
    scheduler = scheduler if scheduler is not None else os.environ.get("SMP_SCHEDULER") or None
    bar = tqdm(total=len(units), disable=not progress, desc=desc, leave=False)
    if scheduler is None and (workers == 1 or len(units) <= 1):
        results = []
        for unit in units:
            results.append(function(unit))
            bar.update()
        bar.close()
        return results
    import joblib

    jobs = (joblib.delayed(_single_threaded)(function, unit) for unit in units)
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise ImportError("scheduler needs dask.distributed: pip install 'smp[cluster]'") from err
        with Client(scheduler), joblib.parallel_config(backend="dask"):
            results = list(joblib.Parallel(return_as="generator")(jobs))
        bar.update(len(units))
    else:
        results = []
        for result in joblib.Parallel(n_jobs=workers, return_as="generator")(jobs):
            results.append(result)
            bar.update()
    bar.close()
    return results


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

    Units are computed in rounds of ``max(workers, 1)``; ``done`` is then checked on every prefix in
    order, and the first prefix (of length >= ``min_units``) it accepts is returned: extra units of
    the last round are discarded, so the stopping point does not depend on the round size.

    Parameters
    ----------
    function : a picklable function of the unit's index ``0, 1, ...`` (derive its seed
        with :func:`unit_seed`).
    done : a function of the list of results so far, true when they are enough (e.g. a
        standard error below a target).
    min_units, max_units : the fewest and the most units computed.
    workers, scheduler, progress, desc : as in :func:`run_units`.

    Returns
    -------
    list
        ``[function(0), ..., function(n - 1)]`` for the first ``n >= min_units`` that
        ``done`` accepts, or ``max_units`` results if none does.

    Example
    -------
    >>> run_until(lambda i: i, lambda r: sum(r) >= 6, min_units=1, max_units=10, workers=1)
    [0, 1, 2, 3]
    """
    min_units = check_int("min_units", min_units)
    max_units = check_int("max_units", max_units, min_units)
    workers = default_workers() if workers is None else check_int("workers", workers)
    results: list = []
    bar = tqdm(total=max_units, disable=not progress, desc=desc, leave=False)
    while len(results) < max_units:
        start = len(results)
        size = min(max(workers, 1), max_units - start)
        if start < min_units:
            size = max(size, min(min_units, max_units) - start)
        results += run_units(function, range(start, start + size), workers=workers, scheduler=scheduler)
        bar.update(size)
        for n in range(max(start + 1, min_units), len(results) + 1):
            if done(results[:n]):
                bar.close()
                return results[:n]
    bar.close()
    return results
