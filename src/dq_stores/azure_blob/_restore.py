"""History export and restore for the Azure Blob backend (a mixin of the backend).

Export lists each kind's head blobs page by page (bounded memory), reads each
head — the key comes from the record — and its archived revisions.

Restore first claims every key of the batch (in parallel): an empty head created
with ``If-None-Match: *`` and metadata ``restore=<id>`` (readers see an empty head
as absent; one request per key, as the check for a head it replaces). Then per key
it writes the archived revisions ``r/1 … r/n-1`` (create-only, metadata
``restore=<id>``) and the last revision's index entries, and finally replaces its
empty head ``If-Match``: the head is the commit point, as for any first write. A
restore that fails removes what it wrote of the keys it did not finish (its
revisions ``If-Match``, its empty heads). One that dies leaves its empty heads:
a writer or restore meeting one waits for it up to the lease (``commit_lease``,
from the empty head's Last-Modified), then deletes the revisions carrying its id
and the empty head, and starts the key afresh — so no revision of a dead restore
stays in the key's history (``dq verify`` reports an empty head older than the
lease). Revision blobs a restore finds already there (left by a restore before
this scheme, or one taken over that wrote on after) were written before its
claim: it deletes them ``If-Unmodified-Since`` its claim and writes its own.

The guarantee is **per key**, not per batch: a reader sees each key either
absent or with its whole restored history, but may see some keys of a batch
restored and others not yet; a restore that fails or dies part-way leaves the
keys it finished restored (each completely) and the others absent. The only
``ConflictError`` after the upfront check is a key created concurrently between
the check and its head write; the batch's other keys are then restored as usual.
Running the same restore again completes it (the transfer skips keys it finds
identical). ``replace=True`` is refused with ``MisconfiguredError``: swapping a
history in place would rewrite archived revisions (``r/{n}``) that readers follow
without a lock, so it cannot be made atomic without a commit record per key.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError

from dq_metadata.errors import ConflictError, DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._chain import ORDER_SLACK
from dq_stores.azure_blob._client import Pool, azure_errors
from dq_stores.azure_blob._clock import ServiceClock
from dq_stores.azure_blob._locks import best_effort, poll_until
from dq_stores.azure_blob._records import HeadRecord
from dq_stores.azure_blob._txn import RESTORE, Blob
from dq_stores.documents import StoredDocument
from dq_stores.keys import decode_key, is_digest_name

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from dq_stores.azure_blob._layout import Layout

__all__ = ["RestoreMixin"]

_KEY_WORKERS = 4
_WINDOW = 64  # keys whose histories are read in parallel, in listing order
_CLAIM_ATTEMPTS = 10
#: A restore writes its revisions after its claim: whole-second Last-Modified, two
#: servers' clocks (``ORDER_SLACK``), and one second more.
_SINCE_CLAIM = timedelta(seconds=ORDER_SLACK + 1)


class RestoreMixin:
    """``_iter_histories`` and ``_restore_many`` of :class:`AzureBlobBackend`."""

    _container: ContainerClient
    _layout: Layout
    _lease: float
    _clock: ServiceClock

    if TYPE_CHECKING:

        def _children(self, prefix: str) -> list[str]: ...
        def _read(
            self, name: str, scope: Scope, kind: str, key: str | None, rev: int = 0
        ) -> tuple[HeadRecord, str, bytes] | None: ...
        def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]: ...
        def _fetch(self, name: str, what: str) -> Blob | None: ...
        def _parallel(self, calls: Sequence[Callable[[], Any]]) -> list[Any]: ...
        def _entry_calls(
            self, scope: Scope, kind: str, known: Any, doc: StoredDocument
        ) -> tuple[dict[str, str], list[Callable[[], tuple[str, str] | None]]]: ...
        def _write_head(self, name: str, record: HeadRecord, etag: str | None) -> None: ...

    def _iter_histories(self, scope: Scope, kind: str | None) -> Iterator[list[StoredDocument]]:
        kinds = [kind] if kind is not None else self._children(self._layout.scope(scope))
        with Pool(_KEY_WORKERS, "dq-azure-export") as pool:
            for name in kinds:
                prefix = self._layout.heads(scope, name)
                with azure_errors(f"listing {name} in {scope}"):
                    pages = self._container.list_blob_names(name_starts_with=prefix).by_page()
                for page in pages:
                    with azure_errors(f"listing {name} in {scope}"):
                        stored = [blob[len(prefix) :] for blob in page]
                    for start in range(0, len(stored), _WINDOW):
                        window = stored[start : start + _WINDOW]
                        read = functools.partial(self._key_history, scope, name, prefix)
                        for history in pool.map(read, window):
                            if history:
                                yield history

    def _key_history(
        self, scope: Scope, kind: str, prefix: str, stored: str
    ) -> list[StoredDocument]:
        """One key's history from its head's storage name; ``[]`` if it has none yet."""
        if is_digest_name(stored):
            found = self._read(prefix + stored, scope, kind, None)
            if found is None:  # a placeholder of an unfinished commit
                return []
            key = found[0].doc.key
        else:
            key = decode_key(stored)
        try:
            return self._history(scope, kind, key)
        except NotFoundError:  # a placeholder of an unfinished commit
            return []

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        assert not replace  # refused by the port: replaces_atomically is False
        rid = uuid.uuid4().hex
        heads = [self._layout.head(scope, kind, key) for key, _docs in histories]
        claim = self._claim
        claims = [
            functools.partial(claim, scope, kind, key, name, rid)
            for (key, _docs), name in zip(histories, heads, strict=True)
        ]
        claimed = self._parallel(claims)
        if any(etag is None for etag in claimed):
            for name, etag in zip(heads, claimed, strict=True):
                if etag is not None:
                    self._unclaim(name, etag)
            taken = next(k for (k, _d), e in zip(histories, claimed, strict=True) if e is None)
            raise ConflictError(
                f"{kind} {taken!r} already has a history in {scope}; restore writes only "
                "into keys that were never written (nothing of this batch was written)"
            )
        with Pool(_KEY_WORKERS, "dq-azure-restore") as pool:
            futures = [
                pool.submit(self._restore_key, scope, kind, key, docs, head, etag, rid)
                for (key, docs), head, etag in zip(histories, heads, claimed, strict=True)
            ]
            for future in futures:
                future.result()

    def _claim(self, scope: Scope, kind: str, key: str, name: str, rid: str) -> str | None:
        """Create the key's empty head for restore ``rid``: its etag, or ``None`` when
        the key has a head (or a live commit's lock). A dead restore's empty head is
        cleared first (after the lease); a live one's is waited for."""
        client = self._container.get_blob_client(name)
        for _ in range(_CLAIM_ATTEMPTS):
            with (
                azure_errors(f"restoring {kind} {key!r} in {scope}"),
                contextlib.suppress(ResourceExistsError),
            ):
                done = client.upload_blob(
                    b"",
                    overwrite=True,
                    metadata={RESTORE: rid},
                    match_condition=MatchConditions.IfMissing,
                )
                return str(done["etag"])
            blob = self._fetch(name, f"restoring {kind} {key!r} in {scope}")
            if blob is None:
                continue
            if blob.restoring == rid:
                return blob.etag  # ours: a retried create whose first try landed
            if blob.placeholder and blob.tx is None and blob.restoring is None:
                # Left empty by a commit that aborted: the key has no document (readers
                # see it absent), so it is cleared If-Match as a writer would, not refused.
                self._unclaim(name, blob.etag)
                continue
            if blob.restoring is None:
                return None
            self._settle_restore(scope, kind, key, name, blob)
        raise ConflictError(f"{kind} {key!r} in {scope}: too many concurrent restores")

    def _unclaim(self, name: str, etag: str) -> None:
        client = self._container.get_blob_client(name)
        cond: dict[str, Any] = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        best_effort(functools.partial(client.delete_blob, **cond), f"releasing {name!r}")

    def _settle_restore(self, scope: Scope, kind: str, key: str, name: str, blob: Blob) -> None:
        """Wait for the restore holding ``blob`` (an empty head) up to the lease, from
        the empty head's Last-Modified; then delete its revisions and its empty head.
        Return once the head may have changed (the caller reads it again)."""
        rid = str(blob.restoring)
        age = 0.0
        if blob.modified is not None:
            age = max(0.0, (self._clock.now() - blob.modified).total_seconds())

        def changed() -> bool:
            again = self._fetch(name, f"reading {kind} {key!r} in {scope}")
            return again is None or again.etag != blob.etag

        if poll_until(changed, self._lease - age, 0.01, 0.25):
            return  # finished, or cleared by someone else
        # Only what that restore wrote: after its claim. Its id is no secret (every
        # revision it finished carries it), so an empty head tagged with a finished
        # restore's id — put over a real head by someone else — must not make this
        # writer delete the key's older history; those revisions stay (the history
        # then shows the damage) instead of vanishing.
        since = None if blob.modified is None else blob.modified - _SINCE_CLAIM
        self._drop_revisions(scope, kind, key, lambda meta: meta.get(RESTORE) == rid, since)
        self._unclaim(name, blob.etag)

    def _drop_revisions(
        self,
        scope: Scope,
        kind: str,
        key: str,
        doomed: Callable[[dict[str, str]], bool],
        since: datetime | None = None,
        **conditions: Any,
    ) -> None:
        """Delete the key's revision blobs ``doomed`` picks by their metadata (and, given
        ``since``, listed as last modified after it), each ``If-Match`` the etag listed
        (plus ``conditions``), best effort."""
        prefix = self._layout.revisions(scope, kind, key)
        with azure_errors(f"listing history of {kind} {key!r} in {scope}"):
            listed = list(self._container.list_blobs(name_starts_with=prefix, include=["metadata"]))
        calls: list[Callable[[], None]] = []
        for props in listed:
            if str(props.name) == self._layout.pruned(scope, kind, key):
                continue
            if since is not None and props.last_modified and props.last_modified < since:
                continue  # older than the claim: not written by that restore
            if doomed(dict(props.metadata or {})):
                client = self._container.get_blob_client(str(props.name))
                cond: dict[str, Any] = {
                    "etag": props.etag,
                    "match_condition": MatchConditions.IfNotModified,
                }
                delete = functools.partial(client.delete_blob, **cond, **conditions)
                calls.append(functools.partial(best_effort, delete, f"deleting {props.name!r}"))
        self._parallel(calls)

    def _restore_key(
        self,
        scope: Scope,
        kind: str,
        key: str,
        docs: list[StoredDocument],
        head_name: str,
        claim: str,
        rid: str,
    ) -> None:
        writer = uuid.uuid4().hex
        head = docs[-1]
        # Each revision links to its predecessor's record hash, as live writes do.
        records, prev = [], ""
        for doc in docs[:-1]:
            record = HeadRecord(doc, writer, prev=prev)
            records.append(record)
            prev = record.own_digest()
        entries, calls = self._entry_calls(scope, kind, None, head)
        stale = _Stale()
        upload = functools.partial(self._upload_revision, rid, stale)
        calls += [functools.partial(upload, record) for record in records]
        try:
            entries.update(item for item in self._parallel(calls) if item is not None)
            if stale.found:
                # Revision blobs from before our claim (a restore before empty heads,
                # or one taken over that wrote on): delete them, write ours again.
                claimed = self._fetch(head_name, f"restoring {kind} {key!r} in {scope}")
                if claimed is None or claimed.etag != claim:
                    raise ConflictError(f"{kind} {key!r} in {scope}: the restore was taken over")
                before = {"if_unmodified_since": claimed.modified}
                self._drop_revisions(scope, kind, key, lambda m: m.get(RESTORE) != rid, **before)
                stale.found = False
                self._parallel([functools.partial(upload, r) for r in stale.take()])
                if stale.found:
                    raise ConflictError(f"{kind} {key!r} in {scope}: revision blobs keep appearing")
            try:
                self._write_head(head_name, HeadRecord(head, writer, entries, prev), claim)
            except ConflictError as exc:
                raise ConflictError(
                    f"{kind} {key!r} in {scope}: this restore's claim on the key was taken "
                    f"over before its head was written — it ran longer than commit_lease "
                    f"({self._lease:g} s), so another writer or restore cleared it; nothing "
                    "of this key was restored (run the restore again, or raise commit_lease)"
                ) from exc
        except Exception:
            if self._abandon_key(scope, kind, key, head_name, claim, rid, writer):
                return  # the head write landed; only its response was lost
            raise

    def _abandon_key(
        self, scope: Scope, kind: str, key: str, name: str, claim: str, rid: str, writer: str
    ) -> bool:
        """After a failure: ``True`` if our head landed after all (a response lost);
        else remove what we wrote — our revisions (a newer claimant's carry no id of
        ours), then our empty head — and return ``False``. Nothing is removed while
        the head cannot be read (the empty head is then cleared after the lease)."""
        try:
            blob = self._fetch(name, f"restoring {kind} {key!r} in {scope}")
            if blob is not None and not blob.placeholder and blob.tx is None:
                found = self._read(name, scope, kind, key)
                if found is not None and found[0].writer == writer:
                    return True
            self._drop_revisions(scope, kind, key, lambda meta: meta.get(RESTORE) == rid)
            self._unclaim(name, claim)
        except DQError:
            pass  # best effort: the error raised tells
        return False

    def _upload_revision(self, rid: str, stale: _Stale, record: HeadRecord) -> None:
        doc = record.doc
        name = self._layout.revision(doc.scope, doc.kind, doc.key, doc.revision)
        with (
            azure_errors(f"restoring {doc.kind} {doc.key!r} in {doc.scope}"),
            contextlib.suppress(ResourceExistsError),
        ):
            self._container.get_blob_client(name).upload_blob(
                record.to_bytes(),
                overwrite=True,
                metadata={RESTORE: rid},
                match_condition=MatchConditions.IfMissing,
            )
            return
        with azure_errors(f"restoring {doc.kind} {doc.key!r} in {doc.scope}"):
            there = self._container.get_blob_client(name).get_blob_properties()
        if (there.metadata or {}).get(RESTORE) != rid:  # else ours: a retry that landed
            stale.add(record)


class _Stale:
    """Revisions whose create-only upload found a blob there (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[HeadRecord] = []
        self.found = False

    def add(self, record: HeadRecord) -> None:
        with self._lock:
            self._records.append(record)
            self.found = True

    def take(self) -> list[HeadRecord]:
        with self._lock:
            taken, self._records = self._records, []
        return taken
