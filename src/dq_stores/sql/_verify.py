"""``dq verify`` on SQL: the postings (derived data) against the heads, and the heads
against their revisions — what the database's constraints do not guarantee.

``dq_postings`` is derived from ``dq_heads`` (each live head's ``fields`` and
``sort_key``, plus the ``LIVE`` posting), in the same transaction as every write.
Rows edited or deleted outside the library make queries and counts hide or
misreport documents, so the verifier merges two keyset-paginated streams —
heads and postings, both in ``(kind, key)`` order — and compares each key's
postings with what its head implies; a key that looks wrong is read again, head and
postings in one statement (one snapshot), before it is reported. Memory: one batch of each stream plus one
key's postings, whatever the scope's size. ``repair`` re-derives the postings of
one key from its head in one transaction (the head row locked on PostgreSQL), so
it never touches a head or a revision and never races a writer of that key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.integrity import IntegrityProblem
from dq_stores.sql._keyset import Reader, keyset_rows
from dq_stores.sql._retention import scope_transaction
from dq_stores.sql._statements import postings

__all__ = ["Reader", "index_problems", "repair_key"]

_BATCH = 1000
_SHOWN = 3  # postings quoted per problem; the rest are counted
Posting = tuple[str, str, str]  # field, value, sort_key


@dataclass(frozen=True, slots=True)
class _Head:
    kind: str
    key: str
    revision: int
    deleted: bool
    fields: str
    sort_key: str
    sha256: str
    written_at: Any
    record_hash: str | None
    prev_hash: str | None
    #: (deleted, fields, sort_key, sha256, written_at, record_hash, prev_hash) of its
    #: revision row
    stored: tuple[Any, ...] | None
    newest: int | None  # the highest revision of the key in dq_revisions


_REV_MATCH = (
    "r.tenant = h.tenant AND r.environment = h.environment AND r.kind = h.kind AND r.key = h.key"
)
_HEAD_COLUMNS = (
    "h.kind, h.key, h.revision, h.deleted, h.fields, h.sort_key, h.sha256,"
    " r.revision, r.deleted, r.fields, r.sort_key, r.sha256,"
    " h.written_at, h.record_hash, h.prev_hash, r.written_at, r.record_hash, r.prev_hash,"
    f" (SELECT max(m.revision) FROM dq_revisions m WHERE {_REV_MATCH.replace('r.', 'm.')})"
)
_HEAD_FROM = (
    f" FROM dq_heads h LEFT JOIN dq_revisions r ON {_REV_MATCH} AND r.revision = h.revision"
    " WHERE h.tenant = {ph} AND h.environment = {ph}"
)
_HEADS = f"SELECT {_HEAD_COLUMNS}{_HEAD_FROM}"
_POSTINGS = (
    "SELECT kind, key, field, value, sort_key FROM dq_postings"
    " WHERE tenant = {ph} AND environment = {ph}"
)


def _head_of(row: Any) -> _Head:
    stored = None if row[7] is None else (bool(row[8]), *row[9:12], *row[15:18])
    return _Head(
        row[0],
        row[1],
        int(row[2]),
        bool(row[3]),
        row[4],
        row[5],
        row[6],
        row[12],
        row[13],
        row[14],
        stored,
        row[18],
    )


def _heads(read: Reader, scope: Scope, ph: str) -> Iterator[_Head]:
    params = [scope.tenant, scope.environment]
    rows = keyset_rows(read, _HEADS.format(ph=ph), params, ("h.kind", "h.key"), ph, _BATCH)
    return (_head_of(row) for row in rows)


def _postings(read: Reader, scope: Scope, ph: str) -> Iterator[tuple[str, str, Posting]]:
    order = ("kind", "key", "field", "value", "sort_key")
    params = [scope.tenant, scope.environment]
    rows = keyset_rows(read, _POSTINGS.format(ph=ph), params, order, ph, _BATCH)
    for kind, key, field, value, sort_key in rows:
        yield kind, key, (field, value, sort_key)


def _by_key(
    read: Reader, scope: Scope, ph: str
) -> Iterator[tuple[str, str, _Head | None, set[Posting]]]:
    """Merge heads and postings by ``(kind, key)``: ``(kind, key, head, postings)``."""
    heads = _heads(read, scope, ph)
    found = _postings(read, scope, ph)
    head = next(heads, None)
    posting = next(found, None)
    while head is not None or posting is not None:
        if posting is None or (head is not None and (head.kind, head.key) <= posting[:2]):
            assert head is not None
            at: tuple[str, str] = (head.kind, head.key)
            current: _Head | None = head
            head = next(heads, None)
        else:
            at, current = posting[:2], None
        group: set[Posting] = set()
        while posting is not None and posting[:2] == at:
            group.add(posting[2])
            posting = next(found, None)
        yield at[0], at[1], current, group


def _expected(head: _Head) -> set[Posting]:
    if head.deleted:
        return set()
    fields = json.loads(head.fields)
    return {(f, v, head.sort_key) for f, v in postings({n: tuple(v) for n, v in fields.items()})}


def _shown(items: set[Posting]) -> str:
    def one(p: Posting) -> str:
        return "(live)" if p[:2] == ("", "") else f"{p[0]}={p[1][:40]!r}"

    listed = ", ".join(one(p) for p in sorted(items)[:_SHOWN])
    return listed + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _head_problem(head: _Head) -> str | None:
    """How a head row disagrees with its own revision row (``None``: it agrees).

    Live heads whose revision number or sha256 is off are reported by the port's
    walk already (history vs. document); this covers tombstones and the columns
    that walk cannot see: the deleted flag, the index entry, the sort key, the time
    and the record hash and link (so a head is its revision row, which
    ``_verify_chain`` checks against its hash).
    """
    if head.stored is None:
        return None if not head.deleted else f"revision {head.revision} is not in the history"
    if head.newest is not None and head.newest > head.revision and head.deleted:
        return f"the head is at revision {head.revision} but revision {head.newest} exists"
    deleted, fields, sort_key, sha256, written_at, record_hash, prev_hash = head.stored
    columns = [
        ("deleted flag", head.deleted, deleted),
        ("index fields", head.fields, fields),
        ("sort key", head.sort_key, sort_key),
        ("time", head.written_at, written_at),
        ("record hash", head.record_hash, record_hash),
        ("link", head.prev_hash, prev_hash),
    ]
    if head.deleted:  # a live head's sha256 is compared by the port's walk
        columns.append(("sha256", head.sha256, sha256))
    differs = [name for name, ours, theirs in columns if ours != theirs]
    if differs:
        return f"the head's {', '.join(differs)} differ from revision {head.revision}"
    return None


def index_problems(read: Reader, scope: Scope, placeholder: str) -> Iterator[IntegrityProblem]:
    """Every key whose postings disagree with its head (``index``), and every head
    that disagrees with its own revision row (``head``).

    The two streams are read in batches at different moments, so a write or prune
    between them is not damage: a key with a problem is read again, its head row and
    postings in one statement (:func:`_reread`), and reported only as that read shows it."""
    for kind, key, head, found in _by_key(read, scope, placeholder):
        problems = list(_key_problems(scope, kind, key, head, found))
        if problems:
            again = _reread(read, scope, placeholder, kind, key)
            problems = list(_key_problems(scope, kind, key, *again))
        yield from problems


_NULLS = ", NULL" * 19  # a posting row's head columns / a head row's posting columns
_KEY_SQL = (
    f"SELECT 0, {_HEAD_COLUMNS}, NULL, NULL, NULL{_HEAD_FROM}"
    " AND h.kind = {ph} AND h.key = {ph}"
    f" UNION ALL SELECT 1{_NULLS}, field, value, sort_key FROM dq_postings"
    " WHERE tenant = {ph} AND environment = {ph} AND kind = {ph} AND key = {ph}"
)


def _reread(
    read: Reader, scope: Scope, ph: str, kind: str, key: str
) -> tuple[_Head | None, set[Posting]]:
    """``key``'s head row and postings as of one moment: one statement reads both
    (a ``UNION ALL``), and a statement sees one snapshot — PostgreSQL's per-statement
    snapshot under READ COMMITTED, SQLite's read transaction of an autocommit
    statement — so a write of the key is either wholly in it or not at all, however
    often the key is written. Scope-bound like every read of the verifier."""
    doc = [scope.tenant, scope.environment, kind, key]
    rows = read(_KEY_SQL.format(ph=ph), [*doc, *doc])
    heads = [_head_of(row[1:20]) for row in rows if row[0] == 0]
    found = {(row[20], row[21], row[22]) for row in rows if row[0] == 1}
    return (heads[0] if heads else None), found


def _key_problems(
    scope: Scope, kind: str, key: str, head: _Head | None, found: set[Posting]
) -> Iterator[IntegrityProblem]:
    if head is None:
        if found:
            yield IntegrityProblem(
                scope,
                "index",
                f"{len(found)} posting(s) name a document that has no head: {_shown(found)}",
                kind,
                key,
            )
        return
    problem = _head_problem(head)
    if problem is not None:
        yield IntegrityProblem(scope, "head", problem, kind, key)
    try:
        expected = _expected(head)
    except (ValueError, TypeError, AttributeError):
        yield IntegrityProblem(scope, "record", "the head's index fields are not valid", kind, key)
        return
    if found == expected:
        return
    parts = []
    if missing := expected - found:
        parts.append(f"missing {_shown(missing)}")
    if extra := found - expected:
        why = "a deleted document's" if head.deleted else "not in the head's index entry"
        parts.append(f"{why} (stale or edited): {_shown(extra)}")
    yield IntegrityProblem(
        scope, "index", f"postings disagree with the head: {'; '.join(parts)}", kind, key
    )


_HEAD_FOR_UPDATE = (
    "SELECT deleted, fields, sort_key FROM dq_heads WHERE tenant = {ph} AND environment = {ph}"
    " AND kind = {ph} AND key = {ph}"
)
_DELETE = (
    "DELETE FROM dq_postings WHERE tenant = {ph} AND environment = {ph} AND kind = {ph}"
    " AND key = {ph}"
)
_INSERT = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph})"
)


def repair_key(conn: Any, placeholder: str, scope: Scope, kind: str, key: str) -> None:
    """Re-derive ``key``'s postings from its head, in one transaction (DBAPI ``conn``)."""
    doc = (scope.tenant, scope.environment, kind, key)
    ph = placeholder
    lock = " FOR UPDATE" if ph == "%s" else ""  # SQLite: BEGIN IMMEDIATE locks already
    with scope_transaction(conn, ph, scope):
        row = conn.execute(_HEAD_FOR_UPDATE.format(ph=ph) + lock, doc).fetchone()
        _rewrite(conn, ph, doc, row)


def _rewrite(conn: Any, ph: str, doc: tuple[str, str, str, str], row: Any) -> None:
    conn.execute(_DELETE.format(ph=ph), doc)
    if row is None or row[0]:
        return  # no head, or a tombstone: no postings
    fields = {n: tuple(v) for n, v in json.loads(row[1]).items()}
    rows = [(*doc[:3], f, v, row[2], doc[3]) for f, v in postings(fields)]
    if ph == "%s":
        with conn.cursor() as cur:
            cur.executemany(_INSERT.format(ph=ph), rows)
    else:
        conn.executemany(_INSERT.format(ph=ph), rows)
