"""The shared document-backend conformance suite on PostgreSQL and on SQLite."""

import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from dq_stores import DocumentBackend
from dq_stores.testing import DocumentBackendConformance

sql = pytest.importorskip("dq_stores.sql")


@pytest.mark.postgres
class TestPostgresConformance(DocumentBackendConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, postgres_url: str) -> Callable[[], DocumentBackend]:
        # picklable: child processes build their own engine and pool
        return functools.partial(sql.SqlBackend, postgres_url, pool_size=2)


class TestSqliteConformance(DocumentBackendConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(sql.SqlBackend, f"sqlite:///{tmp_path / 'dq.sqlite'}")
