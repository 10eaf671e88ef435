"""An empty head (a restore's claim, an aborted commit's lock) written over while a
reader fetches it. The SDK answers the ranged GET of an empty blob with 416 and
then GETs it again, keeping that second response's etag and metadata with no bytes:
a head written in between read as empty under its *new* etag, and a writer then
cleared that "empty head" ``If-Match`` — deleting the restored or committed head.
Runs on Azurite."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from tests.integration._azure_helpers import write

from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.documents import ANY
from dq_stores.verify import verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
KIND = "contract"
HEAD = "acme/prod/contract/h/m1"


@pytest.mark.parametrize(
    "empty_metadata", [{"restore": "0" * 32}, {}], ids=["restore-claim", "aborted-lock"]
)
def test_a_head_written_over_an_empty_head_during_a_read_is_not_deleted(
    azure_connection_string: str,
    azure_container: str,
    raw: ContainerClient,
    empty_metadata: dict[str, str],
) -> None:
    """The empty head is replaced by a real head between the 416 and the next request
    (the restore or commit finishing): the writer's put lands on top of it, nothing
    is deleted."""
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as first:
        first.put(ACME, KIND, write("m1", "restored"), ANY)
    head = raw.get_blob_client(HEAD)
    saved = head.download_blob()
    body, metadata = saved.readall(), dict(saved.properties.metadata)
    head.upload_blob(b"", overwrite=True, metadata=empty_metadata)

    replaced: list[int] = []

    def finish_on_416(response: Any) -> None:
        if response.http_response.status_code == 416 and not replaced:
            replaced.append(1)
            head.upload_blob(body, overwrite=True, metadata=metadata)

    client = BlobServiceClient.from_connection_string(
        azure_connection_string, raw_response_hook=finish_on_416
    )
    with client, AzureBlobBackend(azure_container, client=client) as app:
        assert app.put(ACME, KIND, write("m1", "after"), ANY).revision == 2
        assert replaced
        values = [json.loads(d.body)["value"] for d in app.history(ACME, KIND, "m1")]
        assert values == ["restored", "after"]
        assert not list(verify(app, scope=ACME))
