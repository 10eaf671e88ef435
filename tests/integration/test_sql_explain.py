"""Every statement shape runs on its intended index on PostgreSQL, with and without statistics.

Plans are checked (EXPLAIN, through the backend's connection) on tables loaded
through the public ``put_many`` and never analysed — the state right after a bulk
import, a restore or a migration, before autovacuum runs (it is turned off for
these tables, and the tests assert no statistics were ever gathered) — and on
analysed ones, at 10,000 and (``slow``) 100,000 documents.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql
from tests.support.postgres import TEST_PASSWORD

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import semver_sort_key
from dq_stores import DocumentWrite, FieldFilter, IndexEntry, PageCursor, Query
from dq_stores.search import search_fields
from dq_stores.sql import SqlBackend, schema
from dq_stores.sql._postgres import _SCOPE
from dq_stores.sql._statements import count_search, select_documents, select_search

pytestmark = pytest.mark.postgres

SCOPE = Scope("acme", "prod")
STATUSES = ("active", "draft", "deprecated", "retired")


def _contract(i: int) -> DocumentWrite:
    version = f"{i // 100}.{i % 100}.0"
    body = canonical_json({"id": f"c{i}", "version": version})
    fields = {
        "dataset": (f"ds{i % 400}",),
        "status": (STATUSES[i % 4],),
        "tags": ("a", f"t{i % 7}"),
        # findable: "name123" matches 10 (at 10k docs), "common" every one
        **search_fields((f"name{i % 1000}",), ("common",)),
    }
    return DocumentWrite(
        f"c{i}", body, content_hash(body), IndexEntry(fields, semver_sort_key(version))
    )


@dataclass(frozen=True)
class Loaded:
    backend: SqlBackend
    docs: int
    analysed: bool


_STATES = [
    pytest.param((10_000, False), id="10k-never-analysed"),
    pytest.param((10_000, True), id="10k-analysed"),
    pytest.param((100_000, False), id="100k-never-analysed", marks=pytest.mark.slow),
    pytest.param((100_000, True), id="100k-analysed", marks=pytest.mark.slow),
]
_TABLES = ("dq_revisions", "dq_heads", "dq_postings")


def _statistics(backend: SqlBackend) -> list[tuple[str, Any, Any, float]]:
    """(table, last_analyze, last_autoanalyze, reltuples) of the document tables."""
    sql = (
        "SELECT s.relname, s.last_analyze, s.last_autoanalyze, c.reltuples"
        " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.relname = ANY(%s) ORDER BY s.relname"
    )
    return backend._run(lambda conn: conn.execute(sql, (list(_TABLES),)).fetchall(), safe=True)


def _assert_never_analysed(backend: SqlBackend) -> None:
    stats = _statistics(backend)
    assert len(stats) == len(_TABLES)
    for table, manual, auto, reltuples in stats:
        assert (manual, auto, reltuples) == (None, None, -1), table


@pytest.fixture(scope="module", params=_STATES)
def loaded(request: pytest.FixtureRequest, postgres_server: Any) -> Iterator[Loaded]:
    docs, analysed = request.param
    # one loaded database per state (built by hand: postgres_url is per test)
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
        # analysed: put_many's own statistics refresh (analyze_after) is what analyses
        with SqlBackend(url, analyze_after=1000 if analysed else None) as backend:
            for table in _TABLES:  # autovacuum must not analyse behind the test's back
                backend._run(
                    lambda conn, t=table: conn.execute(
                        f"ALTER TABLE {t} SET (autovacuum_enabled = false)"
                    ),
                    safe=True,
                )
            backend.put_many(SCOPE, "contract", (_contract(i) for i in range(docs)))
            backend.put_many(Scope("acme", "dev"), "contract", (_contract(i) for i in range(500)))
            if analysed:
                assert all(manual is not None for _, manual, _, _ in _statistics(backend))
            else:
                _assert_never_analysed(backend)
            yield Loaded(backend, docs, analysed)
            if not analysed:  # still true after every test of the state ran
                _assert_never_analysed(backend)
    finally:
        with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name)))
            admin.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(name)))


@pytest.fixture
def backend(loaded: Loaded) -> SqlBackend:
    return loaded.backend


def _plan(backend: SqlBackend, sql: str, params: list[Any], environment: str = "prod") -> Any:
    """The plan the backend's connection really runs: the cached generic plan of the
    prepared statement (``plan_cache_mode = force_generic_plan``), with the scope set,
    executed (``EXPLAIN ANALYZE``: actual rows and loops per node)."""
    numbered = sql
    for i in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${i}", 1)
    types = ", ".join("text" if isinstance(p, str) else "bigint" for p in params)
    name = f"dq_explain_{uuid.uuid4().hex[:8]}"
    args = pgsql.SQL(", ").join(pgsql.Literal(p) for p in params)
    execute = pgsql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {}({})").format(
        pgsql.Identifier(name), args
    )

    def explain(conn: Any) -> Any:
        with conn.pipeline():
            conn.execute(_SCOPE, (SCOPE.tenant, environment))
            conn.execute(f"PREPARE {name} ({types}) AS {numbered}")
            cursor = conn.execute(execute)
            conn.execute(f"DEALLOCATE {name}")
        return cursor.fetchall()

    plan = backend._run(explain, safe=True)[0][0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _nodes(plan: Any, *, subplans: bool = True) -> Iterator[Any]:
    """``plan`` and the nodes below it (``subplans=False``: not inside SubPlans)."""
    yield plan
    for child in plan.get("Plans", ()):
        if subplans or child.get("Parent Relationship") != "SubPlan":
            yield from _nodes(child, subplans=subplans)


def _query_plan(
    backend: SqlBackend,
    query: Query,
    cursor: PageCursor | None = None,
    environment: str | None = SCOPE.environment,
) -> Any:
    sql, params = select_documents(
        backend._dialect, SCOPE.tenant, environment, "contract", query, cursor, query.limit + 1
    )
    return _plan(backend, sql, params, environment or "*")


def _assert_index_range_scan(plan: Any, *, ordered: bool = True) -> None:
    types = [node["Node Type"] for node in _nodes(plan)]
    assert "Seq Scan" not in types, types
    assert {"Index Scan", "Index Only Scan", "Bitmap Index Scan"} & set(types), types
    if ordered:  # rows come out of the index in order: no sort of the matches
        assert "Sort" not in types, types
        assert "Incremental Sort" not in types, types
    scans = [n for n in _nodes(plan) if "Index Name" in n]
    assert all(n["Index Name"].startswith(("pk_dq_", "ix_dq_")) for n in scans)


def _assert_primary_key_lookup(plan: Any, index: str) -> None:
    assert plan["Node Type"] == "Index Scan", plan["Node Type"]
    assert plan["Index Name"] == index
    assert "(key = $4)" in plan["Index Cond"], plan["Index Cond"]
    assert plan["Actual Loops"] == 1


def _assert_page(plan: Any, fetch: int, *, ranged: bool = True) -> Any:
    """A page: one posting range by the postings primary key (``ranged``) picks at
    most ``fetch`` rows; each fetches its head with one primary-key probe (never a
    rescan). The driving scan node is returned."""
    if ranged:
        _assert_index_range_scan(plan, ordered=False)
    heads = [n for n in _nodes(plan) if n.get("Relation Name") == "dq_heads"]
    assert len(heads) == 1, heads
    probe = heads[0]
    assert probe["Node Type"] == "Index Scan", probe
    assert probe["Index Name"] == "pk_dq_heads", probe
    assert "(key = p.key)" in probe["Index Cond"], probe["Index Cond"]
    assert probe["Actual Rows"] <= 1, probe  # per loop: a probe, not a scan
    assert probe["Actual Loops"] <= fetch, probe
    assert probe.get("Parent Relationship") != "SubPlan"
    driving = [n for n in _nodes(plan, subplans=False) if n.get("Relation Name") == "dq_postings"]
    assert len(driving) == 1, driving
    if not ranged:
        return driving[0]
    assert driving[0]["Index Name"] == "pk_dq_postings"
    assert "(field = " in driving[0]["Index Cond"], driving[0]["Index Cond"]
    return driving[0]


def test_key_lookups_use_the_primary_key(backend: SqlBackend) -> None:
    key = [SCOPE.tenant, SCOPE.environment, "contract", "c7"]
    _assert_primary_key_lookup(_plan(backend, backend._doc_sql("dq_heads"), key), "pk_dq_heads")
    revision = backend._doc_sql("dq_revisions", " AND revision = %s")
    _assert_primary_key_lookup(_plan(backend, revision, [*key, 1]), "pk_dq_revisions")
    history = backend._doc_sql("dq_revisions", " ORDER BY revision")
    _assert_primary_key_lookup(_plan(backend, history, key), "pk_dq_revisions")


def test_heads_have_no_index_but_the_primary_key(backend: SqlBackend) -> None:
    """Writes (upserts, conditional updates) address heads by key: nothing else to pick."""
    rows = backend._run(
        lambda conn: conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE tablename IN ('dq_heads', 'dq_postings') ORDER BY indexname"
        ).fetchall(),
        safe=True,
    )
    assert [r[1] for r in rows if r[0] == "dq_heads"] == ["pk_dq_heads"]
    others = [r[2] for r in rows if r[0] == "dq_postings" and r[1] != "pk_dq_postings"]
    assert len(others) == 1, others
    assert "(key, tenant, environment, kind)" in others[0], others


def test_latest_for_dataset_walks_the_dataset_postings_backwards(backend: SqlBackend) -> None:
    query = Query(
        filters=(FieldFilter("dataset", ("ds7",)), FieldFilter("status", ("active",))),
        descending=True,
        limit=1,
    )
    plan = _query_plan(backend, query)
    _assert_index_range_scan(plan)
    driving = _assert_page(plan, 2)
    assert driving["Scan Direction"] == "Backward"
    assert "(field = $4) AND (value = $5)" in driving["Index Cond"]  # dataset = ds7


_PAGES = {
    "filtered": (Query(filters=(FieldFilter("dataset", ("ds3",)),), limit=50), None),
    "filtered-descending": (
        Query(filters=(FieldFilter("status", ("draft",)),), descending=True, limit=50),
        None,
    ),
    "filtered-cursor": (
        Query(filters=(FieldFilter("status", ("active",)),), limit=50),
        PageCursor(semver_sort_key("10.0.0"), "c1000"),
    ),
    "filtered-bounds": (
        Query(
            filters=(FieldFilter("tags", ("t3",)),),
            limit=20,
            sort_key_min=semver_sort_key("3.0.0"),
            sort_key_max=semver_sort_key("9.0.0"),
        ),
        None,
    ),
    "two-filters": (
        Query(filters=(FieldFilter("status", ("active",)), FieldFilter("tags", ("t1",))), limit=50),
        None,
    ),
    "unfiltered": (Query(limit=50), None),
    "unfiltered-bounds-descending": (
        Query(
            limit=20,
            descending=True,
            sort_key_min=semver_sort_key("3.0.0"),
            sort_key_max=semver_sort_key("4.0.0"),
        ),
        PageCursor(semver_sort_key("3.50.0"), "c350"),
    ),
}


@pytest.mark.parametrize("shape", sorted(_PAGES))
def test_a_page_is_a_posting_range_with_one_head_probe_per_row(
    backend: SqlBackend, shape: str
) -> None:
    query, cursor = _PAGES[shape]
    plan = _query_plan(backend, query, cursor)
    _assert_index_range_scan(plan)  # single-valued: the range is already in page order
    driving = _assert_page(plan, query.limit + 1)
    if cursor is not None:
        assert "ROW(sort_key, key) " in driving["Index Cond"], driving["Index Cond"]


def test_a_multi_valued_filter_picks_its_page_before_fetching_heads(backend: SqlBackend) -> None:
    # several value ranges are merged by a sort of their postings (not of documents)
    query = Query(filters=(FieldFilter("status", ("active", "retired")),), limit=50)
    plan = _query_plan(backend, query)
    driving = _assert_page(plan, query.limit + 1)
    assert "(value = ANY" in driving["Index Cond"] or "value = ANY" in driving.get("Filter", "")


def test_a_tenant_wide_page_probes_heads_once_per_row(backend: SqlBackend) -> None:
    # No index leads with (tenant, kind, field): spanning environments reads the
    # tenant's postings (by index or, with statistics, sequentially), but heads are
    # still fetched only for the page.
    query = Query(filters=(FieldFilter("dataset", ("ds5",)),), limit=50)
    _assert_page(_query_plan(backend, query, environment=None), query.limit + 1, ranged=False)


@pytest.mark.parametrize(
    "filters",
    [
        (FieldFilter("dataset", ("ds3", "ds4")), FieldFilter("tags", ("t1",))),
        (FieldFilter("status", ("active",)),),
        (),
    ],
    ids=["two-filters", "one-filter", "unfiltered"],
)
def test_a_count_is_a_posting_range(backend: SqlBackend, filters: tuple[FieldFilter, ...]) -> None:
    sql, params = select_documents(
        backend._dialect,
        SCOPE.tenant,
        SCOPE.environment,
        "contract",
        Query(filters=filters),
        None,
        None,
    )
    plan = _plan(backend, sql, params)
    _assert_index_range_scan(plan, ordered=False)
    assert not [n for n in _nodes(plan) if n.get("Relation Name") == "dq_heads"]
    driving = next(n for n in _nodes(plan) if n.get("Relation Name") == "dq_postings")
    assert driving["Index Name"] == "pk_dq_postings"
    assert "(field = $4)" in driving["Index Cond"], driving["Index Cond"]


def _captured_reads(backend: SqlBackend, action: Callable[[], object]) -> list[Any]:
    """``(sql, params)`` of every read ``action`` makes through the backend."""
    captured: list[Any] = []
    real_read = backend._read

    def spy(tenant: str, environment: str, sql: str, params: list[Any]) -> list[Any]:
        captured.append((sql, list(params)))
        return real_read(tenant, environment, sql, params)

    backend._read = spy  # type: ignore[method-assign]
    try:
        action()
    finally:
        del backend._read
    return captured


def test_exporting_reads_heads_in_primary_key_order(backend: SqlBackend) -> None:
    reads = _captured_reads(backend, lambda: next(iter(backend.iter_documents(SCOPE, "contract"))))
    sql, params = reads[0]
    plan = _plan(backend, sql, params)
    _assert_index_range_scan(plan)
    assert {n["Index Name"] for n in _nodes(plan) if "Index Name" in n} == {"pk_dq_heads"}


def test_listing_environments_probes_the_index_once_per_environment(backend: SqlBackend) -> None:
    reads = _captured_reads(backend, lambda: backend.list_environments("acme"))
    assert backend.list_environments("acme") == ["dev", "prod"]
    plan = _plan(backend, reads[0][0], [SCOPE.tenant, SCOPE.tenant], environment="*")
    types = [node["Node Type"] for node in _nodes(plan)]
    assert "Seq Scan" not in types, types
    assert "Recursive Union" in types, types


def _analysed(backend: SqlBackend) -> bool:
    stats = _statistics(backend)
    assert len(stats) == len(_TABLES)
    analysed = {manual is not None for _, manual, _, _ in stats}
    assert len(analysed) == 1, stats  # the three tables together
    return analysed.pop()


def _heads_rows(backend: SqlBackend) -> float:
    """What dq_heads' statistics say it holds."""
    return next(rows for table, _, _, rows in _statistics(backend) if table == "dq_heads")


def test_large_bulk_writes_and_upgrades_refresh_statistics(postgres_url: str) -> None:
    with SqlBackend(postgres_url, analyze_after=100) as backend:
        for table in _TABLES:
            backend._run(
                lambda conn, t=table: conn.execute(
                    f"ALTER TABLE {t} SET (autovacuum_enabled = false)"
                ),
                safe=True,
            )
        backend.put_many(SCOPE, "contract", (_contract(i) for i in range(99)))
        assert not _analysed(backend)  # below the threshold
        backend.put_many(SCOPE, "contract", (_contract(i) for i in range(100, 300)))
        assert _analysed(backend)
        assert _heads_rows(backend) == 299
    with SqlBackend(postgres_url, analyze_after=None) as backend:
        backend.put_many(SCOPE, "contract", (_contract(i) for i in range(300, 3000)))
        assert _heads_rows(backend) == 299  # turned off
        assert schema.upgrade(postgres_url) == schema.head_revision()
        assert _heads_rows(backend) == 2999  # `dq db upgrade` analyses


@pytest.mark.parametrize(
    ("terms", "per_1000"), [(("name123",), [1]), (("name123", "name12"), [1, 11])], ids=["1", "2"]
)
def test_search_is_one_posting_range_per_term(
    loaded: Loaded, terms: tuple[str, ...], per_1000: list[int]
) -> None:
    """Each term: a range of the postings primary key per search field (value prefix)
    in the scope, reading only that term's postings; each key left: one head probe by
    primary key. Nothing scans the kind."""
    backend = loaded.backend
    sql, params = select_search(
        backend._dialect, SCOPE.tenant, SCOPE.environment, "contract", terms
    )
    plan = _plan(backend, sql, params)
    _assert_index_range_scan(plan, ordered=False)
    ranges = [n for n in _nodes(plan) if n.get("Relation Name") == "dq_postings"]
    assert len(ranges) == 2 * len(terms), ranges  # title and body, per term
    for i, node in enumerate(ranges):
        assert node["Index Name"] == "pk_dq_postings", node
        cond = node["Index Cond"]
        assert all(part in cond for part in ("(field = ", "(value >= ", "(value < ")), cond
        title = i % 2 == 0  # the names are title tokens; no body token matches
        rows = per_1000[i // 2] * loaded.docs // 1000 if title else 0
        assert node["Actual Rows"] * node["Actual Loops"] == rows, node
    heads = [n for n in _nodes(plan) if n.get("Relation Name") == "dq_heads"]
    assert [n["Index Name"] for n in heads] == ["pk_dq_heads"], heads
    assert heads[0]["Actual Loops"] == loaded.docs // 1000  # one probe per match


def test_search_term_counts_read_at_most_the_cap(loaded: Loaded) -> None:
    """Picking the driving terms reads at most ``cap`` postings per term, by range."""
    backend = loaded.backend
    terms = ("common", "name123")
    sql, params = count_search(
        backend._dialect, SCOPE.tenant, SCOPE.environment, "contract", terms, 100
    )
    plan = _plan(backend, sql, params)
    _assert_index_range_scan(plan, ordered=False)
    ranges = [n for n in _nodes(plan) if n.get("Relation Name") == "dq_postings"]
    assert len(ranges) == 2 * len(terms), ranges
    for node in ranges:
        assert node["Index Name"] == "pk_dq_postings", node
        assert node["Actual Rows"] * node["Actual Loops"] <= 100, node
    assert tuple(backend._scope_read(SCOPE, sql, params)[0]) == (100, loaded.docs // 1000)
