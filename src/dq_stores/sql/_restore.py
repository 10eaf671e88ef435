"""History export and restore for the SQL backend (``iter_histories`` / ``restore_many``).

Restore writes rows exactly as stored elsewhere — revision numbers and
``written_at`` included — into ``dq_revisions``, ``dq_heads`` and ``dq_postings``
in one transaction. The head rows go first with ``ON CONFLICT DO NOTHING``: the
primary key of ``dq_heads`` is the "no history yet" check, made atomically with
the write; a batch that meets an existing head is rolled back whole (on
PostgreSQL one statement does it all, see :data:`_PG_RESTORE`). With
``replace`` the batch's keys lose their rows in all three tables first, in the
same transaction, so readers see every key as before or every key as restored;
so do the pruned-history markers of the keys whose new history starts at
revision 1 (nothing of them is pruned any more).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from dq_metadata.errors import ConflictError
from dq_metadata.scope import Scope
from dq_stores.backend import check_pruned_start
from dq_stores.documents import StoredDocument
from dq_stores.retention import PRUNED_KIND, marker_key, marker_pruned_through
from dq_stores.sql._chain import finish, prefix, stamp
from dq_stores.sql._statements import encode_fields, postings

__all__ = ["HISTORY_BATCH", "RestoreConflict", "history_sql", "restore_postgres", "restore_sqlite"]

#: Revision rows per keyset read of :func:`history_sql`.
HISTORY_BATCH = 2000

#: Runs of a PostgreSQL replace batch that met a head inserted after its deletes
#: looked (see :func:`restore_postgres`).
_REPLACE_ATTEMPTS = 5

_COLUMNS = (
    "tenant, environment, kind, key, revision, deleted, body, sha256, fields, sort_key,"
    " written_at, record_hash, prev_hash"
)
_HEAD_INSERT = f"INSERT INTO dq_heads ({_COLUMNS}) VALUES ({{v}}) ON CONFLICT DO NOTHING"
_REVISION_INSERT = f"INSERT INTO dq_revisions ({_COLUMNS}) VALUES ({{v}})"
_POSTING_INSERT = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key) VALUES ({v})"
)
# Heads first: on PostgreSQL (READ COMMITTED, one snapshot per statement) deleting
# the head row waits for a writer of the key that holds it, so the postings and
# revisions deletes after it see that writer's rows; postings first could miss the
# postings of a write that committed meanwhile and leave them beside the restored ones.
_TABLES = ("dq_heads", "dq_postings", "dq_revisions")
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

    def __init__(self, scope: Scope, kind: str, key: str, replace: bool = False) -> None:
        if replace:
            super().__init__(
                f"{kind} {key!r} in {scope} was written by others during each of "
                f"{_REPLACE_ATTEMPTS} attempts to replace it (nothing of this batch was "
                "written); run the replace again"
            )
            return
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


def _chained(
    scope: Scope, kind: str, key: str, docs: Sequence[StoredDocument]
) -> Iterator[tuple[StoredDocument, str, str | None]]:
    """Each revision with its record hash and its predecessor's (``_chain``), linked
    as live writes link them. The first restored revision has no predecessor here
    (``None``): revision 1, or the oldest kept one of a pruned history."""
    prev: str | None = None
    for doc in docs:
        fields = "{}" if doc.deleted else encode_fields(doc.index.fields)
        pre = prefix(
            scope.tenant,
            scope.environment,
            kind,
            key,
            doc.deleted,
            doc.sha256,
            fields,
            doc.index.sort_key,
            stamp(doc.written_at),
        )
        digest = finish(pre, doc.revision, prev)
        yield doc, digest, prev
        prev = digest


def _rows(
    scope: Scope, kind: str, histories: Sequence[tuple[str, list[StoredDocument]]], written: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    heads: list[tuple[Any, ...]] = []
    revisions: list[tuple[Any, ...]] = []
    posts: list[tuple[Any, ...]] = []
    t, e = scope.tenant, scope.environment
    for key, docs in histories:
        for doc, digest, prev in _chained(scope, kind, key, docs):
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
                written(doc),
                digest,
                prev,
            )
            revisions.append(row)
        heads.append(row)
        head = docs[-1]
        if not head.deleted:
            sort_key = head.index.sort_key
            posts.extend((t, e, kind, f, v, sort_key, key) for f, v in postings(head.index.fields))
    return heads, revisions, posts


_PG_COLUMNS = (
    "key, revision, deleted, body, sha256, fields, sort_key, written_at, record_hash, prev_hash"
)
_CONFLICT_MARKER = "dq-restore-conflict"
_CONFLICT = re.compile(_CONFLICT_MARKER + r":(\d+)")
# One statement for the whole batch, sent with the scope's set_config in one
# pipeline (one round trip, one implicit transaction). The revision rows are sent
# once (``head`` marks each key's last revision; ``i`` numbers the rows). The head
# rows go in first with ON CONFLICT DO NOTHING; the revisions and postings are
# inserted only if every head was (``ok``: it reads ``h``'s RETURNING rows, so the
# heads' insert is done before the gated inserts look at it). A key that already
# has a head makes the final SELECT fail on purpose — a cast of a marker text
# naming the first such row to integer, as commits do (``_pg_commit``) — which
# aborts the implicit transaction: nothing of the batch is written.
_PG_RESTORE = (
    "WITH s AS MATERIALIZED (SELECT * FROM unnest(%(key)b::text[], %(rev)b::int[],"
    " %(del)b::bool[], %(body)b::bytea[], %(sha)b::text[], %(fields)b::text[],"
    " %(sk)b::text[], %(at)b::timestamptz[], %(rh)b::text[], %(ph)b::text[], %(head)b::bool[])"
    f" WITH ORDINALITY AS s({_PG_COLUMNS}, head, i)),"
    f" h AS (INSERT INTO dq_heads (tenant, environment, kind, {_PG_COLUMNS})"
    f" SELECT %(t)s, %(e)s, %(k)s, {_PG_COLUMNS} FROM s WHERE head"
    " ON CONFLICT DO NOTHING RETURNING key),"
    " ok AS (SELECT count(*) = %(n)s AS ok FROM h),"
    f" r AS (INSERT INTO dq_revisions (tenant, environment, kind, {_PG_COLUMNS})"
    f" SELECT %(t)s, %(e)s, %(k)s, {_PG_COLUMNS} FROM s WHERE (SELECT ok FROM ok)),"
    " p AS (INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " SELECT %(t)s, %(e)s, %(k)s, f, v, sk, key"
    " FROM unnest(%(pk)b::text[], %(pf)b::text[], %(pv)b::text[], %(ps)b::text[])"
    " AS np(key, f, v, sk) WHERE (SELECT ok FROM ok))"
    " SELECT CASE WHEN (SELECT ok FROM ok) THEN 0 ELSE"
    f" CAST('{_CONFLICT_MARKER}:' || (SELECT min(s.i) FROM s"
    " WHERE s.head AND s.key NOT IN (SELECT key FROM h))::text AS integer) END"
)


def _pg_params(
    scope: Scope, kind: str, histories: Sequence[tuple[str, list[StoredDocument]]]
) -> dict[str, Any]:
    """The column arrays of :data:`_PG_RESTORE`: every revision once, postings of the
    live heads."""
    keys: list[str] = []
    revs: list[int] = []
    dels: list[bool] = []
    bodies: list[bytes] = []
    shas: list[str] = []
    fields: list[str] = []
    sort_keys: list[str] = []
    ats: list[Any] = []
    hashes: list[str] = []
    prevs: list[str | None] = []
    heads: list[bool] = []
    pk: list[str] = []
    pf: list[str] = []
    pv: list[str] = []
    ps: list[str] = []
    for key, docs in histories:
        last = len(docs) - 1
        for i, (doc, digest, prev) in enumerate(_chained(scope, kind, key, docs)):
            hashes.append(digest)
            prevs.append(prev)
            keys.append(key)
            revs.append(doc.revision)
            dels.append(doc.deleted)
            bodies.append(doc.body)
            shas.append(doc.sha256)
            fields.append("{}" if doc.deleted else encode_fields(doc.index.fields))
            sort_keys.append(doc.index.sort_key)
            ats.append(doc.written_at)
            heads.append(i == last)
        head = docs[last]
        if not head.deleted:
            sort_key = head.index.sort_key
            for f, v in postings(head.index.fields):
                pk.append(key)
                pf.append(f)
                pv.append(v)
                ps.append(sort_key)
    return {
        "t": scope.tenant,
        "e": scope.environment,
        "k": kind,
        "n": len(histories),
        "key": keys,
        "rev": revs,
        "del": dels,
        "body": bodies,
        "sha": shas,
        "fields": fields,
        "sk": sort_keys,
        "at": ats,
        "rh": hashes,
        "ph": prevs,
        "head": heads,
        "pk": pk,
        "pf": pf,
        "pv": pv,
        "ps": ps,
    }


def restore_postgres(
    conn: Any,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    replace: bool = False,
) -> None:
    """Restore on a psycopg connection (autocommit): the scope and one statement for
    the batch (:data:`_PG_RESTORE`; three or six deletes before it with ``replace``:
    the batch's keys, and the pruned-history markers of those restored from revision
    1), in one pipeline — one round trip, one implicit transaction.

    With ``replace`` a head found anyway was inserted by a writer (another replace, a
    first put) that committed after the deletes' snapshot (READ COMMITTED: a delete
    waiting on a row lock re-checks that row, never sees rows inserted meanwhile).
    Nothing was written, so the batch is run again, up to
    :data:`_REPLACE_ATTEMPTS` times: the replace wins over writes that came before it.

    Raises:
        RestoreConflict: a key already has a head (nothing was written); with
            ``replace``, the keys were written again on every attempt.
    """
    params = _pg_params(scope, kind, histories)
    for _ in range(_REPLACE_ATTEMPTS - 1 if replace else 0):
        try:
            _restore_postgres_once(conn, scope, kind, histories, replace, params)
        except RestoreConflict:
            continue  # rolled back: a writer inserted a head after the deletes looked
        return
    _restore_postgres_once(conn, scope, kind, histories, replace, params)


def _restore_postgres_once(
    conn: Any,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    replace: bool,
    params: dict[str, Any],
) -> None:
    if any(docs[0].revision > 1 for _key, docs in histories) and kind != PRUNED_KIND:
        # the markers checked under a lock first: one more round trip, pruned keys only
        with conn.transaction():
            _begin(conn, scope)
            _check_pruned_starts(conn, "%s", scope, kind, histories)
            _restore_postgres_pipeline(conn, scope, kind, histories, replace, params, begun=True)
        return
    _restore_postgres_pipeline(conn, scope, kind, histories, replace, params, begun=False)


def _begin(conn: Any, scope: Scope) -> None:
    """The first statement of a restore's transaction: its row-level security scope."""
    conn.execute(_PG_SCOPE, (scope.tenant, scope.environment), prepare=True)


def _restore_postgres_pipeline(
    conn: Any,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    replace: bool,
    params: dict[str, Any],
    *,
    begun: bool,
) -> None:
    """The restore's statements in one pipeline; ``begun``: inside a transaction that
    ran :func:`_begin` already."""
    error: Exception | None = None
    try:
        with conn.pipeline():
            try:
                if not begun:
                    _begin(conn, scope)
                for doomed_kind, keys in _doomed(kind, histories) if replace else ():
                    clear: dict[str, Any] = {"t": scope.tenant, "e": scope.environment}
                    clear |= {"k": doomed_kind, "keys": keys}
                    for table in _TABLES:
                        conn.execute(_PG_CLEAR.format(table=table), clear, prepare=True)
                conn.execute(_PG_RESTORE, params, prepare=True)
            except Exception as exc:  # an error result arrived while still sending
                error = exc  # (leaving the block normally spares psycopg's warning)
    except Exception as exc:  # the error result, or "pipeline aborted" after it
        error = error or exc
    if error is None:
        return
    match = _CONFLICT.search(str(error)) if getattr(error, "sqlstate", None) == "22P02" else None
    if match is None:
        raise error
    row = int(match.group(1)) - 1  # the failing statement named the row, 1-based
    taken = next(itertools.islice((key for key, docs in histories for _ in docs), row, None))
    raise RestoreConflict(scope, kind, taken, replace)


_MARKERS = (
    "SELECT key, body FROM dq_heads WHERE tenant = {ph} AND environment = {ph}"
    " AND kind = {ph} AND deleted = {false} AND key IN ({keys})"
)


def _check_pruned_starts(
    conn: Any,
    ph: str,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
) -> None:
    """The check ``restore_many`` made before any I/O, again inside the restore's
    transaction: each history starting after revision 1 needs its key's marker at
    ``pruned_through = first - 1`` (a prune finishing meanwhile moves it). The marker
    rows are read ``FOR UPDATE`` on PostgreSQL — a pruner's marker write and checked
    removal lock them too; SQLite's ``BEGIN IMMEDIATE`` already serialises."""
    pruned = {marker_key(kind, key): (key, docs[0].revision) for key, docs in histories}
    pruned = {name: at for name, at in pruned.items() if at[1] > 1}
    if not pruned or kind == PRUNED_KIND:
        return
    sql = _MARKERS.format(
        ph=ph, false="false" if ph == "%s" else "0", keys=", ".join([ph] * len(pruned))
    )
    sql += " FOR UPDATE" if ph == "%s" else ""
    rows = conn.execute(sql, [scope.tenant, scope.environment, PRUNED_KIND, *pruned]).fetchall()
    found = {name: marker_pruned_through(bytes(body), name) for name, body in rows}
    for name, (key, first) in pruned.items():
        check_pruned_start(kind, key, first, found.get(name))


def restore_sqlite(
    conn: Any,
    scope: Scope,
    kind: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    replace: bool = False,
) -> None:
    """Restore on a sqlite3 connection (isolation_level None); raises :class:`RestoreConflict`."""
    heads, revisions, posts = _rows(scope, kind, histories, lambda d: d.written_at.isoformat())
    v13 = ", ".join(["?"] * 13)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_pruned_starts(conn, "?", scope, kind, histories)
        for doomed_kind, keys in _doomed(kind, histories) if replace else ():
            doomed = [(scope.tenant, scope.environment, doomed_kind, key) for key in keys]
            for table in _TABLES:
                conn.executemany(_SQLITE_CLEAR.format(table=table), doomed)
        for row in heads:
            if conn.execute(_HEAD_INSERT.format(v=v13), row).rowcount != 1:
                raise RestoreConflict(scope, kind, row[3])
        conn.executemany(_REVISION_INSERT.format(v=v13), revisions)
        conn.executemany(_POSTING_INSERT.format(v=", ".join(["?"] * 7)), posts)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
