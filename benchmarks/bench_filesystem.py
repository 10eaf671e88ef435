"""Filesystem backend vs the raw floor, in one run.

    .venv/bin/python benchmarks/bench_filesystem.py [--quick] [--dir PATH]

Times (medians of many single operations, interleaved with their raw twin):

* ``put``  vs a raw atomic write of the same body (tmp + fsync + replace + dir fsync);
* ``put`` with ``durability="process"`` vs a plain non-durable write of the same
  body (tmp + replace, no fsync);
* ``get``  vs a raw ``open(...).read()`` of a file of the same body;
* a two-document ``commit`` (two updates, each guarded by its revision) vs the
  same two documents written by two single guarded ``put``s;
* latest-for-dataset (dataset + status=active, descending, limit 1) and a filtered
  page of 50, at a small and a large store, to show they stay flat. ``latest`` runs
  the same random datasets twice: the first pass ("first touch") includes the OS
  faulting in index pages and document dentries never read before, which grows
  with the working set, not with the index; the second pass is the steady state.

Targets (DESIGN §7, issue 12): get/put ≤ 1.3x raw; put (process) ≤ 1.5x its raw
twin; latest and page large/small ≤ 1.5x. ``uptime``'s load is printed first:
on a loaded machine fsync latency, not our code, dominates the put ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import semver_sort_key
from dq_stores.documents import (
    ANY,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Put,
    Query,
    at_revision,
)
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem._layout import Layout

KIND = "contract"
VERSIONS_PER_DATASET = 10
STATUSES = ("active", "draft", "deprecated", "retired")


def _body(i: int) -> bytes:
    doc = {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "id": f"contract-{i}",
        "status": "active",
        "description": {"purpose": "benchmark document " + "x" * 300},
        "schema": [{"name": f"dataset_{i}", "properties": [{"name": "id", "type": "int"}]}],
    }
    return canonical_json(doc)


def _write(i: int, datasets: int, rng: random.Random) -> DocumentWrite:
    dataset = f"dataset-{i % datasets}"
    version = f"{i // datasets}.{rng.randrange(20)}.0"
    body = _body(i)
    index = IndexEntry(
        {"dataset": (dataset,), "status": (rng.choice(STATUSES),)}, semver_sort_key(version)
    )
    return DocumentWrite(f"{dataset}@{version}#{i}", body, content_hash(body), index)


def _populate(backend: FilesystemBackend, scope: Scope, n: int) -> tuple[float, int]:
    datasets = max(1, n // VERSIONS_PER_DATASET)
    rng = random.Random(n)
    start = time.perf_counter()
    backend.put_many(scope, KIND, (_write(i, datasets, rng) for i in range(n)))
    return time.perf_counter() - start, datasets


def _raw_atomic_write(directory: str, name: str, data: bytes) -> None:
    path = os.path.join(directory, name)
    temp = path + ".tmp"
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_plain_write(directory: str, name: str, data: bytes) -> None:
    """Atomic against a process crash only: what ``durability="process"`` promises."""
    path = os.path.join(directory, name)
    temp = path + ".tmp"
    with open(temp, "wb") as f:
        f.write(data)
    os.replace(temp, path)


def _process_puts(workdir: str, reps: int) -> list[tuple[str, float, float, str]]:
    backend = FilesystemBackend(os.path.join(workdir, "process"), durability="process")
    scope = Scope("bench", "ops")
    raw_dir = os.path.join(workdir, "raw-process")
    os.makedirs(raw_dir)
    body = _body(0)
    write = _write(0, 1, random.Random(0))
    backend.put(scope, KIND, write, ANY)

    def put(i: int) -> object:
        return backend.put(
            scope, KIND, DocumentWrite(f"k{i}", body, write.sha256, write.index), ANY
        )

    rows = []
    ours, raw = _pair(put, lambda i: _raw_plain_write(raw_dir, f"k{i}", body), reps)
    rows.append(("put (new key, process)", ours, raw, "raw write + rename"))
    ours, raw = _pair(
        lambda i: backend.put(scope, KIND, write, ANY),
        lambda i: _raw_plain_write(raw_dir, "same", body),
        reps,
    )
    rows.append(("put (update, process)", ours, raw, "raw write + rename"))
    backend.close()
    return rows


def _raw_read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _pair(
    ours: Callable[[int], object], raw: Callable[[int], object], n: int
) -> tuple[float, float]:
    ours_t: list[float] = []
    raw_t: list[float] = []
    clock = time.perf_counter
    for i in range(n):
        for fn, out in ((raw, raw_t), (ours, ours_t)) if i % 2 else ((ours, ours_t), (raw, raw_t)):
            t0 = clock()
            fn(i)
            out.append(clock() - t0)
    return _median_us(ours_t), _median_us(raw_t)


def _timed(fn: Callable[[int], object], n: int) -> float:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return _median_us(samples)


def _query_ops(
    backend: FilesystemBackend, scope: Scope, datasets: int
) -> tuple[Callable[[int], object], Callable[[int], object]]:
    rng = random.Random(7)
    names = [f"dataset-{rng.randrange(datasets)}" for _ in range(4096)]

    def latest(i: int) -> object:
        query = Query(
            (FieldFilter("dataset", (names[i % len(names)],)), FieldFilter("status", ("active",))),
            descending=True,
            limit=1,
        )
        return backend.query(scope, KIND, query).items

    def page(i: int) -> object:
        status = STATUSES[i % 2]
        page = backend.query(scope, KIND, Query((FieldFilter("status", (status,)),), limit=50))
        assert len(page.items) == 50
        return page.items

    return latest, page


def _cold_gets(backend: FilesystemBackend, scope: Scope, n: int) -> tuple[float, float]:
    """get over thousands of distinct keys: the parsed-header cache mostly misses."""
    docs = backend.iter_documents(scope, KIND)
    keys = [doc.key for i, doc in enumerate(docs) if i % 7 == 0][:n]
    kind_dir = Layout(backend.root).kind_dir(Layout(backend.root).scope_dir(scope), KIND)
    paths = [Layout.head(kind_dir, key) for key in keys]
    return _pair(
        lambda i: backend.get(scope, KIND, keys[i % len(keys)]),
        lambda i: _raw_read(paths[i % len(paths)]),
        n,
    )


def _commit_vs_puts(
    backend: FilesystemBackend, scope: Scope, body: bytes, index: IndexEntry, n: int
) -> tuple[float, float]:
    """Two guarded updates in one commit vs the same two as single guarded puts."""
    sha = content_hash(body)
    revs = {}
    for key in ("c1", "c2", "p1", "p2"):
        revs[key] = backend.put(scope, KIND, DocumentWrite(key, body, sha, index), ANY).revision

    def commit(i: int) -> object:
        ops = [
            Put(KIND, DocumentWrite(k, body, sha, index), at_revision(revs[k]))
            for k in ("c1", "c2")
        ]
        for doc in backend.commit(scope, ops):
            assert doc is not None
            revs[doc.key] = doc.revision
        return None

    def puts(i: int) -> object:
        for k in ("p1", "p2"):
            doc = backend.put(scope, KIND, DocumentWrite(k, body, sha, index), at_revision(revs[k]))
            revs[k] = doc.revision
        return None

    return _pair(commit, puts, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller stores, fewer samples")
    parser.add_argument("--dir", default=None, help="where to create the stores (default: tmp)")
    args = parser.parse_args()
    small, large = (1_000, 10_000) if args.quick else (1_000, 100_000)
    reps = 300 if args.quick else 1000
    print(f"load average (1/5/15 min): {os.getloadavg()}, {os.cpu_count()} CPUs")
    workdir = tempfile.mkdtemp(prefix="bench-fs-", dir=args.dir)
    rows: list[tuple[str, float, float, str]] = []
    try:
        backend = FilesystemBackend(os.path.join(workdir, "store"))
        scope = Scope("bench", "ops")
        raw_dir = os.path.join(workdir, "raw")
        os.makedirs(raw_dir)
        body = _body(0)
        write = _write(0, 1, random.Random(0))
        backend.put(scope, KIND, write, ANY)  # warm: scope, index, directories

        def put(i: int) -> object:
            return backend.put(
                scope, KIND, DocumentWrite(f"k{i}", body, write.sha256, write.index), ANY
            )

        ours, raw = _pair(put, lambda i: _raw_atomic_write(raw_dir, f"k{i}", body), reps // 2)
        rows.append(("put (new key)", ours, raw, "raw atomic write"))
        ours, raw = _pair(
            lambda i: backend.put(scope, KIND, write, ANY),
            lambda i: _raw_atomic_write(raw_dir, "same", body),
            reps // 2,
        )
        rows.append(("put (update)", ours, raw, "raw atomic write"))
        rows += _process_puts(workdir, reps)
        raw_path = os.path.join(raw_dir, "k0")
        ours, raw = _pair(
            lambda i: backend.get(scope, KIND, write.key), lambda i: _raw_read(raw_path), reps * 10
        )
        rows.append(("get", ours, raw, "raw open+read"))
        ours, raw = _commit_vs_puts(backend, scope, body, write.index, reps // 2)
        rows.append(("commit of 2 documents", ours, raw, "2 single puts"))

        timings: dict[int, tuple[float, float, float, float]] = {}
        for n in (small, large):
            scope_n = Scope("bench", f"n{n}")
            seconds, datasets = _populate(backend, scope_n, n)
            latest, page = _query_ops(backend, scope_n, datasets)
            latest(0), page(0)  # open the scope's index in this process
            # First pass: most documents are touched for the first time (cold dentries,
            # index pages faulted in); second pass over the same datasets: steady state.
            cold = _timed(latest, reps * 2)
            timings[n] = (seconds, _timed(latest, reps * 2), _timed(page, reps // 2), cold)
            count_us = _timed(lambda i, s=scope_n: backend.count(s, KIND), reps)
            print(f"populated {n:>7} docs in {seconds:6.1f}s ({n / seconds:,.0f} docs/s);"
                  f" count() median {count_us:.0f} µs")  # fmt: skip
        rows.append((f"latest-for-dataset @{large}", timings[large][1], timings[small][1],
                     f"same @{small}"))  # fmt: skip
        rows.append((f"  first touch @{large}", timings[large][3], timings[small][3],
                     f"same @{small}"))  # fmt: skip
        rows.append((f"filtered page of 50 @{large}", timings[large][2], timings[small][2],
                     f"same @{small}"))  # fmt: skip
        ours, raw = _cold_gets(backend, Scope("bench", f"n{large}"), reps * 5)
        rows.append(("get (many keys, cold cache)", ours, raw, "raw open+read"))
        backend.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{'operation':<30} {'median µs':>10} {'baseline µs':>12} {'ratio':>7}  baseline")
    for name, ours, base, what in rows:
        print(f"{name:<30} {ours:>10.1f} {base:>12.1f} {ours / base:>6.2f}x  {what}")


if __name__ == "__main__":
    main()
