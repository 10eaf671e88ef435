"""The one place where this adapter's OS and SQLite errors become ours."""

from __future__ import annotations

import errno
import sqlite3
from types import TracebackType

from dq_metadata.errors import DQError, IntegrityError, StoreUnavailableError

__all__ = ["damage", "translate", "translated"]


#: Errors of a path inside the store that only a changed tree explains (the root
#: itself is checked when the backend is made: ``MisconfiguredError``). Retrying
#: cannot help, so they are not ``StoreUnavailableError``.
_DAMAGE = {
    errno.ELOOP: "a symbolic link loop",
    errno.ENOTDIR: "a file where a directory belongs",
}


def damage(exc: OSError) -> str | None:
    """What a path error inside the store says of its files, or ``None`` if it is not
    damage (e.g. ``"a symbolic link loop inside the store (ELOOP): its files were
    changed outside dq"``)."""
    if exc.errno not in _DAMAGE:
        return None
    reason = errno.errorcode[exc.errno]
    return f"{_DAMAGE[exc.errno]} inside the store ({reason}): its files were changed outside dq"


def translate(exc: OSError | sqlite3.Error, what: str) -> DQError:
    """Our error for a driver error raised while doing ``what``.

    A damaged index database, a symbolic link loop or a file where a directory
    belongs is an ``IntegrityError`` (the index: delete it and the backend rebuilds
    it from the documents); anything else means the store cannot be used right
    now: ``StoreUnavailableError``. Messages name the operation, not
    the path (paths carry tenant names into shared logs).
    """
    if isinstance(exc, OSError):
        reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        found = damage(exc)
        if found is not None:
            return IntegrityError(f"filesystem store: {what}: {found}; run `dq verify`")
        return StoreUnavailableError(f"filesystem store: {what} failed ({reason})")
    if type(exc) is sqlite3.DatabaseError:  # "malformed", "file is not a database"
        return IntegrityError(
            f"filesystem store: {what}: the index database is damaged; "
            "`dq verify --repair-index` rebuilds it from the documents"
        )
    return StoreUnavailableError(f"filesystem store: {what} failed (index: {exc})")


class translated:  # lower-case: used like the @contextmanager function it replaced
    """Re-raise ``OSError``/``sqlite3.Error`` from the block via :func:`translate`.

    A class rather than a ``@contextmanager`` generator: it wraps every write and
    query, and this is ~1 µs cheaper per use.
    """

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, (OSError, sqlite3.Error)):
            raise translate(exc, self._what) from exc
