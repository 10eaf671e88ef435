"""Cursor and bound predicates shared by adapters that filter in Python."""

from __future__ import annotations

from dq_metadata.errors import ConflictError, NotFoundError
from dq_stores.documents import (
    Delete,
    Expectation,
    ExpectKind,
    Operation,
    PageCursor,
    Query,
    StoredDocument,
)

__all__ = ["after_cursor", "check_expectation", "check_operation", "in_bounds"]


def in_bounds(sort_key: str, query: Query) -> bool:
    """``sort_key_min <= sort_key < sort_key_max`` for the bounds that are set."""
    if query.sort_key_min is not None and sort_key < query.sort_key_min:
        return False
    return query.sort_key_max is None or sort_key < query.sort_key_max


def after_cursor(doc: StoredDocument, query: Query, cursor: PageCursor | None) -> bool:
    """Whether ``doc`` comes strictly after ``cursor`` in the query's order."""
    if cursor is None:
        return True
    position = (doc.index.sort_key, doc.key)
    mark = (cursor.sort_key, cursor.key)
    return position < mark if query.descending else position > mark


def check_expectation(current: int | None, expect: Expectation, kind: str, key: str) -> None:
    """Raise ``ConflictError`` unless ``expect`` holds for the live head ``current``.

    ``current`` is the live head revision, ``None`` when absent or deleted.
    """
    if expect.kind is ExpectKind.ABSENT and current is not None:
        raise ConflictError(f"{kind} {key!r} already exists (revision {current})")
    if expect.kind is ExpectKind.REVISION and current != expect.revision:
        found = "absent" if current is None else f"at revision {current}"
        raise ConflictError(f"{kind} {key!r} is {found}, expected revision {expect.revision}")


def check_operation(operation: Operation, current: int | None) -> None:
    """Raise unless one commit operation may apply to a key whose live head is ``current``.

    ``current`` is ``None`` when the key is absent or deleted. Raises ``NotFoundError``
    for a ``Delete`` of an absent key, ``ConflictError`` for a stale expectation.
    """
    if isinstance(operation, Delete) and current is None:
        raise NotFoundError(f"{operation.kind} {operation.key!r} does not exist; cannot delete it")
    check_expectation(current, operation.expect, operation.kind, operation.key)
