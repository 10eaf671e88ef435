"""What ``SqlBackend._prune_history`` runs: a checked prune in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.retention import PRUNED_KIND, check_unchanged, marker_key, parse_marker
from dq_stores.sql._statements import decode_documents

__all__ = ["prune_checked", "prune_statement", "scope_transaction"]

_PG_SCOPE = "SELECT set_config('dq.tenant', %s, true), set_config('dq.environment', %s, true)"


@contextmanager
def scope_transaction(conn: Any, ph: str, scope: Scope) -> Iterator[None]:
    """One write transaction on the DBAPI ``conn`` for ``scope``: on PostgreSQL
    (psycopg, autocommit, placeholder ``%s``) with the row-level security scope set
    for it; on SQLite ``BEGIN IMMEDIATE`` (the write lock taken up front)."""
    if ph == "%s":
        with conn.transaction():
            conn.execute(_PG_SCOPE, (scope.tenant, scope.environment))
            yield
        return
    conn.execute("BEGIN IMMEDIATE")  # sqlite3 without implicit transactions
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def prune_statement(ph: str) -> str:
    """Delete the revisions of one key below a revision, never its head.

    Parameters, in order: tenant, environment, kind, key, keep_from, then tenant,
    environment, kind, key again for the head guard. Returns the removed revisions.
    """
    where = f"tenant = {ph} AND environment = {ph} AND kind = {ph} AND key = {ph}"
    return (
        f"DELETE FROM dq_revisions WHERE {where} AND revision < {ph}"
        f" AND revision < (SELECT h.revision FROM dq_heads h WHERE h.{where.replace(' AND ', ' AND h.')})"
        " RETURNING revision"
    )


def prune_checked(
    conn: Any,
    ph: str,
    columns: str,
    scope: Scope,
    kind: str,
    key: str,
    keep_from: int,
    seen: Mapping[int, str],
) -> None:
    """Prune ``key`` below ``keep_from`` in one transaction, once
    :func:`~dq_stores.retention.check_unchanged` finds the history still the one
    read (``seen``); raises ``HistoryChanged`` otherwise, removing nothing.

    The head rows of the key's marker and of the key, and the revision rows to
    remove, are read ``FOR UPDATE`` on PostgreSQL, in the order a restore of a pruned
    history locks them (a history replace, which deletes them first, waits for this
    transaction or this one for it; one order: no deadlock); SQLite's write lock
    serialises the whole transaction. ``columns``: the document columns of
    ``decode_documents``.
    """
    lock = " FOR UPDATE" if ph == "%s" else ""
    where = f"tenant = {ph} AND environment = {ph} AND kind = {ph} AND key = {ph}"
    doc = [scope.tenant, scope.environment, kind, key]
    marker = [scope.tenant, scope.environment, PRUNED_KIND, marker_key(kind, key)]
    with scope_transaction(conn, ph, scope):
        # the marker row first, then the key's head: the order a restore of a pruned
        # history locks them in (``_restore._check_pruned_starts``, then its deletes)
        found = _rows(conn, f"SELECT {columns} FROM dq_heads WHERE {where}{lock}", marker)
        head = _rows(conn, f"SELECT revision FROM dq_heads WHERE {where}{lock}", doc)
        rows = _rows(
            conn,
            f"SELECT revision, sha256 FROM dq_revisions WHERE {where} AND revision < {ph}{lock}",
            [*doc, keep_from],
        )
        markers = [d for d in decode_documents(scope, found) if not d.deleted]
        check_unchanged(
            int(head[0][0]) if head else None,
            parse_marker(markers[0]).pruned_through if markers else None,
            {int(revision): sha256 for revision, sha256 in rows},
            keep_from,
            seen,
        )
        _rows(conn, prune_statement(ph), [*doc, keep_from, *doc])


def _rows(conn: Any, sql: str, params: list[Any]) -> list[Any]:
    cursor = conn.execute(sql, params)
    return list(cursor.fetchall())
