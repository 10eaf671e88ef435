"""Row-level security on PostgreSQL: the database itself keeps scopes apart."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import MisconfiguredError
from dq_metadata.scope import Scope
from dq_stores import ANY, DocumentWrite, IndexEntry
from dq_stores.sql import SqlBackend

pytestmark = pytest.mark.postgres

MINE = Scope("acme", "prod")
SIBLING = Scope("acme", "dev")
OTHER = Scope("globex", "prod")


def _write(key: str) -> DocumentWrite:
    body = canonical_json({"id": key})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"tag": ("x",)}, key))


@pytest.fixture
def backend(postgres_url: str) -> Any:
    with SqlBackend(postgres_url) as backend:
        for scope, count in ((MINE, 2), (SIBLING, 3), (OTHER, 4)):
            for i in range(count):
                backend.put(scope, "contract", _write(f"k{i}"), ANY)
        backend.put(MINE, "contract", _write("k0"), ANY)  # a second revision
        yield backend


def _on_backend_connection(backend: SqlBackend, fn: Any) -> Any:
    """Run ``fn(dbapi_connection)`` on a connection from the backend's own pool."""
    return backend._run(fn, safe=True)


def test_unscoped_count_in_a_scoped_transaction_sees_only_that_scope(backend: SqlBackend) -> None:
    def scoped(conn: Any) -> Any:
        return backend._executor.read(
            conn, MINE.tenant, MINE.environment, "SELECT count(*) FROM dq_revisions", []
        )

    assert _on_backend_connection(backend, scoped) == [(3,)]


def test_unscoped_count_without_a_scope_sees_nothing(backend: SqlBackend) -> None:
    for table in ("dq_revisions", "dq_heads", "dq_postings"):
        count = _on_backend_connection(
            backend, lambda conn, t=table: conn.execute(f"SELECT count(*) FROM {t}").fetchone()
        )
        assert count == (0,), table


def test_the_rows_exist_for_a_superuser(backend: SqlBackend, postgres_admin_url: str) -> None:
    with psycopg.connect(postgres_admin_url) as admin:
        assert admin.execute("SELECT count(*) FROM dq_revisions").fetchone() == (10,)


def test_a_scoped_transaction_cannot_write_into_another_scope(backend: SqlBackend) -> None:
    def smuggle(conn: Any) -> Any:
        with conn.pipeline():
            conn.execute(
                "SELECT set_config('dq.tenant', 'acme', true),"
                " set_config('dq.environment', 'prod', true)"
            )
            conn.execute(
                "UPDATE dq_heads SET revision = 99 WHERE tenant = 'globex'"
            )  # invisible: updates nothing
            conn.execute(
                "INSERT INTO dq_postings VALUES ('globex', 'prod', 'contract', 'f', 'v', '', 'k')"
            )

    with pytest.raises(MisconfiguredError, match="row-level security policy"):
        _on_backend_connection(backend, smuggle)


def test_the_backend_role_is_subject_to_rls(backend: SqlBackend) -> None:
    role = _on_backend_connection(
        backend,
        lambda conn: conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone(),
    )
    assert role == (False, False)
    forced = _on_backend_connection(
        backend,
        lambda conn: conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relname LIKE 'dq\\_%' AND relkind = 'r' ORDER BY relname"
        ).fetchall(),
    )
    assert forced == [
        ("dq_heads", True, True),
        ("dq_postings", True, True),
        ("dq_result_chunks", True, True),
        ("dq_results", True, True),
        ("dq_revisions", True, True),
    ]


def test_public_reads_stay_within_their_scope(backend: SqlBackend) -> None:
    assert [d.key for d in backend.iter_documents(MINE)] == ["k0", "k1"]
    assert backend.count(OTHER, "contract") == 4
    assert backend.list_environments("acme") == ["dev", "prod"]
    assert backend.list_environments("nobody") == []
    page = backend.query_tenant("acme", "contract")
    assert {d.scope for d in page.items} == {MINE, SIBLING}
    assert list(backend.iter_scopes()) == [SIBLING, MINE, OTHER]
