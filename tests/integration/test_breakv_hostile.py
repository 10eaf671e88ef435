"""Hostile checks of the SQL verifier's re-read of a key that looks damaged.

Races are made deterministic by wrapping the verifier's scope-bound reader: a
write (or restore) of a key is committed just before one of the verifier's own
statements, exactly where a concurrent writer could land. Damage is made as an
operator's stray statement would (superuser on PostgreSQL, the file on SQLite).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.postgres import RawSql

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, Delete, DocumentWrite, IndexEntry, Put
from dq_stores.verify import VerifyCounts, verify

sql = pytest.importorskip("dq_stores.sql")

KIND = "contract"
SCOPE = Scope("acme", "prod")
OTHER = Scope("globex", "prod")
Execute = Callable[[str], None]
Read = Callable[[str, list[Any]], list[Any]]


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    entry = IndexEntry({"n": (str(n),), "tag": ("a", "b")}, f"{n:05d}")
    return DocumentWrite(key, body, content_hash(body), entry)


def _hostile(backend: Any, before: Callable[[str, list[Any]], None]) -> None:
    """Make ``backend``'s verifier call ``before(sql, params)`` ahead of each read."""
    original = backend._reader

    def reader(scope: Scope) -> Read:
        inner = original(scope)

        def read(statement: str, params: list[Any]) -> list[Any]:
            before(statement, params)
            return inner(statement, params)

        return read

    backend._reader = reader


def _problems(backend: Any, scope: Scope, **kwargs: Any) -> list[tuple[str, str | None]]:
    return sorted((p.code, p.key) for p in verify(backend, scope=scope, **kwargs))


def test_a_key_written_before_every_read_of_it_is_not_reported(
    sql_store: tuple[str, RawSql],
) -> None:
    """A hot key (written between any two statements of the verifier) is not damage,
    however often the re-read is interrupted."""
    url, _ = sql_store
    writes = [0]
    with sql.SqlBackend(url) as writer, sql.SqlBackend(url) as backend:
        writer.put_many(SCOPE, KIND, [_write(f"k{i}", 0) for i in range(5)])

        def write_hot(statement: str, params: list[Any]) -> None:
            if "dq_postings" in statement:  # the postings stream, and k2's own re-read
                writes[0] += 1
                writer.put(SCOPE, KIND, _write("k2", writes[0]), ANY)

        _hostile(backend, write_hot)
        assert _problems(backend, SCOPE) == []
    assert writes[0] >= 2  # the streams and the key's own read were both raced


def test_a_head_restored_away_and_back_around_a_read_is_not_reported(
    sql_store: tuple[str, RawSql],
) -> None:
    """ABA: restore-replace swaps a key's history for another and back between the
    re-read's two head reads; the head row is identical, its postings were not."""
    url, _ = sql_store
    with sql.SqlBackend(url) as writer, sql.SqlBackend(url) as backend:
        writer.put(SCOPE, KIND, _write("k", 1), ANY)
        other_scope = Scope("source", "prod")
        writer.put(other_scope, KIND, _write("k", 1), ANY)
        writer.put(other_scope, KIND, _write("k", 2), ANY)
        mine = writer.history(SCOPE, KIND, "k")
        theirs = writer.history(other_scope, KIND, "k")
        state = {"swapped": False, "raced": 0}

        def swap(statement: str, params: list[Any]) -> None:
            if state["raced"] >= 20:
                return
            if "dq_postings" in statement:  # theirs just before the postings are read
                state["raced"] += 1
                writer.restore_many(SCOPE, KIND, [("k", theirs)], replace=True)
                state["swapped"] = True
            elif state["swapped"]:  # and mine again before anything else
                writer.restore_many(SCOPE, KIND, [("k", mine)], replace=True)
                state["swapped"] = False

        _hostile(backend, swap)
        found = _problems(backend, SCOPE)
    assert found == [], found


def test_damage_on_an_idle_key_next_to_a_hot_one_is_reported_and_repaired(
    sql_store: tuple[str, RawSql],
) -> None:
    url, execute = sql_store
    where = f"tenant = 'acme' AND environment = 'prod' AND kind = '{KIND}'"
    n = [0]
    with sql.SqlBackend(url) as writer, sql.SqlBackend(url) as backend:
        writer.put_many(SCOPE, KIND, [_write(f"k{i}", 1) for i in range(6)])
        writer.delete(SCOPE, KIND, "k5")
        execute(f"DELETE FROM dq_postings WHERE {where} AND key = 'k1' AND field = 'tag'")
        execute(f"UPDATE dq_postings SET sort_key = 'zz' WHERE {where} AND key = 'k3'")
        execute(
            "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
            " VALUES ('acme', 'prod', 'contract', '', '', '1', 'k5')"  # a deleted key's
        )
        execute(
            "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
            " VALUES ('acme', 'prod', 'contract', '', '', '1', 'ghost')"  # no head
        )

        def write_hot(statement: str, params: list[Any]) -> None:
            n[0] += 1
            writer.put(SCOPE, KIND, _write("k2", n[0] + 1), ANY)

        _hostile(backend, write_hot)
        damaged = [("index", "ghost"), ("index", "k1"), ("index", "k3"), ("index", "k5")]
        assert _problems(backend, SCOPE) == damaged
        counts = VerifyCounts()
        assert _problems(backend, SCOPE, repair_index=True, counts=counts) == damaged
        assert counts.repaired == [SCOPE]
        assert _problems(backend, SCOPE) == []


def test_the_reread_never_sees_another_tenants_rows(sql_store: tuple[str, RawSql]) -> None:
    """The same kind and key in two tenants: one damaged, the other raced into
    re-reads; each tenant's verify reports only its own rows."""
    url, execute = sql_store
    n = [0]
    with sql.SqlBackend(url) as writer, sql.SqlBackend(url) as backend:
        for scope in (SCOPE, OTHER):
            writer.put_many(scope, KIND, [_write(f"k{i}", 1) for i in range(3)])
        execute(
            "UPDATE dq_postings SET value = 'x' WHERE tenant = 'globex' AND key = 'k1'"
            " AND field = 'n'"
        )
        execute(
            "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
            " VALUES ('globex', 'prod', 'contract', '', '', '1', 'k9')"
        )

        def write_hot(statement: str, params: list[Any]) -> None:
            if "acme" in params and "dq_postings" in statement:
                n[0] += 1
                writer.put(SCOPE, KIND, _write("k1", n[0] + 1), ANY)

        _hostile(backend, write_hot)
        assert _problems(backend, SCOPE) == []
        assert _problems(backend, OTHER) == [("index", "k1"), ("index", "k9")]


def _churn(
    url: str, keys: list[str], offset: int, stop: threading.Event, failed: list[BaseException]
) -> None:
    """Until ``stop``: puts, deletes, re-puts, multi-document commits, prunes and
    replacing restores of ``keys`` (in ``KIND``, ``SCOPE``)."""
    try:
        with sql.SqlBackend(url) as w:
            n = offset
            while not stop.is_set():
                n += 7
                key = keys[n % len(keys)]
                step = n % 6
                with contextlib.suppress(NotFoundError, ConflictError):  # absent, or raced
                    if step == 0:
                        w.put(SCOPE, KIND, _write(key, n), ANY)
                    elif step == 1:
                        w.delete(SCOPE, KIND, key)
                    elif step == 2:
                        puts = [Put(KIND, _write(keys[(n + i) % len(keys)], n)) for i in range(5)]
                        w.commit(SCOPE, puts)
                    elif step == 3:
                        w.prune_history(SCOPE, KIND, key, w.get(SCOPE, KIND, key).revision)
                    elif step == 4:
                        history = w.history(SCOPE, KIND, key)
                        w.restore_many(SCOPE, KIND, [(key, history)], replace=True)
                    else:
                        w.put_many(SCOPE, KIND, [_write(keys[(n + 9) % len(keys)], n)])
                        w.commit(SCOPE, [Delete(KIND, keys[(n + 11) % len(keys)])])
    except BaseException as exc:
        failed.append(exc)


@pytest.mark.slow  # 15-20 s per database; the deterministic tests above run by default
def test_many_keys_verified_while_every_kind_of_write_races_find_only_the_damage(
    sql_store: tuple[str, RawSql],
) -> None:
    """>1000 keys (several keyset batches per stream) written, deleted, re-put,
    pruned, committed and restored while verify runs: only planted damage shows."""
    url, execute = sql_store
    keys = [f"k{i:04d}" for i in range(1300)]
    with sql.SqlBackend(url) as backend:
        backend.put_many(SCOPE, KIND, [_write(key, 1) for key in keys])
        backend.put_many(SCOPE, "idle", [_write(key, 1) for key in keys[:1200]])
    where = "tenant = 'acme' AND environment = 'prod' AND kind = 'idle'"
    execute(f"DELETE FROM dq_postings WHERE {where} AND key = 'k0500' AND field = ''")
    execute(f"UPDATE dq_postings SET value = '7' WHERE {where} AND key = 'k1100' AND field = 'n'")
    execute(f"UPDATE dq_heads SET sort_key = 'x' WHERE {where} AND key = 'k0001'")
    planted = [("head", "k0001"), ("index", "k0001"), ("index", "k0500"), ("index", "k1100")]
    stop = threading.Event()
    failed: list[BaseException] = []
    threads = [threading.Thread(target=_churn, args=(url, keys, i, stop, failed)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        with sql.SqlBackend(url) as backend:
            found = [_problems(backend, SCOPE) for _ in range(3)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failed, failed
    with sql.SqlBackend(url) as backend:
        quiet = _problems(backend, SCOPE)
    assert quiet == planted, quiet  # the writers themselves damaged nothing
    assert found == [planted] * 3, found


@pytest.mark.postgres
def test_a_replace_racing_a_put_on_postgresql_leaves_no_stale_postings(
    postgres_url: str, postgres_admin_url: str
) -> None:
    """A put holds the head row and has written its postings, not yet committed; a
    restore with ``replace`` of the same key starts meanwhile. The restore must not
    leave the put's postings beside its own (it did when it deleted postings first:
    that statement's snapshot predates the put's commit)."""
    import psycopg

    scope = SCOPE
    with sql.SqlBackend(postgres_url) as backend:
        backend.put(scope, KIND, _write("k", 1), ANY)
        old = backend.history(scope, KIND, "k")
        backend.put(scope, KIND, _write("k", 2), ANY)
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION breakv_pause() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_advisory_lock_shared(4242);"
            " PERFORM pg_advisory_unlock_shared(4242); RETURN NULL; END $$"
        )
        admin.execute(
            "CREATE TRIGGER breakv_pause AFTER INSERT ON dq_postings"
            " FOR EACH STATEMENT EXECUTE FUNCTION breakv_pause()"
        )
        admin.execute("SELECT pg_advisory_lock(4242)")
        failed: list[BaseException] = []

        def run(action: Callable[[Any], object]) -> threading.Thread:
            def body() -> None:
                try:
                    with sql.SqlBackend(postgres_url) as b:
                        action(b)
                except BaseException as exc:
                    failed.append(exc)

            thread = threading.Thread(target=body)
            thread.start()
            return thread

        def waiting(kind: str) -> int:
            row = admin.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = %s", (kind,)
            ).fetchone()
            return int(row[0]) if row else 0

        def wait_for(kind: str, count: int) -> None:
            for _ in range(2000):
                if waiting(kind) >= count:
                    return
                threading.Event().wait(0.01)
            raise AssertionError(f"no session waited on a {kind} lock")

        put = run(lambda b: b.put(scope, KIND, _write("k", 3), ANY))
        wait_for("advisory", 1)  # the put: head moved, postings written, not committed
        restore = run(lambda b: b.restore_many(scope, KIND, [("k", old)], replace=True))
        wait_for("transactionid", 1)  # the restore waits on the put's rows
        admin.execute("SELECT pg_advisory_unlock(4242)")
        put.join()
        restore.join()
        admin.execute("DROP TRIGGER breakv_pause ON dq_postings")
        admin.execute("DROP FUNCTION breakv_pause()")
    assert not failed, failed
    with sql.SqlBackend(postgres_url) as backend:
        assert [d.revision for d in backend.history(scope, KIND, "k")] == [1]
        assert _problems(backend, scope) == []


@pytest.mark.postgres
def test_the_reread_bound_to_one_tenant_cannot_read_another_under_rls(postgres_url: str) -> None:
    """Defence in depth: even asked for another tenant's key, the re-read runs through
    the scope-bound reader, and row-level security shows it nothing."""
    from dq_stores.sql._verify import _reread

    with sql.SqlBackend(postgres_url) as backend:
        for scope in (SCOPE, OTHER):
            backend.put(scope, KIND, _write("k", 1), ANY)
        own = _reread(backend._reader(OTHER), OTHER, "%s", KIND, "k")
        assert own[0] is not None
        assert own[1]
        assert _reread(backend._reader(SCOPE), OTHER, "%s", KIND, "k") == (None, set())
