"""``dq verify`` on SQL finds tampering the database cannot: the record-hash chain.

Random histories (puts, deletes, commits, bulk imports, restores) are written
through the backend, then one random revision row is tampered with as a superuser
(PostgreSQL) or on the file (SQLite) — consistently enough that the old checks
(body vs. sha256, head vs. revision row, postings) cannot see it — and ``verify``
must report it. Each example writes into a scope of its own.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.postgres import RawSql

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Put
from dq_stores.verify import VerifyCounts, verify

sql = pytest.importorskip("dq_stores.sql")
schema = pytest.importorskip("dq_stores.sql.schema")

KIND = "contract"
Raw = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
_TENANTS = itertools.count()


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    entry = IndexEntry({"status": ("active" if n % 2 else "draft",)}, f"{n:04d}")
    return DocumentWrite(key, body, content_hash(body), entry)


_ACTIONS = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "commit", "many"]), st.sampled_from("abc")),
    max_size=10,
)
_TAMPERS = st.sampled_from(["edit-old", "delete-middle", "swap", "rekey", "retenant", "rollback"])


def _fill(backend: Any, scope: Scope, actions: list[tuple[str, str]], restore: bool) -> None:
    for n in range(3):  # key "a" always has three revisions to tamper with
        backend.put(scope, KIND, _write("a", n), ANY)
    for n, (action, key) in enumerate(actions, start=10):
        if action == "put":
            backend.put(scope, KIND, _write(key, n), ANY)
        elif action == "delete":
            with contextlib.suppress(NotFoundError):
                backend.delete(scope, KIND, key)
        elif action == "commit":
            backend.commit(scope, [Put(KIND, _write(key, n)), Put(KIND, _write("z" + key, n))])
        else:
            backend.put_many(scope, KIND, [_write(key, n), _write("m" + key, n)])
    if restore:  # restored histories are chained client-side
        copy = Scope(scope.tenant, "copy")
        for history in backend.iter_histories(scope):
            backend.restore(copy, history[0].kind, history[0].key, history)
        backend.commit(copy, [Put(KIND, _write("a", 99))])


def _tamper(raw: Raw, scope: Scope, how: str) -> None:
    where = "tenant = ? AND environment = ? AND kind = ? AND key = ?"
    doc = (scope.tenant, scope.environment, KIND, "a")
    revs = raw(
        f"SELECT revision, body, sha256 FROM dq_revisions WHERE {where} ORDER BY revision", doc
    )
    assert len(revs) >= 3
    old, middle, newest = revs[0], revs[len(revs) // 2], revs[-1]
    at = f"{where} AND revision = ?"
    if how == "edit-old":
        body = canonical_json({"key": "a", "n": "forged"})
        raw(
            f"UPDATE dq_revisions SET body = ?, sha256 = ? WHERE {at}",
            (body, content_hash(body), *doc, old[0]),
        )
    elif how == "delete-middle":
        raw(f"DELETE FROM dq_revisions WHERE {at}", (*doc, middle[0]))
    elif how == "swap":
        raw(
            f"UPDATE dq_revisions SET body = ?, sha256 = ? WHERE {at}",
            (bytes(middle[1]), middle[2], *doc, old[0]),
        )
        raw(
            f"UPDATE dq_revisions SET body = ?, sha256 = ? WHERE {at}",
            (bytes(old[1]), old[2], *doc, middle[0]),
        )
    elif how == "rekey":
        raw(f"UPDATE dq_revisions SET key = 'zz' WHERE {at}", (*doc, old[0]))
    elif how == "retenant":
        raw(f"UPDATE dq_revisions SET tenant = ? WHERE {at}", (scope.tenant + "x", *doc, old[0]))
    else:  # the head back to the revision before, every column of it
        cols = "deleted, body, sha256, fields, sort_key, written_at, record_hash, prev_hash"
        row = raw(f"SELECT {cols} FROM dq_revisions WHERE {at}", (*doc, newest[0] - 1))[0]
        sets = ", ".join(f"{c} = ?" for c in cols.split(", "))
        raw(f"UPDATE dq_heads SET revision = ?, {sets} WHERE {where}", (newest[0] - 1, *row, *doc))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=_ACTIONS, how=_TAMPERS, restore=st.booleans())
def test_tampering_with_a_random_history_is_reported(
    sql_store: tuple[str, RawSql], actions: list[tuple[str, str]], how: str, restore: bool
) -> None:
    url, raw = sql_store
    scope = Scope(f"t{next(_TENANTS)}", "prod")
    with sql.SqlBackend(url) as backend:
        _fill(backend, scope, actions, restore)
        counts = VerifyCounts()
        assert list(verify(backend, tenant=scope.tenant, counts=counts)) == []
        assert counts.unchained == 0
    _tamper(raw, scope, how)
    with sql.SqlBackend(url) as backend:
        found = {(p.code, p.key) for p in verify(backend, scope=scope)}
    assert found, how
    assert {key for _code, key in found} <= {"a", "zz"}, found


def test_rows_written_before_the_chain_are_noted_not_reported(
    sql_store: tuple[str, RawSql],
) -> None:
    url, raw = sql_store
    scope = Scope("legacy", "prod")
    with sql.SqlBackend(url) as backend:
        for n in range(2):
            backend.put(scope, KIND, _write("a", n), ANY)
    assert schema.downgrade(url, "0005") == "0005"  # no guard yet (0006 checks new rows)
    for table in ("dq_heads", "dq_revisions"):  # as migration 0005 leaves older rows
        raw(f"UPDATE {table} SET record_hash = NULL, prev_hash = NULL", ())
    schema.upgrade(url)
    with sql.SqlBackend(url) as backend:
        counts = VerifyCounts()
        assert list(verify(backend, scope=scope, counts=counts, repair_index=True)) == []
        assert counts.unchained == 2
        backend.put(scope, KIND, _write("a", 5), ANY)  # chained from here on
        backend.put(scope, KIND, _write("a", 6), ANY)
        counts = VerifyCounts()
        assert list(verify(backend, scope=scope, counts=counts)) == []
        assert counts.unchained == 2
    assert raw("SELECT record_hash FROM dq_revisions WHERE revision < 3", ()) == [(None,), (None,)]
    # a hash removed from a chained revision is not taken for an old row (PostgreSQL's
    # CHECK refuses the update: the tamperer drops it first)
    schema.downgrade(url, "0005")
    raw("UPDATE dq_revisions SET record_hash = NULL WHERE revision = 3", ())
    schema.upgrade(url)
    with sql.SqlBackend(url) as backend:
        found = [(p.code, p.key) for p in verify(backend, scope=scope)]
    assert found == [("history", "a")], found


def test_pruned_history_verifies_and_a_removed_oldest_revision_does_not(
    sql_store: tuple[str, RawSql],
) -> None:
    url, raw = sql_store
    scope = Scope("pruned", "prod")
    with sql.SqlBackend(url) as backend:
        for key in ("a", "b"):
            for n in range(4):
                backend.put(scope, KIND, _write(key, n), ANY)
            backend.delete(scope, KIND, key)
        assert backend.prune_history(scope, KIND, "a", 3) == 2
        assert list(verify(backend, scope=scope)) == []
    raw("DELETE FROM dq_revisions WHERE key = 'b' AND revision = 1", ())
    with sql.SqlBackend(url) as backend:
        found = [(p.code, p.key) for p in verify(backend, scope=scope)]
    assert found == [("history", "b")]


def test_the_database_hashes_what_python_hashes_for_any_text(sql_store: tuple[str, RawSql]) -> None:
    """PostgreSQL computes record hashes with sha256() over UTF-8 lengths it counts
    itself: non-ASCII, quotes, separators and empty values hash as in ``_chain``."""
    url, raw = sql_store
    scope = Scope("text", "prod")
    values = ["é", "日本語", "🙂;1:x", "'\"\\", "a\nb\tc", ";", ""]
    with sql.SqlBackend(url) as backend:
        for value in values:
            body = canonical_json({"v": value})
            entry = IndexEntry({"status": (value,)} if value else {}, value)
            backend.put(scope, KIND, DocumentWrite("k", body, content_hash(body), entry), ANY)
        backend.put_many(scope, KIND, [_write("k", 50), _write("m", 51)])
        backend.delete(scope, KIND, "m")
        assert list(verify(backend, scope=scope)) == []
    assert raw("SELECT count(*) FROM dq_revisions WHERE record_hash IS NULL", ()) == [(0,)]


def test_a_writer_older_than_the_chain_is_refused(sql_store: tuple[str, RawSql]) -> None:
    """A process of the previous version, started before ``dq db upgrade``, writes
    revision rows without hashes and leaves the head's hash stale: migration 0006
    makes the database refuse its write, so no key is left with a broken chain."""
    url, raw = sql_store
    scope = Scope("older", "prod")
    with sql.SqlBackend(url) as backend:
        backend.put(scope, KIND, _write("a", 0), ANY)
        backend.put(scope, KIND, _write("a", 1), ANY)
    cols = "tenant, environment, kind, key, revision, deleted, body, sha256, fields, sort_key"
    body = canonical_json({"key": "a", "n": "old"})
    params = (body, content_hash(body), scope.tenant, "a")
    where = "WHERE tenant = ? AND key = ?"

    def old_write() -> None:  # what a writer of schema 0004 runs: neither hash column named
        raw(
            f"INSERT INTO dq_revisions ({cols}, written_at) SELECT tenant, environment, kind,"
            f" key, revision + 1, deleted, ?, ?, fields, sort_key, written_at FROM dq_heads {where}",
            params,
        )
        raw(f"UPDATE dq_heads SET revision = revision + 1, body = ?, sha256 = ? {where}", params)

    with pytest.raises(Exception, match=r"chained|record hash"):
        old_write()
    with sql.SqlBackend(url) as backend:
        assert backend.get(scope, KIND, "a").revision == 2
        backend.put(scope, KIND, _write("a", 3), ANY)
        assert list(verify(backend, scope=scope)) == []
