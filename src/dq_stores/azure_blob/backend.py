"""Azure Blob Storage document backend.

Commit protocol (see docs/adr/0004-azure-blob-backend.md): the head blob is the
commit point. A write reads the head (1 request), then in parallel archives that
head create-only as ``r/{n}`` and adds the new revision's index entries, then
replaces the head conditionally (``If-Match``; ``If-None-Match: *`` for a new
key), then retires the old revision's index entries (``If-Match`` on the etags the
old head recorded). A crash at any point leaves the old or the new head, a
complete history, and at worst index entries that readers verify and clean.

Multi-document commits (``_commit``, in ``_commit.py``, ADR 0010) lock heads with
blob metadata pointing at a commit record; reads resolve such heads through the
record, writes settle them first. A head without a lock costs nothing extra.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from dq_metadata.errors import ConflictError, IntegrityError, MisconfiguredError, NotFoundError
from dq_metadata.scope import ID_PATTERN, Scope
from dq_stores.azure_blob._chain import history_problem, written_after
from dq_stores.azure_blob._client import (
    ClientSettings,
    Pool,
    azure_errors,
    container_missing,
    make_service_client,
)
from dq_stores.azure_blob._clock import HookedClient, ServiceClock
from dq_stores.azure_blob._commit import CommitMixin
from dq_stores.azure_blob._commit import _head_metadata as head_metadata
from dq_stores.azure_blob._layout import Layout, order_name
from dq_stores.azure_blob._locks import TxBlobs, best_effort
from dq_stores.azure_blob._place import PlaceMixin
from dq_stores.azure_blob._query import IndexScan
from dq_stores.azure_blob._records import HeadRecord, encode_entry_meta, index_digest
from dq_stores.azure_blob._restore import RestoreMixin
from dq_stores.azure_blob._search import SearchScan
from dq_stores.azure_blob._txn import RESTORE, Blob
from dq_stores.azure_names import validate_container_name
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    DocumentWrite,
    Expectation,
    ExpectKind,
    FieldFilter,
    IndexEntry,
    PageCursor,
    Query,
    StoredDocument,
)
from dq_stores.filtering import check_expectation
from dq_stores.integrity import IntegrityProblem, VerifyCounts
from dq_stores.search import SEARCH_FIELDS

__all__ = ["AzureBlobBackend"]

T = TypeVar("T")
_MAX_ATTEMPTS = 50
#: Documents a bulk write keeps in flight at most: the SDK's HTTP connection pool size.
_BULK_WIDTH = 10
_Read = tuple[HeadRecord, str, bytes]  # record, etag, raw bytes


def _live_revision(known: _Read | None) -> int | None:
    """The head's revision, ``None`` when there is no head or it is a tombstone."""
    if known is None or known[0].doc.deleted:
        return None
    return known[0].doc.revision


_HISTORY_ATTEMPTS = 30
#: A blob that keeps turning from empty to written between a 416 and its properties.
_EMPTY_ATTEMPTS = 10
_RANGE_NOT_SATISFIABLE = 416


class AzureBlobBackend(CommitMixin, RestoreMixin, PlaceMixin, DocumentBackend):
    """Documents as blobs in one container: heads, archived revisions, index entries.

    Give exactly one of ``connection_string`` (Azurite, keys) or ``account_url``
    (with ``credential``, default ``DefaultAzureCredential``), or a ready ``client``
    (which the caller then owns and closes; it is not changed — each request the
    backend makes on it carries a per-operation response hook, for the service
    clock). ``commit_lease`` (seconds): how long a multi-document commit, or a
    restore's claim on a key, may stay pending before another writer that needs one
    of its documents aborts or clears it (its writer is then presumed dead).
    """

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: object | None = None,
        create_container: bool = False,
        prefix: str = "",
        client: BlobServiceClient | None = None,
        settings: ClientSettings | None = None,
        max_workers: int = 8,
        commit_lease: float = 30.0,
    ) -> None:
        self._layout = Layout(prefix)
        self._container_name = validate_container_name(container)
        self._clock = ServiceClock()
        if client is None:
            client = make_service_client(
                connection_string=connection_string,
                account_url=account_url,
                credential=credential,
                settings=settings or ClientSettings(),
                raw_response_hook=self._clock.response_hook,
            )
            self._owns_client = True
        elif connection_string is not None or account_url is not None:
            raise MisconfiguredError("give either client or connection settings, not both")
        else:
            self._owns_client = False
        self._service = client
        self._container: ContainerClient = client.get_container_client(container)
        if not self._owns_client:
            # No hook of ours on the caller's client: one on each of our requests, so a
            # reader that has not written learns the service clock too (ADR 0004).
            self._container = cast(ContainerClient, HookedClient(self._container, self._clock))
        self._max_workers = max_workers
        self._lease = float(commit_lease)
        self._pool: Pool | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._inline = threading.local()
        self._placed = set()
        self._txb = TxBlobs(self._container, self._layout, self._fetch)
        self._scan = IndexScan(
            self._container, self._layout, self._read_blobs, self._background, self._clock.now
        )
        self._search_scan = SearchScan(
            self._container,
            self._layout,
            self._read_blobs,
            self._parallel,
            self._background,
            self._scan.remove,
            self._clock.now,
        )
        if create_container:
            with (
                azure_errors(f"creating container {container!r}"),
                contextlib.suppress(ResourceExistsError),
            ):
                self._container.create_container()

    @property
    def counts_requests(self) -> bool:
        """Whether telemetry can count this store's HTTP requests (``dq.requests``):
        when it built its client (with :class:`~dq_stores.azure_blob._client.Transport`)."""
        return self._owns_client

    def __repr__(self) -> str:
        account = getattr(self._service, "account_name", None)
        return (
            f"AzureBlobBackend(container={self._container_name!r}, account={account!r}, "
            f"prefix={self._layout.prefix!r})"
        )

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._owns_client:
            self._service.close()

    # -- concurrency helpers -------------------------------------------------
    def _executor(self) -> Pool:
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = Pool(self._max_workers, "dq-azure")
                self._pool_pid = os.getpid()
            return self._pool

    def _parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent requests concurrently: latency of one, not of all (in
        sequence on a bulk thread, whose siblings already keep the service busy)."""
        if len(calls) <= 1 or getattr(self._inline, "on", False):
            return [call() for call in calls]
        futures = [self._executor().submit(call) for call in calls]
        return [future.result() for future in futures]

    def _background(self, call: Callable[[], Any]) -> Future[Any]:
        return self._executor().submit(call)

    # -- heads ---------------------------------------------------------------
    def _fetch(self, name: str, what: str) -> Blob | None:
        """One GET: bytes, etag and metadata; ``None`` if the blob does not exist.

        An empty blob (a commit's lock, a restore's claim) answers the ranged GET with
        416; the SDK's own fallback would then GET it again and keep *that* response's
        etag and metadata with no bytes — a head written in between (the restore or
        commit finishing) read as empty under its new etag, which a writer then deleted
        ``If-Match``. So the range is ours (``offset=0``: the SDK raises the 416) and
        the second request reads the properties, whose size and etag belong together:
        a blob no longer empty is read again. Same two requests as the fallback."""
        client = self._container.get_blob_client(name)
        with azure_errors(what):
            for _ in range(_EMPTY_ATTEMPTS):
                try:
                    downloader = client.download_blob(offset=0)
                    raw = downloader.readall()
                    props = downloader.properties
                except ResourceNotFoundError as exc:
                    if container_missing(exc):
                        raise
                    return None
                except HttpResponseError as exc:
                    if exc.status_code != _RANGE_NOT_SATISFIABLE:
                        raise
                    try:
                        props = client.get_blob_properties()
                    except ResourceNotFoundError as gone:
                        if container_missing(gone):
                            raise
                        return None
                    if props.size:
                        continue  # written since the 416: read its bytes
                    raw = b""
                return Blob(raw, str(props.etag), dict(props.metadata or {}), props.last_modified)
        raise ConflictError(f"{name!r} keeps changing between empty and written ({what})")

    def _parse(
        self, blob: Blob, scope: Scope, kind: str, key: str | None, rev: int = 0, name: str = ""
    ) -> _Read:
        record = HeadRecord.from_bytes(blob.raw, scope, kind, name or str(key))
        if (key is not None and record.doc.key != key) or (rev and record.doc.revision != rev):
            raise IntegrityError(f"blob for {kind} {key!r} in {scope} holds another document")
        return record, blob.etag, blob.raw

    def _read(
        self, name: str, scope: Scope, kind: str, key: str | None, rev: int = 0
    ) -> _Read | None:
        """Read and verify a head or revision; a locked head as its readers must see it."""
        found = self._read_blob(name, scope, kind, key, rev)
        return None if found is None else found[0]

    def _read_blob(
        self, name: str, scope: Scope, kind: str, key: str | None, rev: int = 0
    ) -> tuple[_Read, Blob] | None:
        """``_read``, and the blob it came from (its times and metadata)."""
        found = self._fetch(name, f"reading {kind} {key or name!r} in {scope}")
        if found is not None and found.tx is not None:
            found = self._visible(scope, name, found)
        if found is None or found.placeholder:
            # An empty head locks a key that had no head; once its commit aborted and
            # released it, it is left empty until a writer replaces it: still absent.
            return None
        return self._parse(found, scope, kind, key, rev, name), found

    def _read_head(self, scope: Scope, kind: str, key: str) -> _Read | None:
        return self._read(self._layout.head(scope, kind, key), scope, kind, key)

    def _read_blobs(
        self, scope: Scope, kind: str, items: Sequence[tuple[str, str | None]]
    ) -> list[_Read | None]:
        read = self._read
        return self._parallel([functools.partial(read, n, scope, kind, k) for n, k in items])

    # -- reads ---------------------------------------------------------------
    def _get(self, scope: Scope, kind: str, key: str) -> StoredDocument:
        name = self._layout.head(scope, kind, key)
        blob = self._fetch(name, f"reading {kind} {key!r} in {scope}")
        if blob is not None and blob.tx is not None:
            blob = self._visible(scope, name, blob)
        if blob is None or blob.placeholder:
            raise NotFoundError(f"{kind} {key!r} not found in {scope}")
        doc = self._parse(blob, scope, kind, key, 0, name)[0].doc
        # No request unless the head blob was written long after its record (_place).
        doc = self._in_place(scope, kind, key, doc, blob, name)
        if doc.deleted:
            raise NotFoundError(f"{kind} {key!r} not found in {scope}")
        return doc

    def _get_revision(self, scope: Scope, kind: str, key: str, revision: int) -> StoredDocument:
        name = self._layout.revision(scope, kind, key, revision)
        found = self._read(name, scope, kind, key, revision)
        if found is None:  # the current head has not been archived yet
            found = self._read_head(scope, kind, key)
            if found is None or found[0].doc.revision != revision:
                raise NotFoundError(f"{kind} {key!r} has no revision {revision} in {scope}")
        return found[0].doc

    def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        problem = ""
        for attempt in range(_HISTORY_ATTEMPTS):
            # A writer moving on between listing and reading (its archive of the previous
            # head may still be in flight): look again, a little later each time.
            if attempt:
                time.sleep(min(0.05, 0.01 * attempt))
            archived, head, rewritten, pruned = self._history_records(scope, kind, key)
            if head is None and (not archived or self._restoring(scope, kind, key)):
                raise NotFoundError(f"{kind} {key!r} not found in {scope}")
            start = self._first_kept(scope, kind, key, archived, head, pruned)
            problem = history_problem(archived, head, start=start, rewritten=rewritten) or ""
            if not problem:
                assert head is not None
                docs = {r.doc.revision: r.doc for r in archived if r.doc.revision >= start}
                docs[head.doc.revision] = head.doc
                return [docs[rev] for rev in sorted(docs)]
        raise IntegrityError(f"{kind} {key!r} in {scope}: {problem}")

    def _restoring(self, scope: Scope, kind: str, key: str) -> bool:
        """Whether the key's head is a restore's empty head (its revisions are not
        history yet: a restore in progress, or one that died)."""
        name = self._layout.head(scope, kind, key)
        blob = self._fetch(name, f"reading {kind} {key!r} in {scope}")
        return blob is not None and blob.restoring is not None

    def _first_kept(
        self,
        scope: Scope,
        kind: str,
        key: str,
        archived: list[HeadRecord],
        head: HeadRecord | None,
        pruned: bool,
    ) -> int:
        """The oldest revision not pruned (1 unless ``prune_history`` removed some).

        The marker is read only when pruning may have happened: revision 1 is not
        archived and either the head is past it or the listing held the ``pruned``
        blob (:meth:`_prune_history`) — a head at revision 1 on a key whose history
        was pruned is a rollback the marker proves, at no request for any other
        revision-1 key."""
        if head is None or any(r.doc.revision == 1 for r in archived):
            return 1
        if head.doc.revision == 1 and not pruned:
            return 1
        prefix = self._pruned_prefix(scope, kind, key)
        return 1 if prefix is None else prefix.pruned_through + 1

    def _history_records(
        self, scope: Scope, kind: str, key: str
    ) -> tuple[list[HeadRecord], HeadRecord | None, bool, bool]:
        """Every archived revision (listed first) and then the head, verified;
        whether the head's bytes were written after its own revision was archived
        (a rollback by one revision, see ``_chain.written_after``); and whether the
        listing held the ``pruned`` blob (``prune_history`` ran on the key)."""
        prefix = self._layout.revisions(scope, kind, key)
        with azure_errors(f"listing history of {kind} {key!r} in {scope}"):
            listed = {
                str(p.name): p.last_modified
                for p in self._container.list_blobs(name_starts_with=prefix)
            }
        pruned = listed.pop(self._layout.pruned(scope, kind, key), None) is not None
        read = self._read
        calls: list[Callable[[], Any]] = [
            functools.partial(read, n, scope, kind, key, int(n[len(prefix) :])) for n in listed
        ]
        head_name = self._layout.head(scope, kind, key)
        calls.append(functools.partial(self._read_blob, head_name, scope, kind, key))
        *found, head = self._parallel(calls)
        archived = [f[0] for f in found if f is not None]
        if head is None:
            return archived, None, False, pruned
        (record, _etag, _raw), blob = head
        own = listed.get(self._layout.revision(scope, kind, key, record.doc.revision))
        return archived, record, written_after(blob.written, own), pruned

    def _prune_history(
        self, scope: Scope, kind: str, key: str, keep_from: int, seen: Mapping[int, str]
    ) -> None:
        # Archived revisions are immutable and writers only add newer ones; the head
        # blob (keep_from is at most its revision) is never touched. ``seen`` needs no
        # check: this backend replaces no history (``replaces_atomically`` is False, and
        # a restore refuses a key that has one), so what the caller read stays. First an empty
        # ``pruned`` blob among the revisions (idempotent): ``history`` lists it at no
        # extra request and then reads the marker even for a head at revision 1.
        marker = self._layout.pruned(scope, kind, key)
        with azure_errors(f"marking the pruned history of {kind} {key!r} in {scope}"):
            self._container.get_blob_client(marker).upload_blob(b"", overwrite=True)
        prefix = self._layout.revisions(scope, kind, key)
        with azure_errors(f"listing history of {kind} {key!r} in {scope}"):
            names = list(self._container.list_blob_names(name_starts_with=prefix))
        doomed = [n for n in names if n != marker and int(n[len(prefix) :]) < keep_from]
        for name in sorted(doomed):  # oldest first (fixed-width numbers): a suffix remains
            with (
                azure_errors(f"pruning {name!r}"),
                contextlib.suppress(ResourceNotFoundError),
            ):
                self._container.delete_blob(name)

    def _query(
        self, scope: Scope, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        return self._scan.query(scope, kind, query, cursor, fetch)

    def _count(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int:
        return self._scan.count(scope, kind, filters)

    def _search(self, scope: Scope, kind: str, terms: tuple[str, ...]) -> Iterator[StoredDocument]:
        return self._search_scan.find(scope, kind, terms)

    def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
        kinds = [kind] if kind is not None else self._children(self._layout.scope(scope))
        for name in kinds:
            yield from self._scan.iter_heads(scope, name)

    def _children(self, prefix: str) -> list[str]:
        """Id-shaped 'directories' directly below ``prefix``."""
        with azure_errors("listing the container"):
            items = list(self._container.walk_blobs(name_starts_with=prefix, delimiter="/"))
        names = [item.name[len(prefix) :].rstrip("/") for item in items]
        return sorted(n for n in names if ID_PATTERN.fullmatch(n) and ".." not in n)

    # -- integrity -----------------------------------------------------------
    def verify_scope(self, scope: Scope, counts: VerifyCounts) -> Iterator[IntegrityProblem]:
        """Every head, archived revision and needed index entry of ``scope`` (``_verify``)."""
        from dq_stores.azure_blob._verify import verify_scope

        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")
        return verify_scope(self, scope, counts)

    def repair_index(self, scope: Scope) -> bool:
        """Re-create the index entries live heads need; no head or revision is written."""
        from dq_stores.azure_blob._verify import repair_scope

        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")
        repair_scope(self, scope)
        return True

    def _list_environments(self, tenant: str) -> Iterable[str]:
        return self._children(self._layout.tenant(tenant))

    def _iter_scopes(self) -> Iterator[Scope]:
        for tenant in self._children(self._layout.prefix):
            for env in self._children(self._layout.tenant(tenant)):
                yield Scope(tenant, env)

    # -- writes --------------------------------------------------------------
    def _put(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument:
        return self._write(scope, kind, write.key, expect, write, expect.kind is ExpectKind.ABSENT)

    def _put_many(self, scope: Scope, kind: str, writes: Iterator[DocumentWrite]) -> int:
        """Bounded concurrency: up to ``min(2 * max_workers, 10)`` documents in flight
        (10: the SDK's connection pool; more threads would open and drop connections),
        each written by one bulk thread with its requests in sequence (no nested
        fan-out); a key given twice waits for its earlier write, so the later one wins."""
        any_ = Expectation(ExpectKind.ANY)
        width = min(2 * max(1, self._max_workers), _BULK_WIDTH)
        count = 0
        queue: deque[Future[StoredDocument]] = deque()
        by_key: dict[str, Future[StoredDocument]] = {}
        with Pool(width, "dq-azure-bulk") as bulk:
            for write in writes:
                earlier = by_key.get(write.key)
                if earlier is not None:
                    earlier.result()
                while len(queue) >= 2 * width:
                    queue.popleft().result()
                    count += 1
                future = bulk.submit(self._bulk_write, scope, kind, write, any_)
                queue.append(future)
                by_key[write.key] = future
                if len(by_key) > 8 * width:
                    by_key = {k: f for k, f in by_key.items() if not f.done()}
            for future in queue:
                future.result()
                count += 1
        return count

    def _bulk_write(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument:
        self._inline.on = True  # this thread's requests run in sequence (see _parallel)
        return self._write(scope, kind, write.key, expect, write, True)

    def _delete(self, scope: Scope, kind: str, key: str, expect: Expectation) -> StoredDocument:
        return self._write(scope, kind, key, expect, None, False)

    def _write(
        self,
        scope: Scope,
        kind: str,
        key: str,
        expect: Expectation,
        write: DocumentWrite | None,
        assume_new: bool,
    ) -> StoredDocument:
        """Commit one revision (``write=None``: a tombstone). See the module docstring."""
        name = self._layout.head(scope, kind, key)
        writer = uuid.uuid4().hex
        known = None if assume_new else self._clean_read(scope, kind, key)
        for _ in range(_MAX_ATTEMPTS):
            old = known[0] if known else None
            live = _live_revision(known)
            if write is None and live is None:
                raise NotFoundError(f"{kind} {key!r} not found in {scope}")
            check_expectation(live, expect, kind, key)
            doc = self._next_doc(scope, kind, key, write, old)
            entries = self._prepare(scope, kind, known, doc)
            try:
                record = HeadRecord(doc, writer, entries, old.digest if old else "")
                self._write_head(name, record, known[1] if known else None)
            except ConflictError:
                known = self._clean_read(scope, kind, key)
                if not self._landed(scope, kind, key, doc.revision, writer, known):
                    if expect.kind is ExpectKind.REVISION:
                        check_expectation(_live_revision(known), expect, kind, key)
                        raise
                    continue
            if old is not None:
                self._retire(scope, kind, old, entries)
            return doc
        raise ConflictError(f"{kind} {key!r} in {scope}: too many concurrent writers")

    def _landed(
        self, scope: Scope, kind: str, key: str, revision: int, writer: str, head: _Read | None
    ) -> bool:
        """Whether our commit of ``revision`` landed although we saw 409/412.

        That happens when a retry re-sent a write whose response was lost. If another
        writer has moved the head on since, our revision is already archived (writers
        archive before they commit), so the archived copy tells.
        """
        if head is None or head[0].doc.revision < revision:
            return False
        if head[0].doc.revision == revision:
            return head[0].writer == writer
        archived = self._read(
            self._layout.revision(scope, kind, key, revision), scope, kind, key, revision
        )
        return archived is not None and archived[0].writer == writer

    @staticmethod
    def _next_doc(
        scope: Scope, kind: str, key: str, write: DocumentWrite | None, old: HeadRecord | None
    ) -> StoredDocument:
        revision = old.doc.revision + 1 if old else 1
        now = datetime.now(UTC)
        if write is None:
            return StoredDocument(scope, kind, key, revision, b"", "", IndexEntry(), now, True)
        return StoredDocument(
            scope, kind, key, revision, write.body, write.sha256, write.index, now
        )

    def _entry_names(self, doc: StoredDocument) -> list[str]:
        """Every index entry a live ``doc`` needs (writes, verify and repair use this).

        Two per posting (ascending and descending), except for the search fields:
        search never needs their order, so they get the ascending entry only (a
        descending query driven by one reads that range backwards, see ``_query``).
        """
        if doc.deleted:
            return []
        pairs: list[tuple[str | None, str | None]] = [(None, None)]
        pairs += [(f, v) for f, values in doc.index.fields.items() for v in set(values)]
        digest = index_digest(doc.index)
        sort_key = doc.index.sort_key
        return [
            self._layout.posting_dir(f, v, desc) + order_name(sort_key, doc.key, desc, digest)
            for f, v in pairs
            for desc in ((False,) if f in SEARCH_FIELDS else (False, True))
        ]

    def _prepare(
        self, scope: Scope, kind: str, known: _Read | None, doc: StoredDocument
    ) -> dict[str, str]:
        """Archive the old head and add the new index entries; return name → etag."""
        entries, calls = self._entry_calls(scope, kind, known, doc)
        entries.update(item for item in self._parallel(calls) if item is not None)
        return entries

    def _entry_calls(
        self, scope: Scope, kind: str, known: _Read | None, doc: StoredDocument
    ) -> tuple[dict[str, str], list[Callable[[], tuple[str, str] | None]]]:
        """The entries ``doc`` keeps from ``known``, and the requests that archive
        ``known`` and add the others (each returns ``(name, etag)`` or ``None``)."""
        base = self._layout.base(scope, kind)
        kept = known[0].entries if known and not known[0].doc.deleted else {}
        entries = {n: kept[n] for n in self._entry_names(doc) if n in kept}
        missing = [n for n in self._entry_names(doc) if n not in kept]
        meta = encode_entry_meta(doc)

        def add(suffix: str) -> tuple[str, str]:
            blob = self._container.get_blob_client(base + suffix)
            with azure_errors(f"indexing {kind} {doc.key!r} in {scope}"):
                return suffix, str(blob.upload_blob(b"", overwrite=True, metadata=meta)["etag"])

        calls: list[Callable[[], tuple[str, str] | None]] = [
            functools.partial(add, n) for n in missing
        ]
        if known is not None:
            calls.append(functools.partial(self._archive, scope, kind, known))
        return entries, calls

    def _archive(self, scope: Scope, kind: str, known: _Read) -> None:
        record, _etag, raw = known
        name = self._layout.revision(scope, kind, record.doc.key, record.doc.revision)
        # A copy of a committed head: whoever writes it first writes these very bytes —
        # unless a restore wrote it: one taken over after the lease (the key started
        # afresh) that wrote on and died. Never this head's archive (a restore writes
        # only revisions below its own head): replaced, not kept in its place. That
        # costs one request, only when the create found a blob there.
        client = self._container.get_blob_client(name)
        what = f"archiving {kind} {record.doc.key!r} in {scope}"
        for _ in range(2):
            with azure_errors(what):
                try:
                    client.upload_blob(
                        raw, overwrite=True, match_condition=MatchConditions.IfMissing
                    )
                    return
                except ResourceExistsError:
                    try:
                        there = client.get_blob_properties()
                    except ResourceNotFoundError:
                        continue
            if RESTORE not in (there.metadata or {}):
                return
            cond: dict[str, Any] = {
                "etag": there.etag,
                "match_condition": MatchConditions.IfNotModified,
            }
            best_effort(functools.partial(client.delete_blob, **cond), f"replacing {name!r}")

    def _write_head(self, name: str, record: HeadRecord, etag: str | None) -> None:
        doc = record.doc
        conditions: dict[str, Any] = (
            {"etag": etag, "match_condition": MatchConditions.IfNotModified}
            if etag
            else {"match_condition": MatchConditions.IfMissing}
        )
        metadata = head_metadata(doc)
        with azure_errors(f"writing {doc.kind} {doc.key!r} in {doc.scope}"):
            self._container.get_blob_client(name).upload_blob(
                record.to_bytes(), overwrite=True, metadata=metadata, **conditions
            )

    def _retire(self, scope: Scope, kind: str, old: HeadRecord, new: dict[str, str]) -> None:
        base = self._layout.base(scope, kind)
        gone = [(n, e) for n, e in old.entries.items() if n not in new]
        self._parallel([functools.partial(self._scan.remove, base + n, e) for n, e in gone])
