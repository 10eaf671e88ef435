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
from dq_stores.sql._commit import Refused, Step, guard_holds
from dq_stores.sql._executor import RETURNING, Executor, Revision, head_statement

__all__ = ["SqliteExecutor"]

_INSERT_REVISION = (
    "INSERT INTO dq_revisions (tenant, environment, kind, key, revision, deleted, body, sha256,"
    " fields, sort_key, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
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

    def read(
        self, conn: Any, tenant: str, environment: str, sql: str, params: Sequence[Any]
    ) -> list[Any]:
        return list(conn.execute(sql, params).fetchall())

    def _append(
        self, conn: Any, scope: Scope, kind: str, rev: Revision, expect: Expectation, at: str
    ) -> int | None:
        params = rev.params(scope, kind, at)
        params["rev"] = expect.revision
        rows = conn.execute(head_statement(expect, rev.deleted) + RETURNING, params).fetchall()
        if not rows:
            return None
        revision = int(rows[0][4])
        doc = (scope.tenant, scope.environment, kind, rev.key)
        conn.execute(
            _INSERT_REVISION,
            (*doc, revision, rev.deleted, rev.body, rev.sha256, rev.fields, rev.sort_key, at),
        )
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
