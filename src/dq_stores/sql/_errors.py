"""Driver errors → dq_metadata.errors, in one place; and which of them to retry.

Works for every DBAPI driver the backend supports (psycopg 3, sqlite3) without
importing psycopg: PostgreSQL errors are told apart by SQLSTATE, SQLite ones by
their result code names.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from dq_metadata.errors import (
    ConflictError,
    DQError,
    MisconfiguredError,
    SchemaOutOfDateError,
    StoreUnavailableError,
)
from dq_stores._redact import redact

__all__ = ["is_rolled_back", "is_transient", "translate", "unwrap"]

# SQLSTATEs after which the server rolled the transaction back: always safe to retry.
_ROLLED_BACK = frozenset({"40001", "40P01"})
# Classes / codes meaning "the server is (temporarily) not there".
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
# Login failures psycopg reports without a SQLSTATE: retrying cannot help.
_REFUSED_LOGIN = (
    "does not exist",
    "authentication failed",
    "pg_hba.conf",
    "permission denied",
    "password",
)
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def unwrap(exc: BaseException) -> BaseException:
    """The DBAPI exception behind a SQLAlchemy wrapper (or ``exc`` itself)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or "")


def _sqlite_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(
        text in str(exc) for text in _SQLITE_BUSY
    )


def is_rolled_back(exc: BaseException) -> bool:
    """The database certainly did not apply the transaction (retrying a write is safe)."""
    exc = unwrap(exc)
    return _sqlstate(exc) in _ROLLED_BACK or _sqlite_busy(exc)


def is_transient(exc: BaseException) -> bool:
    """A retry may succeed: lost connection, server restarting, lock contention."""
    if isinstance(exc, sa_exc.TimeoutError):
        return False  # the pool already waited pool_timeout seconds
    exc = unwrap(exc)
    state = _sqlstate(exc)
    if state:
        return state in _ROLLED_BACK or state.startswith(_UNAVAILABLE_CLASSES)
    if isinstance(exc, sqlite3.Error):
        return _sqlite_busy(exc)
    if _refused_login(exc):
        return False
    # psycopg raises OperationalError/InterfaceError without SQLSTATE for dead sockets
    return type(exc).__name__ in {"OperationalError", "InterfaceError"}


def _refused_login(exc: BaseException) -> bool:
    text = str(exc)
    return "FATAL" in text and any(reason in text for reason in _REFUSED_LOGIN)


def _summary(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:300]


def _scrub_chain(exc: BaseException, secrets: tuple[str, ...]) -> None:
    """Mask ``secrets`` in the arguments of ``exc`` and of every exception chained to
    it: the translated error keeps them as its cause, and a driver message can quote a
    configured value (libpq echoes an invalid ``sslmode``, ``hostaddr``, ``port`` …)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and not isinstance(current, DQError):
        seen.add(id(current))
        if any(s and s in str(arg) for arg in current.args for s in secrets):
            current.args = tuple(redact(str(arg), secrets) for arg in current.args)
        current = current.__cause__ or current.__context__


def translate(exc: BaseException, *, secrets: tuple[str, ...] = ()) -> DQError:
    """Map any exception raised while talking to the database to our hierarchy.

    ``secrets`` are masked in the message and in the chained driver exceptions."""
    if isinstance(exc, DQError):
        return exc
    _scrub_chain(exc, secrets)
    if isinstance(exc, sa_exc.TimeoutError):
        return StoreUnavailableError("timed out waiting for a pooled database connection")
    orig = unwrap(exc)
    detail = _summary(orig, secrets)
    state = _sqlstate(orig)
    if state.startswith("23") or isinstance(orig, sqlite3.IntegrityError):
        return ConflictError(f"concurrent write conflict: {detail}")
    if state in {"42P01", "42703"} or "no such table" in detail or "no such column" in detail:
        return SchemaOutOfDateError(
            f"database schema is missing or out of date ({detail}): run `dq db upgrade`"
        )
    if state.startswith(("28", "3D")) or (not state and _refused_login(orig)):
        return MisconfiguredError(f"database rejected the configured login or database: {detail}")
    if state == "42501":
        return MisconfiguredError(f"database permission denied: {detail}")
    if isinstance(orig, sqlite3.OperationalError) and not _sqlite_busy(orig):
        return MisconfiguredError(f"SQLite database unusable: {detail}")
    if is_transient(orig):
        return StoreUnavailableError(f"database unavailable: {detail}")
    return StoreUnavailableError(f"database error: {detail}")
