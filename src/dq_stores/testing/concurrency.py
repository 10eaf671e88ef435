"""Conformance: racing writers in threads and in separate processes."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest

from dq_metadata.errors import ConflictError
from dq_stores.backend import DocumentBackend
from dq_stores.documents import MUST_NOT_EXIST, at_revision
from dq_stores.testing._helpers import KIND, SCOPE, doc, value_of

BackendFactory = Callable[[], DocumentBackend]


def increment(backend: DocumentBackend, key: str, times: int) -> int:
    """Read-modify-write ``times`` increments with optimistic retries; returns conflicts seen."""
    conflicts = 0
    done = 0
    while done < times:
        current = backend.get(SCOPE, KIND, key)
        try:
            backend.put(
                SCOPE, KIND, doc(key, value_of(current.body) + 1), at_revision(current.revision)
            )
        except ConflictError:
            conflicts += 1
            continue
        done += 1
    return conflicts


def _process_incrementer(factory: BackendFactory, key: str, times: int, gate: Any) -> None:
    backend = factory()
    try:
        gate.wait(30)
        increment(backend, key, times)
    finally:
        backend.close()


def _process_creator(factory: BackendFactory, key: str, me: int, gate: Any, wins: Any) -> None:
    backend = factory()
    try:
        gate.wait(30)
        try:
            backend.put(SCOPE, KIND, doc(key, me), MUST_NOT_EXIST)
        except ConflictError:
            return
        with wins.get_lock():
            wins.value += 1
    finally:
        backend.close()


class ConcurrencyConformance:
    """Exactly one winner per revision; no lost update; across threads and processes."""

    supports_multiprocess: ClassVar[bool] = True
    process_count: ClassVar[int] = 4
    increments_per_process: ClassVar[int] = 10

    def test_racing_creates_in_threads_have_one_winner(self, backend: DocumentBackend) -> None:
        barrier = threading.Barrier(8)

        def create(i: int) -> bool:
            barrier.wait()
            try:
                backend.put(SCOPE, KIND, doc("race", i), MUST_NOT_EXIST)
            except ConflictError:
                return False
            return True

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create, range(8)))
        assert results.count(True) == 1
        assert len(backend.history(SCOPE, KIND, "race")) == 1
        assert value_of(backend.get(SCOPE, KIND, "race").body) == results.index(True)

    def test_racing_updates_in_threads_have_one_winner_per_revision(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("r", 0), MUST_NOT_EXIST)
        barrier = threading.Barrier(6)

        def update(i: int) -> bool:
            barrier.wait()
            try:
                backend.put(SCOPE, KIND, doc("r", i), at_revision(1))
            except ConflictError:
                return False
            return True

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(update, range(6)))
        assert results.count(True) == 1
        assert [h.revision for h in backend.history(SCOPE, KIND, "r")] == [1, 2]

    def test_thread_increments_lose_no_update(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, KIND, doc("counter", 0), MUST_NOT_EXIST)
        threads, times = 4, 15
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: increment(backend, "counter", times), range(threads)))
        head = backend.get(SCOPE, KIND, "counter")
        assert value_of(head.body) == threads * times
        assert head.revision == threads * times + 1
        history = backend.history(SCOPE, KIND, "counter")
        assert [value_of(h.body) for h in history] == list(range(threads * times + 1))

    def _require_processes(self) -> None:
        if not self.supports_multiprocess:
            pytest.skip("this backend cannot be shared between processes")

    def test_process_increments_lose_no_update(
        self, backend: DocumentBackend, backend_factory: BackendFactory
    ) -> None:
        self._require_processes()
        backend.put(SCOPE, KIND, doc("pcounter", 0), MUST_NOT_EXIST)
        ctx = multiprocessing.get_context("spawn")
        gate = ctx.Barrier(self.process_count)
        procs = [
            ctx.Process(
                target=_process_incrementer,
                args=(backend_factory, "pcounter", self.increments_per_process, gate),
            )
            for _ in range(self.process_count)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        total = self.process_count * self.increments_per_process
        head = backend.get(SCOPE, KIND, "pcounter")
        assert (value_of(head.body), head.revision) == (total, total + 1)
        history = backend.history(SCOPE, KIND, "pcounter")
        assert [value_of(h.body) for h in history] == list(range(total + 1))

    def test_racing_creates_in_processes_have_one_winner(
        self, backend: DocumentBackend, backend_factory: BackendFactory
    ) -> None:
        self._require_processes()
        ctx = multiprocessing.get_context("spawn")
        gate = ctx.Barrier(self.process_count)
        wins = ctx.Value("i", 0)
        procs = [
            ctx.Process(target=_process_creator, args=(backend_factory, "prace", i, gate, wins))
            for i in range(self.process_count)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(180)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        assert wins.value == 1
        assert len(backend.history(SCOPE, KIND, "prace")) == 1
