import pytest

from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultsStore
from dq_stores.testing.results import ResultsStoreConformance


class TestMemoryResultsStore(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self) -> ResultsStore:
        return MemoryResultsStore()
