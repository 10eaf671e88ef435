"""The one error hierarchy of dq-platform core.

Every backend translates its driver's exceptions into these, in one place,
with ``raise ... from exc`` so the cause stays visible::

    DQError
    ├── NotFoundError            the document / revision / reference does not exist
    ├── ConflictError            an expectation about the current state was stale
    │   └── IllegalTransitionError   a state change the lifecycle does not allow
    ├── ValidationError          bad input (carries the field path of each problem)
    │   └── InvalidScopeError    a tenant, environment or kind failed the id rules
    ├── IntegrityError           stored bytes do not match their recorded sha256
    ├── StoreUnavailableError    the backend cannot be reached (after retries)
    ├── MisconfiguredError       configuration is missing, contradictory or wrong
    └── SchemaOutOfDateError     the database schema needs ``dq db upgrade``
        (subclass of MisconfiguredError)

Messages never contain connection strings, passwords or account keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConflictError",
    "DQError",
    "IllegalTransitionError",
    "IntegrityError",
    "InvalidScopeError",
    "MisconfiguredError",
    "NotFoundError",
    "Problem",
    "SchemaOutOfDateError",
    "StoreUnavailableError",
    "ValidationError",
]


class DQError(Exception):
    """Base of every error this library raises on purpose."""


class NotFoundError(DQError):
    """The requested document, revision or referenced artifact does not exist."""


class ConflictError(DQError):
    """A write's expectation did not hold (stale revision, already exists, immutable)."""


class IllegalTransitionError(ConflictError):
    """The lifecycle does not allow moving from the current state to the requested one."""


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (``loc``, a dotted/JSON path) and what."""

    loc: str
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


class ValidationError(DQError):
    """Input was rejected before anything was written.

    ``problems`` lists every issue found, each with the path of the offending field.
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if self.problems:
            detail = "; ".join(str(p) for p in self.problems[:10])
            more = len(self.problems) - 10
            if more > 0:
                detail += f"; ... and {more} more"
            message = f"{message}: {detail}"
        super().__init__(message)


class InvalidScopeError(ValidationError):
    """A tenant, environment or kind does not match the id rules."""


class IntegrityError(DQError):
    """Stored content does not match its recorded sha256 (corrupted or tampered)."""


class StoreUnavailableError(DQError):
    """The backend could not be reached or did not answer, after bounded retries."""


class MisconfiguredError(DQError):
    """Configuration is missing, contradictory or points at something unusable."""


class SchemaOutOfDateError(MisconfiguredError):
    """The database schema is not at the version this library needs."""
