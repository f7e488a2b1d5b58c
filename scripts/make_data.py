"""Regenerate every stored table in data/ (``make data``), on local cores or on a Dask cluster.

Every file registered in :data:`smp.data.REGISTRY` names its producer (``module:function``) and
seed; this script calls each distinct producer once, with ``workers`` / ``scheduler`` where the
producer accepts them (a producer that does not runs in this process, and the script says so),
shows a progress bar per sweep and the time each producer took, and ends by listing which stored
files changed (their bytes against ``data/SHA256SUMS`` as it was before the run).

    .venv/bin/python scripts/make_data.py                       # every table, all local cores
    .venv/bin/python scripts/make_data.py --workers 2 --only conv_sweep relu_sweep
    .venv/bin/python scripts/make_data.py --scheduler tcp://host:8786   # a dask.distributed cluster
    .venv/bin/python scripts/make_data.py --list                # name, producer, seed, command

``--only`` takes registry names; a producer writes all of its tables, so naming one table of a
producer regenerates its siblings too.  ``--directory`` writes elsewhere than ``data/`` (the
check then compares with the stored ``data/`` files).  The exit status is 0 when every
regenerated file holds the same result as the stored one: byte-identical, or for a benchmark
table every column but its measured times (``timing_columns`` in the registry), or for a file
that is not bit-reproducible (float32 training, thread-dependent sums) within the tolerance its
registry entry states with its reason (:class:`smp.data.Tolerance`); 1 otherwise (a changed file is not an
error of the script, but it is a change to commit, or a reproducibility bug to chase).
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from smp import data


def producers(names: list[str] | None = None) -> dict[str, list[str]]:
    """Distinct producers (``module:function``) in registry order, each with its table names."""
    chosen = list(data.REGISTRY) if not names else names
    unknown = sorted(set(chosen) - set(data.REGISTRY))
    if unknown:
        raise SystemExit(f"unknown table(s) {unknown}; known: {sorted(data.REGISTRY)}")
    # a producer writes every table registered to it: select it by any of them
    selected = {data.REGISTRY[name].producer for name in chosen}
    out: dict[str, list[str]] = {}
    for name, entry in data.REGISTRY.items():
        if entry.producer in selected:
            out.setdefault(entry.producer, []).append(name)
    return out


def command(name: str) -> str:
    """The command that regenerates the table ``name`` (with the other tables of its producer)."""
    return f"make data ONLY={name}"


def run(
    producer: str,
    *,
    workers: int | None,
    scheduler: str | None,
    directory: str | None,
    progress: bool,
):
    """Call one producer; returns the seconds it took."""
    function = data.resolve(producer)
    parameters = inspect.signature(function).parameters
    if directory is not None and "directory" not in parameters:
        # it would overwrite the stored files that the run is meant to be compared with
        raise SystemExit(f"{producer} takes no directory: it can only write into data/")
    kwargs = {}
    for key, value in (("progress", progress), ("directory", directory)):
        if key in parameters:
            kwargs[key] = value
    if "workers" in parameters:
        kwargs["workers"] = workers or os.cpu_count() or 1
        if "scheduler" in parameters:
            kwargs["scheduler"] = scheduler
        elif scheduler is not None:
            print(
                f"  note: {producer} takes no scheduler: it runs on local workers",
                flush=True,
            )
    else:
        print(
            f"  note: {producer} takes no workers/scheduler: it runs in this process",
            flush=True,
        )
    start = time.perf_counter()
    function(**kwargs)
    return time.perf_counter() - start


def compare(names: list[str], before: Path, directory: Path) -> dict[str, list[str]]:
    """For every name, how its regenerated file differs from the stored one beyond what the
    registry allows (a copy of the stored files taken before the run is in ``before``): empty
    when the bytes agree, or every column but the measured times does, or the stated tolerance
    holds (:func:`smp.data.differences`)."""
    return {
        name: data.differences(
            name, data.path(name, directory), before / data.REGISTRY[name].file
        )
        for name in names
    }


def verdict(name: str, problems: list[str], before: Path, directory: Path) -> str:
    """One line: identical, identical but for measured times, within tolerance, or changed."""
    if problems:
        return f"CHANGED {name}: " + "; ".join(problems)
    new, stored = data.path(name, directory), before / data.REGISTRY[name].file
    if data.sha256(new) == data.sha256(stored):
        return f"identical {name}"
    entry = data.REGISTRY[name]
    if entry.tolerance is None:
        return f"identical but for its measured times {name}"
    return f"within tolerance {name} ({entry.tolerance.reason})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="dask.distributed scheduler address, e.g. tcp://host:8786",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="registry names (default: all)",
    )
    parser.add_argument(
        "--directory",
        default=None,
        help="write here instead of data/ (compare with data/)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list every table's producer, seed and command",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be an integer >= 1, got {args.workers}")

    if args.list:
        for name, entry in data.REGISTRY.items():
            print(
                f"{name:20s} {entry.file:30s} seed={entry.seed}  {entry.producer}  ({command(name)})"
            )
        return 0

    plan = producers(args.only or None)
    names = [name for tables in plan.values() for name in tables]
    stored = data.data_dir()
    # the stored bytes to compare with; a file already stale is reported, its bytes still compared
    before = Path(tempfile.mkdtemp(prefix="smp-data-before-"))
    for name in names:
        if data.path(name).exists():
            shutil.copy2(data.path(name), before / data.REGISTRY[name].file)
    already = data.stale(names=names)
    if already:
        print(
            f"note: stale before the run (bytes differ from {data.HASH_FILE}): {', '.join(already)}"
        )
    out_dir = Path(args.directory) if args.directory else stored
    if args.scheduler:
        from smp.experiments._parallel import capacity

        where = f"scheduler {args.scheduler} ({capacity(scheduler=args.scheduler)} worker threads)"
    else:
        where = f"{args.workers or os.cpu_count() or 1} local worker(s)"
    print(
        f"regenerating {len(names)} table(s) from {len(plan)} producer(s) on {where} into {out_dir}",
        flush=True,
    )
    timings, results, verdicts = {}, {}, {}
    for producer, tables in plan.items():
        print(f"{producer}: {', '.join(tables)}", flush=True)
        seconds = run(
            producer,
            workers=args.workers,
            scheduler=args.scheduler,
            directory=args.directory,
            progress=not args.no_progress,
        )
        timings[producer] = seconds
        print(f"  done in {seconds:.1f} s", flush=True)
        # compare at once: a long run reports each producer's result as it goes
        for name, problems in compare(tables, before, out_dir).items():
            results[name] = problems
            verdicts[name] = verdict(name, problems, before, out_dir)
            print(f"  {verdicts[name]}", flush=True)

    print("\ntime per producer:")
    for producer, seconds in timings.items():
        print(f"  {seconds:9.1f} s  {producer}")
    print(f"  {sum(timings.values()):9.1f} s  total")
    different = [name for name in names if results[name]]
    print(f"\nthe same result ({len(names) - len(different)} of {len(names)}):")
    for name in names:
        if not results[name]:
            print(f"  {verdicts[name]}")
    shutil.rmtree(before, ignore_errors=True)
    print(f"changed ({len(different)}): {', '.join(different) or '-'}")
    if different:
        print(
            "  (git diff data/ shows how; a change is either a reproducibility bug or a new result to commit)"
        )
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
