"""The target side: results objects uploaded, histories restored in batches.

Idempotent and resumable: a key the target already holds with exactly the same
history is skipped; one holding a different history is a reported conflict and
is left alone. Nothing is overwritten unless ``replace`` is asked for: then each
batch of keys is restored with ``restore_many(..., replace=True)`` — the target
keys' histories are replaced atomically by the source's. Each key is restored
atomically, so a transfer killed at any point and run again finishes with the
same target as an uninterrupted run, without duplicates.

A history pruned by ``dq gc`` (starting at revision k > 1) needs its
pruned-history marker in the target first. Sources and version-2 archives yield
the markers first; a version-1 archive yields them in kind order, so pruned
histories met before the scope's markers are held back until the scope ends.

Batches are written by a :class:`BackgroundWriter` thread (unless
``BACKGROUND_WRITES`` is off), in order, while the caller reads the next batch: use the sink as a context manager (leaving it
waits for the writer, also when the caller fails) and call :meth:`Sink.flush`
once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from dq_metadata.errors import ConflictError, IntegrityError, MisconfiguredError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.operations.transfer._background import BackgroundWriter, InlineWriter
from dq_registries.operations.transfer._endpoint import Endpoint
from dq_registries.operations.transfer._events import HistoryEvent, ResultEvent, TransferReport
from dq_registries.operations.transfer._results import relink
from dq_stores.documents import StoredDocument
from dq_stores.results import ResultRef
from dq_stores.retention import PRUNED_KIND

__all__ = ["BATCH_KEYS", "INTERRUPT_GRACE", "Sink", "comparable"]

#: Keys per ``restore_many`` call.
BATCH_KEYS = 500

#: Write batches on a :class:`BackgroundWriter` thread while the next one is read
#: (False: on the caller's thread, one after the other). ADR 0013 has the figures:
#: a gain while a core is free, a loss while both are busy.
BACKGROUND_WRITES = True

#: Seconds a Ctrl-C waits for the batch being written on the writer thread before
#: the transfer gives up on it (the batch ends whole or absent; running again resumes).
INTERRUPT_GRACE = 2.0


def comparable(doc: StoredDocument) -> tuple[object, ...]:
    """A revision as it must read back after a transfer (scope aside)."""
    return (
        doc.kind,
        doc.key,
        doc.revision,
        doc.body,
        doc.sha256,
        dict(doc.index.fields),
        doc.index.sort_key,
        doc.written_at,
        doc.deleted,
    )


@dataclass
class _Batch:
    scope: Scope
    kind: str
    items: list[tuple[str, list[StoredDocument]]]


class Sink:
    """Writes events into ``target``; counts into ``report``."""

    def __init__(self, target: Endpoint, report: TransferReport, *, replace: bool = False) -> None:
        self._target = target
        self._report = report
        self._replace = replace
        self._links: dict[Scope, dict[tuple[str, str], ResultRef]] = {}
        self._batch: _Batch | None = None
        self._markers_seen: set[Scope] = set()
        self._held: list[tuple[Scope, list[StoredDocument]]] = []
        writer = BackgroundWriter if BACKGROUND_WRITES else InlineWriter
        self._writer: BackgroundWriter[_Batch] | InlineWriter[_Batch] = writer(self._store)

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait for the batches handed over so far (a write failure is raised).

        After a Ctrl-C (``KeyboardInterrupt``), batches not yet started are dropped
        and the one being written is waited for at most :data:`INTERRUPT_GRACE`
        seconds: a statement waiting on a lock is not left to hold the command.
        """
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._writer.abandon(INTERRUPT_GRACE)
        else:
            self._writer.close()

    def result(self, event: ResultEvent) -> None:
        """Upload one results object and remember its new reference for its runs.

        Raises:
            MisconfiguredError: the target has no results store.
            IntegrityError: the copy does not have the source's size and sha256.
        """
        results = self._target.results
        if results is None:
            raise MisconfiguredError(
                f"run {event.run_id!r} in {event.scope} has offloaded results but the target "
                "configuration has no results store"
            )
        ref = event.ref
        new = results.upload(event.scope, event.run_id, event.name, event.chunks, ref.content_type)
        if (new.sha256, new.size) != (ref.sha256, ref.size):
            raise IntegrityError(
                f"the copy of run {event.run_id!r}'s results in {event.scope} does not match "
                "the source's size/sha256"
            )
        self._links.setdefault(event.scope, {})[(ref.run_id, ref.name)] = new
        self._report.results_copied += 1

    def history(self, event: HistoryEvent) -> None:
        history = relink(event.history, self._links.get(event.scope, {}))
        kind = history[-1].kind
        if self._batch is not None and self._batch.scope != event.scope:
            self._release_held()
        if kind == PRUNED_KIND:
            self._markers_seen.add(event.scope)
        elif history[0].revision > 1 and event.scope not in self._markers_seen:
            self._held.append((event.scope, history))  # its marker comes later (version 1)
            return
        self._add(event.scope, kind, history)

    def _add(self, scope: Scope, kind: str, history: list[StoredDocument]) -> None:
        batch = self._batch
        if batch is None or (batch.scope, batch.kind) != (scope, kind):
            self._write_batch()
            batch = self._batch = _Batch(scope, kind, [])
        batch.items.append((history[-1].key, history))
        if len(batch.items) >= BATCH_KEYS:
            self._write_batch()

    def _release_held(self) -> None:
        """Write the held-back pruned histories, once their scope's markers are in."""
        self._write_batch()
        held, self._held = self._held, []
        for scope, history in held:
            self._add(scope, history[-1].kind, history)
        self._write_batch()

    def flush(self) -> None:
        """Write everything pending and wait until it is written (call once at the end).

        Raises whatever a batch's write raised (nothing after that batch was written).
        """
        self._release_held()
        self._writer.close()

    def _write_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None and batch.items:
            self._writer.submit(batch)

    def _store(self, batch: _Batch) -> None:
        """Restore one batch (on the writer thread); a conflicting batch key by key."""
        backend = self._target.backend
        try:
            backend.restore_many(batch.scope, batch.kind, batch.items, replace=self._replace)
        except ConflictError:
            for key, history in batch.items:
                self._one(batch.scope, batch.kind, key, history)
            return
        self._report.keys_written += len(batch.items)

    def _one(self, scope: Scope, kind: str, key: str, history: list[StoredDocument]) -> None:
        backend = self._target.backend
        try:
            backend.restore(scope, kind, key, history)
            self._report.keys_written += 1
            return
        except ConflictError:
            pass
        try:
            existing = backend.history(scope, kind, key)
        except NotFoundError:  # pragma: no cover - it conflicted a moment ago
            existing = []
        if [comparable(d) for d in existing] == [comparable(d) for d in history]:
            self._report.keys_skipped += 1
            return
        self._report.conflicts.append(
            f"{scope} {kind} {key!r}: the target holds a different history "
            f"({len(existing)} revisions, the source {len(history)}); left as it is"
        )
