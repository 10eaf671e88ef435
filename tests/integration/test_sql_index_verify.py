"""``dq verify`` on SQL checks the derived postings against the heads, and the heads
against their revision rows; ``--repair-index`` re-derives the postings only.

Rows are edited as a superuser (PostgreSQL) or on the file (SQLite), the way an
operator's stray ``UPDATE`` or a bad restore would.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.postgres import RawSql

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.verify import VerifyCounts, verify

sql = pytest.importorskip("dq_stores.sql")

SCOPE = Scope("acme", "prod")
OTHER = Scope("globex", "prod")
KIND = "contract"
Execute = Callable[[str], None]


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    status = "active" if n % 2 else "draft"
    entry = IndexEntry({"status": (status,), "tag": ("a", "b")}, f"{n:03d}")
    return DocumentWrite(key, body, content_hash(body), entry)


def _populate(url: str) -> None:
    with sql.SqlBackend(url) as backend:
        for scope in (SCOPE, OTHER):
            for key, revisions in (("orders", 3), ("users", 1), ("gone", 2)):
                for n in range(1, revisions + 1):
                    backend.put(scope, KIND, _write(key, n), ANY)
            backend.delete(scope, KIND, "gone")


def _codes(url: str, **kwargs: object) -> list[tuple[str, str | None]]:
    with sql.SqlBackend(url) as backend:
        return sorted((p.code, p.key) for p in verify(backend, **kwargs))  # type: ignore[arg-type]


_WHERE = "tenant = 'acme' AND environment = 'prod' AND kind = 'contract'"
#: (edit, what verify reports): each breaks the index or a head outside the library
EDITS = {
    "posting-deleted": (f"DELETE FROM dq_postings WHERE {_WHERE} AND key = 'orders'"
                        " AND field = 'status'", [("index", "orders")]),
    "live-posting-deleted": (f"DELETE FROM dq_postings WHERE {_WHERE} AND key = 'users'"
                             " AND field = ''", [("index", "users")]),
    "posting-value-edited": (f"UPDATE dq_postings SET value = 'draft' WHERE {_WHERE}"
                             " AND key = 'orders' AND field = 'status'", [("index", "orders")]),
    "posting-of-an-older-revision": (
        f"UPDATE dq_postings SET sort_key = '001' WHERE {_WHERE} AND key = 'orders'",
        [("index", "orders")]),
    "posting-without-head": (
        "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
        " VALUES ('acme', 'prod', 'contract', 'status', 'active', '001', 'ghost')",
        [("index", "ghost")]),
    "posting-of-a-deleted-document": (
        "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
        " VALUES ('acme', 'prod', 'contract', '', '', '002', 'gone')", [("index", "gone")]),
    "head-fields-edited": (f"UPDATE dq_heads SET fields = '{{\"status\":[\"x\"]}}' WHERE {_WHERE}"
                           " AND key = 'users'", [("head", "users"), ("index", "users")]),
    "head-undeleted": (f"UPDATE dq_heads SET deleted = {{true}} WHERE {_WHERE} AND key = 'users'",
                       [("head", "users"), ("index", "users")]),
    # the head row's own copy of the body, edited without its sha256: not the newest
    # revision's bytes any more, though every column the history walk compares agrees
    "head-body-edited": (f"UPDATE dq_heads SET body = {{body}} WHERE {_WHERE} AND key = 'users'",
                         [("record", "users")]),
}  # fmt: skip


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_index_or_head_is_reported(sql_store: tuple[str, RawSql], edit: str) -> None:
    url, execute = sql_store
    _populate(url)
    assert _codes(url) == []
    statement, expected = EDITS[edit]
    truth = "1" if url.startswith("sqlite") else "true"
    body = "X'7b7d'" if url.startswith("sqlite") else "'\\x7b7d'::bytea"
    execute(statement.replace("{true}", truth).replace("{body}", body))
    assert _codes(url, scope=SCOPE) == expected
    assert _codes(url, scope=OTHER) == []  # the other tenant is untouched


@pytest.mark.parametrize(
    "edit", [e for e, (_, found) in EDITS.items() if all(c == "index" for c, _ in found)]
)
def test_repair_index_rederives_the_postings_only(sql_store: tuple[str, RawSql], edit: str) -> None:
    url, execute = sql_store
    _populate(url)
    with sql.SqlBackend(url) as backend:
        before = [d.sha256 for d in backend.iter_documents(SCOPE)]
    execute(EDITS[edit][0])
    counts = VerifyCounts()
    with sql.SqlBackend(url) as backend:
        assert list(verify(backend, SCOPE, counts=counts, repair_index=True))
        assert counts.repaired == [SCOPE]
        assert list(verify(backend, SCOPE)) == []
        assert [d.sha256 for d in backend.iter_documents(SCOPE)] == before
        active = backend.count(SCOPE, KIND, [FieldFilter("status", ("active",))])
        assert active == 2  # orders @3 and users @1
        page = backend.query(SCOPE, KIND, Query(limit=10))
        assert [d.key for d in page.items] == ["users", "orders"]


def test_postings_in_a_scope_without_documents_are_found_and_repaired(
    sql_store: tuple[str, RawSql],
) -> None:
    """Stray postings of a scope no head is in make ``count`` misreport it; the whole
    store, its tenant and the scope itself must be walked, not "does not exist"."""
    url, execute = sql_store
    _populate(url)
    ghost = Scope("ghost", "prod")
    execute(
        "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
        " VALUES ('ghost', 'prod', 'contract', '', '', '001', 'phantom')"
    )
    with sql.SqlBackend(url) as backend:
        assert backend.count(ghost, KIND) == 1  # what the stray row makes a read say
    assert _codes(url) == [("index", "phantom")]
    assert _codes(url, tenant="ghost") == [("index", "phantom")]
    assert _codes(url, scope=ghost) == [("index", "phantom")]
    counts = VerifyCounts()
    assert _codes(url, repair_index=True, counts=counts) == [("index", "phantom")]
    assert counts.repaired == [ghost]
    with sql.SqlBackend(url) as backend:
        assert backend.count(ghost, KIND) == 0
    assert _codes(url) == []


@settings(
    max_examples=15,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(keys=st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=12))
def test_random_histories_verify_clean_and_a_dropped_posting_is_found(
    tmp_path_factory: pytest.TempPathFactory, keys: list[str]
) -> None:
    path = tmp_path_factory.mktemp("sql") / "dq.sqlite"
    with sql.SqlBackend(f"sqlite:///{path}") as backend:
        for n, key in enumerate(keys):
            if n % 5 == 4:
                with contextlib.suppress(NotFoundError):
                    backend.delete(SCOPE, KIND, key)
            else:
                backend.put(SCOPE, KIND, _write(key, n), ANY)
        assert list(verify(backend)) == []
        live = [d.key for d in backend.iter_documents(SCOPE)]
    if not live:
        return
    with sqlite3.connect(path) as conn:
        conn.execute(f"DELETE FROM dq_postings WHERE key = '{live[0]}' AND field = 'tag'")
    with sql.SqlBackend(f"sqlite:///{path}") as backend:
        found = [(p.code, p.key) for p in verify(backend)]
    assert found == [("index", live[0])]
