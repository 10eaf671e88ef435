"""Export / import / migrate throughput and peak RSS, beside the raw floors, in one run.

    .venv/bin/python benchmarks/bench_migrate.py [--docs 100000] [--url ADMIN_URL]
    .venv/bin/python benchmarks/bench_migrate.py --docs 1000000   # the on-demand 1M run
    .venv/bin/python benchmarks/bench_migrate.py --phases migrate   # a subset of the phases
    .venv/bin/python benchmarks/bench_migrate.py --inline-writes    # no background writer thread

Source: the filesystem backend loaded with ``--docs`` contract-shaped documents
(one scope, ~600-byte bodies). Target: PostgreSQL (a fresh database per phase;
server found as ``bench_postgres.py`` finds it). Each phase runs in its own
spawned process, and so does the load, so a phase's peak RSS (``ru_maxrss``) is
its own (on Linux a spawned child's starts at its parent's peak). Reading the
filesystem index maps its pages (``mmap``): they count in RSS, as file cache:

* floor read   — ``iter_documents`` over the source (the cheapest full read);
* floor write  — ``put_many`` of the same documents into PostgreSQL;
* migrate      — ``dq_registries.operations.transfer.migrate`` filesystem → PostgreSQL;
* export       — filesystem → ``.tar.gz`` archive;
* import       — archive → PostgreSQL.

Prints docs/s, seconds, peak RSS (MB), and migrate / (read + write) floors.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_postgres import contract, find_server, fresh_database
from dq_metadata.scope import Scope

SCOPE = Scope("acme", "prod")
KIND = "contract"


PHASES = ("floor read", "floor write", "migrate", "export", "import")


def _load(root: str, docs: int) -> None:
    from dq_stores.filesystem import FilesystemBackend

    with FilesystemBackend(root) as backend:
        backend.put_many(SCOPE, KIND, (contract(i, max(1, docs // 10)) for i in range(docs)))


def _check(good: bool, report: Any) -> None:
    if not good:
        raise SystemExit(f"unexpected outcome: {report.as_dict()}")


def _phase(
    name: str, root: str, url: str, archive: str, docs: int, inline: bool = False
) -> tuple[float, float]:
    """Run one phase; (seconds, peak RSS in MB) of this process."""
    from dq_registries.operations.transfer import (
        Endpoint,
        _sink,
        export_archive,
        import_archive,
        migrate,
    )
    from dq_stores.filesystem import FilesystemBackend, FilesystemResultsStore
    from dq_stores.sql import SqlBackend

    _sink.BACKGROUND_WRITES = not inline

    started = time.perf_counter()
    if name == "floor read":
        with FilesystemBackend(root) as source:
            n = sum(1 for _ in source.iter_documents(SCOPE))
        assert n == docs, n
    elif name == "floor write":
        with SqlBackend(url) as target:
            target.put_many(SCOPE, KIND, (contract(i, max(1, docs // 10)) for i in range(docs)))
    elif name == "migrate":
        with FilesystemBackend(root) as fs, SqlBackend(url) as pg:
            src = Endpoint(fs, FilesystemResultsStore(root))
            report = migrate(src, Endpoint(pg, None))
        _check(report.ok and report.keys_written == docs, report)
    elif name == "export":
        with FilesystemBackend(root) as fs:
            report = export_archive(Endpoint(fs, FilesystemResultsStore(root)), archive)
        _check(report.ok and report.keys == docs, report)
    elif name == "import":
        with SqlBackend(url) as pg:
            report = import_archive(Endpoint(pg, None), archive)
        _check(report.ok and report.keys_written == docs, report)
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(pool: Any, name: str, *args: Any) -> tuple[float, float]:
    return pool.apply(_phase, (name, *args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--url", default=None, help="admin URL of a PostgreSQL server")
    parser.add_argument(
        "--inline-writes",
        action="store_true",
        help="migrate and import write each batch on the reading thread (no background"
        " writer; ADR 0013), for paired runs",
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (the ratio needs the floors"
        " and migrate; import reads the archive export writes)",
    )
    args = parser.parse_args()
    docs = args.docs
    spawn = multiprocessing.get_context("spawn")
    with contextlib.ExitStack() as stack:
        admin = args.url or stack.enter_context(find_server())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        root, archive = f"{tmp}/src", f"{tmp}/backup.tar.gz"
        t0 = time.perf_counter()
        # In a child: on Linux a spawned child's ru_maxrss starts at its parent's peak
        # (fork, then exec keeps the old peak), so loading here made every phase
        # report at least the load's RSS.
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            pool.apply(_load, (root, docs))
        print(f"loaded {docs:,} documents into the filesystem in {time.perf_counter() - t0:.1f}s")
        rows: dict[str, tuple[float, float]] = {}
        phases = [p.strip() for p in args.phases.split(",")]
        if unknown := set(phases) - set(PHASES):
            parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
        for name in [p for p in PHASES if p in phases]:
            with fresh_database(admin) as url, spawn.Pool(1, maxtasksperchild=1) as pool:
                rows[name] = _run(pool, name, root, url, archive, docs, args.inline_writes)
            seconds, rss = rows[name]
            print(
                f"{name:12} {docs / seconds:>10,.0f} docs/s {seconds:8.1f} s  peak RSS {rss:6.0f} MB"
            )
        if {"floor read", "floor write", "migrate"} <= rows.keys():
            floors = rows["floor read"][0] + rows["floor write"][0]
            print(f"migrate / (read + bulk write floors) = {rows['migrate'][0] / floors:.2f}x")
        if "export" in rows:
            size = Path(archive).stat().st_size / 1e6
            print(f"archive: {size:.1f} MB ({size * 1e6 / docs:.0f} bytes per document)")


if __name__ == "__main__":
    main()
