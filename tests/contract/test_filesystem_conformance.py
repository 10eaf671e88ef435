import functools
from collections.abc import Callable
from pathlib import Path

import pytest

from dq_stores import DocumentBackend
from dq_stores.filesystem import FilesystemBackend, FilesystemResultsStore
from dq_stores.keys import encode_key
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing import (
    DocumentBackendConformance,
    ResultsStoreConformance,
    SearchConformance,
)


class TestFilesystemConformance(DocumentBackendConformance, SearchConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(FilesystemBackend, tmp_path / "store")


class TestFilesystemProcessDurabilityConformance(DocumentBackendConformance, SearchConformance):
    """``durability="process"`` (no fsync) keeps every invariant of the contract."""

    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(FilesystemBackend, tmp_path / "store", durability="process")


class TestFilesystemResultsConformance(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self, tmp_path: Path) -> ResultsStore:
        return FilesystemResultsStore(tmp_path / "results")

    @pytest.fixture
    def reopened_results_store(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> ResultsStore:
        # the same directory reached through a symlink, as a relative path from elsewhere
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "link").symlink_to(tmp_path / "results")
        monkeypatch.chdir(tmp_path / "elsewhere")
        return FilesystemResultsStore("link")

    @pytest.fixture
    def store_secrets(self, tmp_path: Path) -> list[str]:
        return [str(tmp_path)]

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        path = store._layout.root  # type: ignore[attr-defined]
        scope = f"{ref.scope.tenant}/{ref.scope.environment}"
        return f"file://{path}/{scope}/results/{encode_key(ref.run_id)}/{encode_key(ref.name)}"
