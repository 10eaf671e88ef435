"""Contract search at 10k vs 100k contracts on memory, filesystem, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000,100000]
        [--backends memory,filesystem,sqlite,postgres] [--runs 30] [--url URL]

Per backend and size: a fresh store is bulk-loaded (``ContractHeadStore.put_many``,
the store's bulk path) with that many contract heads carrying search tokens the
way a publish writes them (id, name, a dataset, tags as title; a description as
body, drawn from a 40-word vocabulary), then ``ContractRegistry.search`` is
timed (median of ``--runs``, first page of 20) for:

* ``fixed``: ``"needle"`` — planted in exactly 25 contracts whatever the size,
  and ``"needle customer"`` (the same 25 hits; the second, common term's postings
  are read too, so this one grows with the common term);
* ``many``: ``"customer"`` (1 contract in 8) and ``"cu"`` (a prefix: 1 in 4).

The 100k / 10k ratio of ``fixed`` should be ≈ 1 (cost grows with the matches, not
the store); ``many`` grows with its matches (x10). PostgreSQL: ``--url`` /
``DQ_BENCH_POSTGRES_URL`` / a local or throw-away server, as ``bench_postgres.py``.
The machine's load average is printed first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from dq_metadata.models import ContractHead, ContractSearchTokens
from dq_metadata.scope import Scope
from dq_registries.domain.contracts import ContractRegistry
from dq_stores import ContractStore, DocumentBackend, JobDefinitionStore, MemoryBackend
from dq_stores.filesystem import FilesystemBackend
from dq_stores.search import SEARCH_BODY_FIELD, SEARCH_TITLE_FIELD, search_fields
from dq_stores.typed import ContractHeadStore

SCOPE = Scope("bench", "prod")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NEEDLES = 25
VOCABULARY = [
    "account",
    "address",
    "amount",
    "balance",
    "billing",
    "campaign",
    "card",
    "cart",
    "channel",
    "city",
    "country",
    "coupon",
    "currency",
    "delivery",
    "device",
    "discount",
    "event",
    "invoice",
    "item",
    "ledger",
    "margin",
    "merchant",
    "order",
    "partner",
    "payment",
    "price",
    "product",
    "profit",
    "refund",
    "region",
    "return",
    "revenue",
    "session",
    "shipment",
    "sku",
    "store",
    "supplier",
    "tax",
    "ticket",
    "transaction",
    "visit",
    "warehouse",
]
QUERIES = {
    "fixed": "needle",
    "fixed+common": "needle customer",
    "many": "customer",
    "many-prefix": "cu",
}


def head(i: int, size: int, rng: random.Random) -> ContractHead:
    words = rng.sample(VOCABULARY, 10)
    title = [f"c{i:06d}", f"{words[0]} {words[1]} contract", f"{words[2]}_{words[3]}", words[4]]
    body = [f"All {words[5]} and {words[6]} by {words[7]}, per {words[8]} and {words[9]}."]
    if i % 8 == 0:
        body.append("customer level")
    if i % 8 == 4:
        title.append("curated")
    if i % (size // NEEDLES) == 0:  # every needle contract also says "customer"
        body.append("needle")
    fields = search_fields(title, body)
    tokens = ContractSearchTokens(
        title=list(fields.get(SEARCH_TITLE_FIELD, ())), body=list(fields.get(SEARCH_BODY_FIELD, ()))
    )
    return ContractHead(
        contract_id=f"c{i:06d}",
        latest_version="1.0.0",
        updated_at=T0,
        name=title[1],
        summary=body[0],
        search=tokens,
    )


def load(backend: DocumentBackend, size: int) -> float:
    rng = random.Random(size)
    store = ContractHeadStore(backend)
    t0 = time.perf_counter()
    for start in range(0, size, 5000):
        store.put_many(SCOPE, (head(i, size, rng) for i in range(start, min(size, start + 5000))))
    return size / (time.perf_counter() - t0)


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(backend: DocumentBackend, size: int, runs: int) -> dict[str, float]:
    rate = load(backend, size)
    registry = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    assert len(registry.search("needle", limit=100).hits) == NEEDLES
    out = {"load docs/s": rate}
    for name, text in QUERIES.items():
        out[name] = median_ms(lambda t=text: registry.search(t, limit=20), runs)
    return out


@contextlib.contextmanager
def open_backend(name: str, url: str | None) -> Iterator[DocumentBackend]:
    if name == "memory":
        yield MemoryBackend()
        return
    if name == "postgres":
        from bench_postgres import find_server, fresh_database  # type: ignore[import-not-found]
        from dq_stores.sql import SqlBackend

        with contextlib.ExitStack() as stack:
            admin = (
                url or os.environ.get("DQ_BENCH_POSTGRES_URL") or stack.enter_context(find_server())
            )
            backend = SqlBackend(stack.enter_context(fresh_database(admin)), analyze_after=10_000)
            try:
                yield backend
            finally:
                backend.close()
        return
    with tempfile.TemporaryDirectory() as tmp:
        if name == "filesystem":
            made: DocumentBackend = FilesystemBackend(f"{tmp}/fs", durability="process")
        else:
            from dq_stores.sql import SqliteBackend

            made = SqliteBackend(f"sqlite:///{tmp}/dq.sqlite3")
        try:
            yield made
        finally:
            made.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="memory,filesystem,sqlite,postgres")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("load average: " + " / ".join(f"{x:.1f}" for x in os.getloadavg()))
    columns = ["load docs/s", *QUERIES]
    print(f"{'backend':<11}{'contracts':>10}" + "".join(f"{c:>15}" for c in columns))
    for name in args.backends.split(","):
        results = []
        for size in sizes:
            with open_backend(name, args.url) as backend:
                row = measure(backend, size, args.runs)
            results.append(row)
            cells = "".join(
                f"{row[c]:>15,.0f}" if c == "load docs/s" else f"{row[c]:>12.2f} ms"
                for c in columns
            )
            print(f"{name:<11}{size:>10,}{cells}", flush=True)
        if len(results) == 2:
            ratio = "".join(f"{results[1][c] / results[0][c]:>14.2f}x" for c in columns[1:])
            print(f"{name:<11}{'ratio':>10}{'':>15}{ratio}", flush=True)
    print("load average: " + " / ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
