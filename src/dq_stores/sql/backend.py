"""SqlBackend: the document backend on PostgreSQL (psycopg 3) or SQLite, one code path.

Tables (see ``migrations/versions``): ``dq_revisions`` (immutable history),
``dq_heads`` (current revision of each key, tombstones included) and
``dq_postings`` (one row per indexed ``(field, value)`` of each live head).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from dq_metadata.errors import (
    ConflictError,
    DQError,
    MisconfiguredError,
    NotFoundError,
    StoreUnavailableError,
)
from dq_metadata.scope import Scope
from dq_stores._redact import install_log_redaction
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    DocumentWrite,
    Expectation,
    ExpectKind,
    FieldFilter,
    Operation,
    PageCursor,
    Query,
    StoredDocument,
)
from dq_stores.integrity import IntegrityProblem, VerifyCounts
from dq_stores.search import DRIVING_PROBE, driving_terms
from dq_stores.sql import _errors, _restore
from dq_stores.sql._commit import Refused, refusal, steps_of
from dq_stores.sql._executor import ALL, Executor, Revision
from dq_stores.sql._retention import prune_checked
from dq_stores.sql._statements import (
    DOC_COLUMNS,
    count_search,
    decode_document,
    decode_documents,
    select_documents,
    select_search,
)
from dq_stores.sql._url import parse_url, render_url, url_secrets
from dq_stores.sql._verify import index_problems, repair_key
from dq_stores.sql._verify_chain import chain_problems
from dq_stores.sql.schema import ensure_schema

__all__ = ["PostgresBackend", "SqlBackend", "SqliteBackend"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_COLS = DOC_COLUMNS.format(a="")
_BATCH = 1000
_PING_AFTER_IDLE = 1.0  # seconds (HikariCP skips validation within 0.5 s of use)


class _Retry(Exception):
    """Internal: a failure after which running the operation again is safe."""


class SqlBackend(DocumentBackend):
    """Documents in PostgreSQL (``postgresql+psycopg://``) or SQLite (``sqlite:///path``).

    Raises ``SchemaOutOfDateError`` at construction when the database is not at the
    migration head (an empty database is migrated first when ``auto_create``).

    ``analyze_after``: a ``put_many`` that wrote at least this many documents ends by
    refreshing PostgreSQL's planner statistics of the document tables (``ANALYZE``)
    when the write is at least a tenth of what they last covered; ``None`` never does.
    """

    replaces_atomically = True  # restore_many(replace=True): one transaction

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
        pool_recycle: int = 1800,
        pool_pre_ping: bool = True,
        connect_timeout: int = 10,
        auto_create: bool = True,
        row_level_security: bool = True,
        retry_attempts: int = 6,
        analyze_after: int | None = _BATCH,
    ) -> None:
        self._url = parse_url(url)
        self._analyze_after = analyze_after
        self._secrets = url_secrets(self._url)
        install_log_redaction()
        self._attempts = max(1, retry_attempts)
        self._executor: Executor
        if self._url.get_backend_name() == "postgresql":
            from dq_stores.sql._postgres import PostgresExecutor

            self._executor = PostgresExecutor(row_level_security=row_level_security)
            connect_args: dict[str, Any] = {"connect_timeout": connect_timeout}
        else:
            from dq_stores.sql._sqlite import SqliteExecutor

            self._executor = SqliteExecutor(busy_timeout_ms=connect_timeout * 1000)
            connect_args = {"timeout": connect_timeout, "check_same_thread": False}
        self._engine: Engine = create_engine(
            self._url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_recycle=pool_recycle,
            pool_pre_ping=False,  # our cheaper check, see _on_checkout
            connect_args=connect_args,
        )
        self._dialect = (self._executor.placeholder, self._executor.subquery_fence)
        self._pre_ping = pool_pre_ping
        event.listen(self._engine, "connect", self._on_connect)
        event.listen(self._engine.pool, "checkout", self._on_checkout)
        event.listen(self._engine.pool, "checkin", self._on_checkin)
        try:
            self._call(lambda: ensure_schema(self._engine, auto_create=auto_create), safe=True)
        except BaseException:
            self._engine.dispose()
            raise

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        self._executor.on_connect(dbapi_connection)

    def _on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Pre-ping, minus the round trip for connections that are evidently alive.

        A connection back in the pool less than ``_PING_AFTER_IDLE`` seconds ago with
        nothing waiting on its socket (a server that terminates sessions says so and
        closes them) skips the ``SELECT 1``; others are pinged, and a failed ping
        makes the pool replace the connection. Failures the check misses surface on
        use and are retried like any lost connection.
        """
        if not self._pre_ping:
            return
        idle = time.monotonic() - record.info.get("dq_checked_in", 0.0)
        if idle < _PING_AFTER_IDLE and self._executor.looks_alive(dbapi_connection):
            return
        try:
            self._engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("pre-ping failed") from exc

    @staticmethod
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["dq_checked_in"] = time.monotonic()

    def __repr__(self) -> str:
        return f"SqlBackend({render_url(self._url)!r})"

    def close(self) -> None:
        self._engine.dispose()

    # -- execution -------------------------------------------------------------
    def _call(self, fn: Callable[[], T], *, safe: bool) -> T:
        """Run ``fn``, retrying transient failures; translate whatever escapes.

        ``safe``: ``fn`` may be repeated even if it failed mid-way (reads). Writes
        are only repeated when the database certainly did not apply them. The
        first attempt runs outside tenacity: the happy path pays nothing for retries.
        """
        try:
            try:
                return self._attempt(fn, safe)
            except _Retry:
                retrying = Retrying(
                    stop=stop_after_attempt(self._attempts - 1),
                    wait=wait_random_exponential(multiplier=0.05, max=2.0),
                    retry=retry_if_exception_type(_Retry),
                    reraise=True,
                )
                if self._attempts < 2:
                    raise
                result: T = retrying(self._attempt, fn, safe)
                return result
        except _Retry as wrapped:
            cause = wrapped.__cause__ or wrapped
            raise _errors.translate(cause, secrets=self._secrets) from cause
        except DQError:
            raise
        except Exception as exc:
            error = _errors.translate(exc, secrets=self._secrets)
            if not safe and isinstance(error, StoreUnavailableError):
                error = StoreUnavailableError(
                    f"{error}; the write may or may not have been applied: re-read before retrying"
                )
            raise error from exc

    @staticmethod
    def _attempt(fn: Callable[[], T], safe: bool) -> T:
        try:
            return fn()
        except (DQError, _Retry):
            raise
        except Exception as exc:
            if _errors.is_rolled_back(exc) or (safe and _errors.is_transient(exc)):
                log.debug("retrying after transient database error: %s", type(exc).__name__)
                raise _Retry from exc
            raise

    def _run(self, op: Callable[[Any], T], *, safe: bool) -> T:
        """Run ``op(dbapi_connection)`` on a pooled connection, with retries."""

        def once() -> T:
            try:
                pooled = self._engine.raw_connection()
            except Exception as exc:  # nothing was sent: always safe to retry
                if _errors.is_transient(exc):
                    raise _Retry from exc
                raise
            try:
                return op(pooled.driver_connection)
            except Exception as exc:
                if self._engine.dialect.is_disconnect(_errors.unwrap(exc), None, None):  # type: ignore[arg-type]
                    pooled.invalidate(exc)
                raise
            finally:
                pooled.close()

        return self._call(once, safe=safe)

    def _read(self, tenant: str, environment: str, sql: str, params: list[Any]) -> list[Any]:
        return self._run(
            lambda conn: self._executor.read(conn, tenant, environment, sql, params), safe=True
        )

    def _scope_read(self, scope: Scope, sql: str, params: list[Any]) -> list[Any]:
        return self._read(scope.tenant, scope.environment, sql, params)

    # -- reads -----------------------------------------------------------------
    def _doc_sql(self, table: str, extra: str = "") -> str:
        ph = self._executor.placeholder
        return (
            f"SELECT {_COLS} FROM {table} WHERE tenant = {ph} AND environment = {ph}"
            f" AND kind = {ph} AND key = {ph}{extra}"
        )

    def _head(self, scope: Scope, kind: str, key: str) -> StoredDocument | None:
        rows = self._scope_read(
            scope, self._doc_sql("dq_heads"), [scope.tenant, scope.environment, kind, key]
        )
        return decode_document(scope, rows[0]) if rows else None

    def _get(self, scope: Scope, kind: str, key: str) -> StoredDocument:
        head = self._head(scope, kind, key)
        if head is None or head.deleted:
            raise NotFoundError(f"{kind} {key!r} not found in {scope}")
        return head

    def _get_revision(self, scope: Scope, kind: str, key: str, revision: int) -> StoredDocument:
        sql = self._doc_sql("dq_revisions", f" AND revision = {self._executor.placeholder}")
        rows = self._scope_read(scope, sql, [scope.tenant, scope.environment, kind, key, revision])
        if not rows:
            raise NotFoundError(f"{kind} {key!r} has no revision {revision} in {scope}")
        return decode_document(scope, rows[0])

    def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        sql = self._doc_sql("dq_revisions", " ORDER BY revision")
        rows = self._scope_read(scope, sql, [scope.tenant, scope.environment, kind, key])
        if not rows:
            raise NotFoundError(f"{kind} {key!r} not found in {scope}")
        return decode_documents(scope, rows)

    def _prune_history(
        self, scope: Scope, kind: str, key: str, keep_from: int, seen: Mapping[int, str]
    ) -> None:
        # One transaction, checked against what the caller read (a history replace may
        # have come in between); deleting what is gone already is a no-op, so a retry
        # after a lost connection is safe.
        ph = self._executor.placeholder
        self._run(
            lambda conn: prune_checked(conn, ph, _COLS, scope, kind, key, keep_from, seen),
            safe=True,
        )

    def _query(
        self, scope: Scope, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        sql, params = select_documents(
            self._dialect, scope.tenant, scope.environment, kind, query, cursor, fetch
        )
        return decode_documents(scope, self._scope_read(scope, sql, params))

    def _query_tenant(
        self, tenant: str, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        sql, params = select_documents(self._dialect, tenant, None, kind, query, cursor, fetch)
        rows = self._read(tenant, ALL, sql, params)
        return decode_documents(Scope(tenant, rows[0][0]), rows) if rows else []

    def _count(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int:
        sql, params = select_documents(
            self._dialect,
            scope.tenant,
            scope.environment,
            kind,
            Query(filters=filters),
            None,
            None,
        )
        return int(self._scope_read(scope, sql, params)[0][0])

    def _search(self, scope: Scope, kind: str, terms: tuple[str, ...]) -> list[StoredDocument]:
        where = (self._dialect, scope.tenant, scope.environment, kind)
        if len(terms) > 1:  # the rarest terms drive; the port re-checks the others
            sql, params = count_search(*where, terms, DRIVING_PROBE)
            row = self._scope_read(scope, sql, params)[0]
            terms = tuple(driving_terms(dict(zip(terms, map(int, row), strict=True))))
        sql, params = select_search(*where, terms)
        return decode_documents(scope, self._scope_read(scope, sql, params))

    def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
        # Keyset batches, each its own short read: bounded memory, no transaction or
        # pooled connection held while the caller is between items.
        ph = self._executor.placeholder
        base = f"SELECT {_COLS} FROM dq_heads WHERE tenant = {ph} AND environment = {ph}"
        base += " AND deleted = false"
        mark: tuple[str, str] | None = None
        while True:
            sql, params = base, [scope.tenant, scope.environment]
            if kind is not None:
                sql += f" AND kind = {ph}"
                params.append(kind)
            if mark is not None:
                sql += f" AND (kind, key) > ({ph}, {ph})"
                params.extend(mark)
            sql += f" ORDER BY kind, key LIMIT {_BATCH}"
            rows = self._scope_read(scope, sql, params)
            yield from decode_documents(scope, rows)
            if len(rows) < _BATCH:
                return
            mark = (rows[-1][1], rows[-1][2])

    def _list_environments(self, tenant: str) -> Iterable[str]:
        # a loose index scan: one primary-key probe per environment, not per document
        ph = self._executor.placeholder
        sql = (
            "WITH RECURSIVE envs(environment) AS ("
            f" SELECT min(environment) FROM dq_heads WHERE tenant = {ph}"
            " UNION ALL SELECT (SELECT min(h.environment) FROM dq_heads h"
            f" WHERE h.tenant = {ph} AND h.environment > envs.environment)"
            " FROM envs WHERE envs.environment IS NOT NULL)"
            " SELECT environment FROM envs WHERE environment IS NOT NULL"
        )
        return [row[0] for row in self._read(tenant, ALL, sql, [tenant, tenant])]

    def _iter_scopes(self) -> Iterator[Scope]:
        rows = self._read(ALL, ALL, "SELECT DISTINCT tenant, environment FROM dq_heads", [])
        yield from sorted((Scope(t, e) for t, e in rows), key=str)

    def iter_index_scopes(self) -> Iterator[Scope]:
        """Every scope with postings, one primary-key probe each (a loose index scan)."""
        ph = self._executor.placeholder
        base = "SELECT tenant, environment FROM dq_postings"
        mark: list[Any] = []
        while True:
            where = f" WHERE (tenant, environment) > ({ph}, {ph})" if mark else ""
            rows = self._read(
                ALL, ALL, base + where + " ORDER BY tenant, environment LIMIT 1", mark
            )
            if not rows:
                return
            mark = list(rows[0])
            yield Scope(mark[0], mark[1])

    # -- writes ----------------------------------------------------------------
    def _append(
        self, scope: Scope, kind: str, rev: Revision, expect: Expectation
    ) -> StoredDocument:
        at = datetime.now(UTC)
        revision = self._run(
            lambda conn: self._executor.write(conn, scope, kind, rev, expect, at), safe=False
        )
        if revision is None:
            self._refuse(scope, kind, rev, expect)
        return _stored(scope, kind, rev, revision, at)

    def _refuse(self, scope: Scope, kind: str, rev: Revision, expect: Expectation) -> NoReturn:
        """The conditional write changed nothing: explain why.

        A create-only write fails only when the key is live, which needs no read to
        say; callers retrying idempotently read the document themselves anyway. The
        other refusals read the head after the fact to tell "absent" from "moved on".
        """
        if expect.kind is ExpectKind.ABSENT:
            raise ConflictError(f"{kind} {rev.key!r} already exists")
        head = self._head(scope, kind, rev.key)
        live = None if head is None or head.deleted else head.revision
        if rev.deleted and live is None:
            raise NotFoundError(f"{kind} {rev.key!r} not found in {scope}")
        found = "absent" if live is None else f"at revision {live}"
        raise ConflictError(f"{kind} {rev.key!r} is {found}, expected revision {expect.revision}")

    def _put(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument:
        return self._append(scope, kind, Revision.of(write), expect)

    def _delete(self, scope: Scope, kind: str, key: str, expect: Expectation) -> StoredDocument:
        return self._append(scope, kind, Revision.tombstone(key), expect)

    def _commit(
        self, scope: Scope, operations: tuple[Operation, ...]
    ) -> list[StoredDocument | None]:
        # One database transaction; see the executors and ADR 0003 "Atomic commits".
        at = datetime.now(UTC)
        steps = steps_of(operations)
        outcome = self._run(lambda conn: self._executor.commit(conn, scope, steps, at), safe=False)
        if isinstance(outcome, Refused):
            raise refusal(operations[outcome.index], outcome.live, scope)
        return [
            None if s.rev is None or n is None else _stored(scope, s.kind, s.rev, n, at)
            for s, n in zip(steps, outcome, strict=True)
        ]

    def _put_many(self, scope: Scope, kind: str, writes: Iterator[DocumentWrite]) -> int:
        count = 0
        batch: dict[str, Revision] = {}
        for write in writes:
            if write.key in batch or len(batch) >= _BATCH:  # one statement per key and batch
                count += self._write_batch(scope, kind, list(batch.values()))
                batch = {}
            batch[write.key] = Revision.of(write)
        if batch:
            count += self._write_batch(scope, kind, list(batch.values()))
        if self._analyze_after is not None and count >= self._analyze_after:
            self._refresh_statistics(count)
        return count

    def _refresh_statistics(self, written: int) -> None:
        """Statistics are an optimisation: failing to refresh them fails no write."""
        try:
            self._run(lambda conn: self._executor.refresh_statistics(conn, written), safe=True)
        except DQError as exc:
            log.warning("could not refresh planner statistics after a bulk write: %s", exc)

    def _write_batch(self, scope: Scope, kind: str, revs: list[Revision]) -> int:
        at = datetime.now(UTC)
        self._run(lambda conn: self._executor.write_many(conn, scope, kind, revs, at), safe=False)
        return len(revs)

    # -- integrity (``dq verify``) -----------------------------------------------
    def verify_scope(self, scope: Scope, counts: VerifyCounts) -> Iterator[IntegrityProblem]:
        """The port's walk (bodies vs. sha256, history numbering, head vs. newest
        revision), every revision row against its record hash and its predecessor
        (``dq_stores.sql._verify_chain``), then every key's postings against its head
        and every head against its revision row (``dq_stores.sql._verify``). Streams."""
        # a malformed pruned-history marker is reported by the port's walk and again
        # by the chain check, in the same words: once is enough
        told: set[IntegrityProblem] = set()
        for problem in super().verify_scope(scope, counts):
            if problem.code == "history":
                told.add(problem)
            yield problem
        ph = self._executor.placeholder

        def first_kept(kind: str, key: str) -> int:
            prefix = self._pruned_prefix(scope, kind, key)
            return 1 if prefix is None else prefix.pruned_through + 1

        try:
            for problem in chain_problems(self._reader(scope), scope, ph, counts, first_kept):
                if problem not in told:
                    yield problem
        except DQError as exc:
            yield IntegrityProblem(scope, "unreadable", f"chain check stopped: {exc}")
        try:
            yield from index_problems(self._reader(scope), scope, ph)
        except DQError as exc:
            yield IntegrityProblem(scope, "unreadable", f"index check stopped: {exc}")

    def repair_index(self, scope: Scope) -> bool:
        """Re-derive the postings of every key whose postings disagree with its head,
        one short transaction per key; heads and revisions are never touched."""
        super().repair_index(scope)
        ph = self._executor.placeholder

        def repair(kind: str, key: str) -> Callable[[Any], None]:
            return lambda conn: repair_key(conn, ph, scope, kind, key)

        for problem in index_problems(self._reader(scope), scope, ph):
            if problem.code == "index" and problem.kind is not None and problem.key is not None:
                # idempotent (derived from the head again): safe to retry
                self._run(repair(problem.kind, problem.key), safe=True)
        return True

    def _reader(self, scope: Scope) -> Callable[[str, list[Any]], list[Any]]:
        return lambda sql, params: self._scope_read(scope, sql, params)

    # -- history transfer (``_restore``) -----------------------------------------
    def _iter_histories(self, scope: Scope, kind: str | None) -> Iterator[list[StoredDocument]]:
        return _restore.group_histories(self._iter_revisions(scope, kind))

    def _iter_revisions(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
        ph = self._executor.placeholder
        mark: tuple[str, str, int] | None = None
        while True:
            params: list[Any] = [scope.tenant, scope.environment]
            if kind is not None:
                params.append(kind)
            if mark is not None:
                params.extend(mark)
            sql = _restore.history_sql(_COLS, ph, kind, mark is not None)
            rows = self._scope_read(scope, sql, params)
            yield from decode_documents(scope, rows)
            if len(rows) < _restore.HISTORY_BATCH:
                return
            mark = (rows[-1][1], rows[-1][2], rows[-1][3])

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        write = (
            _restore.restore_postgres
            if self._executor.placeholder == "%s"
            else _restore.restore_sqlite
        )
        # a conflict is raised inside the transaction (rolled back) as ConflictError
        self._run(lambda conn: write(conn, scope, kind, histories, replace), safe=False)


class PostgresBackend(SqlBackend):
    """Documents in PostgreSQL (``postgresql+psycopg://user:pass@host/db``); see ``SqlBackend``.

    Raises:
        MisconfiguredError: ``url`` is not a PostgreSQL URL.
    """

    def __init__(self, url: str, **options: Any) -> None:
        _require_dialect(url, "postgresql", "postgresql+psycopg://user:password@host/db")
        super().__init__(url, **options)


class SqliteBackend(SqlBackend):
    """Documents in one SQLite file (``sqlite:///path/to/dq.sqlite3``); see ``SqlBackend``.

    Raises:
        MisconfiguredError: ``url`` is not a SQLite file URL.
    """

    def __init__(self, url: str, **options: Any) -> None:
        _require_dialect(url, "sqlite", "sqlite:///path/to/dq.sqlite3")
        super().__init__(url, **options)


def _require_dialect(url: str, dialect: str, example: str) -> None:
    if parse_url(url).get_backend_name() != dialect:
        raise MisconfiguredError(f"{dialect} backend needs a {dialect} URL, e.g. {example}")


def _stored(scope: Scope, kind: str, rev: Revision, revision: int, at: datetime) -> StoredDocument:
    """The document ``rev`` became once written as ``revision`` at ``at``."""
    return decode_document(
        scope,
        (
            scope.environment,
            kind,
            rev.key,
            revision,
            rev.body,
            rev.sha256,
            rev.fields,
            rev.sort_key,
            at,
            rev.deleted,
        ),
    )
