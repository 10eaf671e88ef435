"""The shared Store conformance suite against Azure Blob Storage (Azurite)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest

from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore
from dq_stores.testing import DocumentBackendConformance, ResultsStoreConformance

azure_blob = pytest.importorskip("dq_stores.azure_blob")

pytestmark = pytest.mark.azure


class TestAzureBlobConformance(DocumentBackendConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(
        self, azure_connection_string: str, azure_container: str
    ) -> Callable[[], DocumentBackend]:
        return functools.partial(
            azure_blob.AzureBlobBackend, azure_container, connection_string=azure_connection_string
        )


class TestAzureBlobResultsConformance(ResultsStoreConformance):
    @pytest.fixture
    def results_store(
        self, azure_connection_string: str, azure_container: str
    ) -> Iterator[ResultsStore]:
        store = azure_blob.AzureBlobResultsStore(
            azure_container, connection_string=azure_connection_string, block_size=1024 * 1024
        )
        yield store
        store.close()
