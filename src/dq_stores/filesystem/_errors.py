"""The one place where this adapter's OS and SQLite errors become ours."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from dq_metadata.errors import DQError, IntegrityError, StoreUnavailableError

__all__ = ["translate", "translated"]


def translate(exc: OSError | sqlite3.Error, what: str) -> DQError:
    """Our error for a driver error raised while doing ``what``.

    A damaged index database is an ``IntegrityError`` (delete it and the backend
    rebuilds it from the documents); anything else means the store cannot be
    used right now: ``StoreUnavailableError``. Messages name the operation, not
    the path (paths carry tenant names into shared logs).
    """
    if isinstance(exc, OSError):
        reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        return StoreUnavailableError(f"filesystem store: {what} failed ({reason})")
    if type(exc) is sqlite3.DatabaseError:  # "malformed", "file is not a database"
        return IntegrityError(f"filesystem store: {what}: the index database is damaged")
    return StoreUnavailableError(f"filesystem store: {what} failed (index: {exc})")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise ``OSError``/``sqlite3.Error`` from the block via :func:`translate`."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise translate(exc, what) from exc
