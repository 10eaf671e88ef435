"""Azure Blob results store: large run results streamed in blocks, hash-verified.

Uploads stage fixed-size blocks (at most ``max_concurrency`` in flight, so memory
is about ``block_size * (max_concurrency + 1)``) while hashing incrementally, then
commit the block list — the object appears whole or not at all. Downloads stream
``block_size`` chunks; the port checks size and sha256 at the end. References are
logical: the blob URL (and any SAS) is derived from this store's client at read
time, never stored.

A run id or name whose encoding is over ``MAX_NAME`` characters is stored under its
digest (``_h…``), which cannot be decoded: the original is kept in the blob's own
metadata (``dqrun``/``dqname``, base64 of its UTF-8), committed with the block
list, so the object and its name appear together. A digest blob without it
(written before) is listed as a digest (``StoredObject.digest_name`` /
``digest_run_id``), never skipped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

from dq_metadata.errors import MisconfiguredError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import ClientSettings, Pool, azure_errors, make_service_client
from dq_stores.azure_blob._layout import Layout
from dq_stores.azure_names import validate_container_name
from dq_stores.keys import encode_key, is_digest_name
from dq_stores.results import (
    CHUNK_SIZE,
    HashingChunks,
    ResultRef,
    ResultsStore,
    StoredObject,
    original_name,
    storage_name,
)

__all__ = ["AzureBlobResultsStore"]

#: Metadata keys holding the original run id / name of a digest part.
_ORIGINAL = {0: "dqrun", 1: "dqname"}
_MIN_BLOCK = 64 * 1024
_MAX_BLOCK = 100 * 1024 * 1024


class AzureBlobResultsStore(ResultsStore):
    """Result objects as block blobs under ``{prefix}{tenant}/{env}/_results/``."""

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: object | None = None,
        prefix: str = "",
        create_container: bool = False,
        block_size: int = CHUNK_SIZE,
        max_concurrency: int = 2,
        client: BlobServiceClient | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        if not _MIN_BLOCK <= block_size <= _MAX_BLOCK or max_concurrency < 1:
            raise MisconfiguredError("block_size must be 64 KiB..100 MiB, max_concurrency ≥ 1")
        validate_container_name(container)
        self._layout = Layout(prefix)
        self._block_size = block_size
        self._max_concurrency = max_concurrency
        self._owns_client = client is None
        if client is None:
            client = make_service_client(
                connection_string=connection_string,
                account_url=account_url,
                credential=credential,
                settings=settings or ClientSettings(),
                # never buffer more than one block per request when downloading
                max_single_get_size=block_size,
                max_chunk_get_size=block_size,
            )
        self._service = client
        self._container = client.get_container_client(container)
        if create_container:
            with azure_errors(f"creating container {container!r}"):
                if not self._container.exists():
                    self._container.create_container()

    @property
    def counts_requests(self) -> bool:
        """Whether telemetry can count this store's HTTP requests (``dq.requests``):
        when it built its client (with :class:`~dq_stores.azure_blob._client.Transport`)."""
        return self._owns_client

    def __repr__(self) -> str:
        return f"AzureBlobResultsStore(container={self._container.container_name!r})"

    def close(self) -> None:
        if self._owns_client:
            self._service.close()

    def _iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        prefix = f"{self._layout.scope(scope)}_results/"
        with azure_errors(f"listing results of {scope}"):
            blobs = list(self._container.list_blobs(name_starts_with=prefix, include=["metadata"]))
        for blob in blobs:
            parts = blob.name[len(prefix) :].split("/")
            if len(parts) != 2:
                continue
            found = [
                _original(part, blob.metadata or {}, _ORIGINAL[i]) for i, part in enumerate(parts)
            ]
            if found[0] is None or found[1] is None:
                continue  # not a name this store wrote
            (run_id, run_digest), (name, digest) = found[0], found[1]
            yield StoredObject(
                scope,
                run_id,
                name,
                blob.size,
                blob.last_modified,
                digest_name=digest,
                digest_run_id=run_digest,
            )

    def _blob_name(self, scope: Scope, run_part: str, name_part: str) -> str:
        return f"{self._layout.scope(scope)}_results/{run_part}/{name_part}"

    def _ref_blob(self, ref: ResultRef, run_part: str | None = None) -> str:
        run = encode_key(ref.run_id) if run_part is None else run_part
        return self._blob_name(ref.scope, run, storage_name(ref))

    def _write(
        self, scope: Scope, run_id: str, name: str, chunks: HashingChunks, content_type: str
    ) -> None:
        run_part, name_part = encode_key(run_id), encode_key(name)
        blob = self._container.get_blob_client(self._blob_name(scope, run_part, name_part))
        metadata: dict[str, str] = {}
        for key, part, original in (("dqrun", run_part, run_id), ("dqname", name_part, name)):
            if is_digest_name(part):  # committed with the blob: never an unnamed object
                metadata[key] = base64.b64encode(original.encode("utf-8")).decode("ascii")
        upload_id = uuid.uuid4().hex[:16]  # block ids of concurrent uploads never mix
        block_ids: list[str] = []
        in_flight: list[Future[dict[str, Any]]] = []
        with (
            azure_errors(f"uploading result {name!r} of run {run_id!r}"),
            Pool(self._max_concurrency, "dq-azure-upload") as pool,
        ):
            for block in self._blocks(chunks):
                block_id = base64.b64encode(f"{upload_id}-{len(block_ids):08d}".encode()).decode()
                block_ids.append(block_id)
                while len(in_flight) >= self._max_concurrency:
                    in_flight.pop(0).result()  # back-pressure: bounded memory
                in_flight.append(pool.submit(blob.stage_block, block_id, block))
            for future in in_flight:
                future.result()
            blob.commit_block_list(
                [BlobBlock(block_id=b) for b in block_ids],
                content_settings=ContentSettings(content_type=content_type),
                metadata={**metadata, "sha256": chunks.sha256},
            )

    def _blocks(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Re-chunk ``chunks`` into ``block_size`` blocks (the last may be shorter)."""
        buffer = bytearray()
        for chunk in chunks:
            buffer += chunk
            while len(buffer) >= self._block_size:
                yield bytes(buffer[: self._block_size])
                del buffer[: self._block_size]
        if buffer:
            yield bytes(buffer)

    def _read(self, ref: ResultRef) -> Iterator[bytes]:
        blob_name = self._ref_blob(ref)
        with azure_errors(f"reading {ref.describe()}"):
            downloader = self._container.get_blob_client(blob_name).download_blob()
        return self._chunks(downloader.chunks(), ref)

    @staticmethod
    def _chunks(chunks: Iterator[bytes], ref: ResultRef) -> Iterator[bytes]:
        with azure_errors(f"reading {ref.describe()}"):
            yield from chunks

    def _remove_in_digest_run(self, ref: ResultRef) -> None:
        self._remove(ref, run_part=ref.run_id)

    def _remove(self, ref: ResultRef, run_part: str | None = None) -> None:
        blob_name = self._ref_blob(ref, run_part)
        with (
            azure_errors(f"deleting {ref.describe()}"),
            contextlib.suppress(ResourceNotFoundError),
        ):
            self._container.delete_blob(blob_name)


def _original(part: str, metadata: dict[str, str], key: str) -> tuple[str, bool] | None:
    """:func:`~dq_stores.results.original_name` of ``part``, its original kept in the
    blob's ``metadata`` under ``key`` (base64 of the UTF-8)."""
    return original_name(part, functools.partial(_recorded, metadata, key))


def _recorded(metadata: dict[str, str], key: str) -> str | None:
    try:
        return base64.b64decode(metadata.get(key, ""), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
