"""Driver errors come out as dq_metadata errors, from real databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import MisconfiguredError, SchemaOutOfDateError, StoreUnavailableError
from dq_metadata.scope import Scope
from dq_stores import ANY, DocumentWrite
from dq_stores.sql import SqlBackend

SCOPE = Scope("acme", "prod")


def _write(key: str) -> DocumentWrite:
    body = canonical_json({"id": key})
    return DocumentWrite(key, body, content_hash(body))


def test_a_locked_sqlite_database_is_unavailable_after_retries(tmp_path: Path) -> None:
    path = tmp_path / "dq.sqlite"
    with SqlBackend(f"sqlite:///{path}", connect_timeout=0, retry_attempts=3) as backend:
        backend.put(SCOPE, "contract", _write("a"), ANY)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailableError, match="locked") as caught:
                backend.put(SCOPE, "contract", _write("b"), ANY)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            assert backend.get(SCOPE, "contract", "a").revision == 1  # reads still work
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert backend.put(SCOPE, "contract", _write("b"), ANY).revision == 1


def test_tables_dropped_behind_the_backend_read_as_schema_out_of_date(tmp_path: Path) -> None:
    path = tmp_path / "dq.sqlite"
    with SqlBackend(f"sqlite:///{path}") as backend:
        with sqlite3.connect(path) as other:
            other.execute("DROP TABLE dq_heads")
        with pytest.raises(SchemaOutOfDateError, match="dq db upgrade"):
            backend.get(SCOPE, "contract", "a")


def test_an_unopenable_sqlite_path_is_misconfigured(tmp_path: Path) -> None:
    with pytest.raises(MisconfiguredError):
        SqlBackend(f"sqlite:///{tmp_path / 'missing-dir' / 'dq.sqlite'}")
