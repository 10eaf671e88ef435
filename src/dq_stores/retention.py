"""Pruned history prefixes: what :meth:`DocumentBackend.prune_history` leaves behind.

Pruning removes the oldest revisions of one key, never its current one. So that
the remaining history is verifiably a *suffix* and not a history with a hole,
each pruned key gets a marker document (kind :data:`PRUNED_KIND`, one per key,
in the same scope) written *before* any revision is removed::

    {"kind": "contract", "key": "orders", "pruned_through": 4,
     "anchor_sha256": "<sha256 of revision 4's body>", "pruned_at": "..."}

``history`` then starts at ``pruned_through + 1``; a verifier checks that the
first kept revision is ``pruned_through + 1`` (and, with a hash chain, that its
predecessor hash equals the anchor). A missing revision *after* the marker is
still an integrity error. The marker only ever moves forward.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from dq_metadata.canonical import canonical_json, content_hash, loads
from dq_metadata.errors import ConflictError, IntegrityError
from dq_stores.documents import DocumentWrite, IndexEntry, StoredDocument

__all__ = [
    "PRUNED_KIND",
    "HistoryChanged",
    "PrunedPrefix",
    "check_unchanged",
    "marker_key",
    "marker_pruned_through",
    "marker_write",
    "parse_marker",
]

#: Kind of the marker documents (never pruned, never written by typed stores).
PRUNED_KIND = "dq_pruned_history"


@dataclass(frozen=True, slots=True)
class PrunedPrefix:
    """Revisions ``1..pruned_through`` of ``kind``/``key`` were removed.

    ``anchor_sha256``: the content sha256 of revision ``pruned_through`` (``""``
    for a tombstone), the link the first kept revision follows.
    """

    kind: str
    key: str
    pruned_through: int
    anchor_sha256: str
    pruned_at: datetime


def marker_key(kind: str, key: str) -> str:
    """The marker's key: a digest, so any (kind, key) fits the key-length limit."""
    return hashlib.sha256(f"{kind}\x00{key}".encode()).hexdigest()


def marker_write(prefix: PrunedPrefix) -> DocumentWrite:
    body = canonical_json(
        {
            "kind": prefix.kind,
            "key": prefix.key,
            "pruned_through": prefix.pruned_through,
            "anchor_sha256": prefix.anchor_sha256,
            "pruned_at": prefix.pruned_at.astimezone(UTC).isoformat(),
        }
    )
    index = IndexEntry({"kind": (prefix.kind,)}, "")
    return DocumentWrite(marker_key(prefix.kind, prefix.key), body, content_hash(body), index)


def _through(value: object) -> int:
    """A marker's ``pruned_through``: a JSON integer >= 1, as :func:`marker_write`
    writes it. Not ``int(value)``: that read ``"2"``, ``2.5`` and ``true`` as
    revisions and raised ``OverflowError`` (no ``IntegrityError``) for ``1e400``."""
    if type(value) is not int or value < 1:
        raise ValueError("pruned_through is not an integer >= 1")
    return value


def marker_pruned_through(body: bytes, key: str) -> int:
    """``pruned_through`` of the marker ``key`` whose body is ``body`` (SQL rows read
    it without building a document). Raises ``IntegrityError`` when it is not one."""
    try:
        return _through(loads(body)["pruned_through"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"pruned-history marker {key!r} is malformed") from exc


def parse_marker(doc: StoredDocument) -> PrunedPrefix:
    """The marker in ``doc``. Raises ``IntegrityError`` when it is not one."""
    try:
        data = loads(doc.body)
        prefix = PrunedPrefix(
            str(data["kind"]),
            str(data["key"]),
            _through(data["pruned_through"]),
            str(data["anchor_sha256"]),
            datetime.fromisoformat(str(data["pruned_at"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"pruned-history marker {doc.key!r} is malformed") from exc
    return prefix


class HistoryChanged(ConflictError):
    """Raised by a backend's ``_prune_history`` (``prune_history`` turns it into a
    ``ConflictError`` with what to do): the key's history is no longer the one the
    prune read — a history replace came in between — so nothing was removed. A
    ``ConflictError`` so that the adapters' error translation lets it through."""

    def __init__(self) -> None:
        super().__init__("the history changed while it was being pruned")


def check_unchanged(
    head: int | None,
    marker_through: int | None,
    stored: Mapping[int, str],
    keep_from: int,
    seen: Mapping[int, str],
) -> None:
    """Raise :class:`HistoryChanged` unless a prune of the revisions ``seen``
    (revision → sha256, as read) below ``keep_from`` still removes only what it read.

    Taken under the backend's exclusion with history replaces: ``head`` is the key's
    head revision now (``None``: no head), ``marker_through`` its marker's
    ``pruned_through`` (``None``: no marker), ``stored`` every revision below
    ``keep_from`` still stored, with its sha256. The history is unchanged when the
    head is at ``keep_from`` or later, the marker (the prune wrote it first) covers
    every revision seen, and each stored revision is one seen with the same sha256
    or one the marker already covered (an earlier prune's, interrupted).
    """
    if head is None or head < keep_from:
        raise HistoryChanged
    if marker_through is None or marker_through < max(seen):
        raise HistoryChanged
    for revision, sha256 in stored.items():
        expected = seen.get(revision)
        if expected is None and revision > marker_through:
            raise HistoryChanged
        if expected is not None and expected != sha256:
            raise HistoryChanged
