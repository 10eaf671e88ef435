import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from dq_stores import DocumentBackend
from dq_stores.filesystem import FilesystemBackend, FilesystemResultsStore
from dq_stores.results import ResultsStore
from dq_stores.testing import DocumentBackendConformance, ResultsStoreConformance


class TestFilesystemConformance(DocumentBackendConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(FilesystemBackend, tmp_path / "store")


class TestFilesystemProcessDurabilityConformance(DocumentBackendConformance):
    """``durability="process"`` (no fsync) keeps every invariant of the contract."""

    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(FilesystemBackend, tmp_path / "store", durability="process")


class TestFilesystemResultsConformance(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self, tmp_path: Path) -> ResultsStore:
        return FilesystemResultsStore(tmp_path / "results")
