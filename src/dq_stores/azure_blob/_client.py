"""Client construction, retry policy, and the one place SDK errors are translated."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DeserializationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from dq_metadata.errors import (
    ConflictError,
    DQError,
    MisconfiguredError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from dq_stores import telemetry
from dq_stores._redact import install_log_redaction

__all__ = [
    "ClientSettings",
    "Pool",
    "Transport",
    "azure_errors",
    "container_missing",
    "make_service_client",
]

#: The SDK's default read size of a response body (``connection_data_block_size``),
#: which it sets itself when it builds the transport.
_DATA_BLOCK_SIZE = 256 * 1024


class Transport(RequestsTransport):  # type: ignore[misc]  # untyped in the SDK
    """The SDK's default transport, as our own class: while telemetry is on, its
    ``send`` (one HTTP request, retries being separate sends) counts towards the store
    call that made it (``dq.requests``). Nothing of its own while telemetry is off."""


class Pool(ThreadPoolExecutor):
    """The adapters' thread pools, as our own class: while telemetry is on, work
    submitted runs in the submitter's context (its span, its request counter).
    Nothing of its own while telemetry is off."""


telemetry.count_requests(Transport, "send", Pool)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Timeouts and retries. Backoff is exponential with full jitter, capped."""

    retry_total: int = 4
    backoff_initial: float = 0.2
    backoff_max: float = 2.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


class _CappedExponentialRetry(ExponentialRetry):
    """The SDK's default waits 15 s, 18 s, ...; ours: 0.2 s, 0.4 s, ... ≤ ``cap``, jittered."""

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(retry_total=settings.retry_total, initial_backoff=0, increment_base=2)
        self._first = settings.backoff_initial
        self._cap = settings.backoff_max

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        ceiling = min(self._cap, self._first * 2 ** settings["count"])
        return random.uniform(ceiling / 2, ceiling)


def make_service_client(
    *,
    connection_string: str | None,
    account_url: str | None,
    credential: object | None,
    settings: ClientSettings,
    **client_kwargs: Any,
) -> BlobServiceClient:
    """Build the one client a backend or results store keeps for its lifetime.

    Its transport is :class:`Transport` (the SDK's default, built from the same
    settings) unless ``client_kwargs`` gives one.

    Raises:
        MisconfiguredError: not exactly one of ``connection_string`` / ``account_url``,
            or a connection string the SDK cannot parse (the string is never echoed).
    """
    if (connection_string is None) == (account_url is None):
        raise MisconfiguredError("give exactly one of connection_string or account_url")
    install_log_redaction()  # the SDK and urllib3 log request URLs (with any SAS) at DEBUG
    kwargs: dict[str, Any] = {
        "retry_policy": _CappedExponentialRetry(settings),
        "connection_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "connection_data_block_size": _DATA_BLOCK_SIZE,
        **client_kwargs,
    }
    if kwargs.get("transport") is None:
        kwargs["transport"] = Transport(**kwargs)
    if connection_string is not None:
        if credential is not None:
            raise MisconfiguredError("credential is only used with account_url")
        try:
            return BlobServiceClient.from_connection_string(connection_string, **kwargs)
        except (ValueError, AzureError):
            # ``from None``: the SDK's message may quote the string, and it holds the key.
            raise MisconfiguredError("the Azure connection string is malformed") from None
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    try:
        return BlobServiceClient(str(account_url), credential=credential, **kwargs)  # type: ignore[arg-type]
    except (ValueError, AzureError) as exc:
        raise MisconfiguredError(f"invalid Azure account URL: {type(exc).__name__}") from exc


def container_missing(exc: HttpResponseError) -> bool:
    """A 404 about the container itself, not about the blob asked for."""
    return getattr(exc, "error_code", None) == "ContainerNotFound"


def _describe(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None) or ""
    return f"HTTP {exc.status_code} {code}".strip()


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Translate every Azure SDK / transport error raised inside into ``dq_metadata.errors``.

    404 → NotFoundError, 409/412 → ConflictError, 401/403 → MisconfiguredError,
    400 → ValidationError, connection errors, timeouts and other statuses (after the
    client's retries) → StoreUnavailableError. Messages carry the status and error
    code only — never URLs, keys or SAS tokens.
    """
    try:
        yield
    except DQError:
        raise
    except ResourceNotFoundError as exc:
        if container_missing(exc):
            raise MisconfiguredError(
                f"{what}: the container does not exist (create it, or pass create_container=True)"
            ) from exc
        raise NotFoundError(f"{what}: not found") from exc
    except (ResourceExistsError, ResourceModifiedError) as exc:
        raise ConflictError(f"{what}: {_describe(exc)}") from exc
    except ClientAuthenticationError as exc:
        raise MisconfiguredError(f"{what}: not authorised ({_describe(exc)})") from exc
    except HttpResponseError as exc:
        if exc.status_code in (409, 412):
            raise ConflictError(f"{what}: {_describe(exc)}") from exc
        if exc.status_code in (401, 403):
            raise MisconfiguredError(f"{what}: not authorised ({_describe(exc)})") from exc
        if exc.status_code == 400:
            raise ValidationError(f"{what}: rejected by the store ({_describe(exc)})") from exc
        raise StoreUnavailableError(f"{what}: {_describe(exc)}") from exc
    except DeserializationError as exc:  # a ValueError, not an AzureError: a mangled response
        raise StoreUnavailableError(f"{what}: unreadable response from the store") from exc
    except (ServiceRequestError, ServiceResponseError, AzureError) as exc:
        raise StoreUnavailableError(f"{what}: {type(exc).__name__} after retries") from exc
    except (OSError, TimeoutError, urllib3.exceptions.HTTPError) as exc:
        raise StoreUnavailableError(f"{what}: {type(exc).__name__}") from exc
