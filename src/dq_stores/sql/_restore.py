"""History export and restore for the SQL backend (``iter_histories`` / ``restore_many``).

Restore writes rows exactly as stored elsewhere — revision numbers and
``written_at`` included — into ``dq_revisions``, ``dq_heads`` and ``dq_postings``
in one transaction. The head rows go first with ``ON CONFLICT DO NOTHING``: the
primary key of ``dq_heads`` is the "no history yet" check, made atomically with
the write; a batch that meets an existing head is rolled back whole. With
``replace`` the batch's keys lose their rows in all three tables first, in the
same transaction, so readers see every key as before or every key as restored;
so do the pruned-history markers of the keys whose new history starts at
revision 1 (nothing of them is pruned any more).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dq_metadata.errors import ConflictError
from dq_metadata.scope import Scope
from dq_stores.documents import StoredDocument
from dq_stores.retention import PRUNED_KIND, marker_key
from dq_stores.sql._statements import encode_fields, postings

__all__ = ["HISTORY_BATCH", "RestoreConflict", "history_sql", "restore_postgres", "restore_sqlite"]

#: Revision rows per keyset read of :func:`history_sql`.
HISTORY_BATCH = 2000

_HEAD_INSERT = (
    "INSERT INTO dq_heads (tenant, environment, kind, key, revision, deleted, body, sha256,"
    " fields, sort_key, written_at) VALUES ({v}) ON CONFLICT DO NOTHING"
)
_REVISION_INSERT = (
    "INSERT INTO dq_revisions (tenant, environment, kind, key, revision, deleted, body, sha256,"
    " fields, sort_key, written_at) VALUES ({v})"
)
_POSTING_INSERT = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key) VALUES ({v})"
)
_TABLES = ("dq_postings", "dq_revisions", "dq_heads")
_PG_CLEAR = (
    "DELETE FROM {table} WHERE tenant = %(t)s AND environment = %(e)s AND kind = %(k)s"
    " AND key = ANY(%(keys)s)"
)
_SQLITE_CLEAR = "DELETE FROM {table} WHERE tenant = ? AND environment = ? AND kind = ? AND key = ?"
_PG_SCOPE = "SELECT set_config('dq.tenant', %s, true), set_config('dq.environment', %s, true)"


def _doomed(
    kind: str, histories: Sequence[tuple[str, list[StoredDocument]]]
) -> list[tuple[str, list[str]]]:
    """``(kind, keys)`` whose rows a replace deletes: the batch's keys, and the
    markers of those whose new history starts at revision 1."""
    out = [(kind, [key for key, _docs in histories])]
    if kind != PRUNED_KIND:
        markers = [marker_key(kind, key) for key, docs in histories if docs[0].revision == 1]
        if markers:
            out.append((PRUNED_KIND, markers))
    return out


class RestoreConflict(ConflictError):
    """A key of the batch already has a head; the transaction was rolled back."""

    def __init__(self, scope: Scope, kind: str, key: str) -> None:
        super().__init__(
            f"{kind} {key!r} already has a history in {scope}; restore writes only into "
            "keys that were never written (nothing of this batch was written)"
        )


def history_sql(columns: str, ph: str, kind: str | None, after: bool) -> str:
    """One keyset batch of revision rows of a scope, in ``(kind, key, revision)`` order."""
    sql = f"SELECT {columns} FROM dq_revisions WHERE tenant = {ph} AND environment = {ph}"
    if kind is not None:
        sql += f" AND kind = {ph}"
    if after:
        sql += f" AND (kind, key, revision) > ({ph}, {ph}, {ph})"
    return sql + f" ORDER BY kind, key, revision LIMIT {HISTORY_BATCH}"


def group_histories(docs: Iterator[StoredDocument]) -> Iterator[list[StoredDocument]]:
    """Consecutive revisions of one key → one list (rows arrive in key, revision order)."""
    current: list[StoredDocument] = []
    for doc in docs:
        if current and (doc.kind, doc.key) != (current[0].kind, current[0].key):
            yield current
            current = []
        current.append(doc)
    if current:
        yield current


def _rows(
    scope: Scope, kind: str, histories: Sequence[tuple[str, list[StoredDocument]]], stamp: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    heads: list[tuple[Any, ...]] = []
    revisions: list[tuple[Any, ...]] = []
    posts: list[tuple[Any, ...]] = []
    t, e = scope.tenant, scope.environment
    for key, docs in histories:
        for doc in docs:
            row = (
                t,
                e,
                kind,
                key,
                doc.revision,
                doc.deleted,
                doc.body,
                doc.sha256,
                "{}" if doc.deleted else encode_fields(doc.index.fields),
                doc.index.sort_key,
                stamp(doc),
            )
            revisions.append(row)
        heads.append(row)
        head = docs[-1]
        if not head.deleted:
            sort_key = head.index.sort_key
            posts.extend((t, e, kind, f, v, sort_key, key) for f, v in postings(head.index.fields))
    return heads, revisions, posts


_PG_COLUMNS = "key, revision, deleted, body, sha256, fields, sort_key, written_at"
_PG_UNNEST = (
    "unnest(%(key)b::text[], %(rev)b::int[], %(del)b::bool[], %(body)b::bytea[],"
    " %(sha)b::text[], %(fields)b::text[], %(sk)b::text[], %(at)b::timestamptz[])"
    f" AS s({_PG_COLUMNS})"
)
_PG_HEADS = (
    f"INSERT INTO dq_heads (tenant, environment, kind, {_PG_COLUMNS})"
    f" SELECT %(t)s, %(e)s, %(k)s, {_PG_COLUMNS} FROM {_PG_UNNEST}"
    " ON CONFLICT DO NOTHING RETURNING key"
)
_PG_REVISIONS = (
    f"INSERT INTO dq_revisions (tenant, environment, kind, {_PG_COLUMNS})"
    f" SELECT %(t)s, %(e)s, %(k)s, {_PG_COLUMNS} FROM {_PG_UNNEST}"
)
_PG_POSTINGS = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " SELECT %(t)s, %(e)s, %(k)s, f, v, sk, key"
    " FROM unnest(%(pk)b::text[], %(pf)b::text[], %(pv)b::text[], %(ps)b::text[])"
    " AS np(key, f, v, sk)"
)


def _columns(scope: Scope, kind: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Rows of :func:`_rows` as the column arrays the ``unnest`` statements take."""
    names = ("key", "rev", "del", "body", "sha", "fields", "sk", "at")
    params: dict[str, Any] = {"t": scope.tenant, "e": scope.environment, "k": kind}
    for i, name in enumerate(names, start=3):
        params[name] = [row[i] for row in rows]
    return params


def restore_postgres(
    conn: Any,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    replace: bool = False,
) -> None:
    """Restore on a psycopg connection (autocommit): four statements for the batch
    (three or six more with ``replace``), in one transaction.

    Raises:
        RestoreConflict: a key already has a head (the transaction is rolled back).
    """
    heads, revisions, posts = _rows(scope, kind, histories, lambda d: d.written_at)
    post_params = {
        "t": scope.tenant,
        "e": scope.environment,
        "k": kind,
        "pk": [p[6] for p in posts],
        "pf": [p[3] for p in posts],
        "pv": [p[4] for p in posts],
        "ps": [p[5] for p in posts],
    }
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_PG_SCOPE, (scope.tenant, scope.environment))
        for doomed_kind, keys in _doomed(kind, histories) if replace else ():
            clear = {"t": scope.tenant, "e": scope.environment, "k": doomed_kind, "keys": keys}
            for table in _TABLES:
                cur.execute(_PG_CLEAR.format(table=table), clear)
        cur.execute(_PG_HEADS, _columns(scope, kind, heads))
        written = {row[0] for row in cur.fetchall()}
        if len(written) != len(heads):
            taken = next(row[3] for row in heads if row[3] not in written)
            raise RestoreConflict(scope, kind, taken)
        cur.execute(_PG_REVISIONS, _columns(scope, kind, revisions))
        if posts:
            cur.execute(_PG_POSTINGS, post_params)


def restore_sqlite(
    conn: Any,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    replace: bool = False,
) -> None:
    """Restore on a sqlite3 connection (isolation_level None); raises :class:`RestoreConflict`."""
    heads, revisions, posts = _rows(scope, kind, histories, lambda d: d.written_at.isoformat())
    v11 = ", ".join(["?"] * 11)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for doomed_kind, keys in _doomed(kind, histories) if replace else ():
            doomed = [(scope.tenant, scope.environment, doomed_kind, key) for key in keys]
            for table in _TABLES:
                conn.executemany(_SQLITE_CLEAR.format(table=table), doomed)
        for row in heads:
            if conn.execute(_HEAD_INSERT.format(v=v11), row).rowcount != 1:
                raise RestoreConflict(scope, kind, row[3])
        conn.executemany(_REVISION_INSERT.format(v=v11), revisions)
        conn.executemany(_POSTING_INSERT.format(v=", ".join(["?"] * 7)), posts)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
