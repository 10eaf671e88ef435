"""One side of a transfer: the document backend and results store a configuration names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dq_metadata.errors import MisconfiguredError
from dq_metadata.scope import Scope, validate_id
from dq_registries.wiring.config import STORE_NAMES
from dq_registries.wiring.container import ConfigSource, build_container
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore

__all__ = ["Endpoint", "open_endpoint", "select_scopes"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A document backend and the results store beside it (``None``: none configured)."""

    backend: DocumentBackend
    results: ResultsStore | None
    label: str = ""


@contextmanager
def open_endpoint(config: ConfigSource) -> Iterator[Endpoint]:
    """Open the backend and results store of ``config`` (a path, dict or settings).

    Raises:
        MisconfiguredError: invalid configuration, or document stores split over
            several backends (a transfer moves one document backend).
    """
    container = build_container(config)
    try:
        stores = container.config.stores()  # type: ignore[attr-defined]
        names = {stores[name] for name in STORE_NAMES}
        if len(names) != 1:
            raise MisconfiguredError(
                f"document stores use several backends ({', '.join(sorted(names))}); "
                "export, import and migrate need them on one"
            )
        backend = container.contracts_backend()
        results = container.results_store()
        yield Endpoint(backend, results, f"{names.pop()} (results: {stores['results']})")
    finally:
        container.shutdown_resources()


def select_scopes(
    backend: DocumentBackend, tenant: str | None, environment: str | None
) -> list[Scope]:
    """The scopes of ``backend``, of one tenant (and environment) if given.

    Raises:
        MisconfiguredError: ``environment`` without ``tenant``.
        InvalidScopeError: ``tenant`` or ``environment`` is not a valid id (a
            ``ValidationError``; it could never match a scope).
    """
    if environment is not None and tenant is None:
        raise MisconfiguredError("--env needs --tenant")
    if tenant is not None:
        validate_id(tenant, "tenant")
    if environment is not None:
        validate_id(environment, "environment")
    return [
        s
        for s in backend.iter_scopes()
        if (tenant is None or s.tenant == tenant)
        and (environment is None or s.environment == environment)
    ]
