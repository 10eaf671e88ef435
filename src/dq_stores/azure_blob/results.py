"""Azure Blob results store: large run results streamed in blocks, hash-verified.

Uploads stage fixed-size blocks (at most ``max_concurrency`` in flight, so memory
is about ``block_size * (max_concurrency + 1)``) while hashing incrementally, then
commit the block list — the object appears whole or not at all. Downloads stream
``block_size`` chunks and check size and sha256 at the end.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

from dq_metadata.errors import IntegrityError, MisconfiguredError, Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import ClientSettings, azure_errors, make_service_client
from dq_stores.azure_blob._layout import Layout
from dq_stores.keys import decode_key, encode_key, validate_key
from dq_stores.results import CHUNK_SIZE, ResultRef, ResultsStore, StoredObject, iter_chunks

__all__ = ["AzureBlobResultsStore"]

_SEGMENT = re.compile(r"[a-z0-9_-]+")
_MIN_BLOCK = 64 * 1024
_MAX_BLOCK = 100 * 1024 * 1024


def _segment(value: object, what: str) -> str:
    try:
        return encode_key(validate_key(value))
    except ValidationError as exc:
        raise ValidationError("invalid result name", [Problem(what, str(exc))]) from exc


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
        self._container_url = self._container.url.rstrip("/")
        if create_container:
            with azure_errors(f"creating container {container!r}"):
                if not self._container.exists():
                    self._container.create_container()

    def __repr__(self) -> str:
        return f"AzureBlobResultsStore(container={self._container.container_name!r})"

    def close(self) -> None:
        if self._owns_client:
            self._service.close()

    def _scope_prefix(self, scope: Scope) -> str:
        if not isinstance(scope, Scope):
            raise ValidationError("scope must be a Scope")
        return f"{self._layout.scope(scope)}_results/"

    def _blob_name(self, scope: Scope, ref: ResultRef) -> str:
        """The blob behind ``ref``, refusing anything outside ``scope``'s results prefix."""
        prefix = self._scope_prefix(scope)
        base = f"{self._container_url}/"
        uri = ref.uri if isinstance(ref, ResultRef) else ""
        name = unquote(uri[len(base) :]) if uri.startswith(base) else ""
        rest = name[len(prefix) :].split("/") if name.startswith(prefix) else []
        if len(rest) != 2 or not all(_SEGMENT.fullmatch(part) for part in rest):
            raise ValidationError(
                "invalid result reference", [Problem("uri", "does not belong to this scope")]
            )
        return name

    def upload(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        source: BinaryIO | Iterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> ResultRef:
        blob_name = (
            f"{self._scope_prefix(scope)}{_segment(run_id, 'run_id')}/{_segment(name, 'name')}"
        )
        blob = self._container.get_blob_client(blob_name)
        digest = hashlib.sha256()
        size = 0
        upload_id = uuid.uuid4().hex[:16]  # block ids of concurrent uploads never mix
        block_ids: list[str] = []
        in_flight: list[Future[dict[str, Any]]] = []
        with (
            azure_errors(f"uploading result {name!r} of run {run_id!r}"),
            ThreadPoolExecutor(self._max_concurrency, "dq-azure-upload") as pool,
        ):
            for block in self._blocks(source):
                digest.update(block)
                size += len(block)
                block_id = base64.b64encode(f"{upload_id}-{len(block_ids):08d}".encode()).decode()
                block_ids.append(block_id)
                while len(in_flight) >= self._max_concurrency:
                    in_flight.pop(0).result()  # back-pressure: bounded memory
                in_flight.append(pool.submit(blob.stage_block, block_id, block))
            for future in in_flight:
                future.result()
            sha256 = digest.hexdigest()
            blob.commit_block_list(
                [BlobBlock(block_id=b) for b in block_ids],
                content_settings=ContentSettings(content_type=content_type),
                metadata={"sha256": sha256},
            )
        return ResultRef(f"{self._container_url}/{quote(blob_name)}", size, sha256, content_type)

    def _blocks(self, source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
        """Re-chunk ``source`` into ``block_size`` blocks (the last may be shorter)."""
        buffer = bytearray()
        for chunk in iter_chunks(source, self._block_size):
            buffer += chunk
            while len(buffer) >= self._block_size:
                yield bytes(buffer[: self._block_size])
                del buffer[: self._block_size]
        if buffer:
            yield bytes(buffer)

    def open(self, scope: Scope, ref: ResultRef) -> Iterator[bytes]:
        blob_name = self._blob_name(scope, ref)
        with azure_errors(f"reading result {ref.uri!r}"):
            downloader = self._container.get_blob_client(blob_name).download_blob()
        return self._verified(downloader.chunks(), ref)

    @staticmethod
    def _verified(chunks: Iterator[bytes], ref: ResultRef) -> Iterator[bytes]:
        digest = hashlib.sha256()
        size = 0
        with azure_errors(f"reading result {ref.uri!r}"):
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
        if size != ref.size or digest.hexdigest() != ref.sha256:
            raise IntegrityError(f"result {ref.uri!r} does not match its recorded size/sha256")

    def iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        prefix = self._scope_prefix(scope)
        with azure_errors(f"listing results of {scope}"):
            blobs = list(self._container.list_blobs(name_starts_with=prefix))
        for blob in blobs:
            parts = blob.name[len(prefix) :].split("/")
            if len(parts) != 2:
                continue
            try:
                run_id = decode_key(parts[0])
            except ValueError:
                run_id = ""
            settings = blob.content_settings
            content_type = (
                settings.content_type if settings else None
            ) or "application/octet-stream"
            ref = ResultRef(
                f"{self._container_url}/{quote(blob.name)}", blob.size, "", content_type
            )
            yield StoredObject(ref, run_id, blob.last_modified)

    def delete(self, scope: Scope, ref: ResultRef) -> None:
        blob_name = self._blob_name(scope, ref)
        with (
            azure_errors(f"deleting result {ref.uri!r}"),
            contextlib.suppress(ResourceNotFoundError),
        ):
            self._container.delete_blob(blob_name)
