"""History export and restore for the Azure Blob backend (a mixin of the backend).

Export lists each kind's head blobs page by page (bounded memory), reads each
head — the key comes from the record — and its archived revisions.

Restore checks every key of the batch for a head first (in parallel), then per
key writes the archived revisions ``r/1 … r/n-1`` and the last revision's index
entries, and finally creates the head with ``If-None-Match: *``: the head is the
commit point, as for any first write. A restore that dies before it leaves only
blobs no head points to (overwritten by the next restore of the key; index
entries readers verify and clean).

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

import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import Pool, azure_errors
from dq_stores.azure_blob._records import HeadRecord
from dq_stores.documents import StoredDocument
from dq_stores.keys import decode_key, is_digest_name

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from dq_stores.azure_blob._layout import Layout

__all__ = ["RestoreMixin"]

_KEY_WORKERS = 4
_WINDOW = 64  # keys whose histories are read in parallel, in listing order


class RestoreMixin:
    """``_iter_histories`` and ``_restore_many`` of :class:`AzureBlobBackend`."""

    _container: ContainerClient
    _layout: Layout

    if TYPE_CHECKING:

        def _children(self, prefix: str) -> list[str]: ...
        def _read(
            self, name: str, scope: Scope, kind: str, key: str | None, rev: int = 0
        ) -> tuple[HeadRecord, str, bytes] | None: ...
        def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]: ...
        def _fetch(self, name: str, what: str) -> Any: ...
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
        heads = [self._layout.head(scope, kind, key) for key, _docs in histories]
        fetch = self._fetch
        what = f"checking {kind} in {scope}"
        found = self._parallel([functools.partial(fetch, name, what) for name in heads])
        for (key, _docs), blob in zip(histories, found, strict=True):
            if blob is not None:
                raise ConflictError(
                    f"{kind} {key!r} already has a history in {scope}; restore writes only "
                    "into keys that were never written (nothing of this batch was written)"
                )
        with Pool(_KEY_WORKERS, "dq-azure-restore") as pool:
            futures = [
                pool.submit(self._restore_key, scope, kind, key, docs, head)
                for (key, docs), head in zip(histories, heads, strict=True)
            ]
            for future in futures:
                future.result()

    def _restore_key(
        self, scope: Scope, kind: str, key: str, docs: list[StoredDocument], head_name: str
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
        calls += [functools.partial(self._upload_revision, record) for record in records]
        entries.update(item for item in self._parallel(calls) if item is not None)
        self._write_head(head_name, HeadRecord(head, writer, entries, prev), None)

    def _upload_revision(self, record: HeadRecord) -> None:
        doc = record.doc
        name = self._layout.revision(doc.scope, doc.kind, doc.key, doc.revision)
        with azure_errors(f"restoring {doc.kind} {doc.key!r} in {doc.scope}"):
            self._container.get_blob_client(name).upload_blob(record.to_bytes(), overwrite=True)
