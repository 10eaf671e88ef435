"""Index reads: ordered prefix listings of index entries, verified against heads.

An index entry is a tiny blob named by ``(field, value, direction, sort_key, key)``
(see ``_layout``); its metadata holds the revision it was written for. Queries
list only the range of one filter's values, merge the per-value ranges by name,
and read the heads of the candidates in parallel: the head alone decides whether
a document matches, so an entry left behind by a crash or a racing writer can
never produce a wrong result — it is skipped and, once provably stale, deleted
with ``If-Match`` on the etag seen in the listing.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobProperties, ContainerClient

from dq_metadata.errors import DQError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import azure_errors
from dq_stores.azure_blob._layout import Layout, order_group, order_start
from dq_stores.azure_blob._records import EntryMeta, HeadRecord, decode_entry_meta, index_digest
from dq_stores.azure_blob._txn import TX
from dq_stores.documents import FieldFilter, PageCursor, Query, StoredDocument
from dq_stores.filtering import in_bounds
from dq_stores.keys import decode_key, is_digest_name
from dq_stores.search import SEARCH_FIELDS

__all__ = ["IndexScan", "ReadBlobs"]

log = logging.getLogger(__name__)

#: Reads blobs by (name, expected key or None) in parallel; ``None`` for a missing blob.
ReadBlobs = Callable[
    [Scope, str, Sequence[tuple[str, str | None]]], list[tuple[HeadRecord, str, bytes] | None]
]
#: An entry newer than its head is a write in flight — or, after this long, a crashed one.
ORPHAN_GRACE = timedelta(minutes=10)
_MAX_BATCH = 64
#: (order suffix, listing entry, its metadata, the (field, value) it posts, or None)
_Candidate = tuple[str, BlobProperties, EntryMeta, tuple[str, str] | None]


def _key_of(name: str) -> str | None:
    """The key a head's name stands for (``None`` for a digest name: read it)."""
    leaf = name.rsplit("/", 1)[1]
    return None if is_digest_name(leaf) else decode_key(leaf)


def _entry_holds(doc: StoredDocument, meta: EntryMeta, posting: tuple[str, str] | None) -> bool:
    """Whether the head still carries this index entry (else the entry is stale)."""
    if doc.deleted or index_digest(doc.index) != meta.digest:
        return False
    return posting is None or posting[1] in doc.index.fields.get(posting[0], ())


def _matches(fields: Mapping[str, tuple[str, ...]], filters: Sequence[FieldFilter]) -> bool:
    return all(any(v in fields.get(f.field, ()) for v in f.values) for f in filters)


def _in_query_order(
    listed: Iterator[tuple[str, BlobProperties, tuple[str, str] | None]],
    desc: bool,
    names_desc: bool | None = None,
) -> Iterator[_Candidate]:
    """Entries with their metadata, in exact ``(sort_key, key)`` order.

    Name order is exact except inside a run of truncated names (see
    ``_layout.order_group``): each run is buffered and sorted by the real values.
    ``names_desc``: whether the names are descending ones (default ``desc``; an
    ascending range read backwards has ascending names in descending order).
    """
    names_desc = desc if names_desc is None else names_desc
    run: list[_Candidate] = []
    run_group: str | None = None
    for suffix, props, posting in listed:
        meta = decode_entry_meta(props.metadata)
        if meta is None:
            continue
        group = order_group(suffix, names_desc)
        if run and group is not None and group == run_group:
            run.append((suffix, props, meta, posting))
            continue
        yield from _sorted_run(run, desc)
        run, run_group = [(suffix, props, meta, posting)], group
    yield from _sorted_run(run, desc)


def _sorted_run(run: list[_Candidate], desc: bool) -> list[_Candidate]:
    if len(run) > 1:
        # the suffix last keeps entries of one document adjacent (deduplicated later)
        run.sort(key=lambda c: (c[2].sort_key, c[2].key, c[0]), reverse=desc)
    return run


class IndexScan:
    """Query, count and export over one container, for :class:`AzureBlobBackend`."""

    def __init__(
        self,
        container: ContainerClient,
        layout: Layout,
        read_blobs: ReadBlobs,
        background: Callable[[Callable[[], Any]], object],
        now: Callable[[], datetime],
    ) -> None:
        self._container = container
        self._layout = layout
        self._read_blobs = read_blobs
        self._background = background
        #: The service's time (entries' ages are measured against their Last-Modified).
        self._now = now
        #: Whether the service ignores ``start_from`` (learnt at the first listing).
        self._use_markers = False

    # -- public to the backend ---------------------------------------------
    def query(
        self, scope: Scope, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        out: list[StoredDocument] = []
        page = min(5000, max(4, fetch * 2))
        for doc in self._scan(scope, kind, query, cursor, batch=fetch, page=page):
            out.append(doc)
            if len(out) >= fetch:
                break
        return out

    def count(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int:
        if not filters:  # heads carry a 'deleted' flag in their metadata: no reads needed
            total = 0
            locked: list[tuple[str, str | None]] = []
            for name, is_locked in self._live_heads(scope, kind):
                # A commit holds it, or it says it is deleted (a flag anyone can set
                # from outside, so it never hides a document): its record decides.
                if is_locked:
                    locked.append((name, _key_of(name)))
                else:
                    total += 1
            for start in range(0, len(locked), _MAX_BATCH):
                total += sum(1 for _ in self._docs(scope, kind, locked[start : start + _MAX_BATCH]))
            return total
        return self._count_filtered(scope, kind, filters)

    def _count_filtered(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int:
        """Count from two listings: the drive filter's index entries and the heads.

        An entry is trusted without reading its document when the head's metadata
        (listed) is live, unlocked and carries the entry's index digest: then the
        entry describes the head's very index entry (whatever revision wrote it), and
        its metadata fields decide the other filters; entries with another digest
        are stale or in flight and ignored (every committed head has its entries,
        written before it). Any other entry that could
        match (a head locked by a commit, one without a digest, fields too large
        for metadata) is decided by reading its head, as a query does.
        """
        # the two listings run concurrently: the latency of the longer one, not of both
        listing = self._background(functools.partial(self._head_states, scope, kind))
        drive = min(filters, key=lambda f: len(set(f.values)))
        base = self._layout.base(scope, kind)
        postings = [(drive.field, v) for v in sorted(set(drive.values))]
        metas = [
            meta
            for posting in postings
            for _suffix, props, _p in self._list(base, posting, False, None, 5000)
            if (meta := decode_entry_meta(props.metadata)) is not None
        ]
        heads: dict[str, str | None] = listing.result()  # type: ignore[attr-defined]
        counted: set[str] = set()
        doubtful: dict[str, str] = {}  # key -> head name
        for meta in metas:
            name = self._layout.head(scope, kind, meta.key)
            if meta.key in counted or name not in heads:
                continue  # counted, or no live head: deleted, or a write never committed
            digest = heads[name]
            if digest is None or meta.fields is None:
                doubtful[meta.key] = name
            elif digest == meta.digest:
                if _matches(meta.fields, filters):
                    counted.add(meta.key)
                doubtful.pop(meta.key, None)
        pending: list[tuple[str, str | None]] = [
            (name, key) for key, name in doubtful.items() if key not in counted
        ]
        for start in range(0, len(pending), _MAX_BATCH):
            docs = self._docs(scope, kind, pending[start : start + _MAX_BATCH])
            counted.update(d.key for d in docs if _matches(d.index.fields, filters))
        return len(counted)

    def _head_states(self, scope: Scope, kind: str) -> dict[str, str | None]:
        """Live heads by name: their index digest, ``None`` when the listing cannot
        vouch for it (locked by a commit, or written before heads carried it)."""
        prefix = self._layout.heads(scope, kind)
        states: dict[str, str | None] = {}
        with azure_errors(f"listing {kind} in {scope}"):
            for props in self._container.list_blobs(
                name_starts_with=prefix, include=["metadata"], results_per_page=5000
            ):
                meta = props.metadata or {}
                locked = TX in meta
                if not locked and meta.get("deleted") == "1":
                    continue
                states[str(props.name)] = None if locked else meta.get("idx")
        return states

    def iter_heads(self, scope: Scope, kind: str) -> Iterator[StoredDocument]:
        """Live heads of ``kind``, read 16 at a time: bounded memory."""
        batch: list[tuple[str, str | None]] = []
        for name, _locked in self._live_heads(scope, kind):
            batch.append((name, _key_of(name)))
            if len(batch) >= 16:
                yield from self._docs(scope, kind, batch)
                batch = []
        yield from self._docs(scope, kind, batch)

    def remove(self, name: str, etag: str) -> None:
        """Delete an index entry if it is still the one we saw; best effort."""
        try:
            # Already gone, or rewritten by a newer writer (412): keep theirs.
            with (
                azure_errors("removing a stale index entry"),
                contextlib.suppress(
                    ResourceNotFoundError, ResourceModifiedError, ResourceExistsError
                ),
            ):
                self._container.delete_blob(
                    name, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except DQError as exc:  # hygiene only: the head decides what matches
            # no blob name: it carries the tenant, the document key and indexed words
            log.debug("leaving a stale index entry in place: %s", type(exc).__name__)

    # -- internals -----------------------------------------------------------
    def _docs(
        self, scope: Scope, kind: str, batch: list[tuple[str, str | None]]
    ) -> Iterator[StoredDocument]:
        for found in self._read_blobs(scope, kind, batch) if batch else []:
            if found is not None and not found[0].doc.deleted:
                yield found[0].doc

    def _live_heads(self, scope: Scope, kind: str) -> Iterator[tuple[str, bool]]:
        """Every head: (name, must be read to know whether it is live — locked by a
        multi-document commit, or flagged deleted in its unhashed metadata)."""
        prefix = self._layout.heads(scope, kind)
        with azure_errors(f"listing {kind} in {scope}"):
            for props in self._container.list_blobs(
                name_starts_with=prefix, include=["metadata"], results_per_page=1000
            ):
                meta = props.metadata or {}
                yield str(props.name), TX in meta or meta.get("deleted") != "0"

    def _scan(
        self,
        scope: Scope,
        kind: str,
        query: Query,
        cursor: PageCursor | None,
        *,
        batch: int,
        page: int,
    ) -> Iterator[StoredDocument]:
        """Matching live documents in query order, strictly after ``cursor``."""
        base = self._layout.base(scope, kind)
        desc = query.descending
        # Drive by the filter with the fewest values (first on ties): callers put the
        # selective field first, e.g. dataset before status for the latest contract.
        # Descending, a search field (ascending entries only) drives only if all do.
        drive = min(
            query.filters,
            key=lambda f: (desc and f.field in SEARCH_FIELDS, len(set(f.values))),
            default=None,
        )
        postings: list[tuple[str, str] | None] = (
            [(drive.field, v) for v in sorted(set(drive.values))] if drive else [None]
        )
        bound = cursor.sort_key if cursor else (query.sort_key_max if desc else query.sort_key_min)
        start = None if bound is None else order_start(bound, desc)
        ordered: Iterator[_Candidate]
        if desc and drive is not None and drive.field in SEARCH_FIELDS:
            # no descending entries: read each value's ascending range whole, backwards
            # (as long as the documents carrying that token), then merge descending
            backwards = [
                list(self._list(base, posting, False, None, 5000))[::-1] for posting in postings
            ]
            merged = heapq.merge(*backwards, key=lambda item: item[0], reverse=True)
            ordered = _in_query_order(merged, desc, names_desc=False)
        else:
            streams = [self._list(base, posting, desc, start, page) for posting in postings]
            ordered = _in_query_order(heapq.merge(*streams, key=lambda item: item[0]), desc)
        pending: list[_Candidate] = []
        last: list[str] = [""]  # suffix of the last document yielded, across batches
        for suffix, props, meta, posting in ordered:
            if not in_bounds(meta.sort_key, query):
                past = query.sort_key_min if desc else query.sort_key_max
                if past is not None and (meta.sort_key < past if desc else meta.sort_key >= past):
                    break
                continue
            if cursor is not None:
                position, mark = (meta.sort_key, meta.key), (cursor.sort_key, cursor.key)
                if (position >= mark) if desc else (position <= mark):
                    continue
            if meta.fields is not None and not _matches(meta.fields, query.filters):
                continue  # the name fixes the fields: no head could match through this entry
            pending.append((suffix, props, meta, posting))
            if len(pending) >= batch:
                yield from self._verify(scope, kind, query.filters, pending, last)
                pending = []
                # Candidates that did not match cost a round trip: verify more at once next
                # time (requests run in parallel, so round trips decide the latency).
                batch = min(batch * 2, _MAX_BATCH)
        yield from self._verify(scope, kind, query.filters, pending, last)

    def _list(
        self,
        base: str,
        posting: tuple[str, str] | None,
        desc: bool,
        start: str | None,
        page: int,
    ) -> Iterator[tuple[str, Any, tuple[str, str] | None]]:
        field, value = posting or (None, None)
        prefix = base + self._layout.posting_dir(field, value, desc)
        first = None if start is None else prefix + start
        # ``start_from`` lets the service skip ahead. A server that ignores it (Azurite
        # 3.35) is noticed at the first name before ``first``: from then on this scan
        # starts each listing at a marker instead (names after ``first`` minus its last
        # character), so a deep page lists from its cursor, not from the range start.
        extra: dict[str, Any] = {} if first is None else {"start_from": first}
        token = None if first is None or not self._use_markers else first[:-1]
        with azure_errors("listing the index"):
            while True:
                # Small first page (parsing listed entries costs client CPU), then 4x per
                # page: a limit-1 lookup lists a few names, a long walk few requests.
                pages = self._container.list_blobs(
                    name_starts_with=prefix, include=["metadata"], results_per_page=page, **extra
                ).by_page(continuation_token=token)
                restart = False
                for props in next(pages, []):
                    name = str(props.name)
                    if first is None or name >= first:
                        yield name[len(prefix) :], props, posting
                    elif token is None:  # start_from was ignored: list from a marker
                        self._use_markers = restart = True
                        break
                token = first[:-1] if restart and first else pages.continuation_token  # type: ignore[attr-defined]
                if not token:
                    return
                if not restart:
                    page = min(page * 4, 5000)

    def _verify(
        self,
        scope: Scope,
        kind: str,
        filters: Sequence[FieldFilter],
        items: list[_Candidate],
        last: list[str],
    ) -> Iterator[StoredDocument]:
        if not items:
            return
        keys = sorted({meta.key for _, _, meta, _ in items})
        names = [(self._layout.head(scope, kind, key), key) for key in keys]
        heads = dict(zip(keys, self._read_blobs(scope, kind, names), strict=True))
        now = self._now()
        for suffix, props, meta, posting in items:
            found = heads[meta.key]
            doc = found[0].doc if found else None
            if doc is not None and doc.revision >= meta.revision:
                if _entry_holds(doc, meta, posting):
                    # one document can sit under several of the filter's values
                    if _matches(doc.index.fields, filters) and suffix != last[0]:
                        last[0] = suffix
                        yield doc
                    continue
                stale = True
            else:  # a write in flight, unless it has been "in flight" for too long
                modified = props.last_modified
                stale = modified is not None and now - modified > ORPHAN_GRACE
            if stale and props.etag:
                self._background(functools.partial(self.remove, str(props.name), str(props.etag)))
