from urllib.parse import quote

import pytest

from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing.results import ResultsStoreConformance


class TestMemoryResultsStore(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self) -> ResultsStore:
        return MemoryResultsStore()

    @pytest.fixture
    def reopened_results_store(self, results_store: ResultsStore) -> ResultsStore:
        return results_store  # the objects live in this instance only

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        run, name = quote(ref.run_id, safe=""), quote(ref.name, safe="")
        return f"memory://{ref.scope.tenant}/{ref.scope.environment}/{run}/{name}"
