"""The record hash of a SQL revision row, and the same hash as a SQL expression.

Every row of ``dq_revisions`` (and the ``dq_heads`` copy of the newest one) carries
``record_hash``: sha256 over the row's identity (tenant, environment, kind, key),
its deleted flag, body sha256, index fields and sort key *as stored*, its
``written_at``, its revision number and ``prev_hash`` — the predecessor's record
hash (``NULL`` for revision 1 and for the first revision written after unchained
rows). The body is covered through its sha256, which ``dq verify`` checks against
the body. The hashed text is

    ``dq-sql-record-1`` then, for each part in that order, ``;`` + its UTF-8 byte
    length + ``:`` + the part

(length-prefixed, so no value can be mistaken for a boundary); ``deleted`` is
``1``/``0``, the time is :func:`stamp`, a missing ``prev_hash`` the empty string.

Writers compute the hash *in the statement that moves the head*, because only the
database knows the new revision number and the predecessor's hash there (an
``ANY`` write is ``revision = dq_heads.revision + 1``). The revision and the link
come last, so the client sends everything before them as one text (:func:`prefix`)
and the statement finishes it (:func:`hash_sql`): on PostgreSQL with the built-in
``sha256()``, on SQLite with :func:`finish` registered as the deterministic
function ``dq_record_hash``. ``put_many``'s conflict branch has no per-row
parameter to take a prefix from, so it builds the prefix in SQL
(:func:`prefix_sql`). See ADR 0017.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "SQLITE_FUNCTION",
    "finish",
    "hash_sql",
    "prefix",
    "prefix_sql",
    "stamp",
    "stamp_of",
]

_TAG = "dq-sql-record-1"
#: Name and arity of the SQLite function the executor registers per connection:
#: ``dq_record_hash(prefix, revision, prev)``.
SQLITE_FUNCTION = ("dq_record_hash", 3)


def stamp(at: datetime) -> str:
    """``written_at`` as hashed: UTC, microseconds, fixed width (``…T12:00:00.000000+00:00``)."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")


def stamp_of(at: Any) -> str:
    """:func:`stamp` of a ``written_at`` column value (a datetime, or SQLite's ISO text)."""
    return stamp(at if isinstance(at, datetime) else datetime.fromisoformat(at))


def _part(text: str) -> str:
    return f";{len(text) if text.isascii() else len(text.encode())}:{text}"


def prefix(
    tenant: str,
    environment: str,
    kind: str,
    key: str,
    deleted: Any,
    sha256: str,
    fields: str,
    sort_key: str,
    written: str,
) -> str:
    """The hashed text up to the revision number: everything a writer knows before
    the database assigns the revision and names the predecessor."""
    parts = (tenant, environment, kind, key, "1" if deleted else "0", sha256, fields, sort_key)
    return _TAG + "".join(map(_part, parts)) + _part(written)


def finish(pre: str, revision: int, prev: str | None) -> str:
    """The record hash of :func:`prefix` ``pre`` as ``revision`` after ``prev``: a
    row's whole record hash is ``finish(prefix(...), revision, prev)``."""
    text = pre + _part(str(int(revision))) + _part(prev or "")
    return hashlib.sha256(text.encode()).hexdigest()


def hash_sql(postgres: bool, pre: str, revision: str, prev: str) -> str:
    """SQL computing :func:`finish`: ``pre`` a text expression (:func:`prefix`, or
    :func:`prefix_sql`), ``revision`` an integer one, ``prev`` text or NULL. The
    revision's digits and a hex hash are ASCII: their lengths are their characters."""
    if not postgres:
        return f"{SQLITE_FUNCTION[0]}({pre}, {revision}, {prev})"
    rev = f"CAST({revision} AS text)"
    link = f"coalesce({prev}, '')"
    return (
        f"encode(sha256(convert_to(CAST({pre} AS text) || ';' || length({rev}) || ':' || {rev}"
        f" || ';' || length({link}) || ':' || {link}, 'UTF8')), 'hex')"
    )


def prefix_sql(parts: Sequence[str]) -> str:
    """PostgreSQL computing :func:`prefix` from 9 SQL expressions in its argument
    order (text, except the deleted flag: a boolean), for statements whose rows the
    client does not build one by one (``put_many``'s conflict branch)."""
    assert len(parts) == 9
    texts = list(parts)
    texts[4] = f"CASE WHEN {parts[4]} THEN '1' ELSE '0' END"
    body = " || ".join(
        f"';' || octet_length(convert_to(CAST({p} AS text), 'UTF8')) || ':' || CAST({p} AS text)"
        for p in texts
    )
    return f"('{_TAG}' || {body})"
