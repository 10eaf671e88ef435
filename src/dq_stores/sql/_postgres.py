"""PostgreSQL executor: one round trip per operation, scope set per transaction.

Each operation's statements (``set_config(..., true)`` first) are sent as one
psycopg pipeline of prepared statements closed by a single Sync. PostgreSQL runs
everything up to a Sync as one implicit transaction, so the scope lasts exactly
for the operation, an error anywhere rolls all of it back, and plans are cached
per connection. Were the statements ever split across transactions, the later
ones would see no scope and match nothing: it fails closed.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.documents import Expectation, ExpectKind
from dq_stores.sql._chain import hash_sql, prefix, prefix_sql, stamp
from dq_stores.sql._commit import Refused, Step
from dq_stores.sql._executor import (
    HEAD_COLUMNS,
    RETURNING,
    Executor,
    Revision,
    head_statement,
    pyformat,
)
from dq_stores.sql._pg_commit import commit_statements, refused
from dq_stores.sql.schema import DOCUMENT_TABLES

__all__ = ["PostgresExecutor"]

_ANALYZE = f"ANALYZE (SKIP_LOCKED) {', '.join(DOCUMENT_TABLES)}"
# -1: never analysed nor vacuumed (PostgreSQL >= 14)
_ANALYZED_ROWS = "SELECT reltuples FROM pg_class WHERE oid = 'dq_heads'::regclass"

_SCOPE = "SELECT set_config('dq.tenant', %s, true), set_config('dq.environment', %s, true)"
_SCOPE_NAMED = (
    "SELECT set_config('dq.tenant', %(t)s, true), set_config('dq.environment', %(e)s, true)"
)
# Rows this transaction wrote carry its transaction id in xmin: the postings
# statements only run when the head statement actually moved the head.
_MINE = (
    "EXISTS (SELECT 1 FROM dq_heads m WHERE m.tenant = %(t)s AND m.environment = %(e)s"
    " AND m.kind = %(k)s AND m.key = %(key)s AND m.xmin = pg_current_xact_id()::xid)"
)
_DELETE_POSTINGS = (
    "DELETE FROM dq_postings WHERE tenant = %(t)s AND environment = %(e)s AND kind = %(k)s"
    " AND key = %(key)s"
)
_INSERT_POSTINGS = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " SELECT %(t)s, %(e)s, %(k)s, f, v, %(sk)s, %(key)s"
    " FROM unnest(%(pf)s::text[], %(pv)s::text[]) AS np(f, v)"
)
# Arrays are bound in binary (%b): text array dumping escapes element by element.
_NEW_HASH = hash_sql(True, "s.pre", "1", "NULL")
# excluded.* is the row the insert proposed (no column holds its prefix: built in SQL);
# dq_heads.* the existing, locked row it replaces
_NEXT_PREFIX = prefix_sql(
    (
        *("%(t)s", "%(e)s", "%(k)s", "excluded.key", "false"),
        *("excluded.sha256", "excluded.fields", "excluded.sort_key", "%(ats)s"),
    )
)
_NEXT_HASH = hash_sql(True, _NEXT_PREFIX, "dq_heads.revision + 1", "dq_heads.record_hash")
_BULK_HEADS = (
    f"WITH s AS (SELECT * FROM unnest(%(keys)b::text[], %(bodies)b::bytea[], %(shas)b::text[],"
    " %(fields)b::text[], %(sks)b::text[], %(pres)b::text[])"
    " AS s(key, body, sha256, fields, sort_key, pre)),"
    f" h AS (INSERT INTO dq_heads ({HEAD_COLUMNS}) SELECT %(t)s, %(e)s, %(k)s, s.key, 1, false,"
    f" s.body, s.sha256, s.fields, s.sort_key, %(at)s, {_NEW_HASH}, NULL FROM s"
    " ON CONFLICT (tenant, environment, kind, key) DO UPDATE SET"
    " revision = dq_heads.revision + 1, deleted = false, body = excluded.body,"
    " sha256 = excluded.sha256, fields = excluded.fields, sort_key = excluded.sort_key,"
    " written_at = excluded.written_at, prev_hash = dq_heads.record_hash,"
    f" record_hash = {_NEXT_HASH}{RETURNING})"
    f", r AS (INSERT INTO dq_revisions ({HEAD_COLUMNS}) SELECT {HEAD_COLUMNS} FROM h)"
    " SELECT key FROM h WHERE revision > 1"
)
_BULK_INSERT_POSTINGS = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " SELECT %(t)s, %(e)s, %(k)s, f, v, sk, key"
    " FROM unnest(%(pk)b::text[], %(pf)b::text[], %(pv)b::text[], %(ps)b::text[])"
    " AS np(key, f, v, sk)"
)


def _write_statements(expect: Expectation, rev: Revision) -> list[str]:
    """The head+revision statement (returns the new revision) and the postings ones."""
    head = pyformat(head_statement(expect, rev.deleted, True))
    statements = [
        f"WITH h AS ({head}{RETURNING}), r AS (INSERT INTO dq_revisions ({HEAD_COLUMNS})"
        f" SELECT {HEAD_COLUMNS} FROM h) SELECT revision FROM h",
    ]
    conditional = expect.kind is not ExpectKind.ANY or rev.deleted
    if expect.kind is not ExpectKind.ABSENT:  # a live head may have postings to drop
        statements.append(_DELETE_POSTINGS + (f" AND {_MINE}" if conditional else ""))
    if rev.postings:
        statements.append(_INSERT_POSTINGS + (f" WHERE {_MINE}" if conditional else ""))
    return statements


class PostgresExecutor(Executor):
    placeholder = "%s"
    subquery_fence = " OFFSET 0"  # keeps filter probes as per-row subplans

    def __init__(self, *, row_level_security: bool) -> None:
        self._rls = row_level_security

    def on_connect(self, dbapi_connection: Any) -> None:
        dbapi_connection.autocommit = True
        # Our statements have fixed shapes whose best plan does not depend on the
        # values (an index range in result order); planning them each time cost
        # more than executing them (0.3-0.6 ms vs 0.1 ms for latest-for-dataset).
        dbapi_connection.execute("SET plan_cache_mode = force_generic_plan")
        # Timestamps then arrive with psycopg's ``timezone.utc`` tzinfo, so turning
        # them into UTC datetimes is a no-op instead of a conversion per row.
        dbapi_connection.execute("SET TimeZone = 'UTC'")
        if not self._rls:
            # Policies still exist; this client opts out by widening its session scope.
            dbapi_connection.execute(
                "SELECT set_config('dq.tenant', '*', false), "
                "set_config('dq.environment', '*', false)"
            )

    def refresh_statistics(self, conn: Any, written: int) -> None:
        """ANALYZE the document tables unless their statistics already cover ~10x ``written``.

        The same rule as autovacuum's default (``analyze_scale_factor = 0.1``), applied
        at once instead of up to a minute later; never-analysed tables always qualify.
        """
        row = conn.execute(_ANALYZED_ROWS).fetchone()
        if row is None or row[0] < 0 or written * 10 >= row[0]:
            conn.execute(_ANALYZE)

    def looks_alive(self, dbapi_connection: Any) -> bool:
        if dbapi_connection.closed or dbapi_connection.broken:
            return False
        # an idle connection has nothing to read unless the server said goodbye
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
        return not readable

    def _scoped(
        self, conn: Any, tenant: str, environment: str, statements: list[tuple[str, Any]]
    ) -> Any:
        """Run ``statements`` in one implicit transaction; the first one's cursor."""
        if not self._rls and len(statements) == 1:
            sql, params = statements[0]
            return conn.execute(sql, params, prepare=True)
        with conn.pipeline():
            if self._rls:
                conn.execute(_SCOPE, (tenant, environment), prepare=True)
            cursors = [conn.execute(sql, params, prepare=True) for sql, params in statements]
        return cursors[0]

    def read(
        self, conn: Any, tenant: str, environment: str, sql: str, params: Sequence[Any]
    ) -> list[Any]:
        return list(self._scoped(conn, tenant, environment, [(sql, params)]).fetchall())

    def write(
        self,
        conn: Any,
        scope: Scope,
        kind: str,
        rev: Revision,
        expect: Expectation,
        at: datetime,
    ) -> int | None:
        params = rev.params(scope, kind, at)
        params["rev"] = expect.revision
        params["pf"] = [f for f, _ in rev.postings]
        params["pv"] = [v for _, v in rev.postings]
        statements = [(sql, params) for sql in _write_statements(expect, rev)]
        row = self._scoped(conn, scope.tenant, scope.environment, statements).fetchone()
        return None if row is None else int(row[0])

    def write_many(
        self, conn: Any, scope: Scope, kind: str, revs: Sequence[Revision], at: datetime
    ) -> None:
        t, e = scope.tenant, scope.environment
        params: dict[str, Any] = {
            "t": scope.tenant,
            "e": scope.environment,
            "k": kind,
            "at": at,
            "ats": (ats := stamp(at)),
            "pres": [
                prefix(t, e, kind, r.key, False, r.sha256, r.fields, r.sort_key, ats) for r in revs
            ],
            "keys": [r.key for r in revs],
            "bodies": [r.body for r in revs],
            "shas": [r.sha256 for r in revs],
            "fields": [r.fields for r in revs],
            "sks": [r.sort_key for r in revs],
            "pk": [r.key for r in revs for _ in r.postings],
            "pf": [f for r in revs for f, _ in r.postings],
            "pv": [v for r in revs for _, v in r.postings],
            "ps": [r.sort_key for r in revs for _ in r.postings],
        }
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(_SCOPE_NAMED, params)
            cur.execute(_BULK_HEADS, params)
            # only keys that existed can have postings; one index probe each (pipelined)
            existing = [{**params, "key": row[0]} for row in cur.fetchall()]
            if existing:
                cur.executemany(_DELETE_POSTINGS, existing)
            if params["pk"]:
                cur.execute(_BULK_INSERT_POSTINGS, params)

    def commit(
        self, conn: Any, scope: Scope, steps: Sequence[Step], at: datetime
    ) -> list[int | None] | Refused:
        statements, results = commit_statements(scope, steps, at)
        cursors: list[Any] = []
        error: Exception | None = None
        try:
            with conn.pipeline():
                try:
                    if self._rls:
                        conn.execute(_SCOPE, (scope.tenant, scope.environment), prepare=True)
                    cursors = [conn.execute(q, params, prepare=True) for q, params in statements]
                except Exception as exc:  # an error result arrived while still sending
                    error = exc  # (leaving the block normally spares psycopg's warning)
        except Exception as exc:  # the error result, or "pipeline aborted" after it
            error = error or exc
        if error is not None:
            refusal = refused(error)
            if refusal is None:
                raise error
            return refusal
        return [None if at_ is None else int(cursors[at_].fetchone()[0]) for at_ in results]
