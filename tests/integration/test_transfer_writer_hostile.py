"""Hostile tests of migrate's background writer and PostgreSQL's one-statement restore.

The writer (``_sink.BACKGROUND_WRITES``) promises: batches in order, one queued,
nothing written after a failed batch, and leaving the sink waits for the batches
handed over. The PostgreSQL restore (``_restore._PG_RESTORE``) promises one
statement per batch, all or nothing, a conflict naming the key that has a
history. Attacked here: targets failing at batch k (a conflict, a backend
terminated mid-statement), progress callbacks raising, interrupts, merges with
conflicts in every batch, replaces, hostile keys with multi-revision histories,
tombstones and pruned prefixes (compared with the SQLite path), row-level
security as an ordinary role, a second tenant's rows, leaked threads, and spans.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dq_metadata.errors import ConflictError, StoreUnavailableError
from dq_metadata.scope import Scope
from dq_registries.operations.transfer import Endpoint, _sink, migrate, tally_endpoint
from dq_registries.operations.transfer._sink import comparable
from dq_stores.backend import DocumentBackend
from dq_stores.documents import FieldFilter, Query, StoredDocument
from dq_stores.memory import MemoryBackend
from dq_stores.retention import PRUNED_KIND
from dq_stores.testing._helpers import HOSTILE_KEYS, doc

SCOPE = Scope("acme", "prod")
OTHER = Scope("globex", "prod")  # a second tenant: never touched by a transfer of SCOPE
KIND = "widget"
WRITER = "dq-transfer-writer"
SMALL = 20  # keys per batch in these tests (monkeypatched over _sink.BATCH_KEYS)


def _writers() -> list[threading.Thread]:
    # not is_alive(): CPython 3.11 reports a thread whose join was interrupted as stopped
    return [t for t in threading.enumerate() if t.name == WRITER]


@pytest.fixture(autouse=True)
def _no_leaked_writer(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(_sink, "BACKGROUND_WRITES", True)
    monkeypatch.setattr(_sink, "BATCH_KEYS", SMALL)
    yield
    assert _writers() == [], "a writer thread outlived its transfer"


def _fill(backend: DocumentBackend, scope: Scope, keys: list[str], salt: int = 0) -> None:
    """Histories of 1-3 revisions, some ending in a tombstone, one tombstone mid-way."""
    backend.put_many(
        scope, KIND, [doc(k, [salt, i], sort_key=f"{i:06d}", tag="t") for i, k in enumerate(keys)]
    )
    backend.put_many(scope, KIND, [doc(k, [salt, 2], tag=("t", "u")) for k in keys[::3]])
    for key in keys[::5]:
        backend.delete(scope, KIND, key)
    backend.put_many(scope, KIND, [doc(k, [salt, 3], sort_key="z", tag="v") for k in keys[::10]])


def _keys(n: int) -> list[str]:
    return [f"k{i:05d}" for i in range(n)]


def _source(n: int, scope: Scope = SCOPE) -> MemoryBackend:
    source = MemoryBackend()
    _fill(source, scope, _keys(n))
    return source


def _histories(backend: DocumentBackend, scope: Scope) -> list[list[tuple[object, ...]]]:
    out = [[comparable(d) for d in h] for h in backend.iter_histories(scope)]
    return sorted(out, key=lambda h: (str(h[0][0]), str(h[0][1])))


def _answers(backend: DocumentBackend, scope: Scope) -> dict[str, Any]:
    """What readers see of KIND: pages in both orders, a filter, counts."""

    def keys(query: Query) -> list[tuple[str, int]]:
        return [(d.key, d.revision) for d in backend.query(scope, KIND, query).items]

    return {
        "asc": keys(Query(limit=1000)),
        "desc": keys(Query(limit=1000, descending=True)),
        "u": keys(Query(filters=(FieldFilter("tag", ("u",)),), limit=1000)),
        "v": keys(Query(filters=(FieldFilter("tag", ("v",)),), limit=1000)),
        "count": backend.count(scope, KIND),
    }


# -- the writer thread, on memory targets ---------------------------------------------


class _Gate(MemoryBackend):
    """Holds its ``hold_at``-th restore batch until ``release``; counts finished ones."""

    def __init__(self, hold_at: int, fail: BaseException | None = None) -> None:
        super().__init__()
        self.hold_at, self.fail, self.calls, self.finished = hold_at, fail, 0, 0
        self.entered, self.release = threading.Event(), threading.Event()

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        self.calls += 1
        if self.calls == self.hold_at:
            self.entered.set()
            self.release.wait(30)
            if self.fail is not None:
                raise self.fail
        super()._restore_many(scope, kind, histories, replace)
        self.finished += 1


def _interrupting(target: _Gate, delay: float, hold: float) -> threading.Thread:
    """Once ``target`` holds a batch: SIGINT to the main thread after ``delay`` s,
    then the batch is released ``hold`` s later."""
    main = threading.main_thread().ident
    assert main is not None
    assert threading.get_ident() == main

    def run() -> None:
        if target.entered.wait(30):
            time.sleep(delay)
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(hold)
        target.release.set()

    return threading.Thread(target=run)


def test_an_interrupt_during_the_final_wait_still_waits_for_the_last_batch() -> None:
    # Sink.flush() -> close() is interrupted while the last batch is being written;
    # leaving the sink (close() again) must still wait for it, as the sink promises,
    # instead of returning at once with the writer still writing into the target
    target = _Gate(hold_at=3)
    helper = _interrupting(target, delay=0.3, hold=1.0)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            migrate(Endpoint(_source(2 * SMALL + 7), None), Endpoint(target, None))
        waited = target.release.is_set()
    finally:
        target.release.set()
        helper.join()
        signal.signal(signal.SIGINT, previous)
    assert waited, "migrate returned while its writer was still writing the last batch"
    assert target.finished == 3
    assert _writers() == []


def test_an_interrupt_while_reading_waits_for_the_batches_handed_over() -> None:
    # interrupted in the reading thread (blocked handing over batch 3 behind the held
    # batch 1): batches 1 and 2 were handed over and are written; nothing after them
    target = _Gate(hold_at=1)
    helper = _interrupting(target, delay=0.3, hold=0.5)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            migrate(Endpoint(_source(5 * SMALL), None), Endpoint(target, None))
    finally:
        target.release.set()
        helper.join()
        signal.signal(signal.SIGINT, previous)
    assert target.calls == target.finished == 2
    assert sorted(h[-1].key for h in target.iter_histories(SCOPE)) == _keys(2 * SMALL)


@pytest.mark.parametrize("error", [RuntimeError("progress bar broke"), KeyboardInterrupt()])
@pytest.mark.parametrize("background", [True, False])
def test_a_raising_progress_callback_stops_the_transfer_like_inline_writes(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, background: bool
) -> None:
    monkeypatch.setattr(_sink, "BACKGROUND_WRITES", background)
    target = MemoryBackend()

    def progress(done: int, _total: int | None) -> None:
        if done == 2 * SMALL + 5:  # batches 1 and 2 handed over, 3 being filled
            raise error

    with pytest.raises(type(error)):
        migrate(Endpoint(_source(5 * SMALL), None), Endpoint(target, None), progress=progress)
    written = list(target.iter_histories(SCOPE))
    assert sorted(h[-1].key for h in written) == _keys(2 * SMALL)


def test_a_failed_batch_stops_everything_after_it_and_the_error_is_raised_once() -> None:
    target = _Gate(hold_at=2, fail=StoreUnavailableError("dropped at batch 2"))
    target.release.set()
    with pytest.raises(StoreUnavailableError, match="batch 2"):
        migrate(Endpoint(_source(8 * SMALL), None), Endpoint(target, None))
    assert (target.calls, target.finished) == (2, 1)


def test_store_spans_from_the_writer_thread_are_children_of_the_callers_span(
    otel: Any,
) -> None:
    # the writer runs in its own thread: without the caller's context its restore
    # spans become roots of traces of their own (inline writes made them children)
    from dq_stores.telemetry import _LAYER

    source, target = _source(3 * SMALL), MemoryBackend()
    with _LAYER._tracer.start_as_current_span("outer") as outer:
        report = migrate(Endpoint(source, None), Endpoint(target, None))
    assert report.ok
    assert report.keys_written == 3 * SMALL
    restores = [s for s in otel.spans() if s.name == f"restore_many {KIND}"]
    assert len(restores) == 3
    assert [s.parent.span_id if s.parent else None for s in restores] == [
        outer.get_span_context().span_id
    ] * 3


def _conflicting_target(
    make: Callable[[], DocumentBackend], source: DocumentBackend, n: int
) -> tuple[DocumentBackend, list[str], list[str]]:
    """A target holding, in every batch, one key differently and one identically."""
    target = make()
    differ = _keys(n)[7::SMALL]
    same = _keys(n)[11::SMALL]
    _fill(target, SCOPE, differ, salt=99)
    target.restore_many(
        SCOPE, KIND, [(h[-1].key, h) for h in source.iter_histories(SCOPE) if h[-1].key in same]
    )
    _fill(target, OTHER, _keys(n)[:50], salt=5)
    return target, differ, same


def _check_merge(source: DocumentBackend, make: Callable[[], DocumentBackend], n: int) -> None:
    target, differ, same = _conflicting_target(make, source, n)
    before = {k: [comparable(d) for d in target.history(SCOPE, KIND, k)] for k in differ}
    other = _histories(target, OTHER)
    report = migrate(Endpoint(source, None), Endpoint(target, None))
    assert len(report.conflicts) == len(differ) > 4
    assert all(any(repr(k) in line for line in report.conflicts) for k in differ)
    assert (report.keys_written, report.keys_skipped) == (n - len(differ) - len(same), len(same))
    for key in differ:  # nothing overwritten
        assert [comparable(d) for d in target.history(SCOPE, KIND, key)] == before[key]
    moved = {h[0][1]: h for h in _histories(source, SCOPE)}
    for history in _histories(target, SCOPE):
        if history[0][1] not in differ:
            assert history == moved[history[0][1]]
    assert _histories(target, OTHER) == other


def test_merge_with_conflicts_in_every_batch_reports_all_and_overwrites_none() -> None:
    _check_merge(_source(6 * SMALL + 3), MemoryBackend, 6 * SMALL + 3)


# -- PostgreSQL: one statement per batch, as an ordinary role under row-level security -


@pytest.fixture
def pg(postgres_database: Any, postgres_url: str) -> Any:
    """A backend connected as an application role with docs/operations.md's grants
    only: not the owner, no superuser, no BYPASSRLS — row-level security applies."""
    import uuid

    import psycopg
    from tests.integration.test_doctor_postgres import documented_grants

    from dq_stores.sql import SqlBackend, schema

    db = postgres_database
    schema.upgrade(postgres_url)  # as the owner
    role = f"dq_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db.server.admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD 'app-pw'")
    owner_dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute(documented_grants(db.name, role))
    try:
        url = db.server.sqlalchemy_url(db.name, role, "app-pw")
        with SqlBackend(url, pool_size=2) as backend:
            flags = backend._run(
                lambda conn: conn.execute(
                    "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
                ).fetchone(),
                safe=True,
            )
            assert tuple(flags) == (False, False)
            yield backend
    finally:
        with psycopg.connect(db.admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_postgres_merge_with_conflicts_in_every_batch_reports_all(pg: Any) -> None:
    n = 6 * SMALL + 3
    _check_merge(_source(n), lambda: pg, n)


@pytest.mark.postgres
@pytest.mark.parametrize("replace", [False, True])
def test_postgres_backend_terminated_mid_batch_writes_nothing_of_it_or_after(
    pg: Any, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch, replace: bool
) -> None:
    import psycopg

    from dq_stores.sql import _restore

    n = 6 * SMALL + 3
    source = _source(n)
    if replace:  # the target holds other histories of every key: replaced per batch
        _fill(pg, SCOPE, _keys(n), salt=7)
    _fill(pg, OTHER, _keys(40), salt=5)
    before, other = _histories(pg, SCOPE), _histories(pg, OTHER)
    real = _restore.restore_postgres
    calls: list[int] = []

    def killed_at_batch_3(conn: Any, *args: Any) -> None:
        calls.append(len(args[2]))
        if len(calls) != 3:
            return real(conn, *args)
        pid = conn.info.backend_pid

        def kill() -> None:  # once the batch's statement waits on the lock: terminate it
            with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
                for _ in range(500):
                    row = admin.execute(
                        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()
                    if row and row[0] == "Lock":
                        break
                    time.sleep(0.02)
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        killer = threading.Thread(target=kill)
        with psycopg.connect(postgres_admin_url) as locker:  # holds the lock until it ends
            locker.execute("LOCK TABLE dq_heads IN ACCESS EXCLUSIVE MODE")
            killer.start()
            try:
                return real(conn, *args)
            finally:
                killer.join()

    monkeypatch.setattr(_restore, "restore_postgres", killed_at_batch_3)
    with pytest.raises(StoreUnavailableError):
        migrate(Endpoint(source, None), Endpoint(pg, None), replace=replace)
    assert calls == [SMALL] * 3  # not retried (it may have committed), nothing after it
    order = [h[-1].key for h in source.iter_histories(SCOPE)]
    done = set(order[: 2 * SMALL])
    moved = {h[0][1]: h for h in _histories(source, SCOPE)}
    kept = {h[0][1]: h for h in before}
    expected = {**kept, **{k: moved[k] for k in done}}
    assert _histories(pg, SCOPE) == sorted(expected.values(), key=lambda h: str(h[0][1]))
    assert _histories(pg, OTHER) == other

    monkeypatch.setattr(_restore, "restore_postgres", real)
    again = migrate(Endpoint(source, None), Endpoint(pg, None), replace=replace, verify=True)
    assert again.ok, again.as_dict()
    assert again.verified
    assert (again.keys_written, again.keys_skipped) == ((n, 0) if replace else (n - 40, 40))
    assert _histories(pg, SCOPE) == _histories(source, SCOPE)
    assert _answers(pg, SCOPE) == _answers(source, SCOPE)
    assert _histories(pg, OTHER) == other


def _hostile_source(salt: int, pruned: bool) -> MemoryBackend:
    from dq_stores.documents import ANY

    source = MemoryBackend()
    keys = [*HOSTILE_KEYS, "dq-restore-conflict:1", "x'); DROP TABLE dq_heads; --", "{a,b}"]
    _fill(source, SCOPE, keys, salt)
    if pruned:
        for key in keys[1::4]:
            source.put(SCOPE, KIND, doc(key, [salt, "more"], tag="w"), ANY)
            source.prune_history(SCOPE, KIND, key, 2)
    return source


@pytest.mark.postgres
def test_hostile_histories_restore_on_postgres_exactly_as_on_sqlite(pg: Any, tmp_path: Any) -> None:
    from dq_stores.sql import SqlBackend

    seed = MemoryBackend()
    _fill(seed, OTHER, list(HOSTILE_KEYS), salt=5)
    other = _histories(seed, OTHER)
    with SqlBackend(f"sqlite:///{tmp_path / 'dst.sqlite3'}") as lite:
        targets = (pg, lite)
        for target in targets:
            target.restore_many(OTHER, KIND, [(h[-1].key, h) for h in seed.iter_histories(OTHER)])
            assert _histories(target, OTHER) == other
        # a plain migration: pruned histories, their markers, tombstones, odd keys
        first = _hostile_source(0, pruned=True)
        assert any(h[-1].kind == PRUNED_KIND for h in first.iter_histories(SCOPE))
        for target in targets:
            report = migrate(Endpoint(first, None), Endpoint(target, None), verify=True)
            assert report.ok, report.as_dict()
            assert report.verified
        assert _histories(pg, SCOPE) == _histories(lite, SCOPE) == _histories(first, SCOPE)
        assert _answers(pg, SCOPE) == _answers(lite, SCOPE) == _answers(first, SCOPE)
        # replaced by histories from revision 1: the markers must go, on both
        second = _hostile_source(1, pruned=False)
        for target in targets:
            report = migrate(Endpoint(second, None), Endpoint(target, None), replace=True)
            assert report.ok, report.as_dict()
            assert report.keys_written == report.keys
        assert _histories(pg, SCOPE) == _histories(lite, SCOPE) == _histories(second, SCOPE)
        assert _answers(pg, SCOPE) == _answers(lite, SCOPE) == _answers(second, SCOPE)
        assert tally_endpoint(Endpoint(pg, None), [SCOPE], []) == tally_endpoint(
            Endpoint(second, None), [SCOPE], []
        )
        for target in targets:
            assert _histories(target, OTHER) == other


@pytest.mark.postgres
@pytest.mark.parametrize("where", [0, 7, -1])
def test_a_postgres_restore_conflict_names_the_first_taken_key(pg: Any, where: int) -> None:
    from dq_stores.documents import ANY

    batch = [(h[-1].key, h) for h in _hostile_source(0, pruned=False).iter_histories(SCOPE)]
    assert len({len(h) for _k, h in batch}) >= 3
    assert any(h[-1].deleted for _k, h in batch)
    taken = batch[where][0]  # the first key of the batch with a history: named
    present = {taken, batch[-1][0]}  # and a later one, not named
    target = Scope("restored", "prod")
    for key in present:
        pg.put(target, KIND, doc(key, "already"), ANY)
    with pytest.raises(ConflictError) as raised:
        pg.restore_many(target, KIND, batch)
    assert f"{KIND} {taken!r} already has a history" in str(raised.value)
    assert sorted(h[-1].key for h in pg.iter_histories(target)) == sorted(present)
    assert all(len(h) == 1 for h in pg.iter_histories(target))


@pytest.mark.postgres
def test_a_postgres_batch_of_tombstones_only_restores_without_postings(pg: Any) -> None:
    source = MemoryBackend()
    _fill(source, SCOPE, _keys(SMALL))
    for history in list(source.iter_histories(SCOPE))[1::2]:
        if not history[-1].deleted:
            source.delete(SCOPE, KIND, history[-1].key)
    dead = [(h[-1].key, h) for h in source.iter_histories(SCOPE) if h[-1].deleted]
    assert len(dead) > 2
    assert pg.restore_many(SCOPE, KIND, dead) == len(dead)
    live = [(h[-1].key, h) for h in source.iter_histories(SCOPE) if not h[-1].deleted]
    assert pg.restore_many(SCOPE, KIND, live) == len(live)
    assert _histories(pg, SCOPE) == _histories(source, SCOPE)
    assert _answers(pg, SCOPE) == _answers(source, SCOPE)
