"""Helpers for the Azure Blob integration tests: raw access, request counting, documents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.storage.blob import BlobServiceClient

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend, ClientSettings
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, StoredDocument


@dataclass
class RequestLog:
    """Every HTTP request the client sends (retries included), as (method, path)."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    on_request: Callable[[str, str], None] | None = None

    def hook(self, request: Any) -> None:
        http = request.http_request
        path = http.url.split("?", 1)[0]
        self.requests.append((http.method, path))
        if self.on_request is not None:
            self.on_request(http.method, path)

    def take(self) -> list[tuple[str, str]]:
        taken, self.requests = self.requests, []
        return taken


def counted_backend(
    connection_string: str, container: str, log: RequestLog, **kwargs: Any
) -> tuple[AzureBlobBackend, BlobServiceClient]:
    """A backend whose client reports each request to ``log`` (caller closes the client)."""
    client = BlobServiceClient.from_connection_string(connection_string, raw_request_hook=log.hook)
    return AzureBlobBackend(container, client=client, **kwargs), client


def write(key: str, value: Any, sort_key: str = "", **fields: tuple[str, ...]) -> DocumentWrite:
    body = canonical_json({"key": key, "value": value})
    return DocumentWrite(key, body, content_hash(body), IndexEntry(fields, sort_key))


def memory_history(scope: Scope, kind: str, key: str, revisions: int) -> list[StoredDocument]:
    """A history to restore: revisions 1..``revisions`` of ``key`` as a memory backend
    keeps them (value ``n`` at revision ``n``, ``dataset`` the scope's tenant)."""
    from dq_stores.memory import MemoryBackend

    source = MemoryBackend()
    for n in range(1, revisions + 1):
        source.put(scope, kind, write(key, n, dataset=(scope.tenant,)), ANY)
    return source.history(scope, kind, key)


FAST_RETRIES = ClientSettings(
    retry_total=6, backoff_initial=0.01, backoff_max=0.05, connect_timeout=1.0, read_timeout=1.0
)
