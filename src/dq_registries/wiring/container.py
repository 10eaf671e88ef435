"""``DQContainer``: the composition root — backends, stores, results store and registries.

::

    container = build_container("dq.yaml")      # or a dict, DQSettings, None
    with DQContext.from_container(container, Scope("acme", "prod")) as dq:
        ...
    container.shutdown_resources()

Dispatch by technology happens once: for every technology the configuration uses,
one ``Resource`` provider opens that technology's adapter from its own settings
section (``config.backends.<name>``), and per-store ``Selector`` providers choose
among them by ``stores.<name>``::

    contracts_backend = Selector(config.stores.contracts,
                                 postgres=Resource(_opened, POSTGRES.backend,
                                                   config.backends.postgres), ...)

A technology no store uses gets no provider at all, so ``init_resources()`` opens
exactly what the configuration selects and adapter modules (SQLAlchemy, the Azure
SDK) are imported only when used. Technologies come from
:class:`~dq_registries.wiring.plugins.BackendRegistry` (built-ins plus the ``dq.backends``
entry points). Typed stores are singletons; registries are factories taking the
scope; ``registries(scope)`` bundles the four for :class:`DQContext`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dependency_injector import containers, providers

from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_registries.domain.runs import JobRunRegistry
from dq_registries.wiring.config import STORE_NAMES, DQSettings, load_config, settings_from_mapping
from dq_registries.wiring.plugins import BackendRegistry
from dq_registries.wiring.telemetry import instrument_if_configured
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore
from dq_stores.typed import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    ReportStore,
)

__all__ = ["ConfigSource", "DQContainer", "Registries", "build_container", "container_over"]

T = TypeVar("T")
ConfigSource = DQSettings | Mapping[str, Any] | str | os.PathLike[str] | None


@dataclass(frozen=True, slots=True)
class Registries:
    """The four registries of one scope, as the container builds them."""

    scope: Scope
    contracts: ContractRegistry
    job_definitions: JobDefinitionRegistry
    action_profiles: ActionProfileRegistry
    job_runs: JobRunRegistry


def _opened(factory: Callable[..., T], section: Mapping[str, Any]) -> Iterator[T]:
    """Resource body: open an adapter from its settings section, close it on shutdown."""
    adapter = factory(**section)
    try:
        yield adapter
    finally:
        close = getattr(adapter, "close", None)
        if close is not None:
            close()


def _registries(
    scope: Scope,
    *,
    contracts: Callable[[Scope], ContractRegistry],
    job_definitions: Callable[[Scope], JobDefinitionRegistry],
    action_profiles: Callable[[Scope], ActionProfileRegistry],
    job_runs: Callable[[Scope], JobRunRegistry],
) -> Registries:
    return Registries(
        scope, contracts(scope), job_definitions(scope), action_profiles(scope), job_runs(scope)
    )


class DQContainer(containers.DynamicContainer):
    """The providers of one configuration (see the module docstring for their names).

    Providers: ``config``; ``<technology>_backend`` / ``<technology>_results`` for
    each technology in use; ``<store>_backend`` and ``results_store`` selectors;
    ``contract_store`` … ``report_store``; ``contract_registry`` …
    ``job_run_registry`` (called with a ``Scope``); ``registries`` (a
    :class:`Registries` for a ``Scope``). Override any of them in tests:
    ``container.contract_store.override(providers.Object(store))``.
    """


def _wire(
    container: DQContainer,
    config: providers.Configuration,
    backends: Mapping[str, providers.Provider[Any]],
    results: providers.Provider[Any],
) -> DQContainer:
    """Add typed stores, registries and the per-scope bundle over ``backends`` (per store)."""
    container.config = config
    for name in STORE_NAMES:
        setattr(container, f"{name}_backend", backends[name])
    container.results_store = results
    container.contract_store = providers.Singleton(ContractStore, backends["contracts"])
    container.job_definition_store = providers.Singleton(
        JobDefinitionStore, backends["job_definitions"]
    )
    container.action_profile_store = providers.Singleton(
        ActionProfileStore, backends["action_profiles"]
    )
    container.job_run_store = providers.Singleton(JobRunStore, backends["job_runs"])
    container.report_store = providers.Singleton(ReportStore, backends["reports"])
    container.contract_registry = providers.Factory(
        ContractRegistry,
        store=container.contract_store,
        job_definitions=container.job_definition_store,
        active_statuses=config.contracts.active_statuses,
    )
    container.job_definition_registry = providers.Factory(
        JobDefinitionRegistry,
        store=container.job_definition_store,
        contracts=container.contract_store,
        action_profiles=container.action_profile_store,
    )
    container.action_profile_registry = providers.Factory(
        ActionProfileRegistry,
        store=container.action_profile_store,
        job_definitions=container.job_definition_store,
    )
    container.job_run_registry = providers.Factory(
        JobRunRegistry,
        store=container.job_run_store,
        reports=container.report_store,
        results=container.results_store,
        job_definitions=container.job_definition_store,
        inline_result_limit=config.results.inline_limit_bytes,
    )
    container.registries = providers.Factory(
        _registries,
        contracts=container.contract_registry.provider,
        job_definitions=container.job_definition_registry.provider,
        action_profiles=container.action_profile_registry.provider,
        job_runs=container.job_run_registry.provider,
    )
    return container


def _settings(config: ConfigSource, backends: BackendRegistry | None) -> DQSettings:
    if isinstance(config, DQSettings):
        return config
    if isinstance(config, Mapping):
        return settings_from_mapping(config, backends=backends)
    return load_config(config, backends=backends)


def build_container(
    config: ConfigSource = None, *, backends: BackendRegistry | None = None
) -> DQContainer:
    """A configured ``DQContainer``; nothing is opened until a provider is called.

    ``config``: ``DQSettings``; a dict (the complete configuration, environment
    ignored); a YAML path (plus ``DQ_…`` env vars); or ``None`` (env vars and
    defaults). ``backends``: the technologies to choose from (default: built-ins
    plus installed ``dq.backends`` plug-ins).

    Raises:
        MisconfiguredError: invalid or contradictory configuration, or a plug-in
            that cannot be loaded.
    """
    settings = _settings(config, backends)
    instrument_if_configured()  # OpenTelemetry set up by the application: record (telemetry.md)
    registry = settings.backends
    container = DQContainer()
    config = providers.Configuration(strict=True)
    config.from_dict(settings.container_config())
    stores = settings.stores.model_dump()
    technologies: dict[str, providers.Provider[Any]] = {}
    for name in sorted({stores[store] for store in STORE_NAMES}):
        section = getattr(config.backends, name)
        technologies[name] = providers.Resource(_opened, registry.get(name).backend, section)
        setattr(container, f"{name}_backend", technologies[name])
    results_name: str = stores["results"]
    opener = registry.get(results_name).results
    assert opener is not None  # the settings refuse a results backend without results
    results_tech = providers.Resource(_opened, opener, getattr(config.backends, results_name))
    setattr(container, f"{results_name}_results", results_tech)
    selectors: dict[str, providers.Provider[Any]] = {
        name: providers.Selector(getattr(config.stores, name), **technologies)
        for name in STORE_NAMES
    }
    results = providers.Selector(config.stores.results, **{results_name: results_tech})
    return _wire(container, config, selectors, results)


def container_over(
    backend: DocumentBackend,
    results: ResultsStore | None = None,
    *,
    active_statuses: tuple[str, ...] = ("active",),
    inline_result_limit: int = 256 * 1024,
) -> DQContainer:
    """A container whose stores all use ``backend`` and ``results`` as given (not owned).

    ``results=None``: no results store — results above ``inline_result_limit``
    bytes are refused by ``runs.finish``.
    """
    instrument_if_configured()  # OpenTelemetry set up by the application: record (telemetry.md)
    config = providers.Configuration(strict=True)
    config.from_dict(
        {
            "contracts": {"active_statuses": list(active_statuses)},
            "results": {"inline_limit_bytes": inline_result_limit},
        }
    )
    given = providers.Object(backend)
    return _wire(
        DQContainer(), config, dict.fromkeys(STORE_NAMES, given), providers.Object(results)
    )
