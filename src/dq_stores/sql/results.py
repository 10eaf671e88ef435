"""SqlResultsStore: large run results inside the deployment's own SQL database.

Tables ``dq_results`` (one header per run id and name) and ``dq_result_chunks``
(the bytes as numbered rows of at most :data:`ROW_BYTES`), from migration 0003.

- An upload runs in one transaction: its chunks are inserted under a fresh upload
  id, then the header is moved to that id and every other upload of the same name
  is deleted. A failed upload rolls back and leaves nothing; a reader never sees a
  partial object. Memory stays bounded by one chunk row plus one source chunk.
- A download reads the header, then one chunk row per short transaction (no
  connection is held between chunks), and checks size and sha256 at the end.
- On PostgreSQL every transaction first sets the row-level-security scope
  (``dq.tenant``/``dq.environment``), as the document backend does.

References are the port's logical :class:`~dq_stores.results.ResultRef` (scope,
run id, name): the row key, valid from any process, directory and login.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text

from dq_metadata.errors import DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores._redact import install_log_redaction
from dq_stores.results import (
    HashingChunks,
    ResultRef,
    ResultsStore,
    StoredObject,
    resolve_digest,
)
from dq_stores.sql import _errors
from dq_stores.sql._url import parse_url, render_url, url_secrets
from dq_stores.sql.schema import ensure_schema

__all__ = ["ROW_BYTES", "SqlResultsStore"]

T = TypeVar("T")

#: Bytes per chunk row: small enough for any driver, large enough to keep rows few.
ROW_BYTES = 1024 * 1024

_SCOPE = "SELECT set_config('dq.tenant', :t, true), set_config('dq.environment', :e, true)"
_KEY = "tenant = :t AND environment = :e AND run_id = :r AND name = :n"
_INSERT_CHUNK = (
    "INSERT INTO dq_result_chunks (tenant, environment, run_id, name, upload, seq, data)"
    " VALUES (:t, :e, :r, :n, :u, :seq, :data)"
)
_UPSERT_HEADER = (
    "INSERT INTO dq_results (tenant, environment, run_id, name, upload, size, sha256,"
    " content_type, written_at) VALUES (:t, :e, :r, :n, :u, :size, :sha, :ct, :at)"
    " ON CONFLICT (tenant, environment, run_id, name) DO UPDATE SET upload = excluded.upload,"
    " size = excluded.size, sha256 = excluded.sha256, content_type = excluded.content_type,"
    " written_at = excluded.written_at"
)
_DROP_OTHER_UPLOADS = f"DELETE FROM dq_result_chunks WHERE {_KEY} AND upload <> :u"
_HEADER = f"SELECT upload FROM dq_results WHERE {_KEY}"
_LIST = (
    "SELECT run_id, name, size, written_at FROM dq_results"
    " WHERE tenant = :t AND environment = :e ORDER BY run_id, name"
)
_RUN_NAMES = "SELECT name FROM dq_results WHERE tenant = :t AND environment = :e AND run_id = :r"
_CHUNK = f"SELECT data FROM dq_result_chunks WHERE {_KEY} AND upload = :u AND seq = :seq"


class SqlResultsStore(ResultsStore):
    """Result objects as chunk rows in PostgreSQL or SQLite.

    ``url`` is the same SQLAlchemy URL as the deployment's document backend. The
    schema must be at the library's migration head (an empty database is migrated
    when ``auto_create``).

    Raises:
        MisconfiguredError: the URL is not a PostgreSQL or SQLite URL.
        SchemaOutOfDateError: the database is not at the migration head.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 2,
        max_overflow: int = 2,
        pool_timeout: float = 30.0,
        connect_timeout: int = 10,
        auto_create: bool = True,
    ) -> None:
        self._url = parse_url(url)
        self._secrets = url_secrets(self._url)
        install_log_redaction()
        self._postgres = self._url.get_backend_name() == "postgresql"
        if self._postgres:
            connect_args: dict[str, Any] = {"connect_timeout": connect_timeout}
        else:
            connect_args = {"timeout": connect_timeout, "check_same_thread": False}
        self._engine: Engine = create_engine(
            self._url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
        if not self._postgres:
            event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            self._translated(lambda: ensure_schema(self._engine, auto_create=auto_create))
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlResultsStore({render_url(self._url)!r})"

    def close(self) -> None:
        self._engine.dispose()

    # -- plumbing --------------------------------------------------------------
    def _translated(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DQError:
            raise
        except Exception as exc:
            raise _errors.translate(exc, secrets=self._secrets) from exc

    @contextmanager
    def _transaction(self, scope: Scope) -> Iterator[Connection]:
        with self._engine.begin() as conn:
            if self._postgres:
                conn.execute(text(_SCOPE), {"t": scope.tenant, "e": scope.environment})
            yield conn

    @staticmethod
    def _key(scope: Scope, run_id: str, name: str) -> dict[str, str]:
        return {"t": scope.tenant, "e": scope.environment, "r": run_id, "n": name}

    # -- port hooks ------------------------------------------------------------
    def _write(
        self, scope: Scope, run_id: str, name: str, chunks: HashingChunks, content_type: str
    ) -> None:
        key = self._key(scope, run_id, name)
        upload = secrets.token_hex(16)

        def write() -> None:
            with self._transaction(scope) as conn:
                for seq, row in enumerate(_rows(chunks)):
                    conn.execute(text(_INSERT_CHUNK), {**key, "u": upload, "seq": seq, "data": row})
                header = {"u": upload, "size": chunks.size, "sha": chunks.sha256}
                at = datetime.now(UTC)
                conn.execute(text(_UPSERT_HEADER), {**key, **header, "ct": content_type, "at": at})
                conn.execute(text(_DROP_OTHER_UPLOADS), {**key, "u": upload})

        self._translated(write)

    def _resolve(self, ref: ResultRef) -> ResultRef:
        if not ref.digest_name:
            return ref
        key = {"t": ref.scope.tenant, "e": ref.scope.environment, "r": ref.run_id}

        def names() -> list[str]:
            with self._transaction(ref.scope) as conn:
                return list(conn.execute(text(_RUN_NAMES), key).scalars())

        return resolve_digest(ref, self._translated(names))

    def _read(self, ref: ResultRef) -> Iterator[bytes]:
        key = self._key(ref.scope, ref.run_id, ref.name)

        def header() -> str | None:
            with self._transaction(ref.scope) as conn:
                return conn.execute(text(_HEADER), key).scalar()

        upload = self._translated(header)
        if upload is None:
            raise NotFoundError(f"{ref.describe()} not found")
        return self._stream(ref.scope, {**key, "u": upload})

    def _stream(self, scope: Scope, key: dict[str, str]) -> Iterator[bytes]:
        seq = 0

        def chunk() -> bytes | None:
            with self._transaction(scope) as conn:
                data = conn.execute(text(_CHUNK), {**key, "seq": seq}).scalar()
                return None if data is None else bytes(data)

        while (data := self._translated(chunk)) is not None:
            seq += 1
            yield data

    def _remove(self, ref: ResultRef) -> None:
        key = self._key(ref.scope, ref.run_id, ref.name)

        def drop() -> None:
            with self._transaction(ref.scope) as conn:
                conn.execute(text(f"DELETE FROM dq_results WHERE {_KEY}"), key)
                conn.execute(text(f"DELETE FROM dq_result_chunks WHERE {_KEY}"), key)

        self._translated(drop)

    def _iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        def listing() -> list[StoredObject]:
            with self._transaction(scope) as conn:
                rows = conn.execute(text(_LIST), {"t": scope.tenant, "e": scope.environment})
                return [StoredObject(scope, r[0], r[1], r[2], _utc(r[3])) for r in rows]

        yield from self._translated(listing)


def _utc(value: datetime | str) -> datetime:
    """A ``written_at`` column value as an aware UTC time (SQLite returns text)."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _rows(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut ``chunks`` into rows of exactly ``ROW_BYTES`` (the last may be shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= ROW_BYTES:
            yield bytes(buffer[:ROW_BYTES])
            del buffer[:ROW_BYTES]
    if buffer:
        yield bytes(buffer)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout = 10000")
