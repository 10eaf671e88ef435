"""Queries are index range scans on PostgreSQL (EXPLAIN, through the backend's connection)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from tests.support.postgres import TEST_PASSWORD

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import semver_sort_key
from dq_stores import DocumentWrite, FieldFilter, IndexEntry, PageCursor, Query
from dq_stores.sql import SqlBackend
from dq_stores.sql._postgres import _SCOPE
from dq_stores.sql._statements import select_documents

pytestmark = pytest.mark.postgres

SCOPE = Scope("acme", "prod")
DOCS = 4000
STATUSES = ("active", "draft", "deprecated", "retired")


def _contract(i: int) -> DocumentWrite:
    version = f"{i // 100}.{i % 100}.0"
    body = canonical_json({"id": f"c{i}", "version": version})
    fields = {
        "dataset": (f"ds{i % 400}",),
        "status": (STATUSES[i % 4],),
        "tags": ("a", f"t{i % 7}"),
    }
    return DocumentWrite(
        f"c{i}", body, content_hash(body), IndexEntry(fields, semver_sort_key(version))
    )


@pytest.fixture(scope="module")
def backend(postgres_server: Any) -> Iterator[SqlBackend]:
    # one loaded database for the module (built by hand: postgres_url is per test)
    name = f"dq_explain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
        admin.execute(
            pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                pgsql.Identifier(name), pgsql.Literal(TEST_PASSWORD)
            )
        )
        admin.execute(
            pgsql.SQL("CREATE DATABASE {} OWNER {}").format(
                pgsql.Identifier(name), pgsql.Identifier(name)
            )
        )
    try:
        url = postgres_server.sqlalchemy_url(name, name, TEST_PASSWORD)
        with SqlBackend(url) as backend:
            backend.put_many(SCOPE, "contract", (_contract(i) for i in range(DOCS)))
            backend.put_many(Scope("acme", "dev"), "contract", (_contract(i) for i in range(500)))
            backend._run(lambda conn: conn.execute("ANALYZE"), safe=True)
            yield backend
    finally:
        with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name)))
            admin.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(name)))


def _plan(backend: SqlBackend, sql: str, params: list[Any], environment: str = "prod") -> Any:
    """The plan the backend's connection really runs: the cached generic plan of the
    prepared statement (``plan_cache_mode = force_generic_plan``), with the scope set."""
    numbered = sql
    for i in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${i}", 1)
    types = ", ".join("text" if isinstance(p, str) else "bigint" for p in params)
    name = f"dq_explain_{uuid.uuid4().hex[:8]}"
    args = pgsql.SQL(", ").join(pgsql.Literal(p) for p in params)
    execute = pgsql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}({})").format(pgsql.Identifier(name), args)

    def explain(conn: Any) -> Any:
        with conn.pipeline():
            conn.execute(_SCOPE, (SCOPE.tenant, environment))
            conn.execute(f"PREPARE {name} ({types}) AS {numbered}")
            cursor = conn.execute(execute)
            conn.execute(f"DEALLOCATE {name}")
        return cursor.fetchall()

    plan = backend._run(explain, safe=True)[0][0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _nodes(plan: Any) -> Iterator[Any]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _query_plan(backend: SqlBackend, query: Query, cursor: PageCursor | None = None) -> Any:
    sql, params = select_documents(
        backend._dialect,
        SCOPE.tenant,
        SCOPE.environment,
        "contract",
        query,
        cursor,
        query.limit + 1,
    )
    return _plan(backend, sql, params)


def _assert_index_range_scan(plan: Any, *, ordered: bool = True) -> None:
    types = [node["Node Type"] for node in _nodes(plan)]
    assert "Seq Scan" not in types, types
    assert {"Index Scan", "Index Only Scan", "Bitmap Index Scan"} & set(types), types
    if ordered:  # rows come out of the index in order: no sort of the matches
        assert "Sort" not in types, types
        assert "Incremental Sort" not in types, types
    scans = [n for n in _nodes(plan) if "Index Name" in n]
    assert all(n["Index Name"].startswith(("pk_dq_", "ix_dq_")) for n in scans)


def test_latest_for_dataset_walks_the_dataset_postings_backwards(backend: SqlBackend) -> None:
    query = Query(
        filters=(FieldFilter("dataset", ("ds7",)), FieldFilter("status", ("active",))),
        descending=True,
        limit=1,
    )
    plan = _query_plan(backend, query)
    _assert_index_range_scan(plan)
    driving = next(n for n in _nodes(plan) if n.get("Index Name") == "pk_dq_postings")
    assert driving["Scan Direction"] == "Backward"
    assert "(field = $4) AND (value = $5)" in driving["Index Cond"]  # dataset = ds7


def test_a_filtered_page_after_a_cursor_is_an_index_range(backend: SqlBackend) -> None:
    query = Query(filters=(FieldFilter("status", ("active",)),), limit=50)
    plan = _query_plan(backend, query, PageCursor(semver_sort_key("10.0.0"), "c1000"))
    _assert_index_range_scan(plan)
    driving = next(n for n in _nodes(plan) if n.get("Index Name") == "pk_dq_postings")
    assert "ROW(sort_key, key) >" in driving["Index Cond"], driving["Index Cond"]


def test_an_unfiltered_page_with_bounds_reads_the_heads_index(backend: SqlBackend) -> None:
    query = Query(
        limit=20, sort_key_min=semver_sort_key("3.0.0"), sort_key_max=semver_sort_key("4.0.0")
    )
    plan = _query_plan(backend, query)
    _assert_index_range_scan(plan)
    assert any(n.get("Index Name") == "ix_dq_heads_order" for n in _nodes(plan))


def test_get_is_a_primary_key_lookup(backend: SqlBackend) -> None:
    sql = backend._doc_sql("dq_heads")
    plan = _plan(backend, sql, [SCOPE.tenant, SCOPE.environment, "contract", "c7"])
    _assert_index_range_scan(plan, ordered=False)
    assert plan["Index Name"] == "pk_dq_heads"


def test_a_selective_count_uses_the_postings_index(backend: SqlBackend) -> None:
    sql, params = select_documents(
        backend._dialect,
        SCOPE.tenant,
        SCOPE.environment,
        "contract",
        Query(filters=(FieldFilter("dataset", ("ds3", "ds4")), FieldFilter("tags", ("t1",)))),
        None,
        None,
    )
    _assert_index_range_scan(_plan(backend, sql, params), ordered=False)


def test_listing_environments_probes_the_index_once_per_environment(backend: SqlBackend) -> None:
    captured: list[str] = []
    real_read = backend._read

    def spy(tenant: str, environment: str, sql: str, params: list[Any]) -> list[Any]:
        captured.append(sql)
        return real_read(tenant, environment, sql, params)

    backend._read = spy  # type: ignore[method-assign]
    try:
        assert backend.list_environments("acme") == ["dev", "prod"]
    finally:
        del backend._read
    plan = _plan(backend, captured[0], [SCOPE.tenant, SCOPE.tenant], environment="*")
    types = [node["Node Type"] for node in _nodes(plan)]
    assert "Seq Scan" not in types, types
    assert "Recursive Union" in types, types
