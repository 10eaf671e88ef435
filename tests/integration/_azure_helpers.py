"""Helpers for the Azure Blob integration tests: raw access and request counting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azure.storage.blob import BlobServiceClient

from dq_metadata.canonical import canonical_json, content_hash
from dq_stores.azure_blob import AzureBlobBackend, ClientSettings
from dq_stores.documents import DocumentWrite, IndexEntry


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


FAST_RETRIES = ClientSettings(
    retry_total=6, backoff_initial=0.01, backoff_max=0.05, connect_timeout=1.0, read_timeout=1.0
)
