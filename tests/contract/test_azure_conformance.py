"""The shared Store conformance suite against Azure Blob Storage (Azurite)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from tests.support.azurite import sas_connection_string

from dq_stores.backend import DocumentBackend
from dq_stores.keys import encode_key
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing import (
    DocumentBackendConformance,
    ResultsStoreConformance,
    SearchConformance,
)

azure_blob = pytest.importorskip("dq_stores.azure_blob")

pytestmark = pytest.mark.azure


class TestAzureBlobConformance(DocumentBackendConformance, SearchConformance):
    supports_multiprocess = True
    supports_atomic_replace = False  # refused: restore is atomic per key only (ADR 0013)

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

    @pytest.fixture
    def reopened_results_store(
        self, azure_connection_string: str, azure_container: str
    ) -> Iterator[ResultsStore]:
        # another credential for the same container: a SAS instead of the account key
        sas = sas_connection_string(azure_connection_string, azure_container)
        store = azure_blob.AzureBlobResultsStore(azure_container, connection_string=sas)
        yield store
        store.close()

    @pytest.fixture
    def store_secrets(self, azure_connection_string: str) -> list[str]:
        fields = dict(p.split("=", 1) for p in azure_connection_string.split(";") if "=" in p)
        return [fields["AccountKey"], fields["BlobEndpoint"], "sig="]

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        # what the adapter recorded before ADR 0012: the blob URL with the client's SAS
        container = store._container  # type: ignore[attr-defined]
        name = f"{ref.scope.tenant}/{ref.scope.environment}/_results/"
        name += f"{encode_key(ref.run_id)}/{encode_key(ref.name)}"
        return f"{container.url.rstrip('/')}/{quote(name)}?se=2030-01-01&sp=rl&sig=OLD%2Bsig%3D"
