"""Azure Blob results store on Azurite: streamed round trip and tamper detection."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobResultsStore
from dq_stores.keys import encode_key

pytestmark = pytest.mark.azure

SCOPE = Scope("acme", "prod")
BLOCK = 256 * 1024


@pytest.fixture
def store(azure_connection_string: str, azure_container: str) -> Iterator[AzureBlobResultsStore]:
    store = AzureBlobResultsStore(
        azure_container, connection_string=azure_connection_string, block_size=BLOCK
    )
    yield store
    store.close()


def _pattern(total: int, piece: int = 100_003) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        size = min(piece, total - sent)
        yield bytes((sent + i) % 253 for i in range(size))
        sent += size


def test_streamed_round_trip_in_blocks(store: AzureBlobResultsStore) -> None:
    total = 3 * 1024 * 1024 + 12345  # uneven source pieces re-chunked into 256 KiB blocks
    expected = hashlib.sha256(b"".join(_pattern(total))).hexdigest()
    ref = store.upload(SCOPE, "run-1", "rows.jsonl", _pattern(total), "application/x-ndjson")
    assert (ref.size, ref.sha256, ref.content_type) == (total, expected, "application/x-ndjson")
    digest = hashlib.sha256()
    sizes = []
    for chunk in store.open(SCOPE, ref):
        digest.update(chunk)
        sizes.append(len(chunk))
    assert digest.hexdigest() == expected
    assert max(sizes) <= BLOCK  # streamed, never the whole object
    assert len(sizes) > 1


def test_tampered_object_fails_at_the_end_of_the_stream(
    store: AzureBlobResultsStore, azure_connection_string: str, azure_container: str
) -> None:
    ref = store.upload(SCOPE, "run-2", "r.bin", iter([b"a" * 600_000]))
    name = f"acme/prod/_results/{encode_key(ref.run_id)}/{encode_key(ref.name)}"
    with BlobServiceClient.from_connection_string(azure_connection_string) as service:
        blob = service.get_blob_client(azure_container, name)
        blob.upload_blob(b"a" * 599_999 + b"b", overwrite=True)
    with pytest.raises(IntegrityError):
        for _chunk in store.open(SCOPE, ref):
            pass


def test_hostile_names_stay_inside_the_scope_prefix(
    store: AzureBlobResultsStore, azure_connection_string: str, azure_container: str
) -> None:
    ref = store.upload(SCOPE, "../../globex/prod/_results/x", "../r", iter([b"x"]))
    with BlobServiceClient.from_connection_string(azure_connection_string) as service:
        names = [b.name for b in service.get_container_client(azure_container).list_blobs()]
    assert len(names) == 1
    assert names[0].startswith("acme/prod/_results/")
    assert b"".join(store.open(SCOPE, ref)) == b"x"
    with pytest.raises(ValidationError):
        store.open(Scope("globex", "prod"), ref)


def test_long_names_live_in_blob_metadata_and_unrecorded_digests_are_listed(
    store: AzureBlobResultsStore,
) -> None:
    run_id, name = "run" + "é" * 40, "n" + "é" * 40
    store.upload(SCOPE, run_id, name, [b"x"])
    (obj,) = store.iter_objects(SCOPE)
    assert (obj.run_id, obj.name, obj.digest_run_id, obj.digest_name) == (
        run_id, name, False, False
    )  # fmt: skip
    # as written before the names were kept: only the sha256 in the metadata
    blob = store._container.get_blob_client(  # type: ignore[attr-defined]
        f"acme/prod/_results/{encode_key(run_id)}/{encode_key(name)}"
    )
    blob.set_blob_metadata({"sha256": hashlib.sha256(b"x").hexdigest()})
    (old,) = store.iter_objects(SCOPE)
    assert (old.run_id, old.name) == (encode_key(run_id), encode_key(name))
    assert (old.digest_run_id, old.digest_name) == (True, True)
    store.delete_object(SCOPE, old.run_id, old.name, digest_name=True, digest_run_id=True)
    assert list(store.iter_objects(SCOPE)) == []
