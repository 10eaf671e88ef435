"""SQLite executor: the same statements, in-process, under ``BEGIN IMMEDIATE``.

SQLite has no row-level security; scoping rests on the WHERE clauses alone.
WAL lets readers run alongside the single writer; ``busy_timeout`` makes
writers queue instead of failing at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.documents import ANY, Expectation
from dq_stores.sql._chain import SQLITE_FUNCTION, finish
from dq_stores.sql._commit import Refused, Step, guard_holds
from dq_stores.sql._executor import HEAD_COLUMNS, RETURNING, Executor, Revision, head_statement

__all__ = ["SqliteExecutor"]

_INSERT_REVISION = f"INSERT INTO dq_revisions ({HEAD_COLUMNS}) VALUES ({', '.join('?' * 13)})"
_DELETE_POSTINGS = (
    "DELETE FROM dq_postings WHERE tenant = ? AND environment = ? AND kind = ? AND key = ?"
)
_LIVE = (
    "SELECT revision FROM dq_heads WHERE tenant = ? AND environment = ? AND kind = ? AND key = ?"
    " AND NOT deleted"
)
_INSERT_POSTING = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _rollback(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.execute("ROLLBACK")


class SqliteExecutor(Executor):
    placeholder = "?"
    subquery_fence = ""

    def __init__(self, *, busy_timeout_ms: int) -> None:
        self._busy_timeout_ms = busy_timeout_ms

    def on_connect(self, dbapi_connection: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        # the record hash of a new revision, computed by its head statement (``_chain``)
        name, arity = SQLITE_FUNCTION
        dbapi_connection.create_function(name, arity, finish, deterministic=True)

    def read(
        self, conn: Any, tenant: str, environment: str, sql: str, params: Sequence[Any]
    ) -> list[Any]:
        return list(conn.execute(sql, params).fetchall())

    def _append(
        self, conn: Any, scope: Scope, kind: str, rev: Revision, expect: Expectation, at: str
    ) -> int | None:
        params = rev.params(scope, kind, at)
        params["rev"] = expect.revision
        sql = head_statement(expect, rev.deleted, False) + RETURNING
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            return None
        head = rows[0]
        revision = int(head[4])
        doc = (scope.tenant, scope.environment, kind, rev.key)
        conn.execute(_INSERT_REVISION, head)
        conn.execute(_DELETE_POSTINGS, doc)
        conn.executemany(
            _INSERT_POSTING,
            [(*doc[:3], f, v, rev.sort_key, rev.key) for f, v in rev.postings],
        )
        return revision

    def write(
        self,
        conn: Any,
        scope: Scope,
        kind: str,
        rev: Revision,
        expect: Expectation,
        at: datetime,
    ) -> int | None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            revision = self._append(conn, scope, kind, rev, expect, at.isoformat())
        except BaseException:
            _rollback(conn)
            raise
        conn.execute("COMMIT" if revision is not None else "ROLLBACK")
        return revision

    def write_many(
        self, conn: Any, scope: Scope, kind: str, revs: Sequence[Revision], at: datetime
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for rev in revs:
                self._append(conn, scope, kind, rev, ANY, at.isoformat())
        except BaseException:
            _rollback(conn)
            raise
        conn.execute("COMMIT")

    def commit(
        self, conn: Any, scope: Scope, steps: Sequence[Step], at: datetime
    ) -> list[int | None] | Refused:
        # BEGIN IMMEDIATE takes the database's write lock: no other writer runs until
        # COMMIT/ROLLBACK, so what a step reads is what it is applied to. WAL readers
        # keep seeing the last committed state; a killed process leaves an
        # uncommitted WAL tail that the next opener ignores.
        stamp = at.isoformat()
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcome = self._apply(conn, scope, steps, stamp)
        except BaseException:
            _rollback(conn)
            raise
        conn.execute("ROLLBACK" if isinstance(outcome, Refused) else "COMMIT")
        return outcome

    def _apply(
        self, conn: Any, scope: Scope, steps: Sequence[Step], stamp: str
    ) -> list[int | None] | Refused:
        out: list[int | None] = []
        for i, step in enumerate(steps):
            if step.rev is None:
                live = self._live(conn, scope, step.kind, step.key)
                if not guard_holds(step.expect, live):
                    return Refused(i, live)
                out.append(None)
                continue
            revision = self._append(conn, scope, step.kind, step.rev, step.expect, stamp)
            if revision is None:
                return Refused(i, self._live(conn, scope, step.kind, step.key))
            out.append(revision)
        return out

    @staticmethod
    def _live(conn: Any, scope: Scope, kind: str, key: str) -> int | None:
        row = conn.execute(_LIVE, (scope.tenant, scope.environment, kind, key)).fetchone()
        return None if row is None else int(row[0])
