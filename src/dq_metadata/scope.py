"""Tenant + environment scope, validated before any I/O."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from dq_metadata.canonical import text_problem
from dq_metadata.errors import InvalidScopeError, Problem, ValidationError

__all__ = [
    "ID_PATTERN",
    "MAX_DOCUMENT_ID_LENGTH",
    "Scope",
    "document_id_problem",
    "validate_document_id",
    "validate_id",
]

#: Longest document id (contract, job, profile, run id…), in characters — and in bytes
#: of UTF-8: an id is a store key (with a version suffix), a sort key and an index
#: value, whose limits (1,024 / 512 / 512 bytes) every accepted id must fit.
MAX_DOCUMENT_ID_LENGTH = 512

#: Tenants, environments and document kinds: lower-case, starts alphanumeric, ≤ 63 chars.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


@functools.lru_cache(maxsize=4096)
def _is_valid_id(value: str) -> bool:
    # Cached: ids repeat on every store call, and the answer depends on the string alone.
    return ID_PATTERN.fullmatch(value) is not None and ".." not in value


def validate_id(value: object, what: str) -> str:
    """Return ``value`` if it is a valid tenant/environment/kind id, else raise.

    Raises:
        InvalidScopeError: not a string, not matching ``ID_PATTERN``, or containing ``..``.
    """
    if not isinstance(value, str):
        raise InvalidScopeError(f"{what} must be a string, got {type(value).__name__}")
    if not _is_valid_id(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidScopeError(
            f"invalid {what} {shown!r}: use 1-63 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


def document_id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid document id, or ``None`` (see :func:`validate_document_id`)."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_DOCUMENT_ID_LENGTH:
        return f"is {len(value)} characters; the limit is {MAX_DOCUMENT_ID_LENGTH}"
    if "\x00" in value:
        return "must not contain NUL"
    problem = text_problem(value)
    if problem is None and not value.isascii():
        size = len(value.encode("utf-8"))
        if size > MAX_DOCUMENT_ID_LENGTH:
            return (
                f"is {size} bytes of UTF-8; the limit is {MAX_DOCUMENT_ID_LENGTH} "
                "(512 ASCII characters, fewer of other scripts)"
            )
    return problem


def validate_document_id(value: object, field: str) -> str:
    """Return ``value`` if it is a valid document id, else raise.

    The one id rule for documents (contract, job, action-profile and run ids),
    checked by the models on write and by the registries on read: a ``str`` of
    1-512 characters and at most 512 bytes of UTF-8, without NUL, of valid
    Unicode (no lone surrogates).
    Everything else — spaces, tabs, ``/``, ``..``, case, any script — is kept
    as written: keys are encoded by the stores, not policed.

    Raises:
        ValidationError: the problem is reported at ``field``.
    """
    problem = document_id_problem(value)
    if problem is not None:
        raise ValidationError(f"invalid {field}", [Problem(field, problem)])
    return value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Scope:
    """One tenant's environment: the unit of isolation for every store call.

    Construction validates both ids, so a ``Scope`` that exists is always safe to
    turn into a path, blob prefix or SQL parameter.
    """

    tenant: str
    environment: str

    def __post_init__(self) -> None:
        validate_id(self.tenant, "tenant")
        validate_id(self.environment, "environment")

    def __str__(self) -> str:
        return f"{self.tenant}/{self.environment}"
