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

References are ``sql://<tenant>/<environment>/<run id>/<name>`` (percent-encoded
parts): logical names, valid from any process and directory.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, unquote

from sqlalchemy import Connection, Engine, create_engine, event, text

from dq_metadata.errors import DQError, IntegrityError, NotFoundError, Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.keys import validate_key
from dq_stores.results import ResultRef, ResultsStore, StoredObject, iter_chunks
from dq_stores.sql import _errors
from dq_stores.sql._url import parse_url
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
    "SELECT run_id, name, size, sha256, content_type, written_at FROM dq_results"
    " WHERE tenant = :t AND environment = :e ORDER BY run_id, name"
)
_CHUNK = f"SELECT data FROM dq_result_chunks WHERE {_KEY} AND upload = :u AND seq = :seq"


class SqlResultsStore(ResultsStore):
    """Result objects as chunk rows in PostgreSQL or SQLite (``sql://`` references).

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
        self._secrets = (self._url.password,) if self._url.password else ()
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
        return f"SqlResultsStore({self._url.render_as_string(hide_password=True)!r})"

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
    def _prefix(scope: Scope) -> str:
        return f"sql://{scope.tenant}/{scope.environment}/"

    def _key(self, scope: Scope, ref: ResultRef) -> dict[str, str]:
        if isinstance(scope, Scope) and ref.uri.startswith(self._prefix(scope)):
            parts = ref.uri[len(self._prefix(scope)) :].split("/")
            if len(parts) == 2 and all(parts):
                run_id, name = (unquote(part) for part in parts)
                return {"t": scope.tenant, "e": scope.environment, "r": run_id, "n": name}
        raise ValidationError(
            "invalid result reference",
            [Problem("uri", "does not name a result of this scope in this store")],
        )

    # -- port ------------------------------------------------------------------
    def upload(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        source: BinaryIO | Iterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> ResultRef:
        if not isinstance(scope, Scope):
            raise ValidationError("invalid scope", [Problem("scope", "must be a Scope")])
        key = {
            "t": scope.tenant,
            "e": scope.environment,
            "r": _name(run_id, "run_id"),
            "n": _name(name, "name"),
        }
        upload = secrets.token_hex(16)
        digest = hashlib.sha256()

        def write() -> int:
            size = 0
            with self._transaction(scope) as conn:
                for seq, row in enumerate(_rows(iter_chunks(source))):
                    digest.update(row)
                    size += len(row)
                    conn.execute(text(_INSERT_CHUNK), {**key, "u": upload, "seq": seq, "data": row})
                header = {"u": upload, "size": size, "sha": digest.hexdigest(), "ct": content_type}
                conn.execute(text(_UPSERT_HEADER), {**key, **header, "at": datetime.now(UTC)})
                conn.execute(text(_DROP_OTHER_UPLOADS), {**key, "u": upload})
            return size

        size = self._translated(write)
        uri = self._prefix(scope) + f"{quote(key['r'], safe='')}/{quote(key['n'], safe='')}"
        return ResultRef(uri, size, digest.hexdigest(), content_type)

    def open(self, scope: Scope, ref: ResultRef) -> Iterator[bytes]:
        key = self._key(scope, ref)

        def header() -> str | None:
            with self._transaction(scope) as conn:
                return conn.execute(text(_HEADER), key).scalar()

        upload = self._translated(header)
        if upload is None:
            raise NotFoundError("result object not found")
        return self._stream(scope, {**key, "u": upload}, ref)

    def _stream(self, scope: Scope, key: dict[str, str], ref: ResultRef) -> Iterator[bytes]:
        digest = hashlib.sha256()
        size = 0
        seq = 0

        def chunk() -> bytes | None:
            with self._transaction(scope) as conn:
                data = conn.execute(text(_CHUNK), {**key, "seq": seq}).scalar()
                return None if data is None else bytes(data)

        while (data := self._translated(chunk)) is not None:
            digest.update(data)
            size += len(data)
            seq += 1
            yield data
        if size != ref.size or digest.hexdigest() != ref.sha256:
            raise IntegrityError("result object does not match its recorded size and sha256")

    def iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        if not isinstance(scope, Scope):
            raise ValidationError("invalid scope", [Problem("scope", "must be a Scope")])
        yield from _listing(self, scope)

    def delete(self, scope: Scope, ref: ResultRef) -> None:
        key = self._key(scope, ref)

        def drop() -> None:
            with self._transaction(scope) as conn:
                conn.execute(text(f"DELETE FROM dq_results WHERE {_KEY}"), key)
                conn.execute(text(f"DELETE FROM dq_result_chunks WHERE {_KEY}"), key)

        self._translated(drop)


def _listing(store: SqlResultsStore, scope: Scope) -> list[StoredObject]:
    def read() -> list[StoredObject]:
        with store._transaction(scope) as conn:
            rows = conn.execute(text(_LIST), {"t": scope.tenant, "e": scope.environment}).fetchall()
        prefix = store._prefix(scope)
        return [
            StoredObject(
                ResultRef(
                    f"{prefix}{quote(r[0], safe='')}/{quote(r[1], safe='')}", r[2], r[3], r[4]
                ),
                r[0],
                _utc(r[5]),
            )
            for r in rows
        ]

    return store._translated(read)


def _utc(value: datetime | str) -> datetime:
    """A ``written_at`` cell as an aware UTC datetime (SQLite returns text)."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _name(value: str, field: str) -> str:
    try:
        return validate_key(value)
    except ValidationError:
        raise ValidationError(
            "invalid result name", [Problem(field, "must be a non-empty string without NUL")]
        ) from None


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
