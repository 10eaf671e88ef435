"""Pytest plugin: a PostgreSQL server for adapter tests.

Found in this order (DESIGN §6):

1. ``DQ_TEST_POSTGRES_URL`` — a server someone else runs (the URL's role must be
   allowed to create databases and roles);
2. a throw-away server started here from the PostgreSQL binaries (``pg_config
   --bindir``, PATH, or ``/usr/lib/postgresql/*/bin``) in a temp dir on a free
   port — as the ``postgres`` user when we are root, since ``initdb``/``pg_ctl``
   refuse root — stopped and removed at session end;
3. testcontainers, when a Docker engine answers;
4. otherwise the tests skip with the reason — or fail when ``DQ_REQUIRE_BACKENDS=1``.

Every test gets its own database, owned by its own ordinary (non-superuser,
no BYPASSRLS) login role, so row-level security applies (``postgres_url``).
Registered from the root ``conftest.py``: ``pytest_plugins = ["tests.support.postgres"]``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

try:
    import psycopg
    from psycopg import sql
except ImportError:  # the postgres extra is not installed: the fixtures skip (or fail)
    psycopg = None  # type: ignore[assignment]

__all__ = ["PostgresServer", "postgres_admin_url", "postgres_server", "postgres_url"]

_STARTUP_SECONDS = 60
#: The password every per-test role gets (trust auth may ignore it; the URL carries it,
#: which is what the redaction tests need).
TEST_PASSWORD = "s3cret-Pa55word"


@dataclass
class PostgresServer:
    """A reachable server: ``admin_dsn`` is a superuser (or CREATEDB+CREATEROLE) libpq URL."""

    admin_dsn: str
    how: str
    data_dir: Path | None = None
    _pg_ctl: list[str] = field(default_factory=list)

    @property
    def can_restart(self) -> bool:
        return bool(self._pg_ctl)

    def host_port(self) -> tuple[str, int]:
        info = psycopg.conninfo.conninfo_to_dict(self.admin_dsn)
        return str(info.get("host", "127.0.0.1")), int(info.get("port", 5432))

    def restart(self) -> None:
        """Fast-restart the server (terminates every session); only for our own server."""
        if not self._pg_ctl:
            raise RuntimeError("only a server started by the test session can be restarted")
        subprocess.run(
            [*self._pg_ctl, "restart", "-m", "fast", "-w", "-t", str(_STARTUP_SECONDS)],
            check=True,
            capture_output=True,
        )

    def sqlalchemy_url(self, database: str, user: str, password: str | None) -> str:
        host, port = self.host_port()
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql+psycopg://{auth}@{host}:{port}/{database}"


def _unavailable(reason: str) -> None:
    if os.environ.get("DQ_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"PostgreSQL required (DQ_REQUIRE_BACKENDS=1): {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], check=False, capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _as_server_user(tmp: Path) -> list[str]:
    """Command prefix running as a non-root user owning ``tmp`` (``[]`` when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root and there is no 'postgres' user") from exc
    for path in (tmp, *tmp.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and runuser is missing")
    return [runuser, "-u", "postgres", "--"]


def _wait_ready(dsn: str) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _start_local() -> Iterator[PostgresServer] | str:
    bindir = _bindir()
    if bindir is None:
        return "no PostgreSQL binaries (pg_config --bindir, initdb on PATH, /usr/lib/postgresql)"
    tmp = Path(tempfile.mkdtemp(prefix="dq-pg-"))
    tmp.chmod(0o755)
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    try:
        prefix = _as_server_user(tmp)
    except RuntimeError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return str(exc)
    port = _free_port()
    log = tmp / "server.log"
    log.touch()
    if prefix:
        shutil.chown(log, "postgres", "postgres")
    init = subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return f"initdb failed: {init.stderr.strip()[-300:]}"
    options = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
    start = subprocess.run(
        [*pg_ctl, "start", "-w", "-t", str(_STARTUP_SECONDS)],
        check=False,
        capture_output=True,
        text=True,
    )
    if start.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return f"pg_ctl start failed: {log.read_text()[-300:]}"

    def run() -> Iterator[PostgresServer]:
        try:
            dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            _wait_ready(dsn)
            yield PostgresServer(dsn, "local", data, pg_ctl)
        finally:
            subprocess.run(
                [*pg_ctl, "stop", "-m", "immediate", "-w"], check=False, capture_output=True
            )
            shutil.rmtree(tmp, ignore_errors=True)

    return run()


def _from_testcontainers() -> Iterator[PostgresServer] | str:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        return "testcontainers is not installed"
    try:
        container = PostgresContainer("postgres:15", driver=None)  # DockerException w/o engine
        container.start()
    except Exception as exc:  # docker.errors.DockerException and friends
        return f"no Docker engine for testcontainers ({type(exc).__name__})"

    def run() -> Iterator[PostgresServer]:
        try:
            yield PostgresServer(container.get_connection_url(), "testcontainers")
        finally:
            container.stop()

    return run()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this session (see the module docstring for the order)."""
    if psycopg is None:
        _unavailable("psycopg is not installed (pip install 'dq-platform-core[postgres]')")
    explicit = os.environ.get("DQ_TEST_POSTGRES_URL")
    if explicit:
        dsn = explicit.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            _wait_ready(dsn)
        except psycopg.OperationalError as exc:
            _unavailable(f"DQ_TEST_POSTGRES_URL does not answer: {type(exc).__name__}")
        yield PostgresServer(dsn, "env")
        return
    reasons = []
    for finder in (_start_local, _from_testcontainers):
        found = finder()
        if isinstance(found, str):
            reasons.append(found)
            continue
        yield from found
        return
    _unavailable("no PostgreSQL server: " + "; ".join(reasons))


@dataclass(frozen=True)
class PostgresTestDatabase:
    """One test's database and ordinary login role (RLS applies to it)."""

    server: PostgresServer
    name: str
    role: str
    password: str

    @property
    def url(self) -> str:
        return self.server.sqlalchemy_url(self.name, self.role, self.password)

    @property
    def admin_dsn(self) -> str:
        """Superuser libpq DSN on this database (to inspect it from outside)."""
        info = psycopg.conninfo.conninfo_to_dict(self.server.admin_dsn)
        info["dbname"] = self.name
        return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresTestDatabase]:
    """A fresh database owned by a fresh non-superuser role; both dropped afterwards."""
    suffix = uuid.uuid4().hex[:12]
    db = PostgresTestDatabase(
        postgres_server, f"dq_test_{suffix}", f"dq_app_{suffix}", TEST_PASSWORD
    )
    with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
                sql.Identifier(db.role), sql.Literal(db.password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(db.name), sql.Identifier(db.role)
            )
        )
    try:
        yield db
    finally:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin,
        ):
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name))
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.role)))


@pytest.fixture
def postgres_url(postgres_database: PostgresTestDatabase) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://``) of a fresh database, as an ordinary role."""
    return postgres_database.url


@pytest.fixture
def postgres_admin_url(postgres_database: PostgresTestDatabase) -> str:
    """libpq DSN of the same fresh database as a superuser (bypasses RLS)."""
    return postgres_database.admin_dsn


#: ``raw(statement, params=())`` -> rows: SQL run on the store's database behind the
#: library's back (SQLite: the file; PostgreSQL: as a superuser, row-level security
#: bypassed), ``?`` placeholders — the tamperer of the SQL verifier tests.
RawSql = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, RawSql]]:
    """``(SQLAlchemy URL, raw)`` of an empty SQL store, once on SQLite and once on
    PostgreSQL (marked ``postgres``); see :data:`RawSql`."""
    if request.param == "sqlite":
        path = tmp_path / "dq.sqlite"

        def on_file(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return conn.execute(statement, params).fetchall()

        yield f"sqlite:///{path}", on_file
        return
    request.applymarker(pytest.mark.postgres)
    url = request.getfixturevalue("postgres_url")
    admin = request.getfixturevalue("postgres_admin_url")

    def as_superuser(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    yield url, as_superuser


def wait_for_lock_wait(
    admin_dsn: str,
    where: str = "TRUE",
    *,
    still: Callable[[], object] = lambda: None,
    timeout: float = 30.0,
) -> None:
    """Return once a session of the database waits on a lock (``pg_stat_activity``:
    ``wait_event_type = 'Lock'`` and the SQL condition ``where``, e.g.
    ``"wait_event = 'advisory'"``); ``pytest.fail`` after ``timeout`` s. ``still()`` runs at
    every look (assert that the waiter has not ended)."""
    import psycopg

    sql = f"SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND ({where})"
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_dsn, autocommit=True) as watch:
        while time.monotonic() < deadline:
            row = watch.execute(sql).fetchone()  # type: ignore[arg-type]
            if row and row[0]:
                return
            still()
            time.sleep(0.02)
    pytest.fail(f"no session waited on a lock ({where}) within {timeout:.0f} s")
