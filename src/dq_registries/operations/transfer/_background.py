"""A writer thread: the target writes batch k while the source is read for batch k+1.

Writing a batch into PostgreSQL (or Azure) is mostly waiting on the server, with
the GIL released; the reading thread fills the next batch meanwhile. The
batches are written one at a time, in the order given, by one thread — exactly
the sequence a single thread would write. At most one batch waits behind the one
being written (memory stays two batches). After a batch fails, nothing more is
written: later batches are dropped and the failure is raised to the reading
thread at its next hand-over, or by :meth:`BackgroundWriter.close`.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BackgroundWriter", "InlineWriter"]

T = TypeVar("T")

_STOP = object()


class BackgroundWriter(Generic[T]):
    """Calls ``write(item)`` for each :meth:`submit`-ted item, in order, on a thread of its own."""

    def __init__(self, write: Callable[[T], None], *, name: str = "dq-transfer-writer") -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None  # raised once, to the reading thread
        self._failed = False  # and nothing is written after it
        context = contextvars.copy_context()  # the caller's span, for the writes' spans
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name=name, daemon=True
        )
        self._stopping = False
        self._done = threading.Event()  # set as the loop ends (join is no reliable wait:
        self._thread.start()  # CPython 3.11 marks a thread stopped when a join is interrupted)

    def _loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                if self._failed:
                    continue  # a batch failed: write nothing after it
                try:
                    self._write(item)  # type: ignore[arg-type]
                except BaseException as exc:  # handed to the reading thread
                    self._error, self._failed = exc, True
        finally:
            self._done.set()

    def _raise(self) -> None:
        error = self._error
        if error is not None:
            self._error = None
            raise error

    def submit(self, item: T) -> None:
        """Queue ``item`` (blocks while one is already waiting).

        Raises whatever an earlier ``write`` raised (that item and everything
        queued after it were not written).
        """
        self._raise()
        self._queue.put(item)

    def close(self) -> None:
        """Wait until every submitted item is written (or dropped after a failure);
        raise an earlier ``write``'s exception. Idempotent: called again after an
        interrupted wait (``KeyboardInterrupt``), it waits again."""
        if not self._stopping:
            self._queue.put(_STOP)
            self._stopping = True
        self._done.wait()
        self._thread.join()  # it has left its loop: at once
        self._raise()

    def abandon(self, grace: float) -> None:
        """After an interrupt (``KeyboardInterrupt``): wait at most ``grace`` seconds
        for the items handed over, then write nothing more and leave.

        An item still being written after ``grace`` is left to its thread: a batch
        is one transaction, so it ends whole or not at all (a statement waiting on a
        lock cannot be cancelled from this thread; the writer is a daemon thread,
        so it does not keep the process alive). The writes' own error, if any, is
        dropped: the interrupt is what the caller sees.
        """
        deadline = time.monotonic() + grace
        if not self._stopping:
            try:
                self._queue.put(_STOP, timeout=grace)
            except queue.Full:  # the writer is still on an earlier item
                self._failed = True  # the queued item is never written
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                self._queue.put_nowait(_STOP)  # this thread is the only producer
            self._stopping = True
        if self._done.wait(max(0.0, deadline - time.monotonic())):
            self._thread.join()
        else:
            self._failed = True  # the loop writes nothing after the item under way
        self._error = None


class InlineWriter(Generic[T]):
    """:class:`BackgroundWriter`'s interface, writing each item at once on the caller's thread."""

    def __init__(self, write: Callable[[T], None]) -> None:
        self._write = write

    def submit(self, item: T) -> None:
        """Write ``item`` now (its exception propagates)."""
        self._write(item)

    def close(self) -> None:
        """Nothing is pending."""

    def abandon(self, grace: float) -> None:
        """Nothing is pending (an interrupted inline write was cancelled by psycopg)."""
