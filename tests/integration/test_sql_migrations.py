"""Schema migrations: shipped in the package, reversible without touching documents,
and a backend refuses a schema that is not at head."""

from __future__ import annotations

import importlib.resources
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import SchemaOutOfDateError
from dq_metadata.scope import Scope
from dq_stores import ANY, MUST_NOT_EXIST, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.sql import SqlBackend, schema

SCOPES = (Scope("acme", "prod"), Scope("acme", "dev"), Scope("globex", "prod"))


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'dq.sqlite'}"


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"id": key, "n": n})
    index = IndexEntry({"status": ("active" if n % 2 else "draft",)}, f"{n:04d}")
    return DocumentWrite(key, body, content_hash(body), index)


def _fill(backend: SqlBackend) -> None:
    for scope in SCOPES:
        backend.put_many(scope, "contract", (_write(f"k{i}", i) for i in range(30)))
        backend.put(scope, "contract", _write("k1", 100), ANY)
        backend.delete(scope, "contract", "k2")


def _snapshot(backend: SqlBackend) -> dict[object, object]:
    snap: dict[object, object] = {}
    for scope in backend.iter_scopes():
        for doc in backend.iter_documents(scope):
            snap[(scope, doc.key)] = [
                (d.revision, d.body, d.sha256, d.index, d.written_at, d.deleted)
                for d in backend.history(scope, "contract", doc.key)
            ]
        snap[(scope, "deleted")] = backend.history(scope, "contract", "k2")
        active = Query(filters=(FieldFilter("status", ("active",)),), limit=1000)
        snap[(scope, "active")] = [d.key for d in backend.query(scope, "contract", active).items]
        every = backend.query(scope, "contract", Query(limit=1000, descending=True)).items
        snap[(scope, "live")] = ([d.key for d in every], backend.count(scope, "contract"))
    return snap


def test_the_migrations_have_one_head_and_ship_in_the_package() -> None:
    assert [m.revision for m in schema.history()][-1] == schema.head_revision()
    files = importlib.resources.files("dq_stores.sql") / "migrations"
    assert (files / "env.py").is_file()
    assert (files / "script.py.mako").is_file()
    assert any(f.name.endswith(".py") for f in (files / "versions").iterdir())


def test_down_and_up_again_keeps_every_document(url: str) -> None:
    with SqlBackend(url) as backend:
        _fill(backend)
        before = _snapshot(backend)
    assert before[(SCOPES[0], "live")][1] == 29  # k2 is deleted
    assert len(before[(SCOPES[0], "live")][0]) == 29
    assert schema.downgrade(url, "0001") == "0001"
    with pytest.raises(SchemaOutOfDateError, match="dq db upgrade"):
        SqlBackend(url)
    assert schema.upgrade(url) == schema.head_revision()
    with SqlBackend(url, auto_create=False) as backend:
        assert _snapshot(backend) == before
        assert backend.put(SCOPES[0], "contract", _write("new", 1), MUST_NOT_EXIST).revision == 1


def test_an_empty_database_is_refused_without_auto_create(url: str) -> None:
    with pytest.raises(SchemaOutOfDateError, match=r"empty.*dq db upgrade"):
        SqlBackend(url, auto_create=False)
    assert schema.database_revision(url) is None


def test_an_empty_database_is_created_once_by_racing_backends(url: str) -> None:
    def start(_: int) -> str:
        with SqlBackend(url, pool_size=1) as backend:
            return repr(backend)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(start, range(4)))
    assert schema.database_revision(url) == schema.head_revision()


def test_a_schema_ahead_of_this_library_is_refused(url: str) -> None:
    SqlBackend(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(SchemaOutOfDateError, match="9999"):
        SqlBackend(url)


def test_0005_adds_the_record_hash_chain_and_leaves_older_rows_unchained(url: str) -> None:
    from dq_stores.verify import VerifyCounts, verify

    with SqlBackend(url) as backend:
        _fill(backend)
        before = _snapshot(backend)
        counts = VerifyCounts()
        assert list(verify(backend, counts=counts)) == []
        assert counts.unchained == 0
    assert schema.downgrade(url, "0004") == "0004"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            columns = conn.exec_driver_sql("SELECT * FROM dq_revisions LIMIT 1").keys()
    finally:
        engine.dispose()
    assert "record_hash" not in columns
    assert "prev_hash" not in columns
    assert schema.upgrade(url) == schema.head_revision()
    with SqlBackend(url, auto_create=False) as backend:
        assert _snapshot(backend) == before
        counts = VerifyCounts()
        # the rows written before are unchained (a note), not problems; none were hashed
        assert list(verify(backend, counts=counts, repair_index=True)) == []
        revisions = counts.unchained
        assert revisions == len(SCOPES) * 32  # 30 + a second k1 + k2's tombstone
        backend.put(SCOPES[0], "contract", _write("k1", 7), ANY)  # links after them
        counts = VerifyCounts()
        assert list(verify(backend, counts=counts)) == []
        assert counts.unchained == revisions
