"""``DQContext``: one tenant-environment's registries, the object services inject.

Three ways to get one::

    DQContext.create("acme", "prod")                       # filesystem default
    DQContext.create("acme", "prod", backend=MemoryBackend())
    DQContext.from_config("acme", "prod", "dq.yaml")       # backends chosen by config

Use it as a context manager: on exit it closes the backends, results store or
container it created itself, and nothing it was handed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from dq_metadata.scope import Scope
from dq_registries.actions import ActionProfileRegistry
from dq_registries.contracts import ContractRegistry
from dq_registries.jobs import JobDefinitionRegistry
from dq_registries.runs import JobRunRegistry
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore
from dq_stores.typed import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    ReportStore,
)

if TYPE_CHECKING:
    from dq_registries.config import DQSettings

__all__ = ["DQContext"]

DEFAULT_INLINE_RESULT_LIMIT = 256 * 1024


class DQContext:
    """The registries of one ``Scope``: ``contracts``, ``jobs``, ``actions``, ``runs``."""

    def __init__(
        self,
        scope: Scope,
        *,
        contracts: ContractRegistry,
        job_definitions: JobDefinitionRegistry,
        action_profiles: ActionProfileRegistry,
        job_runs: JobRunRegistry,
        on_close: Sequence[Callable[[], object]] = (),
    ) -> None:
        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")
        self.scope = scope
        self.contracts = contracts
        self.jobs = job_definitions
        self.actions = action_profiles
        self.runs = job_runs
        self._on_close = list(on_close)
        self._closed = False

    @classmethod
    def from_stores(
        cls,
        scope: Scope,
        *,
        contracts: ContractStore,
        job_definitions: JobDefinitionStore,
        action_profiles: ActionProfileStore,
        job_runs: JobRunStore,
        reports: ReportStore,
        results: ResultsStore | None,
        active_statuses: Sequence[str] = ("active",),
        inline_result_limit: int = DEFAULT_INLINE_RESULT_LIMIT,
        on_close: Sequence[Callable[[], object]] = (),
    ) -> DQContext:
        """Wire the four registries over typed stores (each may sit on another backend)."""
        return cls(
            scope,
            contracts=ContractRegistry(
                scope, contracts, job_definitions=job_definitions, active_statuses=active_statuses
            ),
            job_definitions=JobDefinitionRegistry(
                scope, job_definitions, contracts=contracts, action_profiles=action_profiles
            ),
            action_profiles=ActionProfileRegistry(
                scope, action_profiles, job_definitions=job_definitions
            ),
            job_runs=JobRunRegistry(
                scope,
                job_runs,
                reports=reports,
                results=results,
                job_definitions=job_definitions,
                inline_result_limit=inline_result_limit,
            ),
            on_close=on_close,
        )

    @classmethod
    def create(
        cls,
        tenant: str,
        environment: str,
        backend: DocumentBackend | None = None,
        results: ResultsStore | None = None,
        *,
        active_statuses: Sequence[str] = ("active",),
        inline_result_limit: int = DEFAULT_INLINE_RESULT_LIMIT,
    ) -> DQContext:
        """All registries over one backend.

        ``backend=None`` uses the filesystem default (``$DQ_HOME`` or ``./.dq``);
        ``results=None`` uses the default results directory beside it when the
        backend is the default, else the results store matching ``backend``
        (in-memory for a ``MemoryBackend``; otherwise results stay inline).

        Raises:
            InvalidScopeError: bad tenant or environment id (before anything is opened).
        """
        from dq_registries.defaults import default_backend, default_results_store
        from dq_stores.memory import MemoryBackend
        from dq_stores.memory_results import MemoryResultsStore

        scope = Scope(tenant, environment)
        owned: list[Callable[[], object]] = []
        if results is None:
            if backend is None:
                results = default_results_store()
                owned.append(results.close)
            elif isinstance(backend, MemoryBackend):
                results = MemoryResultsStore()
        if backend is None:
            backend = default_backend()
            owned.append(backend.close)
        return cls.from_stores(
            scope,
            contracts=ContractStore(backend),
            job_definitions=JobDefinitionStore(backend),
            action_profiles=ActionProfileStore(backend),
            job_runs=JobRunStore(backend),
            reports=ReportStore(backend),
            results=results,
            active_statuses=active_statuses,
            inline_result_limit=inline_result_limit,
            on_close=owned,
        )

    @classmethod
    def from_config(
        cls,
        tenant: str,
        environment: str,
        config: DQSettings | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    ) -> DQContext:
        """A context whose backends are chosen by configuration (see ``dq_registries.config``).

        ``config`` is a ``DQSettings``, a dict of overrides, a YAML path, or ``None``
        (``DQ_…`` environment variables and defaults). The context owns the container
        it builds and shuts it down on :meth:`close`.

        Raises:
            InvalidScopeError: bad tenant or environment id.
            MisconfiguredError: invalid or contradictory configuration.
        """
        from dq_registries.container import build_container

        scope = Scope(tenant, environment)
        container = build_container(config)
        try:
            context: DQContext = container.context(scope=scope)
        except BaseException:
            container.shutdown_resources()
            raise
        context._on_close.append(container.shutdown_resources)
        return context

    def close(self) -> None:
        """Close what this context created (backends, results store, container); idempotent."""
        if self._closed:
            return
        self._closed = True
        for closer in reversed(self._on_close):
            closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DQContext({self.scope})"
