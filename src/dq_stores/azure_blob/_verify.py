"""The Azure verifier: every head and archived revision, head metadata, index entries.

Walks one scope kind by kind, head by head (listing pages of 1,000; memory bounded
by one key's history). For each head: its record (hash, identity), the metadata
listings trust (``rev``, ``deleted``) against the record, its history chain
(:func:`~dq_stores.azure_blob._chain.history_problem`, a head put back over a newer
revision — by one revision too — included), and — for a live head —
that every index entry it needs exists. Stale entries are not problems (readers
check every entry against its head and remove stale ones). ``repair`` re-creates
missing entries for live heads; no head or revision blob is written.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from dq_metadata.canonical import loads
from dq_metadata.errors import DQError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._chain import history_problem
from dq_stores.azure_blob._client import azure_errors
from dq_stores.azure_blob._records import encode_entry_meta
from dq_stores.azure_blob._txn import RESTORE, TX
from dq_stores.documents import StoredDocument
from dq_stores.integrity import IntegrityProblem, ProblemCode, VerifyCounts
from dq_stores.retention import PRUNED_KIND, marker_key, parse_marker

if TYPE_CHECKING:
    from dq_stores.azure_blob.backend import AzureBlobBackend

__all__ = ["repair_scope", "verify_scope"]


def _heads(
    backend: AzureBlobBackend, scope: Scope, kind: str
) -> Iterator[tuple[str, dict[str, str]]]:
    prefix = backend._layout.heads(scope, kind)
    with azure_errors(f"listing {kind} in {scope}"):
        for props in backend._container.list_blobs(
            name_starts_with=prefix, include=["metadata"], results_per_page=1000
        ):
            yield str(props.name), dict(props.metadata or {})


def _exists(backend: AzureBlobBackend, name: str) -> bool:
    with azure_errors(f"checking index entry {name!r}"):
        try:
            backend._container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return False
    return True


def _missing_entries(backend: AzureBlobBackend, doc: StoredDocument) -> list[str]:
    base = backend._layout.base(doc.scope, doc.kind)
    names = [base + suffix for suffix in backend._entry_names(doc)]
    found = backend._parallel([functools.partial(_exists, backend, n) for n in names])
    return [n for n, ok in zip(names, found, strict=True) if not ok]


def _check_head(
    backend: AzureBlobBackend,
    scope: Scope,
    kind: str,
    name: str,
    meta: dict[str, str],
    counts: VerifyCounts,
) -> Iterator[IntegrityProblem]:
    try:
        read = backend._read(name, scope, kind, None)
    except DQError as exc:
        yield IntegrityProblem(scope, "record", f"head blob {name!r}: {exc}", kind)
        return
    if read is None:
        # Deleted meanwhile, a commit's lock, or a restore's empty head: one older
        # than the lease is a restore that died, its revisions in no history yet.
        restoring = meta.get(RESTORE)
        if restoring and TX not in meta:
            blob = backend._fetch(name, f"reading {name!r}")
            if blob is not None and blob.restoring and blob.modified is not None:
                age = (backend._clock.now() - blob.modified).total_seconds()
                if age > backend._lease:
                    yield IntegrityProblem(
                        scope,
                        "history",
                        f"{name!r}: a restore that did not finish ({age:.0f} s ago) left "
                        "an empty head and revision blobs no head points to; the key's "
                        "next write or restore removes them",
                        kind,
                    )
        return
    doc = read[0].doc
    if TX not in meta and (
        meta.get("rev") != str(doc.revision) or meta.get("deleted") != ("1" if doc.deleted else "0")
    ):
        yield IntegrityProblem(
            scope,
            "head",
            f"head metadata {meta!r} disagrees with its record (revision {doc.revision}, "
            f"deleted {doc.deleted})",
            kind,
            doc.key,
        )
    try:
        archived, head, rewritten, _pruned = backend._history_records(scope, kind, doc.key)
    except DQError as exc:
        yield IntegrityProblem(scope, "history", str(exc), kind, doc.key)
        return
    counts.documents += 0 if doc.deleted else 1
    counts.revisions += len(archived) + 1
    counts.legacy_records += sum(r.prev is None for r in [*archived, read[0]])
    # After prune_history. The marker is read whether or not the listing held the
    # ``pruned`` blob (someone may have deleted it with a rollback to revision 1).
    try:
        start: int | None = backend._first_kept(scope, kind, doc.key, archived, head, True)
    except DQError as exc:  # a malformed marker: this key's problem, the walk goes on
        start = None
        yield IntegrityProblem(scope, "history", str(exc), kind, doc.key)
    problem = (
        None if start is None else history_problem(archived, head, start=start, rewritten=rewritten)
    )
    if problem is not None:
        code: ProblemCode = "head" if "rollback" in problem else "history"
        yield IntegrityProblem(scope, code, problem, kind, doc.key)
    if not doc.deleted:
        for missing in _missing_entries(backend, doc):
            yield IntegrityProblem(
                scope, "index", f"index entry {missing!r} is missing", kind, doc.key
            )
        if kind == PRUNED_KIND:
            yield from _marker_problem(backend, scope, doc)


def _marker_problem(
    backend: AzureBlobBackend, scope: Scope, marker: StoredDocument
) -> Iterator[IntegrityProblem]:
    """A pruned-history marker at or past its key's head (``prune_history`` never
    prunes the head) while the key's revision 1 is still archived: restored from a
    tampered archive, say. The key's own check reads the marker only when revision 1
    is gone (a head at or below the marker is then a rollback, reported there), so
    this case is checked here, once per marker (a head read; a revision-1 check when
    the head is not past the marker). The head only grows on Azure (no replace)."""
    try:
        prefix = parse_marker(marker)
    except DQError as exc:
        yield from _malformed_marker(backend, scope, marker, exc)
        return
    try:
        read = backend._read(
            backend._layout.head(scope, prefix.kind, prefix.key), scope, prefix.kind, prefix.key
        )
        if read is None or read[0].doc.revision > prefix.pruned_through:
            return
        first = backend._layout.revision(scope, prefix.kind, prefix.key, 1)
        if not _exists(backend, first):
            return  # the key's own check reads the marker: a rolled-back head, there
    except DQError:
        return  # a damaged head: the walk reports that head itself
    yield IntegrityProblem(
        scope,
        "history",
        f"the pruned-history marker records revisions 1..{prefix.pruned_through} as "
        f"pruned, the head is revision {read[0].doc.revision}",
        prefix.kind,
        prefix.key,
    )


def _malformed_marker(
    backend: AzureBlobBackend, scope: Scope, marker: StoredDocument, error: DQError
) -> Iterator[IntegrityProblem]:
    """A marker whose body is not one (``pruned_through`` not an integer >= 1, say):
    a ``history`` problem of the key it names, as the port walk reports it — here
    when the key's own check does not read the marker (its revision 1 still
    archived, or its head is revision 1); of the marker itself when its body names
    no key of it. A key without a head: nothing (no history to misread)."""
    try:
        data = loads(marker.body)
        kind, key = data["kind"], data["key"]
        named = isinstance(kind, str) and isinstance(key, str)
        named = named and marker_key(kind, key) == marker.key
    except (KeyError, TypeError, ValueError):
        named = False
    if not named:
        yield IntegrityProblem(scope, "history", str(error), PRUNED_KIND, marker.key)
        return
    try:
        read = backend._read(backend._layout.head(scope, kind, key), scope, kind, key)
        if read is None:
            return
        first = backend._layout.revision(scope, kind, key, 1)
        if read[0].doc.revision != 1 and not _exists(backend, first):
            return  # the key's own check reads the marker and reports it
    except DQError:
        return  # a damaged head: the walk reports that head itself
    yield IntegrityProblem(scope, "history", str(error), kind, key)


def verify_scope(
    backend: AzureBlobBackend, scope: Scope, counts: VerifyCounts
) -> Iterator[IntegrityProblem]:
    for kind in backend._children(backend._layout.scope(scope)):
        for name, meta in _heads(backend, scope, kind):
            yield from _check_head(backend, scope, kind, name, meta, counts)


def repair_scope(backend: AzureBlobBackend, scope: Scope) -> None:
    """Re-create every missing index entry of every live head (entries only)."""
    for kind in backend._children(backend._layout.scope(scope)):
        for name, _meta in _heads(backend, scope, kind):
            try:
                read = backend._read(name, scope, kind, None)
            except DQError:
                continue  # a damaged head gets no entries; verify reports it
            if read is None or read[0].doc.deleted:
                continue
            doc = read[0].doc
            entry_meta = encode_entry_meta(doc)
            for missing in _missing_entries(backend, doc):
                with azure_errors(f"re-indexing {kind} {doc.key!r} in {scope}"):
                    backend._container.get_blob_client(missing).upload_blob(
                        b"", overwrite=True, metadata=entry_meta
                    )
