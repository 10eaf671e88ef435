"""Schema migrations for the SQL backend (Alembic scripts shipped in this package).

``dq db`` and :class:`~dq_stores.sql.SqlBackend` both go through here. Every
migration runs inside one transaction holding a lock (a PostgreSQL advisory lock,
SQLite ``BEGIN IMMEDIATE``), so processes starting together on an empty
database create the schema exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, pool

from dq_metadata.errors import DQError, MisconfiguredError, SchemaOutOfDateError
from dq_stores.sql import _errors
from dq_stores.sql._url import parse_url, url_secrets

__all__ = [
    "DOCUMENT_TABLES",
    "MigrationInfo",
    "analyze",
    "current_revision",
    "database_revision",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "history",
    "upgrade",
]

SCRIPT_LOCATION = "dq_stores.sql:migrations"
_LOCK_ID = 0x44510001  # advisory lock key shared by every dq-platform migrator


@dataclass(frozen=True, slots=True)
class MigrationInfo:
    revision: str
    down_revision: str | None
    message: str


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return cfg


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this version of the library needs."""
    head = _scripts().get_current_head()
    assert head is not None, "migration scripts have no head"
    return head


def history() -> list[MigrationInfo]:
    """Every migration, oldest first."""
    revisions = list(_scripts().walk_revisions())
    revisions.reverse()
    return [
        MigrationInfo(
            r.revision,
            r.down_revision if isinstance(r.down_revision, str) else None,
            (r.doc or "").strip().splitlines()[0] if r.doc else "",
        )
        for r in revisions
    ]


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def _migration_engine(engine_or_url: Engine | str) -> Engine:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else parse_url(engine_or_url)
    engine = create_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _autocommit(dbapi_connection: object, _record: object) -> None:
            # we issue BEGIN IMMEDIATE ourselves, to hold the write lock throughout
            dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    return engine


@contextmanager
def _translated(engine_or_url: Engine | str) -> Iterator[None]:
    """Errors of migration commands → our hierarchy, without the URL's password."""
    try:
        url = engine_or_url.url if isinstance(engine_or_url, Engine) else parse_url(engine_or_url)
    except MisconfiguredError:
        url = None
    secrets = url_secrets(url) if url is not None else ()
    try:
        yield
    except DQError:
        raise
    except CommandError as exc:
        raise MisconfiguredError(f"migration failed: {exc}") from exc
    except Exception as exc:
        raise _errors.translate(exc, secrets=secrets) from exc


@contextmanager
def _locked(engine_or_url: Engine | str) -> Iterator[Connection]:
    engine = _migration_engine(engine_or_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
            yield conn
            conn.commit()
    finally:
        engine.dispose()


def _migrate(conn: Connection, direction: str, revision: str) -> None:
    cfg = _config()
    cfg.attributes["connection"] = conn
    if direction == "up":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


def database_revision(engine_or_url: Engine | str) -> str | None:
    """The revision the database at ``engine_or_url`` is at (``None``: empty)."""
    engine = _migration_engine(engine_or_url)
    try:
        with _translated(engine), engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


#: The tables whose statistics the document statements' plans rest on.
DOCUMENT_TABLES = ("dq_revisions", "dq_heads", "dq_postings")


def analyze(conn: Connection) -> None:
    """Refresh PostgreSQL's planner statistics of the document tables (no-op elsewhere).

    Migrations rebuild indexes and may rewrite rows; a restored or bulk-loaded
    database has no statistics until autovacuum gets to it. Tables another
    session is already analysing or vacuuming are skipped, not waited for.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {', '.join(DOCUMENT_TABLES)}")


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> str | None:
    """Migrate up to ``revision`` and refresh planner statistics; the revision reached."""
    with _translated(engine_or_url), _locked(engine_or_url) as conn:
        _migrate(conn, "up", revision)
        reached = current_revision(conn)
        if reached is not None:
            analyze(conn)
        return reached


def downgrade(engine_or_url: Engine | str, revision: str) -> str | None:
    """Migrate down to ``revision`` (``base`` drops everything); returns the revision reached."""
    with _translated(engine_or_url), _locked(engine_or_url) as conn:
        _migrate(conn, "down", revision)
        return current_revision(conn)


def ensure_schema(engine: Engine, *, auto_create: bool) -> None:
    """Check the database is at head; create the schema first if it is empty and allowed.

    Raises:
        SchemaOutOfDateError: the database is behind (or ahead of) this library.
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current is None and auto_create:
        with _locked(engine) as conn:
            if current_revision(conn) is None:
                _migrate(conn, "up", "head")
            current = current_revision(conn)
    if current != head:
        found = "empty" if current is None else f"at revision {current}"
        raise SchemaOutOfDateError(
            f"database schema is {found}, this version needs revision {head}: run `dq db upgrade`"
        )
