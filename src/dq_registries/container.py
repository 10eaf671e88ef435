"""``DQContainer``: the composition root choosing each store's backend from configuration.

::

    container = build_container("dq.yaml")      # or a dict, DQSettings, None
    with container.context(scope=Scope("acme", "prod")) as dq:
        ...
    container.shutdown_resources()

Each technology has one ``Resource`` provider that opens its backend lazily (the
adapter module — SQLAlchemy, the Azure SDK — is imported only when that backend is
in use) and closes it on ``shutdown_resources()``. A backend no store uses yields
``None`` and is never opened, so ``init_resources()`` opens exactly what the
configuration selects. Per-store ``Selector`` providers pick the backend by
``stores.<name>``, which the settings always fill (``default_backend`` applies
where no override is given). Swapping a backend is a configuration change only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from dq_metadata.errors import MisconfiguredError
from dq_registries.config import DQSettings, load_config, settings_from_mapping
from dq_registries.context import DQContext
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore
from dq_stores.typed import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    ReportStore,
)

__all__ = ["DQContainer", "build_container", "build_context"]

_STORES = ("contracts", "job_definitions", "action_profiles", "job_runs", "reports")


def _in_use(config: Mapping[str, Any], backend: str, names: tuple[str, ...]) -> bool:
    stores = config.get("stores") or {}
    return any(stores.get(name) == backend for name in names)


def _azure_args(section: Mapping[str, Any]) -> dict[str, Any]:
    # With an account URL the adapter uses DefaultAzureCredential (azure-identity).
    credentials = (
        {"connection_string": section["connection_string"]}
        if section.get("connection_string")
        else {"account_url": section["account_url"]}
    )
    return {
        **credentials,
        "create_container": bool(section.get("create_container")),
        "prefix": section.get("prefix") or "",
    }


def _open_backend(name: str, config: Mapping[str, Any]) -> DocumentBackend | None:
    if name == "memory":
        from dq_stores.memory import MemoryBackend

        return MemoryBackend()
    if name == "filesystem":
        from dq_stores.filesystem import FilesystemBackend

        return FilesystemBackend(Path(config["filesystem"]["root"]))
    if name == "postgres":
        from dq_stores.sql import SqlBackend

        pg = config["postgres"]
        return SqlBackend(
            pg["url"],
            pool_size=pg["pool_size"],
            max_overflow=pg["max_overflow"],
            pool_timeout=pg["pool_timeout"],
            pool_pre_ping=pg["pool_pre_ping"],
        )
    if name == "sqlite":
        from dq_stores.sql import SqlBackend

        return SqlBackend(config["sqlite"]["url"])
    if name == "azure_blob":
        from dq_stores.azure_blob import AzureBlobBackend

        section = config["azure_blob"]
        return AzureBlobBackend(section["container"], **_azure_args(section))
    raise MisconfiguredError(f"unknown backend {name!r}")  # pragma: no cover - settings forbid


def _open_results(name: str, config: Mapping[str, Any]) -> ResultsStore:
    if name == "memory":
        from dq_stores.memory_results import MemoryResultsStore

        return MemoryResultsStore()
    if name == "filesystem":
        from dq_stores.filesystem.results import FilesystemResultsStore

        return FilesystemResultsStore(Path(config["filesystem"]["root"]))
    if name == "azure_blob":
        from dq_stores.azure_blob import AzureBlobResultsStore

        section = config["azure_blob"]
        return AzureBlobResultsStore(section["container"], **_azure_args(section))
    raise MisconfiguredError(f"unknown results backend {name!r}")  # pragma: no cover


def backend_resource(name: str, config: Mapping[str, Any]) -> Iterator[DocumentBackend | None]:
    """Open backend ``name`` if some document store uses it, and close it on shutdown."""
    if not _in_use(config, name, _STORES):
        yield None
        return
    backend = _open_backend(name, config)
    try:
        yield backend
    finally:
        if backend is not None:
            backend.close()


def results_resource(name: str, config: Mapping[str, Any]) -> Iterator[ResultsStore | None]:
    """Open results store ``name`` if ``stores.results`` selects it; close it on shutdown."""
    if not _in_use(config, name, ("results",)):
        yield None
        return
    store = _open_results(name, config)
    try:
        yield store
    finally:
        store.close()


def _backend_selector(
    choice: Any, backends: Mapping[str, providers.Provider[Any]]
) -> providers.Selector[Any]:
    return providers.Selector(choice, **backends)


class DQContainer(containers.DeclarativeContainer):
    """Backends per technology, typed stores per role, and ``DQContext`` per scope.

    Fill ``config`` with :meth:`DQSettings.container_config` (``build_container``
    does), or override any provider in tests: ``container.contract_store.override(...)``.
    """

    config = providers.Configuration(strict=True)

    memory_backend = providers.Resource(backend_resource, "memory", config)
    filesystem_backend = providers.Resource(backend_resource, "filesystem", config)
    postgres_backend = providers.Resource(backend_resource, "postgres", config)
    sqlite_backend = providers.Resource(backend_resource, "sqlite", config)
    azure_blob_backend = providers.Resource(backend_resource, "azure_blob", config)

    memory_results = providers.Resource(results_resource, "memory", config)
    filesystem_results = providers.Resource(results_resource, "filesystem", config)
    azure_blob_results = providers.Resource(results_resource, "azure_blob", config)

    _backends = {
        "memory": memory_backend,
        "filesystem": filesystem_backend,
        "postgres": postgres_backend,
        "sqlite": sqlite_backend,
        "azure_blob": azure_blob_backend,
    }
    contracts_backend = _backend_selector(config.stores.contracts, _backends)
    job_definitions_backend = _backend_selector(config.stores.job_definitions, _backends)
    action_profiles_backend = _backend_selector(config.stores.action_profiles, _backends)
    job_runs_backend = _backend_selector(config.stores.job_runs, _backends)
    reports_backend = _backend_selector(config.stores.reports, _backends)
    results_store = providers.Selector(
        config.stores.results,
        memory=memory_results,
        filesystem=filesystem_results,
        azure_blob=azure_blob_results,
    )

    del _backends

    contract_store = providers.Singleton(ContractStore, contracts_backend)
    job_definition_store = providers.Singleton(JobDefinitionStore, job_definitions_backend)
    action_profile_store = providers.Singleton(ActionProfileStore, action_profiles_backend)
    job_run_store = providers.Singleton(JobRunStore, job_runs_backend)
    report_store = providers.Singleton(ReportStore, reports_backend)

    context = providers.Factory(
        DQContext.from_stores,
        contracts=contract_store,
        job_definitions=job_definition_store,
        action_profiles=action_profile_store,
        job_runs=job_run_store,
        reports=report_store,
        results=results_store,
        active_statuses=config.contracts.active_statuses,
        inline_result_limit=config.results.inline_limit_bytes,
    )


def build_container(
    config: DQSettings | Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> DQContainer:
    """A configured ``DQContainer``; nothing is opened until a provider is called.

    ``config``: ``DQSettings``; a dict (the complete configuration, environment
    ignored); a YAML path (plus ``DQ_…`` env vars); or ``None`` (env vars and defaults).

    Raises:
        MisconfiguredError: invalid or contradictory configuration.
    """
    if isinstance(config, DQSettings):
        settings = config
    elif isinstance(config, Mapping):
        settings = settings_from_mapping(config)
    else:
        settings = load_config(config)
    container = DQContainer()
    container.config.from_dict(settings.container_config())
    return container


def build_context(
    tenant: str,
    environment: str,
    config: DQSettings | Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> DQContext:
    """Shorthand for :meth:`DQContext.from_config`: a context owning its container."""
    return DQContext.from_config(tenant, environment, config)
