"""SQLite search statements (the SQL backend's and the filesystem index's) are
posting-range scans: one primary-key range per term and search field, a head
probe per key found, never a scan of a table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dq_metadata.scope import Scope
from dq_stores import DocumentBackend, MemoryBackend
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _index as index
from dq_stores.search import DRIVING_PROBE, driving_terms
from dq_stores.sql import SqliteBackend
from dq_stores.sql._statements import count_search, select_search
from dq_stores.testing.search import search_write


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def _assert_ranges(plan: list[str], table: str, alias: str, ranges: int) -> None:
    searches = [step for step in plan if step.startswith(f"SEARCH {alias} ")]
    assert len(searches) == ranges, plan
    for step in searches:
        assert "value>? AND value<?" in step, step
    # scans only of the intermediate key lists (k, t0, t1, ...), never of a table
    assert all(
        s in ("SCAN k", *(f"SCAN t{n}" for n in range(9))) for s in plan if s.startswith("SCAN")
    ), plan
    assert any(s.startswith("SEARCH h USING") and "key=?" in s for s in plan), (table, plan)


def test_sql_backend_search_is_posting_ranges(tmp_path: Path) -> None:
    backend = SqliteBackend(f"sqlite:///{tmp_path}/db.sqlite3")
    backend.close()
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    scope = Scope("acme", "prod")
    for terms in (("cust",), ("cust", "email", "x")):
        sql, params = select_search(("?", ""), scope.tenant, scope.environment, "contract", terms)
        _assert_ranges(_plan(conn, sql, params), "dq_postings", "p", 2 * len(terms))
        sql, params = count_search(
            ("?", ""), scope.tenant, scope.environment, "contract", terms, 1000
        )
        plan = _plan(conn, sql, params)
        searches = [s for s in plan if s.startswith("SEARCH")]
        assert len(searches) == 2 * len(terms), plan
        assert all("value>? AND value<?" in s for s in searches), plan
    conn.close()


def test_filesystem_index_search_is_posting_ranges() -> None:
    conn = sqlite3.connect(":memory:")
    index.ensure_schema(conn)
    statements: list[tuple[str, list[object]]] = []

    class Recorder:
        def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
            statements.append((sql, list(params)))
            return conn.execute(sql, params)

    index.search(Recorder(), "contract", ("cust", "email"))  # type: ignore[arg-type]
    *counts, (sql, params) = statements
    assert len(counts) == 2  # one bounded count per term picks the driving terms
    for count_sql, count_params in counts:
        plan = _plan(conn, count_sql, count_params)
        assert [s for s in plan if s.startswith("SEARCH")] == [
            "SEARCH postings USING PRIMARY KEY (kind=? AND field=? AND value>? AND value<?)"
        ], plan
    plan = _plan(conn, sql, params)
    assert len([s for s in plan if s.startswith("SEARCH postings USING PRIMARY KEY")]) == 2, plan
    assert all(s == "SCAN k" for s in plan if s.startswith("SCAN")), plan


@pytest.mark.parametrize("name", ["memory", "filesystem", "sqlite"])
def test_a_common_term_is_left_to_the_port(name: str, tmp_path: Path) -> None:
    """Over ``DRIVING_PROBE`` postings a term no longer drives nor is intersected; the
    answer stays exact (the port re-checks every candidate against every term)."""
    backend: DocumentBackend = (
        MemoryBackend()
        if name == "memory"
        else FilesystemBackend(tmp_path / "fs")
        if name == "filesystem"
        else SqliteBackend(f"sqlite:///{tmp_path}/db.sqlite3")
    )
    scope = Scope("acme", "prod")
    common = DRIVING_PROBE + 50
    writes = [search_write(f"k{i:05d}", ("common thing",)) for i in range(common)]
    writes += [search_write(f"r{i}", ("rare",), ("common",)) for i in range(3)]
    writes += [search_write("only-rare", ("rare",))]
    with backend:
        backend.put_many(scope, "widget", writes)
        hits = backend.search(scope, "widget", "rare common", limit=10).hits
        assert [(h.document.key, h.score) for h in hits] == [(f"r{i}", 10) for i in range(3)]
        assert len(backend.search(scope, "widget", "common thing", limit=100).hits) == 100
        assert driving_terms({"rare": 4, "common": DRIVING_PROBE}) == ["rare"]
        assert driving_terms({"a": DRIVING_PROBE, "b": DRIVING_PROBE}) == ["a", "b"]
        assert driving_terms({"a": 5, "b": 3}) == ["b", "a"]
