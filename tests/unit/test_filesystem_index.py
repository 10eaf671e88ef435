"""Filesystem backend index: answers exactly like the reference backend, via index scans."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _index as index
from dq_stores.memory import MemoryBackend

SCOPE = Scope("acme", "prod")
KINDS = ("contract", "run")
TAGS = ("a", "b", "c", "d")


def _random_write(rng: random.Random, key: str) -> DocumentWrite:
    body = canonical_json({"key": key, "n": rng.random()})
    fields: dict[str, tuple[str, ...]] = {"tag": tuple(rng.sample(TAGS, rng.randrange(0, 3)))}
    if rng.random() < 0.7:
        fields["status"] = (rng.choice(("active", "draft")),)
    fields = {k: v for k, v in fields.items() if v}
    return DocumentWrite(key, body, content_hash(body), IndexEntry(fields, f"{rng.randrange(8)}"))


def _random_query(rng: random.Random) -> Query:
    filters = []
    if rng.random() < 0.7:
        filters.append(FieldFilter("tag", tuple(rng.sample(TAGS, rng.randrange(1, 3)))))
    if rng.random() < 0.5:
        filters.append(FieldFilter("status", (rng.choice(("active", "draft", "nope")),)))
    low = str(rng.randrange(8)) if rng.random() < 0.3 else None
    high = str(rng.randrange(8)) if rng.random() < 0.3 else None
    return Query(tuple(filters), rng.random() < 0.5, rng.randrange(1, 7), None, low, high)


def _all_pages(backend: DocumentBackend, kind: str, query: Query) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    while True:
        page = backend.query(SCOPE, kind, query)
        out += [(d.key, d.revision) for d in page.items]
        if page.next_token is None:
            return out
        query = Query(query.filters, query.descending, query.limit, page.next_token,
                      query.sort_key_min, query.sort_key_max)  # fmt: skip


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[FilesystemBackend]:
    with FilesystemBackend(tmp_path / "store") as backend:
        yield backend


@pytest.mark.parametrize("seed", range(4))
def test_random_histories_query_and_count_like_the_memory_backend(
    backend: FilesystemBackend, seed: int
) -> None:
    rng = random.Random(seed)
    reference = MemoryBackend()
    keys = [f"k{i}" for i in range(25)] + ["K0", "ü", "a/b"]
    for step in range(250):
        kind, key = rng.choice(KINDS), rng.choice(keys)
        if rng.random() < 0.15:
            outcomes = []
            for b in (reference, backend):
                try:
                    outcomes.append(b.delete(SCOPE, kind, key).revision)
                except NotFoundError:
                    outcomes.append(None)
            assert outcomes[0] == outcomes[1], step
        elif rng.random() < 0.1:
            batch = [_random_write(rng, k) for k in rng.sample(keys, 5)]
            assert reference.put_many(SCOPE, kind, batch) == backend.put_many(SCOPE, kind, batch)
        else:
            w = _random_write(rng, key)
            assert (
                reference.put(SCOPE, kind, w, ANY).revision
                == backend.put(SCOPE, kind, w, ANY).revision
            )
        if step % 10 == 0:
            for _ in range(5):
                query = _random_query(rng)
                expected = _all_pages(reference, kind, query)
                assert _all_pages(backend, kind, query) == expected, query
                assert backend.count(SCOPE, kind, query.filters) == reference.count(
                    SCOPE, kind, query.filters
                )
    for kind in KINDS:
        assert [(d.key, d.revision) for d in backend.iter_documents(SCOPE, kind)] == [
            (d.key, d.revision) for d in reference.iter_documents(SCOPE, kind)
        ]


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_queries_are_index_range_scans_without_sorting(
    backend: FilesystemBackend, tmp_path: Path
) -> None:
    rng = random.Random(1)
    backend.put_many(SCOPE, "contract", (_random_write(rng, f"k{i}") for i in range(300)))
    conn = sqlite3.connect(tmp_path / "store" / "acme" / "prod" / "index.sqlite3")
    statements: list[tuple[str, tuple[object, ...]]] = []

    class Recorder:
        def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
            statements.append((sql, tuple(params)))
            return conn.execute(sql, params)

    latest = Query((FieldFilter("tag", ("a",)), FieldFilter("status", ("active",))), True, 1)
    index.query(Recorder(), "contract", latest, None, 2)  # type: ignore[arg-type]
    index.query(Recorder(), "contract", Query(limit=50), None, 51)  # type: ignore[arg-type]
    index.query(
        Recorder(), "contract", Query((FieldFilter("tag", ("a", "b")),), limit=50), None, 51
    )  # type: ignore[arg-type]
    scans = [(sql, p) for sql, p in statements if "FROM stats" not in sql]
    assert len(scans) == 4
    for sql, params in scans:
        plan = _plan(conn, sql, params)
        assert "TEMP B-TREE" not in plan, plan  # no sort of the matches
        assert "SCAN" not in plan, plan  # every table reached by key range or point lookup
    conn.close()
