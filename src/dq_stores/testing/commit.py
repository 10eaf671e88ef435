"""Conformance: atomic multi-document commits (``DocumentBackend.commit``).

All-or-nothing, checked against the state the commit is applied to, isolated from
concurrent commits and single writes (threads and processes), and guards
(``ConditionCheck``) that fail once the guarded document changed.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest

from dq_metadata.canonical import content_hash
from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    ANY,
    MAX_COMMIT_OPERATIONS,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    DocumentWrite,
    FieldFilter,
    Operation,
    Put,
    Query,
    at_revision,
)
from dq_stores.testing._helpers import KIND, OTHER_SCOPES, SCOPE, doc, value_of

BackendFactory = Callable[[], DocumentBackend]
OTHER_KIND = "gadget"


def _state(backend: DocumentBackend, keys: tuple[str, ...], kind: str = KIND) -> list[Any]:
    """(revision count, live value or None) of each key, to compare before and after."""
    out: list[Any] = []
    for key in keys:
        try:
            history = backend.history(SCOPE, kind, key)
        except NotFoundError:
            out.append(None)
            continue
        head = history[-1]
        out.append((len(history), None if head.deleted else value_of(head.body)))
    return out


def transfer(backend: DocumentBackend, rounds: int, reader_checks: bool = False) -> int:
    """Move 1 from ``a`` to ``b`` ``rounds`` times, each a read + guarded two-key commit.

    ``a + b`` is invariant; returns the conflicts seen (retried).
    """
    conflicts = done = 0
    while done < rounds:
        a = backend.get(SCOPE, KIND, "a")
        b = backend.get(SCOPE, KIND, "b")
        try:
            backend.commit(
                SCOPE,
                [
                    Put(KIND, doc("a", value_of(a.body) - 1), at_revision(a.revision)),
                    Put(KIND, doc("b", value_of(b.body) + 1), at_revision(b.revision)),
                ],
            )
        except ConflictError:
            conflicts += 1
            continue
        done += 1
    return conflicts


def _process_transfer(factory: BackendFactory, rounds: int, gate: Any) -> None:
    backend = factory()
    try:
        gate.wait(30)
        transfer(backend, rounds)
    finally:
        backend.close()


def _process_claim(factory: BackendFactory, me: int, gate: Any, wins: Any) -> None:
    # Each process tries to create "x" guarded by "lock" being absent, and "lock" itself.
    backend = factory()
    try:
        gate.wait(30)
        try:
            backend.commit(
                SCOPE,
                [
                    ConditionCheck(OTHER_KIND, "guard", MUST_NOT_EXIST),
                    Put(KIND, doc("claimed", me), MUST_NOT_EXIST),
                    Put(KIND, doc(f"by-{me}", me), MUST_NOT_EXIST),
                ],
            )
        except ConflictError:
            return
        with wins.get_lock():
            wins.value += 1
    finally:
        backend.close()


class CommitConformance:
    """``commit``: all-or-nothing, guards, validation, isolation and no lost update."""

    supports_multiprocess: ClassVar[bool] = True
    process_count: ClassVar[int] = 4
    commits_per_process: ClassVar[int] = 8

    # -- what a commit does ---------------------------------------------------
    def test_commit_applies_every_operation_and_returns_revisions(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("upd", 1), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, doc("gone", 1), MUST_NOT_EXIST)
        backend.put(SCOPE, OTHER_KIND, doc("guarded", 1), MUST_NOT_EXIST)
        result = backend.commit(
            SCOPE,
            [
                Put(KIND, doc("new", 1, sort_key="n", color="red"), MUST_NOT_EXIST),
                Put(KIND, doc("upd", 2, color="blue"), at_revision(1)),
                Delete(KIND, "gone", at_revision(1)),
                ConditionCheck(OTHER_KIND, "guarded", at_revision(1)),
                ConditionCheck(OTHER_KIND, "never", MUST_NOT_EXIST),
                Put(OTHER_KIND, doc("other-kind", 3), ANY),
            ],
        )
        assert len(result) == 6
        new, upd, gone, check1, check2, other = result
        assert new is not None
        assert (new.key, new.revision, new.deleted) == ("new", 1, False)
        assert upd is not None
        assert (upd.key, upd.revision) == ("upd", 2)
        assert gone is not None
        assert (gone.key, gone.revision, gone.deleted) == ("gone", 2, True)
        assert check1 is None
        assert check2 is None
        assert other is not None
        assert (other.kind, other.revision) == (OTHER_KIND, 1)
        assert value_of(backend.get(SCOPE, KIND, "new").body) == 1
        assert value_of(backend.get(SCOPE, KIND, "upd").body) == 2
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "gone")
        assert backend.get(SCOPE, OTHER_KIND, "guarded").revision == 1
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, OTHER_KIND, "never")

    def test_committed_documents_are_indexed_like_single_writes(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("i1", 1, sort_key="1", color="red"), MUST_NOT_EXIST)
        backend.commit(
            SCOPE,
            [
                Put(KIND, doc("i1", 2, sort_key="1", color="blue"), at_revision(1)),
                Put(KIND, doc("i2", 3, sort_key="2", color="red"), MUST_NOT_EXIST),
            ],
        )
        red = backend.query(SCOPE, KIND, Query(filters=(FieldFilter("color", ("red",)),)))
        blue = backend.query(SCOPE, KIND, Query(filters=(FieldFilter("color", ("blue",)),)))
        assert [d.key for d in red.items] == ["i2"]
        assert [d.key for d in blue.items] == ["i1"]
        assert backend.count(SCOPE, KIND, (FieldFilter("color", ("red",)),)) == 1
        assert sorted(d.key for d in backend.iter_documents(SCOPE, KIND)) == ["i1", "i2"]
        backend.commit(SCOPE, [Delete(KIND, "i2")])
        assert backend.count(SCOPE, KIND, (FieldFilter("color", ("red",)),)) == 0
        assert [d.key for d in backend.query(SCOPE, KIND).items] == ["i1"]

    def test_commit_continues_revisions_and_history(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, KIND, doc("h", 1), MUST_NOT_EXIST)
        backend.commit(SCOPE, [Put(KIND, doc("h", 2), at_revision(1))])
        backend.commit(SCOPE, [Delete(KIND, "h", at_revision(2))])
        backend.commit(SCOPE, [Put(KIND, doc("h", 4), MUST_NOT_EXIST)])
        history = backend.history(SCOPE, KIND, "h")
        assert [(h.revision, h.deleted) for h in history] == [
            (1, False),
            (2, False),
            (3, True),
            (4, False),
        ]
        assert value_of(backend.get_revision(SCOPE, KIND, "h", 2).body) == 2

    # -- all or nothing ---------------------------------------------------------
    @pytest.mark.parametrize("failing", [0, 1, 2])
    def test_a_stale_expectation_anywhere_writes_nothing(
        self, backend: DocumentBackend, failing: int
    ) -> None:
        keys = ("p0", "p1", "p2")
        for key in keys:
            backend.put(SCOPE, KIND, doc(key, 0), MUST_NOT_EXIST)
        before = _state(backend, (*keys, "fresh"))
        ops: list[Operation] = [
            Put(KIND, doc(key, 1), at_revision(5 if i == failing else 1))
            for i, key in enumerate(keys)
        ]
        ops.append(Put(KIND, doc("fresh", 1), MUST_NOT_EXIST))
        with pytest.raises(ConflictError) as info:
            backend.commit(SCOPE, ops)
        assert repr(keys[failing]) in str(info.value)
        assert _state(backend, (*keys, "fresh")) == before

    def test_a_failing_guard_writes_nothing(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, OTHER_KIND, doc("ref", 1), MUST_NOT_EXIST)
        read = backend.get(SCOPE, OTHER_KIND, "ref")
        backend.put(SCOPE, OTHER_KIND, doc("ref", 2), at_revision(read.revision))
        with pytest.raises(ConflictError):
            backend.commit(
                SCOPE,
                [
                    Put(KIND, doc("job", 1), MUST_NOT_EXIST),
                    ConditionCheck(OTHER_KIND, "ref", at_revision(read.revision)),
                ],
            )
        assert _state(backend, ("job",)) == [None]

    def test_guard_absent_fails_once_the_key_exists_and_passes_after_delete(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, OTHER_KIND, doc("lock", 1), MUST_NOT_EXIST)
        guarded: list[Operation] = [
            ConditionCheck(OTHER_KIND, "lock", MUST_NOT_EXIST),
            Put(KIND, doc("w", 1)),
        ]
        with pytest.raises(ConflictError):
            backend.commit(SCOPE, guarded)
        assert _state(backend, ("w",)) == [None]
        backend.delete(SCOPE, OTHER_KIND, "lock")
        backend.commit(SCOPE, guarded)
        assert value_of(backend.get(SCOPE, KIND, "w").body) == 1

    def test_guard_on_a_missing_key_at_a_revision_conflicts(self, backend: DocumentBackend) -> None:
        with pytest.raises(ConflictError):
            backend.commit(
                SCOPE,
                [ConditionCheck(OTHER_KIND, "missing", at_revision(1)), Put(KIND, doc("w", 1))],
            )
        assert _state(backend, ("w",)) == [None]

    def test_deleting_a_missing_key_raises_not_found_and_writes_nothing(
        self, backend: DocumentBackend
    ) -> None:
        with pytest.raises(NotFoundError):
            backend.commit(SCOPE, [Put(KIND, doc("w", 1)), Delete(KIND, "missing")])
        assert _state(backend, ("w", "missing")) == [None, None]

    def test_a_commit_in_one_scope_never_touches_another(self, backend: DocumentBackend) -> None:
        other = OTHER_SCOPES[1]
        backend.put(other, KIND, doc("s", 1), MUST_NOT_EXIST)
        backend.commit(SCOPE, [Put(KIND, doc("s", 2), MUST_NOT_EXIST)])
        assert value_of(backend.get(other, KIND, "s").body) == 1
        assert backend.history(other, KIND, "s")[-1].revision == 1
        with pytest.raises(ConflictError):
            # the guard is evaluated in SCOPE, where "s" is at revision 1 already
            backend.commit(SCOPE, [ConditionCheck(KIND, "s", MUST_NOT_EXIST)])

    # -- validation before any I/O ----------------------------------------------
    def test_invalid_commits_are_refused_before_any_io(self, backend: DocumentBackend) -> None:
        body = b'{"key":"x"}'
        bad_hash = DocumentWrite("x", body, "0" * 64)
        cases: list[Any] = [
            [],
            [Put(KIND, doc(f"k{i}", i)) for i in range(MAX_COMMIT_OPERATIONS + 1)],
            [Put(KIND, doc("dup", 1)), Put(KIND, doc("dup", 2))],
            [Put(KIND, doc("dup", 1)), ConditionCheck(KIND, "dup", MUST_NOT_EXIST)],
            [Put(KIND, bad_hash)],
            [Put("Bad Kind", doc("x", 1))],
            [Put(KIND, doc("ok", 1)), Delete(KIND, "")],
            [Delete(KIND, "x", MUST_NOT_EXIST)],
            [ConditionCheck(KIND, "x", ANY)],
            ["not an operation"],
            "not a sequence",
        ]
        for ops in cases:
            with pytest.raises(ValidationError):
                backend.commit(SCOPE, ops)
        assert list(backend.iter_documents(SCOPE)) == []

    def test_the_same_key_in_two_kinds_is_two_operations(self, backend: DocumentBackend) -> None:
        backend.commit(SCOPE, [Put(KIND, doc("same", 1)), Put(OTHER_KIND, doc("same", 2))])
        assert value_of(backend.get(SCOPE, KIND, "same").body) == 1
        assert value_of(backend.get(SCOPE, OTHER_KIND, "same").body) == 2

    def test_a_full_commit_of_the_maximum_size_applies(self, backend: DocumentBackend) -> None:
        ops = [Put(KIND, doc(f"m{i:03}", i)) for i in range(MAX_COMMIT_OPERATIONS)]
        result = backend.commit(SCOPE, ops)
        assert all(r is not None and r.revision == 1 for r in result)
        assert backend.count(SCOPE, KIND) == MAX_COMMIT_OPERATIONS

    def test_committed_bytes_and_hashes_read_back_exactly(self, backend: DocumentBackend) -> None:
        write = doc("exact", {"n": 1, "f": 1.0, "s": "é\u2028"})
        backend.commit(SCOPE, [Put(KIND, write)])
        got = backend.get(SCOPE, KIND, "exact")
        assert (got.body, got.sha256) == (write.body, write.sha256)
        assert got.sha256 == content_hash(got.body)

    # -- isolation and races ------------------------------------------------------
    def test_thread_transfers_lose_nothing_and_readers_never_see_half(
        self, backend: DocumentBackend
    ) -> None:
        backend.commit(SCOPE, [Put(KIND, doc("a", 1000)), Put(KIND, doc("b", 0))])
        stop = threading.Event()
        torn: list[tuple[int, int]] = []

        def reader() -> None:
            # Writers change a and b together; read them in both orders so a commit
            # applied key by key would be seen from one side or the other.
            flip = False
            while not stop.is_set():
                first, second = ("a", "b") if flip else ("b", "a")
                x = backend.get(SCOPE, KIND, first)
                y = backend.get(SCOPE, KIND, second)
                a, b = (x, y) if first == "a" else (y, x)
                # a.revision - 1 transfers are done in a; b can only be ahead if read later
                done_a, done_b = a.revision - 1, b.revision - 1
                if first == "a" and done_b < done_a:
                    torn.append((done_a, done_b))
                if first == "b" and done_a < done_b:
                    torn.append((done_a, done_b))
                flip = not flip

        threads, rounds = 4, 10
        watcher = threading.Thread(target=reader)
        watcher.start()
        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda _: transfer(backend, rounds), range(threads)))
        finally:
            stop.set()
            watcher.join()
        a, b = backend.get(SCOPE, KIND, "a"), backend.get(SCOPE, KIND, "b")
        assert (value_of(a.body), value_of(b.body)) == (1000 - threads * rounds, threads * rounds)
        assert a.revision == b.revision == threads * rounds + 1
        assert torn == []

    def test_racing_guarded_claims_in_threads_have_one_winner(
        self, backend: DocumentBackend
    ) -> None:
        barrier = threading.Barrier(8)

        def claim(i: int) -> bool:
            barrier.wait()
            try:
                backend.commit(
                    SCOPE,
                    [Put(KIND, doc("claim", i), MUST_NOT_EXIST), Put(OTHER_KIND, doc("log", i))],
                )
            except ConflictError:
                return False
            return True

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(claim, range(8)))
        assert results.count(True) == 1
        winner = results.index(True)
        assert value_of(backend.get(SCOPE, KIND, "claim").body) == winner
        # the losers wrote nothing: "log" has exactly the winner's revision
        assert [value_of(h.body) for h in backend.history(SCOPE, OTHER_KIND, "log")] == [winner]

    def test_write_skew_is_prevented_by_guards(self, backend: DocumentBackend) -> None:
        # Two commits each guard what the other writes: at most one may succeed.
        backend.put(SCOPE, KIND, doc("x", 0), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, doc("y", 0), MUST_NOT_EXIST)
        for round_ in range(20):
            x = backend.get(SCOPE, KIND, "x")
            y = backend.get(SCOPE, KIND, "y")
            barrier = threading.Barrier(2)

            def write(
                mine: str, theirs: Any, ours: Any, barrier: Any = barrier, round_: int = round_
            ) -> bool:
                barrier.wait()
                try:
                    backend.commit(
                        SCOPE,
                        [
                            Put(KIND, doc(mine, round_ + 1), at_revision(ours.revision)),
                            ConditionCheck(KIND, theirs.key, at_revision(theirs.revision)),
                        ],
                    )
                except ConflictError:
                    return False
                return True

            with ThreadPoolExecutor(2) as pool:
                a = pool.submit(write, "x", y, x)
                b = pool.submit(write, "y", x, y)
                wins = [a.result(), b.result()]
            assert wins.count(True) <= 1, f"round {round_}: both commits succeeded"

    def _require_processes(self) -> None:
        if not self.supports_multiprocess:
            pytest.skip("this backend cannot be shared between processes")

    def test_process_transfers_lose_nothing(
        self, backend: DocumentBackend, backend_factory: BackendFactory
    ) -> None:
        self._require_processes()
        backend.commit(SCOPE, [Put(KIND, doc("a", 1000)), Put(KIND, doc("b", 0))])
        ctx = multiprocessing.get_context("spawn")
        gate = ctx.Barrier(self.process_count)
        procs = [
            ctx.Process(
                target=_process_transfer, args=(backend_factory, self.commits_per_process, gate)
            )
            for _ in range(self.process_count)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        total = self.process_count * self.commits_per_process
        a, b = backend.get(SCOPE, KIND, "a"), backend.get(SCOPE, KIND, "b")
        assert (value_of(a.body), value_of(b.body)) == (1000 - total, total)
        assert a.revision == b.revision == total + 1

    def test_racing_guarded_claims_in_processes_have_one_winner(
        self, backend: DocumentBackend, backend_factory: BackendFactory
    ) -> None:
        self._require_processes()
        ctx = multiprocessing.get_context("spawn")
        gate = ctx.Barrier(self.process_count)
        wins = ctx.Value("i", 0)
        procs = [
            ctx.Process(target=_process_claim, args=(backend_factory, i, gate, wins))
            for i in range(self.process_count)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        assert wins.value == 1
        winner = value_of(backend.get(SCOPE, KIND, "claimed").body)
        assert [d.key for d in backend.iter_documents(SCOPE, KIND)] == sorted(
            ["claimed", f"by-{winner}"]
        )
