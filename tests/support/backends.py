"""Open any of the five document backends (and a results store) for one test.

Usage: ``@pytest.fixture(params=BACKENDS)`` then ``open_backend(request, tmp_path)``.
PostgreSQL runs as a non-superuser role (``postgres_url``), so row-level security
applies; Azure runs against Azurite.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dq_stores.backend import DocumentBackend
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.results import ResultsStore

BACKENDS = ["memory", "filesystem", "sqlite", "postgres", "azure"]


def backend_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], DocumentBackend]:
    """A callable opening a new backend instance on one shared store of ``request.param``."""
    kind = request.param
    if kind == "memory":
        shared = MemoryBackend()
        return lambda: shared
    if kind == "filesystem":
        return lambda: FilesystemBackend(tmp_path / "dq")
    if kind == "sqlite":
        sql = pytest.importorskip("dq_stores.sql")
        return lambda: sql.SqlBackend(f"sqlite:///{tmp_path / 'dq.sqlite'}")
    if kind == "postgres":
        sql = pytest.importorskip("dq_stores.sql")
        url = request.getfixturevalue("postgres_url")
        return lambda: sql.SqlBackend(url, pool_size=2)
    azure_blob = pytest.importorskip("dq_stores.azure_blob")
    conn = request.getfixturevalue("azure_connection_string")
    container = request.getfixturevalue("azure_container")
    return lambda: azure_blob.AzureBlobBackend(container, connection_string=conn)


def results_for(request: pytest.FixtureRequest, tmp_path: Path) -> ResultsStore:
    """The results store that goes with ``request.param``'s backend."""
    kind = request.param
    if kind == "memory":
        from dq_stores.memory_results import MemoryResultsStore

        return MemoryResultsStore()
    if kind in ("filesystem",):
        from dq_stores.filesystem.results import FilesystemResultsStore

        return FilesystemResultsStore(tmp_path / "results")
    if kind in ("sqlite", "postgres"):
        from dq_stores.sql.results import SqlResultsStore

        url = (
            f"sqlite:///{tmp_path / 'dq.sqlite'}"
            if kind == "sqlite"
            else request.getfixturevalue("postgres_url")
        )
        return SqlResultsStore(url)
    from dq_stores.azure_blob.results import AzureBlobResultsStore

    conn = request.getfixturevalue("azure_connection_string")
    container = request.getfixturevalue("azure_container")
    return AzureBlobResultsStore(container, connection_string=conn)
