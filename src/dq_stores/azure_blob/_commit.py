"""Multi-document commits on Azure Blob: commit record, head locks, roll forward.

See docs/adr/0010-azure-multi-document-commit.md. Steps of one attempt:

1. read every head (in parallel), settle heads locked by other commits, check
   every operation against the heads (nothing written on failure);
2. in parallel: archive the old heads, add the new index entries, create the
   commit record ``pending`` (``If-None-Match: *``);
3. lock the heads one by one in name order (metadata ``tx``, ``If-Match`` the etag
   the checks read; a placeholder ``If-None-Match: *`` for a key without a head);
   a head that changed meanwhile aborts this attempt, which starts again at 1;
4. write the record ``committed`` with the new heads (``If-Match`` its pending
   etag): **the commit point**, exclusive with anyone's abort;
5. roll every head forward (``If-Match`` its lock etag), retire old index
   entries, delete the record.

Readers meeting a locked head read its record: committed → the record's new head,
otherwise the head's own bytes (the last committed revision). Writers meeting one
settle it first: roll a committed record forward, restore an aborted or vanished
one, wait for a pending one and abort it once older than the lease.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from dq_metadata.errors import ConflictError, DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import azure_errors
from dq_stores.azure_blob._clock import ServiceClock
from dq_stores.azure_blob._locks import TxBlobs, best_effort, poll_until
from dq_stores.azure_blob._records import HeadRecord, index_digest
from dq_stores.azure_blob._txn import (
    ABORTED,
    COMMITTED,
    PENDING,
    STATE,
    Blob,
    TxOp,
    TxRecord,
    clean_metadata,
)
from dq_stores.documents import (
    ConditionCheck,
    DocumentWrite,
    Operation,
    Put,
    StoredDocument,
)
from dq_stores.filtering import check_operation

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from dq_stores.azure_blob._layout import Layout
    from dq_stores.azure_blob._query import IndexScan

__all__ = ["CommitMixin"]

T = TypeVar("T")
_MAX_ATTEMPTS = 50
_Read = tuple[HeadRecord, str, bytes]
_IGNORED = (ResourceNotFoundError, ResourceModifiedError, ResourceExistsError)


def _digest(head: _Read | None) -> str:
    """The record hash a new revision links to ("" before revision 1)."""
    return "" if head is None else head[0].digest


def _head_metadata(doc: StoredDocument) -> dict[str, str]:
    """A head's metadata: its revision, whether it is a tombstone and, for a live
    head, the digest of its index entry (``count`` checks index entries against it
    from a listing, without reading the head)."""
    if doc.deleted:
        return {"rev": str(doc.revision), "deleted": "1"}
    return {"rev": str(doc.revision), "deleted": "0", "idx": index_digest(doc.index)}


class CommitMixin:
    """``_commit`` and head-lock resolution for :class:`AzureBlobBackend`."""

    _container: ContainerClient
    _layout: Layout
    _scan: IndexScan
    _lease: float
    _txb: TxBlobs
    _clock: ServiceClock

    if TYPE_CHECKING:  # provided by AzureBlobBackend

        def _parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]: ...
        def _settle_restore(
            self, scope: Scope, kind: str, key: str, name: str, blob: Blob
        ) -> None: ...
        def _fetch(self, name: str, what: str) -> Blob | None: ...
        def _parse(self, blob: Blob, scope: Scope, kind: str, key: str | None) -> _Read: ...
        def _read_head(self, scope: Scope, kind: str, key: str) -> _Read | None: ...
        def _entry_calls(
            self, scope: Scope, kind: str, known: _Read | None, doc: StoredDocument
        ) -> tuple[dict[str, str], list[Callable[[], tuple[str, str] | None]]]: ...
        def _landed(
            self,
            scope: Scope,
            kind: str,
            key: str,
            revision: int,
            writer: str,
            head: _Read | None,
        ) -> bool: ...
        @staticmethod
        def _next_doc(
            scope: Scope,
            kind: str,
            key: str,
            write: DocumentWrite | None,
            old: HeadRecord | None,
        ) -> StoredDocument: ...

    # -- reading through locks -------------------------------------------------
    def _visible(self, scope: Scope, name: str, blob: Blob) -> Blob | None:
        """What a reader sees of a locked head: the committed revision, never a part.

        The record decides: committed → its new head; pending or aborted → the head's
        own bytes (``None`` for a placeholder). A vanished record means the commit was
        finished and cleaned up (the head, read again, has moved on) or abandoned (the
        head still carries the lock: it can never commit).
        """
        for _ in range(_MAX_ATTEMPTS):
            tx = blob.tx
            if tx is None:
                return blob
            record = self._read_record(scope, tx)
            if record is None:
                again = self._fetch(name, f"reading {name!r}")
                if again is None:
                    return None
                blob = again
                if again.tx != tx:
                    continue  # finished and cleaned up: read what it left
                # still locked by a commit whose record is gone: it never committed
            elif record.state == COMMITTED:
                new = record.new_head(name)
                if new is not None:
                    return Blob(new, blob.etag, clean_metadata(blob.metadata), blob.modified)
            return None if blob.placeholder else blob
        raise ConflictError(f"{name!r}: too many concurrent commits")

    # -- settling locks before a write --------------------------------------------
    def _clean_read(self, scope: Scope, kind: str, key: str) -> _Read | None:
        """The head once no commit holds it (settling such commits first)."""
        name = self._layout.head(scope, kind, key)
        for _ in range(_MAX_ATTEMPTS):
            blob = self._fetch(name, f"reading {kind} {key!r} in {scope}")
            if blob is None:
                return None
            if blob.tx is None:
                if not blob.placeholder:
                    return self._parse(blob, scope, kind, key)
                if blob.restoring is not None:  # a restore's: wait for it or clear it
                    self._settle_restore(scope, kind, key, name, blob)
                    continue
                # Left empty by a commit that aborted (the key has no document): remove
                # it If-Match, so a single write can create the head If-Missing; if it
                # moved meanwhile (locked or written), read again.
                with (
                    azure_errors(f"clearing an aborted commit's lock on {name!r}"),
                    contextlib.suppress(ResourceModifiedError, ResourceNotFoundError),
                ):
                    self._container.get_blob_client(name).delete_blob(
                        etag=blob.etag, match_condition=MatchConditions.IfNotModified
                    )
                continue
            self._settle(scope, name, blob)
        raise ConflictError(f"{kind} {key!r} in {scope}: too many concurrent commits")

    def _settle(self, scope: Scope, name: str, blob: Blob) -> None:
        """Resolve the commit holding ``blob`` locked; return once it may have moved on."""
        tx = str(blob.tx)
        while True:
            record = self._read_record(scope, tx)
            if record is None:  # finished and cleaned, or abandoned: restore a leftover lock
                again = self._fetch(name, f"reading {name!r}")
                if again is not None and again.tx == tx:
                    self._txb.unlock(name, again)
                return
            if record.state == PENDING:
                if self._wait_for(name, tx, record.age(self._clock.now())):
                    return
                if not self._txb.set_state(scope, record, ABORTED):
                    continue  # it committed (or was aborted) meanwhile: read it again
                record = TxRecord(record.txid, record.ops, ABORTED)
            self._recover(scope, record)
            return

    def _wait_for(self, name: str, tx: str, age: float) -> bool:
        """Poll ``name`` until no longer locked by ``tx`` (True) or the lease ran out."""

        def released() -> bool:
            again = self._fetch(name, f"reading {name!r}")
            return again is None or again.tx != tx

        return poll_until(released, self._lease - age, 0.005, 0.1)

    def _recover(self, scope: Scope, record: TxRecord) -> None:
        """Roll a committed record forward or restore an aborted one; then delete it."""
        names = [op.head for op in record.ops]
        fetch = self._fetch
        blobs = self._parallel([functools.partial(fetch, n, f"reading {n!r}") for n in names])
        calls: list[Callable[[], None]] = []
        for op, blob in zip(record.ops, blobs, strict=True):
            if blob is None or blob.tx != record.txid:
                continue  # done already (locks are only ever released by this commit)
            if record.state == COMMITTED and op.new is not None:
                old = None if blob.placeholder else self._parse(blob, scope, op.kind, op.key)[0]
                calls.append(functools.partial(self._roll, scope, op, blob.etag, old))
            else:
                calls.append(functools.partial(self._txb.unlock, op.head, blob))
        self._parallel(calls)
        self._txb.delete_record(scope, record.txid)

    # -- the commit ---------------------------------------------------------------
    def _commit(
        self, scope: Scope, operations: tuple[Operation, ...]
    ) -> list[StoredDocument | None]:
        names = [self._layout.head(scope, op.kind, op.key) for op in operations]
        for attempt in range(_MAX_ATTEMPTS):
            fetch = self._fetch
            what = f"reading heads of a commit in {scope}"
            blobs = self._parallel([functools.partial(fetch, n, what) for n in names])
            locked = [(n, b) for n, b in zip(names, blobs, strict=True) if b and b.tx]
            for name, blob in locked:
                self._settle(scope, name, blob)
            restoring = [
                (op, n, b)
                for op, n, b in zip(operations, names, blobs, strict=True)
                if b and b.restoring
            ]
            for op, name, blob in restoring:
                self._settle_restore(scope, op.kind, op.key, name, blob)
            if locked or restoring:
                continue
            # An empty placeholder head (a key locked by a commit that aborted and
            # released it) is absent, as readers see it: it is replaced If-Match.
            known = [
                None if b is None or b.placeholder else self._parse(b, scope, op.kind, op.key)
                for op, b in zip(operations, blobs, strict=True)
            ]
            for op, head in zip(operations, known, strict=True):
                check_operation(
                    op, None if head is None or head[0].doc.deleted else head[0].doc.revision
                )
            txid = f"{uuid.uuid4().hex}-{attempt}"
            done = self._attempt(scope, txid, operations, names, blobs, known)
            if done is not None:
                return done
        raise ConflictError(f"commit in {scope}: too many concurrent writers")

    def _attempt(
        self,
        scope: Scope,
        txid: str,
        operations: tuple[Operation, ...],
        names: list[str],
        blobs: list[Blob | None],
        known: list[_Read | None],
    ) -> list[StoredDocument | None] | None:
        """One try from the checked heads; ``None`` when a head changed (start again)."""
        docs: list[StoredDocument | None] = []
        for op, head in zip(operations, known, strict=True):
            if isinstance(op, ConditionCheck):
                docs.append(None)
                continue
            write = op.write if isinstance(op, Put) else None
            docs.append(self._next_doc(scope, op.kind, op.key, write, head[0] if head else None))
        record = TxRecord(
            txid, tuple(TxOp(n, op.kind, op.key) for n, op in zip(names, operations, strict=True))
        )
        try:
            pending_etag, entries = self._prepare_all(scope, record, operations, known, docs)
        except DQError:  # nothing points at the record yet: it can simply go
            self._txb.delete_record(scope, txid)
            raise
        try:
            locks = self._lock_all(scope, txid, names, blobs)
        except DQError:  # e.g. the store became unreachable: release what we can
            with contextlib.suppress(DQError):
                self._abandon(scope, record, pending_etag)
            raise
        if locks is None:
            self._abandon(scope, record, pending_etag)
            return None
        heads: list[bytes | None] = [
            None if doc is None else HeadRecord(doc, txid, entries[i], _digest(known[i])).to_bytes()
            for i, doc in enumerate(docs)
        ]
        committed = record.with_heads(heads)
        if not self._commit_point(scope, committed, pending_etag, docs):
            self._abandon(scope, record, pending_etag)
            return None
        calls: list[Callable[[], None]] = []
        for i, tx_op in enumerate(committed.ops):
            head = known[i]
            if tx_op.new is None:
                locked = self._txb.locked(blobs[i], locks[i], txid)
                calls.append(functools.partial(self._txb.unlock, tx_op.head, locked))
            else:
                old = head[0] if head else None
                calls.append(functools.partial(self._roll, scope, tx_op, locks[i], old))
        self._parallel(calls)
        self._txb.delete_record(scope, txid)
        return docs

    def _prepare_all(
        self,
        scope: Scope,
        record: TxRecord,
        operations: tuple[Operation, ...],
        known: list[_Read | None],
        docs: list[StoredDocument | None],
    ) -> tuple[str, list[dict[str, str]]]:
        """Archive, index and create the pending record, all in one parallel round."""
        entries: list[dict[str, str]] = []
        calls: list[Callable[[], Any]] = [functools.partial(self._txb.create_record, scope, record)]
        owners: list[int] = []
        for i, (op, doc) in enumerate(zip(operations, docs, strict=True)):
            if doc is None:
                entries.append({})
                continue
            kept, adds = self._entry_calls(scope, op.kind, known[i], doc)
            entries.append(kept)
            calls += adds
            owners += [i] * len(adds)
        results = self._parallel(calls)
        for owner, item in zip(owners, results[1:], strict=False):
            if item is not None:
                entries[owner][item[0]] = item[1]
        return str(results[0]), entries

    def _lock_all(
        self, scope: Scope, txid: str, names: list[str], blobs: list[Blob | None]
    ) -> list[str] | None:
        """Lock every head in name order; their lock etags, or ``None`` if one moved."""
        locks: dict[int, str] = {}
        for i in sorted(range(len(names)), key=names.__getitem__):
            etag = self._txb.lock(names[i], blobs[i], txid)
            if etag is None:
                return None  # the caller aborts the record and releases what we hold
            locks[i] = etag
        return [locks[i] for i in range(len(names))]

    def _commit_point(
        self,
        scope: Scope,
        committed: TxRecord,
        pending_etag: str,
        docs: list[StoredDocument | None],
    ) -> bool:
        """Write the record ``committed``; whether our commit holds (lost responses too)."""
        name = self._layout.txn(scope, committed.txid)
        try:
            with azure_errors(f"committing in {scope}"):
                self._container.get_blob_client(name).upload_blob(
                    committed.to_bytes(),
                    overwrite=True,
                    metadata={STATE: COMMITTED},
                    etag=pending_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            return True
        except (ConflictError, NotFoundError):
            record = self._read_record(scope, committed.txid)
            if record is not None:
                return record.state == COMMITTED
            # Finished by someone else and deleted, or aborted and deleted: the heads tell.
            for op, doc in zip(committed.ops, docs, strict=True):
                if doc is not None:
                    head = self._read_head(scope, op.kind, op.key)
                    return self._landed(scope, op.kind, op.key, doc.revision, committed.txid, head)
            return False  # only guards: nothing to apply, start again

    def _abandon(self, scope: Scope, record: TxRecord, pending_etag: str) -> None:
        """Abort our own attempt (if still pending) and release whatever it still holds.

        Only called where the commit point was not reached, or was refused for sure.
        """
        # Never committed here (only this writer commits, and it did not): abort the
        # record if still pending, then release every head that still points at it.
        self._txb.set_state(
            scope, TxRecord(record.txid, record.ops, PENDING, pending_etag), ABORTED
        )
        self._recover(scope, TxRecord(record.txid, record.ops, ABORTED))

    # -- single blob steps ----------------------------------------------------------
    def _roll(self, scope: Scope, op: TxOp, lock_etag: str, old: HeadRecord | None) -> None:
        """Replace a locked head by its new revision, then retire the old index entries."""
        assert op.new is not None
        new = HeadRecord.from_bytes(op.new, scope, op.kind, op.head)
        client = self._container.get_blob_client(op.head)
        best_effort(
            functools.partial(
                client.upload_blob,
                op.new,
                overwrite=True,
                metadata=_head_metadata(new.doc),
                etag=lock_etag,
                match_condition=MatchConditions.IfNotModified,
            ),
            f"rolling {op.kind} {op.key!r} forward",
        )
        if old is not None and not old.doc.deleted:
            base = self._layout.base(scope, op.kind)
            for suffix, etag in old.entries.items():
                if suffix not in new.entries:
                    self._scan.remove(base + suffix, etag)

    def _read_record(self, scope: Scope, txid: str) -> TxRecord | None:
        name = self._layout.txn(scope, txid)
        blob = self._fetch(name, f"reading commit {txid} in {scope}")
        return None if blob is None else TxRecord.from_blob(blob, name)
