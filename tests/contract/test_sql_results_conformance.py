"""The shared results-store conformance suite on PostgreSQL and on SQLite."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dq_metadata.scope import Scope
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing.results import ResultsStoreConformance

sql = pytest.importorskip("dq_stores.sql")
sqlalchemy = pytest.importorskip("sqlalchemy")


def _legacy_sql_uri(store: ResultsStore, ref: ResultRef) -> str:
    run, name = quote(ref.run_id, safe=""), quote(ref.name, safe="")
    return f"sql://{ref.scope.tenant}/{ref.scope.environment}/{run}/{name}"


@pytest.mark.postgres
class TestPostgresResultsStore(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self, postgres_url: str) -> Iterator[ResultsStore]:
        store = sql.SqlResultsStore(postgres_url)
        yield store
        store.close()

    @pytest.fixture
    def reopened_results_store(self, postgres_database: Any) -> Iterator[ResultsStore]:
        # the password as a query parameter instead of in the user-info part
        db = postgres_database
        url = db.server.sqlalchemy_url(db.name, db.role, None) + f"?password={db.password}"
        store = sql.SqlResultsStore(url)
        yield store
        store.close()

    @pytest.fixture
    def store_secrets(self, postgres_database: Any) -> list[str]:
        return [postgres_database.password, postgres_database.name]

    legacy_uri = staticmethod(_legacy_sql_uri)  # type: ignore[assignment]


class TestSqliteResultsStore(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self, tmp_path: Path) -> Iterator[ResultsStore]:
        store = sql.SqlResultsStore(f"sqlite:///{tmp_path / 'dq.sqlite'}")
        yield store
        store.close()

    @pytest.fixture
    def reopened_results_store(self, tmp_path: Path) -> Iterator[ResultsStore]:
        (tmp_path / "link").symlink_to(tmp_path)
        store = sql.SqlResultsStore(f"sqlite:///{tmp_path / 'link' / 'dq.sqlite'}")
        yield store
        store.close()

    @pytest.fixture
    def store_secrets(self, tmp_path: Path) -> list[str]:
        return [str(tmp_path)]

    legacy_uri = staticmethod(_legacy_sql_uri)  # type: ignore[assignment]


@pytest.mark.postgres
def test_result_rows_are_invisible_outside_their_scope_on_postgres(postgres_url: str) -> None:
    store = sql.SqlResultsStore(postgres_url)
    try:
        store.upload(Scope("acme", "prod"), "run-1", "r", io.BytesIO(b"x" * 10))
    finally:
        store.close()
    engine = sqlalchemy.create_engine(postgres_url)
    scoped = "SELECT set_config('dq.tenant', :t, true), set_config('dq.environment', 'prod', true)"
    counts = {}
    try:
        for tenant in ("acme", "globex"):
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(scoped), {"t": tenant})
                counts[tenant] = [
                    conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()
                    for table in ("dq_results", "dq_result_chunks")
                ]
    finally:
        engine.dispose()
    assert counts == {"acme": [1, 1], "globex": [0, 0]}


def test_large_objects_are_stored_as_bounded_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dq.sqlite'}"
    store = sql.SqlResultsStore(url)
    size = 3 * sql.results.ROW_BYTES + 5
    try:
        ref = store.upload(Scope("acme", "prod"), "run", "big", iter([b"a" * size]))
        received = [len(chunk) for chunk in store.open(Scope("acme", "prod"), ref)]
    finally:
        store.close()
    assert received == [sql.results.ROW_BYTES] * 3 + [5]
