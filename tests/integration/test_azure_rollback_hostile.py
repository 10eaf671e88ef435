"""Hostile tests of the Azure rollback checks and the clocks around them (ADR 0004).

Legitimate operation must never look like a rollback or lose data: concurrent
writers and multi-document commits on the same keys, slow requests between the
archive and the head write, clocks skewed by hours. And rollbacks that the ADR
says are caught must be caught. Runs on Azurite.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from tests.integration._azure_helpers import RequestLog, counted_backend, memory_history, write

from dq_metadata.errors import ConflictError, IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend, _clock, _place, _query, _search, _txn
from dq_stores.azure_blob import backend as azure_backend
from dq_stores.documents import ANY, MUST_NOT_EXIST, Delete, FieldFilter, Put, Query
from dq_stores.search import search_fields
from dq_stores.verify import verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
KIND = "contract"
HOUR = 3600.0


class _Skewed(datetime):
    """``datetime`` whose ``now`` is off by ``skew``."""

    skew = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + cls.skew


def _skew_reader_clock(patch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's clock, as every reader-side module sees it, off by ``seconds``."""
    _Skewed.skew = timedelta(seconds=seconds)
    for module in (_query, _search, _txn):
        patch.setattr(module, "datetime", _Skewed)
    patch.setattr(_clock, "_now", lambda: time.time() + seconds)


def _keys(backend: AzureBlobBackend, dataset: str) -> list[str]:
    query = Query((FieldFilter("dataset", (dataset,)),))
    return [d.key for d in backend.query(ACME, KIND, query).items]


# -- clocks skewed by hours: no data hidden --------------------------------------------
@pytest.mark.parametrize(
    "finder",
    [
        "query",
        "search",
        "query on a passed-in client",
        "search on a passed-in client",
    ],
)
def test_a_reader_clock_hours_ahead_leaves_in_flight_entries_alone(
    azure_connection_string: str,
    azure_container: str,
    monkeypatch: pytest.MonkeyPatch,
    finder: str,
) -> None:
    """A writer has put its index entries and is about to commit the head; a reader
    whose clock is an hour ahead must not take them for 10-minute-old orphans and
    delete them — the document would then be missing from queries once committed."""
    log = RequestLog()
    writer, client = counted_backend(azure_connection_string, azure_container, log)
    entered, release = threading.Event(), threading.Event()

    def hold_head_write(method: str, path: str) -> None:
        if method == "PUT" and path.endswith("/contract/h/fresh"):
            entered.set()
            release.wait(30)

    doc = write("fresh", 1, dataset=("acme",), **search_fields(["quarterly report"]))
    with client:
        log.on_request = hold_head_write
        thread = threading.Thread(target=writer.put, args=(ACME, KIND, doc, MUST_NOT_EXIST))
        thread.start()
        try:
            assert entered.wait(30)
            with monkeypatch.context() as patch:
                _skew_reader_clock(patch, HOUR)
                with contextlib.ExitStack() as stack:
                    if finder.endswith("on a passed-in client"):
                        service = BlobServiceClient.from_connection_string(azure_connection_string)
                        stack.enter_context(service)
                        reader = AzureBlobBackend(azure_container, client=service)
                    else:
                        reader = AzureBlobBackend(
                            azure_container, connection_string=azure_connection_string
                        )
                    stack.enter_context(reader)
                    if finder.startswith("search"):
                        assert reader.search(ACME, KIND, "quarterly").hits == []
                    else:
                        assert _keys(reader, "acme") == []  # not committed yet
                time.sleep(0.5)  # background clean-up, if any, has run
        finally:
            release.set()
            thread.join(30)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as after:
        assert after.get(ACME, KIND, "fresh").revision == 1
        assert _keys(after, "acme") == ["fresh"]
        hits = after.search(ACME, KIND, "quarterly").hits
        assert [h.document.key for h in hits] == ["fresh"]
        assert not list(verify(after, scope=ACME))


def test_a_writer_clock_hours_ahead_waits_for_a_live_commit_instead_of_aborting_it(
    azure_connection_string: str,
    azure_container: str,
    raw: ContainerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pending commit younger than the lease is waited for: a writer whose clock
    is an hour ahead must not take it for an hour-old abandoned one and abort it."""
    from dq_stores.azure_blob import _commit

    commit_point = _commit.CommitMixin._commit_point
    outcomes: list[bool] = []

    def slow_commit_point(self: Any, *args: Any) -> bool:
        time.sleep(1.5)  # the other writer meets the lock meanwhile
        outcomes.append(commit_point(self, *args))
        return outcomes[-1]

    monkeypatch.setattr(_commit.CommitMixin, "_commit_point", slow_commit_point)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as seed:
        seed.put(ACME, KIND, write("a", 1), ANY)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as live:
        thread = threading.Thread(target=live.commit, args=(ACME, (Put(KIND, write("a", 2)),)))
        thread.start()
        head = raw.get_blob_client("acme/prod/contract/h/a")
        deadline = time.monotonic() + 20
        while "tx" not in (head.get_blob_properties().metadata or {}):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with monkeypatch.context() as patch:
            _skew_reader_clock(patch, HOUR)
            with AzureBlobBackend(
                azure_container, connection_string=azure_connection_string
            ) as ahead:
                assert ahead.put(ACME, KIND, write("a", 3), ANY).revision == 3
        thread.join(30)
    assert outcomes == [True]  # the live commit was not aborted under it


# -- concurrent legitimate operation with slow steps: never a rollback ---------------
class _Died(Exception):
    """A writer that stopped between two of its requests."""


def _slow_steps(patch: pytest.MonkeyPatch, rng: random.Random, lock: threading.Lock) -> None:
    """Sleep past ``ORDER_SLACK`` before some head writes and some locks; let some
    writers die between archiving and writing the head, some commits abort."""
    from dq_stores.azure_blob import _commit

    write_head = azure_backend.AzureBlobBackend._write_head
    lock_all = _commit.CommitMixin._lock_all
    commit_point = _commit.CommitMixin._commit_point

    def draw() -> float:
        with lock:
            return rng.random()

    def slow_write_head(self: Any, *args: Any) -> None:
        roll = draw()
        if roll < 0.3:
            time.sleep(2.6)
        elif roll < 0.4:
            raise _Died
        write_head(self, *args)

    def slow_lock_all(self: Any, *args: Any) -> Any:
        if draw() < 0.4:
            time.sleep(2.6)
        return lock_all(self, *args)

    def flaky_commit_point(self: Any, *args: Any) -> bool:
        if draw() < 0.25:
            return False  # refused: the commit aborts and starts again
        return bool(commit_point(self, *args))

    patch.setattr(azure_backend.AzureBlobBackend, "_write_head", slow_write_head)
    patch.setattr(_commit.CommitMixin, "_lock_all", slow_lock_all)
    patch.setattr(_commit.CommitMixin, "_commit_point", flaky_commit_point)


def _one_step(backend: AzureBlobBackend, choice: int, a: str, b: str, step: int) -> None:
    if choice == 0:
        backend.put(ACME, KIND, write(a, step, dataset=("acme",)), ANY)
    elif choice == 1:
        backend.delete(ACME, KIND, a, ANY)
    elif choice == 2:
        ops = (Put(KIND, write(a, step, dataset=("acme",))), Put(KIND, write(b, -step)))
        backend.commit(ACME, ops)
    else:
        backend.commit(ACME, (Put(KIND, write(a, step)), Delete(KIND, b)))


@pytest.mark.parametrize("seed", [7, pytest.param(2026, marks=pytest.mark.slow)])
def test_concurrent_writers_commits_and_slow_steps_are_never_a_rollback(
    azure_connection_string: str,
    azure_container: str,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """Two writer backends (puts, deletes, re-creates, two-key commits with guards)
    on the same three keys, with writes and locks slowed past the 2 s slack, writers
    dying between archive and head, commits refused; readers whose window checks
    every head call ``get`` and ``history`` all along. No ``IntegrityError``, and
    ``dq verify`` finds nothing."""
    monkeypatch.setattr(_place, "_PLACED_SKEW", 0.0)
    monkeypatch.setattr(_place, "_PLACED_NEAR", (0.0, 0.0))
    rng, rng_lock = random.Random(seed), threading.Lock()
    keys = ["k0", "k1", "k2"]

    def connect() -> AzureBlobBackend:
        return AzureBlobBackend(
            azure_container, connection_string=azure_connection_string, commit_lease=3.0
        )

    with connect() as seed_backend:
        for key in keys:
            seed_backend.put(ACME, KIND, write(key, 0, dataset=("acme",)), ANY)
    _slow_steps(monkeypatch, rng, rng_lock)
    alarms: list[str] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        local = random.Random(seed * 10 + n)
        with connect() as backend:
            for step in range(8):
                a, b = local.sample(keys, 2)
                try:
                    _one_step(backend, local.randrange(4), a, b, step)
                except (_Died, ConflictError, NotFoundError):
                    pass
                except IntegrityError as exc:
                    alarms.append(f"writer: {exc}")

    def reader() -> None:
        while not stop.is_set():
            with connect() as backend:  # a fresh process's view: every head checked
                for key in keys:
                    for call in (backend.get, backend.history):
                        try:
                            call(ACME, KIND, key)
                        except NotFoundError:
                            pass
                        except IntegrityError as exc:
                            alarms.append(f"{call.__name__} {key}: {exc}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads + readers:
        thread.start()
    for thread in threads:
        thread.join(240)
    stop.set()
    for thread in readers:
        thread.join(60)
    monkeypatch.undo()
    time.sleep(3.5)  # every lease ran out: leftovers of refused commits are settled
    with connect() as after:
        for key in keys:
            with contextlib.suppress(NotFoundError):
                after.put(ACME, KIND, write(key, "last"), ANY)  # settles leftover locks
        problems = [str(p) for p in verify(after, scope=ACME)]
    assert alarms == []
    assert problems == []


# -- restore (migrate into Azure) --------------------------------------------------------
def test_a_restored_history_read_back_with_every_head_checked_is_no_rollback(
    azure_connection_string: str, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restored heads carry their records' old times (far outside any window): their
    place is checked, and a restore archives nothing at the head's revision."""
    monkeypatch.setattr(_place, "_PLACED_SKEW", 0.0)
    monkeypatch.setattr(_place, "_PLACED_NEAR", (0.0, 0.0))
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as dest:
        dest.restore_many(
            ACME,
            KIND,
            [
                ("m1", memory_history(ACME, KIND, "m1", 4)),
                ("m2", memory_history(ACME, KIND, "m2", 1)),
            ],
        )
    time.sleep(2.5)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as back:
        assert back.get(ACME, KIND, "m1").revision == 4
        assert back.get(ACME, KIND, "m2").revision == 1
        exported = list(back.iter_histories(ACME, KIND))
        assert sorted(len(h) for h in exported) == [1, 4]
        back.put(ACME, KIND, write("m1", 5), ANY)
        assert [d.revision for d in back.history(ACME, KIND, "m1")] == [1, 2, 3, 4, 5]
        assert not list(verify(back, scope=ACME))


def _die_restoring(
    connection_string: str, container: str, key: str, revisions: int, at: str
) -> None:
    """A restore of ``key`` (``revisions`` long) that dies ``at`` its final head write
    or after sending its first archived revision: from then on it sends nothing (no
    clean-up, as after a SIGKILL)."""
    log = RequestLog()
    dying, client = counted_backend(connection_string, container, log)
    dead: list[str] = []
    heads, revisions_sent = [0], [0]
    lock = threading.Lock()

    def die(method: str, path: str) -> None:
        with lock:
            if not dead and method == "PUT":
                if path.endswith(f"/contract/h/{key}"):
                    heads[0] += 1
                    if at == "head" and heads[0] == 2:  # 1: its claim (the empty head)
                        dead.append(path)
                elif at == "revisions" and f"/contract/r/{key}/" in path:
                    revisions_sent[0] += 1
                    if revisions_sent[0] == 2:  # the first one was sent
                        dead.append(path)
            if dead:
                raise _Died

    with client:
        log.on_request = die
        with pytest.raises(_Died):
            dying.restore_many(ACME, KIND, [(key, memory_history(ACME, KIND, key, revisions))])


LEASE = 2.0


@pytest.mark.parametrize("at", ["head", "revisions"])
@pytest.mark.parametrize("then", ["put", "put_many", "commit", "restore"])
def test_a_key_written_after_a_restore_died_has_a_clean_history(
    azure_connection_string: str, azure_container: str, raw: ContainerClient, at: str, then: str
) -> None:
    """A restore that died leaves an empty head and revision blobs no head points to;
    ``dq verify`` reports it once the lease ran out; the key's next write (any kind)
    or restore clears them, and its history is its own."""
    _die_restoring(azure_connection_string, azure_container, "m1", 4, at)
    assert [b.name for b in raw.list_blobs(name_starts_with="acme/prod/contract/r/m1/")]
    time.sleep(LEASE + 0.5)
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=LEASE
    ) as app:
        with pytest.raises(NotFoundError):
            app.get(ACME, KIND, "m1")
        with pytest.raises(NotFoundError):
            app.history(ACME, KIND, "m1")
        assert {p.code for p in verify(app, scope=ACME)} == {"history"}
        if then == "restore":
            app.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 2))])
            assert [d.revision for d in app.history(ACME, KIND, "m1")] == [1, 2]
        for n in (1, 2, 3):  # the key is used normally
            if then == "put":
                app.put(ACME, KIND, write("m1", f"new {n}"), ANY)
            elif then == "put_many":
                app.put_many(ACME, KIND, [write("m1", f"new {n}")])
            else:
                app.commit(ACME, (Put(KIND, write("m1", f"new {n}")),))
        expected = [1, 2, 3, 4, 5] if then == "restore" else [1, 2, 3]
        assert [d.revision for d in app.history(ACME, KIND, "m1")] == expected
        assert not list(verify(app, scope=ACME))


# -- misses ------------------------------------------------------------------------------
GAP = 3.2


@pytest.mark.parametrize("back_to", [3, 2, 1])
def test_a_rollback_below_the_pruned_prefix_is_caught(
    azure_connection_string: str, azure_container: str, raw: ContainerClient, back_to: int
) -> None:
    """``dq gc`` pruned revisions 1..3 (head 4, marker "pruned through 3"); a saved
    head blob of revision 3 (by one) or older is uploaded again. No archived copy is
    left to compare with, but the marker proves revision 4 existed: a head at or
    below the pruned prefix went back."""
    head = raw.get_blob_client("acme/prod/contract/h/orders")
    saved: dict[int, tuple[bytes, dict[str, str]]] = {}
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as app:
        for n in (1, 2, 3, 4):
            app.put(ACME, KIND, write("orders", n), ANY)
            got = head.download_blob()
            saved[n] = (got.readall(), dict(got.properties.metadata or {}))
        assert app.prune_history(ACME, KIND, "orders", 4) == 3
        assert [d.revision for d in app.history(ACME, KIND, "orders")] == [4]
    time.sleep(GAP)
    body, meta = saved[back_to]
    head.upload_blob(body, overwrite=True, metadata=meta)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as reader:
        with pytest.raises(IntegrityError, match="rollback"):
            reader.history(ACME, KIND, "orders")
        assert {p.code for p in verify(reader, scope=ACME)} == {"head"}


@pytest.mark.parametrize("keep_from", [2, 3])
def test_a_rollback_to_revision_1_after_pruning_is_caught_and_costs_no_request(
    azure_connection_string: str, azure_container: str, raw: ContainerClient, keep_from: int
) -> None:
    """Pruning writes an empty ``r/{key}/pruned`` blob: ``history`` of a revision-1
    head reads the marker only when its listing holds that blob (no request more for
    any other revision-1 key); ``dq verify`` reads the marker for every such head, so
    a rollback that also deleted the ``pruned`` blob is still reported."""
    head = raw.get_blob_client("acme/prod/contract/h/orders")
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as app:
        app.put(ACME, KIND, write("orders", 1), ANY)
        got = head.download_blob()
        saved = (got.readall(), dict(got.properties.metadata or {}))
        app.put(ACME, KIND, write("fresh", 1), ANY)
        for n in range(2, keep_from + 2):
            app.put(ACME, KIND, write("orders", n), ANY)
        assert app.prune_history(ACME, KIND, "orders", keep_from) == keep_from - 1
    time.sleep(GAP)
    head.upload_blob(saved[0], overwrite=True, metadata=saved[1])
    log = RequestLog()
    reader, client = counted_backend(azure_connection_string, azure_container, log)
    with client, reader:
        log.requests.clear()
        assert [d.revision for d in reader.history(ACME, KIND, "fresh")] == [1]
        assert len(log.requests) == 2  # the listing and the head: no marker read
        with pytest.raises(IntegrityError, match="pruned"):
            reader.history(ACME, KIND, "orders")
        raw.delete_blob("acme/prod/contract/r/orders/pruned")
        assert {(p.code, p.key) for p in verify(reader, scope=ACME)} == {("head", "orders")}
