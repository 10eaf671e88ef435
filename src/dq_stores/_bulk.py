"""Bulk writes of the typed stores: validate a whole batch, then write it.

``encode_batch`` validates and encodes every item before any I/O (and refuses a
key given twice, which would make a batch's outcome depend on write order);
``create_in_commits`` writes create-only documents as atomic commits of at most
``MAX_COMMIT_OPERATIONS`` — the largest all-or-nothing unit every backend has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dq_metadata.errors import ConflictError, Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.documents import MAX_COMMIT_OPERATIONS, MUST_NOT_EXIST, DocumentWrite, Put

if TYPE_CHECKING:
    from dq_stores.backend import DocumentBackend
    from dq_stores.base import Store
    from dq_stores.documents import StoredDocument

__all__ = ["create_in_commits", "encode_batch", "trusted_batch"]


def _refuse_one_value(store: Store[Any], items: object) -> None:
    if isinstance(items, (str, bytes, dict)):
        raise ValidationError(f"items must be an iterable of {store.kind} items, not one value")


def _at(store: Store[Any], i: int, exc: ValidationError) -> ValidationError:
    """``exc`` of ``items[i]``: its problem paths start with the item's position."""
    problems = [Problem(f"items[{i}].{p.loc}".rstrip("."), p.message) for p in exc.problems]
    return ValidationError(
        f"invalid {store.kind} batch: items[{i}] does not validate",
        problems or [Problem(f"items[{i}]", str(exc))],
    )


def trusted_batch(store: Store[Any], items: Iterable[Any]) -> list[Any]:
    """Every item as :meth:`Store.trusted` gives it, a problem's path starting with
    ``items[i]``.

    Raises:
        ValidationError: ``items`` is a string/mapping, or an item is invalid.
    """
    _refuse_one_value(store, items)
    out = []
    for i, item in enumerate(items):
        try:
            out.append(store.trusted(item))
        except ValidationError as exc:
            raise _at(store, i, exc) from exc
    return out


def encode_batch(store: Store[Any], items: Iterable[Any]) -> list[DocumentWrite]:
    """Every item validated and encoded, in order.

    Raises:
        ValidationError: ``items`` is a string/mapping, an item is invalid (the
            problem paths start with its position) or two items share a key.
    """
    _refuse_one_value(store, items)
    writes: list[DocumentWrite] = []
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            write = store.encode(item)
        except ValidationError as exc:
            raise _at(store, i, exc) from exc
        if write.key in first:
            raise ValidationError(
                f"invalid {store.kind} batch",
                [Problem(f"items[{i}]", f"key {write.key!r} is also items[{first[write.key]}]")],
            )
        first[write.key] = i
        writes.append(write)
    return writes


def create_in_commits(
    backend: DocumentBackend, scope: Scope, kind: str, writes: list[DocumentWrite]
) -> list[StoredDocument]:
    """Create-only writes in atomic commits of ``MAX_COMMIT_OPERATIONS``, in order."""
    stored: list[StoredDocument] = []
    for start in range(0, len(writes), MAX_COMMIT_OPERATIONS):
        chunk = writes[start : start + MAX_COMMIT_OPERATIONS]
        try:
            done = backend.commit(scope, [Put(kind, w, MUST_NOT_EXIST) for w in chunk])
        except ConflictError as exc:
            if not stored:
                raise
            raise ConflictError(
                f"{exc} — the first {len(stored)} items were created by earlier commits; "
                f"create the rest (from item {len(stored)}) once the conflict is resolved"
            ) from exc
        stored.extend(d for d in done if d is not None)
    return stored
