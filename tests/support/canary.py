"""Secret canaries: known credentials in the configuration, and recorders that prove
they never leave it (issue 11, "Secrets" 4).

- :func:`canary_postgres` — a PostgreSQL login role with a password and its own
  database; when the test session runs the server itself, ``pg_hba.conf`` makes that
  role authenticate with scram-sha-256, so the password is really used. Its URL
  carries the password twice: in the user-info part and as ``?password=``.
- :func:`canary_azure` — Azurite's account key plus a container SAS generated from
  it (``generate_container_sas``), as two connection strings.
- :class:`Recorder` — while active: a capturing handler on the root logger at DEBUG
  (with the library's redaction installed as in production), and a trace function
  that keeps every ``DQError`` raised anywhere (whether or not a test catches it)
  so its whole chain can be formatted. :meth:`Recorder.assert_clean` formats every
  chained traceback, ``str`` and ``repr`` and every log record and fails when a
  secret appears.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, quote

import pytest

from dq_metadata.errors import DQError
from dq_stores._redact import install_log_redaction

__all__ = ["CanaryAzure", "CanaryPostgres", "Recorder", "canary_azure", "canary_postgres"]

PG_PASSWORD = "cAnArY-pg-9f41e2d7-Pw"


def variants(secret: str) -> list[str]:
    """The forms a secret can take in text: as is, percent-encoded, form-encoded."""
    return sorted({secret, quote(secret, safe=""), quote(secret, safe="").replace("%20", "+")})


@dataclass(frozen=True)
class CanaryPostgres:
    url: str
    password: str
    role: str
    database: str
    enforced: bool  # True when the server checks the password (scram), not trust


@dataclass(frozen=True)
class CanaryAzure:
    account_key_connection_string: str
    sas_connection_string: str
    container: str
    account_key: str
    signature: str


@pytest.fixture
def canary_postgres(postgres_server: Any) -> Iterator[CanaryPostgres]:
    import psycopg
    from psycopg import sql

    suffix = uuid.uuid4().hex[:10]
    role, database = f"dq_canary_{suffix}", f"dq_canary_{suffix}"
    hba = postgres_server.data_dir / "pg_hba.conf" if postgres_server.data_dir else None
    with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PG_PASSWORD)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
        original = hba.read_text() if hba is not None else None
        if hba is not None and original is not None:
            rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
            hba.write_text(rule + original)
            admin.execute("SELECT pg_reload_conf()")
    host, port = postgres_server.host_port()
    url = (
        f"postgresql+psycopg://{role}:{quote(PG_PASSWORD, safe='')}@{host}:{port}/{database}"
        f"?password={quote(PG_PASSWORD, safe='')}"
    )
    try:
        yield CanaryPostgres(url, PG_PASSWORD, role, database, hba is not None)
    finally:
        with psycopg.connect(postgres_server.admin_dsn, autocommit=True) as admin:
            if hba is not None and original is not None:
                hba.write_text(original)
                admin.execute("SELECT pg_reload_conf()")
            with contextlib.suppress(psycopg.Error):
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def canary_azure(azure_connection_string: str, azure_container: str) -> CanaryAzure:
    from tests.support.azurite import sas_connection_string

    sas = sas_connection_string(azure_connection_string, azure_container)
    fields = dict(p.split("=", 1) for p in azure_connection_string.split(";") if "=" in p)
    query = sas.split("SharedAccessSignature=", 1)[1]
    (signature,) = parse_qs(query)["sig"]
    return CanaryAzure(
        azure_connection_string, sas, azure_container, fields["AccountKey"], signature
    )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@dataclass
class Recorder:
    """Records log output and raised ``DQError``s; ``assert_clean`` checks them."""

    secrets: list[str]
    texts: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _handler: _Capture = field(default_factory=_Capture)

    def add(self, *values: object) -> None:
        """Keep the ``str`` and ``repr`` of each value (outputs, objects, documents)."""
        for value in values:
            self.texts += [str(value), repr(value)]

    @contextlib.contextmanager
    def active(self) -> Iterator[Recorder]:
        root = logging.getLogger()
        old_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self._handler)
        install_log_redaction()
        old_trace = sys.gettrace()
        sys.settrace(self._trace)
        threading.settrace(self._trace)
        try:
            yield self
        finally:
            sys.settrace(old_trace)
            threading.settrace(None)  # type: ignore[arg-type]
            root.removeHandler(self._handler)
            root.setLevel(old_level)

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_lines = False
        if event == "exception":
            exc = arg[1]
            if isinstance(exc, DQError) and not any(exc is e for e in self.errors):
                self.errors.append(exc)
        return self._trace

    def all_text(self) -> Iterable[tuple[str, str]]:
        for text in self._handler.texts:
            yield "log record", text
        for text in self.texts:
            yield "output", text
        for exc in self.errors:
            yield "traceback", "".join(traceback.format_exception(exc))
            yield "error", f"{exc} {exc!r}"

    def assert_clean(self) -> None:
        forms = [form for secret in self.secrets for form in variants(secret)]
        leaks = [
            (where, form, text) for where, text in self.all_text() for form in forms if form in text
        ]
        assert not leaks, "secret leaked: " + "; ".join(
            f"{where}: …{text[max(0, text.find(form) - 120) : text.find(form) + 40]}…"
            for where, form, text in leaks[:3]
        )

    @property
    def seen(self) -> int:
        return len(self._handler.texts) + len(self.errors) + len(self.texts)
