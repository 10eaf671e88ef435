"""Validation of restored histories (``DocumentBackend.restore_many``), before any I/O.

A history is revisions ``k..n`` of one key, in order and without gaps: ``k = 1``
for a key never pruned, ``k > 1`` for one whose revisions ``1..k-1`` were removed
by ``prune_history`` (the port then checks the target's pruned-history marker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from dq_metadata.canonical import content_hash
from dq_metadata.errors import Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.documents import IndexEntry, StoredDocument
from dq_stores.keys import validate_key

__all__ = ["MAX_RESTORE_KEYS", "check_histories"]

#: The most keys one :meth:`DocumentBackend.restore_many` batch may hold.
MAX_RESTORE_KEYS = 1000


def _check_revision(
    scope: Scope,
    kind: str,
    key: str,
    index: int,
    n: int,
    doc: object,
    check_index: Callable[[IndexEntry], None],
) -> StoredDocument:
    where = f"{key!r}.revisions[{index}]"
    if not isinstance(doc, StoredDocument):
        raise ValidationError("invalid history", [Problem(where, "must be a StoredDocument")])
    problem: str | None = None
    if doc.kind != kind or doc.key != key:
        problem = f"belongs to {doc.kind} {doc.key!r}, not {kind} {key!r}"
    elif doc.revision != n:
        problem = (
            f"is revision {doc.revision}; revisions must be numbered k..n in order, "
            "without gaps (k = 1 unless the history was pruned)"
        )
    elif doc.written_at.tzinfo is None:
        problem = "written_at must be timezone-aware"
    elif doc.deleted and (doc.body or doc.sha256 or doc.index.fields or doc.index.sort_key):
        problem = "a tombstone has an empty body, sha256 and index entry"
    elif not doc.deleted and (
        not isinstance(doc.body, bytes) or doc.sha256 != content_hash(doc.body)
    ):
        problem = "body does not match its sha256"
    if problem is not None:
        raise ValidationError("invalid history", [Problem(where, problem)])
    if not doc.deleted:
        check_index(doc.index)
    return doc if doc.scope == scope else replace(doc, scope=scope)


def _first_number(key: str, doc: object) -> int:
    """The revision number a history starts at: 1, or k > 1 after ``prune_history``."""
    revision = getattr(doc, "revision", None)
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
        raise ValidationError(
            "invalid history", [Problem(f"{key!r}.revisions[0]", "revision must be an int ≥ 1")]
        )
    return revision


def check_histories(
    scope: Scope, kind: str, histories: object, check_index: Callable[[IndexEntry], None]
) -> list[tuple[str, list[StoredDocument]]]:
    """Validate a :meth:`DocumentBackend.restore_many` batch before any I/O.

    ``check_index`` validates a live revision's index entry as the port does for writes.
    """
    if isinstance(histories, (str, bytes)) or not isinstance(histories, Sequence):
        raise ValidationError("invalid history", [Problem("histories", "must be a sequence")])
    if len(histories) > MAX_RESTORE_KEYS:
        raise ValidationError(
            "invalid history", [Problem("histories", f"give at most {MAX_RESTORE_KEYS} keys")]
        )
    out: list[tuple[str, list[StoredDocument]]] = []
    seen: set[str] = set()
    for item in histories:
        if not isinstance(item, tuple) or len(item) != 2:
            raise ValidationError(
                "invalid history", [Problem("histories", "items must be (key, revisions) pairs")]
            )
        key, revisions = item
        validate_key(key)
        if key in seen:
            raise ValidationError("invalid history", [Problem(repr(key), "appears twice")])
        seen.add(key)
        if isinstance(revisions, (str, bytes)) or not isinstance(revisions, Sequence):
            raise ValidationError("invalid history", [Problem(repr(key), "needs a sequence")])
        if not revisions:
            raise ValidationError("invalid history", [Problem(repr(key), "has no revisions")])
        first = _first_number(key, revisions[0])
        docs = [
            _check_revision(scope, kind, key, i, first + i, d, check_index)
            for i, d in enumerate(revisions)
        ]
        out.append((key, docs))
    return out
