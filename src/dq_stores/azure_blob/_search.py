"""Search on Azure Blob: prefix listings of search-token postings, verified against heads.

Every search token of a live document has a posting
``{base}x/{search_title|search_body}/{search_value_name(token)}/a/{order}`` (written
with the rest of its index entries, ascending only). A token starting with a term
lies under the name prefix :func:`~dq_stores.azure_blob._layout.search_name_prefix`
of that term, so one term's candidates are two prefix listings (title and body),
5,000 names per request, whatever the size of the store.

Only the **drive** term is listed (the one with the longest name prefix, i.e. the
most selective guess): each posting's metadata holds its document's whole index
entry (fixed by the digest in its name), so :func:`~dq_stores.search.score` decides
there whether the document matches *every* term — the exact intersection, without
listing the other terms. Postings whose metadata could not hold the fields (over
7 KB) are intersected with the other terms' listings when that saves reads.

The survivors' heads are read in parallel (64 at a time), and a head is returned
only when it still carries the posting (live, same index digest, a token of that
field under that name): a stale posting (a later revision, a crashed or racing
writer) or a forged one never yields a document, and is removed with ``If-Match``
once provably stale. The port then ranks from each head's own index entry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.storage.blob import BlobProperties, ContainerClient

from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import azure_errors
from dq_stores.azure_blob._layout import Layout, search_name_prefix, search_value_name
from dq_stores.azure_blob._query import ORPHAN_GRACE, ReadBlobs
from dq_stores.azure_blob._records import EntryMeta, decode_entry_meta, index_digest
from dq_stores.documents import StoredDocument
from dq_stores.search import SEARCH_FIELDS, score

__all__ = ["SearchScan"]

_MAX_BATCH = 64
_PAGE = 5000


@dataclass(frozen=True, slots=True)
class _Posting:
    name: str  # full blob name
    props: BlobProperties
    meta: EntryMeta
    field: str
    value_name: str  # the token's name segment


class SearchScan:
    """``_search`` of :class:`~dq_stores.azure_blob.AzureBlobBackend`."""

    def __init__(
        self,
        container: ContainerClient,
        layout: Layout,
        read_blobs: ReadBlobs,
        parallel: Callable[[Sequence[Callable[[], Any]]], list[Any]],
        background: Callable[[Callable[[], Any]], object],
        remove: Callable[[str, str], None],
        now: Callable[[], datetime],
    ) -> None:
        self._container = container
        self._layout = layout
        self._read_blobs = read_blobs
        self._parallel = parallel
        self._background = background
        self._remove = remove
        self._now = now  # the service's time (postings' ages: their Last-Modified)

    def find(self, scope: Scope, kind: str, terms: tuple[str, ...]) -> Iterator[StoredDocument]:
        """Live heads that carry a posting of every term (see the module docstring)."""
        base = self._layout.base(scope, kind)
        drive = max(terms, key=lambda t: len(search_name_prefix(t)))  # first on ties
        candidates: dict[str, list[_Posting]] = {}
        for posting in self._postings(base, drive):
            fields = posting.meta.fields
            if fields is not None and score(terms, fields) == 0:
                continue  # this entry matches not every term: no head matches through it
            candidates.setdefault(posting.meta.key, []).append(posting)
        # keys only entries without fields (over 7 KB) vouch for: maybe no match at all
        doubtful = {
            key for key, found in candidates.items() if all(p.meta.fields is None for p in found)
        }
        others = [t for t in terms if t != drive]
        # each other term costs 2 listings at least: worth it for more doubtful reads
        if others and len(doubtful) > 2 * len(others):
            for term in others:
                seen = {p.meta.key for p in self._postings(base, term)}
                for key in doubtful - seen:
                    del candidates[key]
                doubtful &= seen
        keys = sorted(candidates)
        for start in range(0, len(keys), _MAX_BATCH):
            yield from self._verify(scope, kind, keys[start : start + _MAX_BATCH], candidates)

    def _postings(self, base: str, term: str) -> Iterator[_Posting]:
        """The ascending postings of both search fields under ``term``'s name prefix."""
        prefixes = [
            (field, base + self._layout.search_prefix(field, term)) for field in SEARCH_FIELDS
        ]
        listed = self._parallel([functools.partial(self._list, p) for _f, p in prefixes])
        for (field, _prefix), names in zip(prefixes, listed, strict=True):
            root = f"{base}x/{field}/"
            for name, props in names:
                parts = name[len(root) :].split("/", 2)  # value, direction, order
                meta = decode_entry_meta(props.metadata)
                if len(parts) == 3 and parts[1] == "a" and meta is not None:
                    yield _Posting(name, props, meta, field, parts[0])

    def _list(self, prefix: str) -> list[tuple[str, BlobProperties]]:
        with azure_errors("listing the search index"):
            return [
                (str(props.name), props)
                for props in self._container.list_blobs(
                    name_starts_with=prefix, include=["metadata"], results_per_page=_PAGE
                )
            ]

    def _verify(
        self, scope: Scope, kind: str, keys: list[str], candidates: dict[str, list[_Posting]]
    ) -> Iterator[StoredDocument]:
        names = [(self._layout.head(scope, kind, key), key) for key in keys]
        now = self._now()
        for key, found in zip(keys, self._read_blobs(scope, kind, names), strict=True):
            doc = found[0].doc if found else None
            held = False
            for posting in candidates[key]:
                if doc is not None and doc.revision >= posting.meta.revision:
                    if _holds(doc, posting):
                        held = True
                        continue
                    stale = True
                else:  # a write in flight, unless it has been "in flight" for too long
                    modified = posting.props.last_modified
                    stale = modified is not None and now - modified > ORPHAN_GRACE
                if stale and posting.props.etag:
                    etag = str(posting.props.etag)
                    self._background(functools.partial(self._remove, posting.name, etag))
            if held and doc is not None:
                yield doc


def _holds(doc: StoredDocument, posting: _Posting) -> bool:
    """Whether the head still carries this posting: live, the index entry its name
    stands for, and a token of that field under that name segment."""
    if doc.deleted or index_digest(doc.index) != posting.meta.digest:
        return False
    values = doc.index.fields.get(posting.field, ())
    return any(search_value_name(value) == posting.value_name for value in values)
