"""Whether a head read by ``get`` is in its place (a mixin of the Azure backend).

``get`` is one request: a writer PUTs a head moments after building its record, so
a head blob whose ``Last-Modified`` lies within a few seconds of its record's time
(``at``, shifted by the service clock's offset: :mod:`._clock`) was put there by its
writer. Only a head outside that window — copied in later, restored, rolled forward
by another process, or written by a writer with a skewed clock — has its place
checked, once per head version and process: two requests in parallel, for the
archived revisions N+1 (archived means superseded, so committed: the head went back)
and N (the head's bytes written after N was archived: N+1 was committed over it and
the head put back — a rollback by one revision; see ``_chain.written_after``). The
window only decides whether the check runs; the verdict rests on the service's
times and blobs alone, so no clock can make it wrong.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._chain import written_after
from dq_stores.azure_blob._client import azure_errors, container_missing
from dq_stores.azure_blob._clock import ServiceClock
from dq_stores.azure_blob._txn import Blob
from dq_stores.documents import StoredDocument

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from dq_stores.azure_blob._layout import Layout
    from dq_stores.azure_blob._records import HeadRecord

__all__ = ["PlaceMixin"]

T = TypeVar("T")

#: Seconds a head blob's Last-Modified may differ from its record's time before
#: ``get`` checks its place, while the service clock's offset is not known yet
#: (clock skew between writers and the service, slow requests).
_PLACED_SKEW = 30.0
#: Once the offset is known: seconds before / after "record time + offset" (whole-
#: second Last-Modified and Date, the offset's error; the write's own latency after).
_PLACED_NEAR = (2.0, 5.0)
_MAX_PLACED = 4096


class PlaceMixin:
    """``_in_place`` and the place check of :class:`AzureBlobBackend`."""

    _container: ContainerClient
    _layout: Layout
    _clock: ServiceClock
    _placed: set[tuple[str, str]]  # (head name, etag) whose place was checked

    if TYPE_CHECKING:  # provided by AzureBlobBackend

        def _parallel(self, calls: Sequence[Callable[[], T]]) -> list[T]: ...
        def _read_head(
            self, scope: Scope, kind: str, key: str
        ) -> tuple[HeadRecord, str, bytes] | None: ...

    def _in_place(
        self, scope: Scope, kind: str, key: str, doc: StoredDocument, blob: Blob, name: str
    ) -> StoredDocument:
        """``doc``, read from the head ``blob`` (``name``), once it is known to be in
        place (or a newer head, if writers moved on meanwhile); ``IntegrityError`` for
        a rolled-back head. No request unless ``blob`` is outside the window."""
        if blob.modified is None or (name, blob.etag) in self._placed:
            return doc
        age = blob.modified.timestamp() - doc.written_at.timestamp()
        low, high = self._placed_window()
        if low <= age <= high:
            return doc
        return self._check_place(scope, kind, key, doc, blob, (name, blob.etag))

    def _placed_window(self) -> tuple[float, float]:
        """Seconds a head's Last-Modified may lie after its record's time (negative:
        before) for ``get`` to take it as put in place by its writer."""
        offset = self._clock.offset()
        if offset is None:
            return -_PLACED_SKEW, _PLACED_SKEW
        before, after = _PLACED_NEAR
        return offset - before, offset + after

    def _archived(
        self, scope: Scope, kind: str, key: str, revision: int
    ) -> tuple[bool, datetime | None]:
        """Whether ``revision`` was archived, and when (its Last-Modified)."""
        name = self._layout.revision(scope, kind, key, revision)
        with azure_errors(f"reading {kind} {key!r} in {scope}"):
            try:
                props = self._container.get_blob_client(name).get_blob_properties()
            except ResourceNotFoundError as exc:
                if container_missing(exc):
                    raise
                return False, None
        return True, props.last_modified

    def _check_place(
        self,
        scope: Scope,
        kind: str,
        key: str,
        doc: StoredDocument,
        blob: Blob,
        seen: tuple[str, str],
    ) -> StoredDocument:
        """``doc`` (head revision N) if it is in place. A head whose revision N+1 was
        archived — superseded, so committed — was rolled back; so was one whose bytes
        were written after revision N was archived (writers archive a head only after
        writing it): N+1 was committed over it and the head put back."""
        archived: Callable[[int], Any] = functools.partial(self._archived, scope, kind, key)
        (superseded, _), (_, own) = self._parallel(
            [
                functools.partial(archived, doc.revision + 1),
                functools.partial(archived, doc.revision),
            ]
        )
        by_one = not superseded and written_after(blob.written, own)
        if superseded or by_one:
            again = self._read_head(scope, kind, key)  # writers may have moved on meanwhile
            if again is None or again[0].doc.revision <= doc.revision:
                if by_one:
                    raise IntegrityError(
                        f"{kind} {key!r} in {scope}: the head (revision {doc.revision}) was "
                        f"written after revision {doc.revision} was archived — rolled back "
                        f"by one revision (revision {doc.revision + 1} was committed)"
                    )
                raise IntegrityError(
                    f"{kind} {key!r} in {scope}: the head is revision {doc.revision} but "
                    f"revision {doc.revision + 1} was archived — a rolled-back head"
                )
            return again[0].doc
        if len(self._placed) >= _MAX_PLACED:
            self._placed.clear()
        self._placed.add(seen)
        return doc
