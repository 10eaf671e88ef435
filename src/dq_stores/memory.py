"""In-memory document backend: the reference adapter, for tests and ephemeral use.

Thread-safe within one process; nothing survives the process.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    ANY,
    Delete,
    DocumentWrite,
    Expectation,
    FieldFilter,
    IndexEntry,
    Operation,
    PageCursor,
    Put,
    Query,
    StoredDocument,
)
from dq_stores.filtering import after_cursor, check_expectation, check_operation, in_bounds
from dq_stores.retention import PRUNED_KIND, check_unchanged, marker_key, parse_marker
from dq_stores.search import DRIVING_PROBE, SEARCH_FIELDS, driving_terms

__all__ = ["MemoryBackend"]


@dataclass
class _Kind:
    revisions: dict[str, list[StoredDocument]] = field(default_factory=dict)
    postings: defaultdict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    live: set[str] = field(default_factory=set)
    # distinct values of the search fields, sorted (a prefix is a bisect range), and
    # how many (field, key) postings hold each
    tokens: list[str] = field(default_factory=list)
    token_refs: dict[str, int] = field(default_factory=dict)

    def index(self, doc: StoredDocument) -> None:
        for name, values in doc.index.fields.items():
            for value in values:
                self.postings[(name, value)].add(doc.key)
                if name in SEARCH_FIELDS:
                    refs = self.token_refs.get(value, 0)
                    if refs == 0:
                        bisect.insort(self.tokens, value)
                    self.token_refs[value] = refs + 1

    def unindex(self, doc: StoredDocument) -> None:
        for name, values in doc.index.fields.items():
            for value in values:
                self.postings[(name, value)].discard(doc.key)
                if name in SEARCH_FIELDS:
                    refs = self.token_refs[value] - 1
                    if refs:
                        self.token_refs[value] = refs
                    else:
                        del self.token_refs[value]
                        del self.tokens[bisect.bisect_left(self.tokens, value)]

    def _range(self, term: str) -> Iterator[set[str]]:
        tokens = self.tokens
        i = bisect.bisect_left(tokens, term)
        while i < len(tokens) and tokens[i].startswith(term):
            for name in SEARCH_FIELDS:
                keys = self.postings.get((name, tokens[i]))
                if keys:
                    yield keys
            i += 1

    def count_upto(self, term: str, limit: int) -> int:
        """Postings under ``term``'s prefix, counted up to ``limit``."""
        n = 0
        for keys in self._range(term):
            n += len(keys)
            if n >= limit:
                return limit
        return n

    def starting_with(self, term: str) -> set[str]:
        """Keys of live documents with a search token starting with ``term``."""
        found: set[str] = set()
        for keys in self._range(term):
            found |= keys
        return found


class MemoryBackend(DocumentBackend):
    """Documents in dictionaries, with per-field posting sets as the index."""

    replaces_atomically = True

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._data: dict[tuple[Scope, str], _Kind] = {}
        # revisions below this (per scope, kind, key) were pruned (prune_history)
        self._kept_from: dict[tuple[Scope, str, str], int] = {}

    def _bucket(self, scope: Scope, kind: str) -> _Kind:
        bucket = self._data.get((scope, kind))
        if bucket is None:
            bucket = self._data[(scope, kind)] = _Kind()
        return bucket

    def _head(self, scope: Scope, kind: str, key: str) -> StoredDocument | None:
        bucket = self._data.get((scope, kind))
        if bucket is None:
            return None
        revs = bucket.revisions.get(key)
        return revs[-1] if revs else None

    def _get(self, scope: Scope, kind: str, key: str) -> StoredDocument:
        with self._lock:
            head = self._head(scope, kind, key)
        if head is None or head.deleted:
            raise NotFoundError(f"{kind} {key!r} not found in {scope}")
        return head

    def _get_revision(self, scope: Scope, kind: str, key: str, revision: int) -> StoredDocument:
        with self._lock:
            revs = self._history_or_none(scope, kind, key) or []
            kept_from = self._kept_from.get((scope, kind, key), 1)
        if revision > len(revs) or revision < kept_from:
            raise NotFoundError(f"{kind} {key!r} has no revision {revision} in {scope}")
        return revs[revision - 1]

    def _history_or_none(self, scope: Scope, kind: str, key: str) -> list[StoredDocument] | None:
        bucket = self._data.get((scope, kind))
        return None if bucket is None else bucket.revisions.get(key)

    def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        with self._lock:
            revs = self._history_or_none(scope, kind, key)
            if not revs:
                raise NotFoundError(f"{kind} {key!r} not found in {scope}")
            return revs[self._kept_from.get((scope, kind, key), 1) - 1 :]

    def _prune_history(
        self, scope: Scope, kind: str, key: str, keep_from: int, seen: Mapping[int, str]
    ) -> None:
        with self._lock:  # the lock every replace holds: the check and the prune are one
            current = self._kept_from.get((scope, kind, key), 1)
            revs = self._history_or_none(scope, kind, key) or []
            marker = self._head(scope, PRUNED_KIND, marker_key(kind, key))
            check_unchanged(
                revs[-1].revision if revs else None,
                None if marker is None or marker.deleted else parse_marker(marker).pruned_through,
                {doc.revision: doc.sha256 for doc in revs[current - 1 : keep_from - 1]},
                keep_from,
                seen,
            )
            self._kept_from[(scope, kind, key)] = max(current, keep_from)

    def _append(
        self,
        scope: Scope,
        kind: str,
        key: str,
        expect: Expectation,
        make: Callable[[int, datetime], StoredDocument],
    ) -> StoredDocument:
        with self._lock:
            bucket = self._bucket(scope, kind)
            revs = bucket.revisions.setdefault(key, [])
            head = revs[-1] if revs else None
            check_expectation(
                None if head is None or head.deleted else head.revision, expect, kind, key
            )
            if head is not None and not head.deleted:
                bucket.unindex(head)
            doc = make(len(revs) + 1, datetime.now(UTC))
            revs.append(doc)
            if doc.deleted:
                bucket.live.discard(key)
            else:
                bucket.live.add(key)
                bucket.index(doc)
            return doc

    def _put(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument:
        def make(revision: int, now: datetime) -> StoredDocument:
            return StoredDocument(
                scope, kind, write.key, revision, write.body, write.sha256, write.index, now
            )

        return self._append(scope, kind, write.key, expect, make)

    def _delete(self, scope: Scope, kind: str, key: str, expect: Expectation) -> StoredDocument:
        def make(revision: int, now: datetime) -> StoredDocument:
            return StoredDocument(
                scope, kind, key, revision, b"", "", IndexEntry(), now, deleted=True
            )

        with self._lock:
            head = self._head(scope, kind, key)
            if head is None or head.deleted:
                raise NotFoundError(f"{kind} {key!r} not found in {scope}")
            return self._append(scope, kind, key, expect, make)

    def _commit(
        self, scope: Scope, operations: tuple[Operation, ...]
    ) -> list[StoredDocument | None]:
        # One lock around check and apply: readers take it too, so none sees a part.
        with self._lock:
            for op in operations:
                head = self._head(scope, op.kind, op.key)
                check_operation(op, None if head is None or head.deleted else head.revision)
            out: list[StoredDocument | None] = []
            for op in operations:
                if isinstance(op, Put):
                    out.append(self._put(scope, op.kind, op.write, ANY))
                elif isinstance(op, Delete):
                    out.append(self._delete(scope, op.kind, op.key, ANY))
                else:
                    out.append(None)
            return out

    def _matching(self, bucket: _Kind, filters: tuple[FieldFilter, ...]) -> set[str]:
        keys: set[str] | None = None
        for flt in filters:
            hits: set[str] = set()
            for value in flt.values:
                hits |= bucket.postings.get((flt.field, value), set())
            keys = hits if keys is None else keys & hits
        return set(bucket.live) if keys is None else keys

    def _query(
        self, scope: Scope, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        with self._lock:
            bucket = self._data.get((scope, kind))
            if bucket is None:
                return []
            heads = [bucket.revisions[k][-1] for k in self._matching(bucket, query.filters)]
        heads = [
            d
            for d in heads
            if in_bounds(d.index.sort_key, query) and after_cursor(d, query, cursor)
        ]
        heads.sort(key=lambda d: (d.index.sort_key, d.key), reverse=query.descending)
        return heads[:fetch]

    def _count(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int:
        with self._lock:
            bucket = self._data.get((scope, kind))
            return 0 if bucket is None else len(self._matching(bucket, filters))

    def _search(self, scope: Scope, kind: str, terms: tuple[str, ...]) -> list[StoredDocument]:
        # per term a bisect range of the sorted tokens; the rarest terms' keys intersected
        with self._lock:
            bucket = self._data.get((scope, kind))
            if bucket is None:
                return []
            counts = {term: bucket.count_upto(term, DRIVING_PROBE) for term in terms}
            first, *others = driving_terms(counts)
            keys = bucket.starting_with(first)
            for term in others:
                keys &= bucket.starting_with(term)
            return [bucket.revisions[k][-1] for k in keys]

    def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
        with self._lock:
            buckets = [
                (k, b)
                for (s, k), b in sorted(self._data.items(), key=lambda i: i[0][1])
                if s == scope and (kind is None or k == kind)
            ]
            snapshot = [b.revisions[key][-1] for _, b in buckets for key in sorted(b.live)]
        yield from snapshot

    def _list_environments(self, tenant: str) -> Iterable[str]:
        with self._lock:
            return {s.environment for (s, _k) in self._data if s.tenant == tenant}

    def _iter_scopes(self) -> Iterator[Scope]:
        with self._lock:
            scopes = sorted({s for (s, _k) in self._data}, key=str)
        yield from scopes

    # -- history transfer ------------------------------------------------------
    def _iter_histories(self, scope: Scope, kind: str | None) -> Iterator[list[StoredDocument]]:
        with self._lock:
            names = sorted(
                (k, key)
                for (s, k), b in self._data.items()
                if s == scope and (kind is None or k == kind)
                for key in b.revisions
            )
        for k, key in names:
            with self._lock:
                revs = self._data[(scope, k)].revisions[key]
                kept = revs[self._kept_from.get((scope, k, key), 1) - 1 :]
            if kept:
                yield kept

    @staticmethod
    def _forget(bucket: _Kind, key: str) -> None:
        """Take ``key``'s head out of the bucket's index (its revisions stay)."""
        old = bucket.revisions.get(key)
        if old and not old[-1].deleted:
            bucket.unindex(old[-1])
        bucket.live.discard(key)

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        with self._lock:
            bucket = self._bucket(scope, kind)
            for key, docs in histories:
                if bucket.revisions.get(key) and not replace:
                    raise ConflictError(f"{kind} {key!r} already has a history in {scope}")
                if docs[0].revision > 1:  # again under the lock: a prune may have moved it
                    self._check_pruned_start(scope, kind, key, docs[0].revision)
            for key, docs in histories:
                self._forget(bucket, key)
                first = docs[0].revision
                if replace and first == 1 and kind != PRUNED_KIND:
                    marker = self._bucket(scope, PRUNED_KIND)  # nothing is pruned any more
                    self._forget(marker, marker_key(kind, key))
                    marker.revisions.pop(marker_key(kind, key), None)
                # Revisions below ``first`` were pruned at the source: their slots hold
                # a stand-in that is never returned (``_kept_from`` hides them).
                bucket.revisions[key] = [docs[0]] * (first - 1) + list(docs)
                if first > 1:
                    self._kept_from[(scope, kind, key)] = first
                else:
                    self._kept_from.pop((scope, kind, key), None)
                head = docs[-1]
                if not head.deleted:
                    bucket.live.add(key)
                    bucket.index(head)
