"""Batches written on a background thread: in order, nothing after a failure, failures raised."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from dq_metadata.errors import IntegrityError, StoreUnavailableError
from dq_metadata.scope import Scope
from dq_registries.operations.transfer import Endpoint, _sink, migrate
from dq_registries.operations.transfer._background import BackgroundWriter, InlineWriter
from dq_stores.documents import StoredDocument
from dq_stores.memory import MemoryBackend
from dq_stores.testing._helpers import doc

SCOPE = Scope("acme", "prod")


def test_items_are_written_in_order_and_close_waits_for_them() -> None:
    written: list[int] = []
    writer = BackgroundWriter(written.append)
    for i in range(50):
        writer.submit(i)
    writer.close()
    assert written == list(range(50))
    writer.close()  # idempotent


def test_nothing_is_written_after_a_failure_which_is_raised_once() -> None:
    written: list[int] = []
    release = threading.Event()

    def write(item: int) -> None:
        if item == 2:
            release.wait(5)
            raise StoreUnavailableError("down")
        written.append(item)

    writer = BackgroundWriter(write)
    for i in range(4):  # 3 waits behind 2, which is stuck: submit(3) blocks until 2 is taken
        writer.submit(i)
    release.set()
    with pytest.raises(StoreUnavailableError, match="down"):
        writer.close()
    assert written == [0, 1]  # 3 was queued behind the failed batch: dropped
    writer.close()  # raised once


def test_a_failure_is_raised_at_the_next_hand_over() -> None:
    def write(item: int) -> None:
        raise StoreUnavailableError(f"down at {item}")

    writer = BackgroundWriter(write)
    writer.submit(0)

    def hand_over() -> None:
        # submit(2) returns only once 1 was taken, i.e. after 0's failure was
        # recorded: submit(3) raises it, if an earlier hand-over did not
        for item in (1, 2, 3):
            writer.submit(item)

    with pytest.raises(StoreUnavailableError, match="down at 0"):
        hand_over()
    writer.close()  # raised once


def test_inline_writer_writes_at_once() -> None:
    written: list[int] = []
    writer = InlineWriter(written.append)
    writer.submit(1)
    assert written == [1]
    writer.close()


class _FailingTarget(MemoryBackend):
    """Refuses its ``fail_at``-th restore batch (1-based)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.calls = 0

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise StoreUnavailableError("the target went away")
        super()._restore_many(scope, kind, histories, replace)


def _source(keys: int) -> MemoryBackend:
    source = MemoryBackend()
    source.put_many(SCOPE, "contract", [doc(f"k{i:04d}", i) for i in range(keys)])
    return source


@pytest.mark.parametrize("background", [True, False])
def test_migrate_writes_nothing_after_a_failed_batch(
    monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    monkeypatch.setattr(_sink, "BACKGROUND_WRITES", background)
    target = _FailingTarget(fail_at=2)
    with pytest.raises(StoreUnavailableError, match="went away"):
        migrate(Endpoint(_source(5 * _sink.BATCH_KEYS), None), Endpoint(target, None))
    assert target.calls == 2  # batches 3.. were never attempted
    assert target.count(SCOPE, "contract") == _sink.BATCH_KEYS  # batch 1 only


class _BrokenSource(MemoryBackend):
    """Yields ``good`` histories, then fails as a damaged source would."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def _iter_histories(self, scope: Scope, kind: str | None) -> Iterator[list[StoredDocument]]:
        for n, history in enumerate(super()._iter_histories(scope, kind)):
            if n == self.good:
                raise IntegrityError("a damaged revision")
            yield history


def test_a_source_failure_still_waits_for_the_batches_handed_over() -> None:
    source = _BrokenSource(good=2 * _sink.BATCH_KEYS + 10)
    source.put_many(SCOPE, "contract", [doc(f"k{i:04d}", i) for i in range(3 * _sink.BATCH_KEYS)])
    target = MemoryBackend()
    with pytest.raises(IntegrityError, match="damaged"):
        migrate(Endpoint(source, None), Endpoint(target, None))
    # the two full batches were written before the error surfaced, as inline writes
    # would have; the partial third one was not
    assert target.count(SCOPE, "contract") == 2 * _sink.BATCH_KEYS


def _keys(histories: Sequence[list[StoredDocument]]) -> list[str]:
    return [h[-1].key for h in histories]


def test_a_migration_with_background_writes_equals_one_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = _source(3 * _sink.BATCH_KEYS + 7)
    targets = []
    for background in (True, False):
        monkeypatch.setattr(_sink, "BACKGROUND_WRITES", background)
        target = MemoryBackend()
        report = migrate(Endpoint(source, None), Endpoint(target, None), verify=True)
        assert report.ok
        assert report.keys_written == 3 * _sink.BATCH_KEYS + 7
        targets.append(sorted(_keys(list(target.iter_histories(SCOPE)))))
    assert targets[0] == targets[1]


def test_abandon_waits_for_what_was_handed_over_within_the_grace() -> None:
    written: list[int] = []
    release = threading.Event()

    def write(item: int) -> None:
        release.wait(5)
        written.append(item)

    writer: BackgroundWriter[int] = BackgroundWriter(write)
    writer.submit(1)
    writer.submit(2)  # queued behind 1
    threading.Timer(0.2, release.set).start()
    writer.abandon(3.0)
    assert written == [1, 2]
    assert not writer._thread.is_alive()


def test_abandon_gives_up_after_the_grace_and_writes_nothing_more() -> None:
    written: list[int] = []
    release = threading.Event()

    def write(item: int) -> None:
        release.wait(10)  # a statement waiting on a lock
        written.append(item)

    writer: BackgroundWriter[int] = BackgroundWriter(write)
    writer.submit(1)
    writer.submit(2)  # queued: never started
    started = time.monotonic()
    writer.abandon(0.3)
    assert 0.25 <= time.monotonic() - started < 2.0
    assert writer._thread.daemon  # does not keep the process alive
    release.set()
    writer._done.wait(5)
    assert written == [1]  # the batch under way ended; the queued one was dropped
