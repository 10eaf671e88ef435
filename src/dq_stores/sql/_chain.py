"""The record hash of a SQL revision row, and the same hash as a SQL expression.

Every row of ``dq_revisions`` (and the ``dq_heads`` copy of the newest one) carries
``record_hash``: sha256 over the row's identity (tenant, environment, kind, key,
revision), its deleted flag, body sha256, index fields and sort key *as stored*,
its ``written_at`` and ``prev_hash`` — the predecessor's record hash (``NULL`` for
revision 1 and for the first revision written after unchained rows). The body is
covered through its sha256, which ``dq verify`` checks against the body.

Writers compute the hash *in the statement that moves the head*, because only the
database knows the new revision number and the predecessor's hash there (an
``ANY`` write is ``revision = dq_heads.revision + 1``): on PostgreSQL with the
built-in ``sha256()``, on SQLite with :func:`record_hash` registered as the
deterministic function ``dq_record_hash``. Both hash the same bytes:

    ``dq-sql-record-1`` then, for each part, ``;`` + its UTF-8 length + ``:`` + the part

(length-prefixed, so no value can be mistaken for a boundary). The ``written_at``
part is :func:`stamp` of the time; ``deleted`` is ``1``/``0``; a missing
``prev_hash`` is the empty string. See ADR 0017.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["SQLITE_FUNCTION", "record_hash", "record_hash_sql", "stamp", "stamp_of"]

_TAG = "dq-sql-record-1"
#: Name and arity of the SQLite function the executor registers per connection.
SQLITE_FUNCTION = ("dq_record_hash", 11)


def stamp(at: datetime) -> str:
    """``written_at`` as hashed: UTC, microseconds, fixed width (``…T12:00:00.000000Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp_of(at: Any) -> str:
    """:func:`stamp` of a ``written_at`` column value (a datetime, or SQLite's ISO text)."""
    return stamp(at if isinstance(at, datetime) else datetime.fromisoformat(at))


def record_hash(
    tenant: str,
    environment: str,
    kind: str,
    key: str,
    revision: int,
    deleted: Any,
    sha256: str,
    fields: str,
    sort_key: str,
    written: str,
    prev: str | None,
) -> str:
    """The record hash of one revision row (``written`` is :func:`stamp` of its time)."""
    parts = (
        tenant,
        environment,
        kind,
        key,
        str(int(revision)),
        "1" if deleted else "0",
        sha256,
        fields,
        sort_key,
        written,
        prev or "",
    )
    text = _TAG + "".join(f";{len(p.encode())}:{p}" for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def record_hash_sql(postgres: bool, parts: Sequence[str]) -> str:
    """SQL computing :func:`record_hash` from 11 SQL expressions, in its argument order.

    ``parts``: text expressions, except the revision (an integer expression), the
    deleted flag (a boolean / SQLite 0-1 expression) and ``prev`` (text or NULL).
    """
    assert len(parts) == SQLITE_FUNCTION[1]
    if not postgres:
        return f"{SQLITE_FUNCTION[0]}({', '.join(parts)})"
    texts = list(parts)
    texts[4] = f"({parts[4]})::text"
    texts[5] = f"CASE WHEN {parts[5]} THEN '1' ELSE '0' END"
    texts[10] = f"coalesce({parts[10]}, '')"
    body = " || ".join(
        f"';' || octet_length(convert_to(CAST({p} AS text), 'UTF8'))::text || ':' || CAST({p} AS text)"
        for p in texts
    )
    return f"encode(sha256(convert_to('{_TAG}' || {body}, 'UTF8')), 'hex')"
