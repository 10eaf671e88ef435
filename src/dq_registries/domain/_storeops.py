"""Small helpers the registries share: argument checks and conditional writes."""

from __future__ import annotations

from typing import TypeVar

from dq_metadata.errors import Problem, ValidationError
from dq_metadata.scope import Scope, validate_document_id
from dq_stores.base import Store, Versioned

__all__ = ["check_id", "check_limit", "check_revision", "write"]

M = TypeVar("M")


def check_id(value: object, field: str) -> str:
    """A document id, by the one rule of :func:`dq_metadata.scope.validate_document_id`."""
    return validate_document_id(value, field)


def check_revision(value: object, *, allow_zero: bool = True) -> None:
    """``None``, or an int revision ≥ 1 (``0`` = "must not exist" where allowed)."""
    if value is None:
        return
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(
            "invalid expected_revision", [Problem("expected_revision", f"must be an int ≥ {low}")]
        )


def check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ValidationError("invalid limit", [Problem("limit", "must be an int in 1..1000")])
    return value


def write(store: Store[M], scope: Scope, item: M, expected_revision: int | None) -> Versioned[M]:
    """Write ``item`` under the registries' revision convention.

    ``None``: unconditional, but an unchanged document gets no new revision;
    ``0``: must not exist; ``n``: the current revision must be ``n``.
    """
    if expected_revision == 0:
        return store.create(scope, item)
    if expected_revision is not None:
        return store.update(scope, item, expected_revision)
    return store.put_if_changed(scope, item)[0]
