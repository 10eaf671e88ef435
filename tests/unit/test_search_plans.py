"""SQLite search statements (the SQL backend's and the filesystem index's) are
posting-range scans: one primary-key range per term and search field, a head
probe per key found, never a scan of a table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dq_metadata.scope import Scope
from dq_stores.filesystem import _index as index
from dq_stores.sql import SqliteBackend
from dq_stores.sql._statements import select_search


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
    ((sql, params),) = statements
    plan = _plan(conn, sql, params)
    assert len([s for s in plan if s.startswith("SEARCH postings USING PRIMARY KEY")]) == 2, plan
    assert all(s == "SCAN k" for s in plan if s.startswith("SCAN")), plan
