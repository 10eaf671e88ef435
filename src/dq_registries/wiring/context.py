"""``DQContext``: one tenant-environment's registries, the object services inject.

It is the per-scope view the container (:mod:`dq_registries.wiring.container`) hands out.
Ways to get one, each a thin call into the container::

    DQContext.create("acme", "prod")                       # filesystem default
    DQContext.create("acme", "prod", backend=MemoryBackend(), results=MemoryResultsStore())
    DQContext.from_config("acme", "prod", "dq.yaml")       # backends chosen by config
    DQContext.from_container(container, Scope("acme", "prod"))

Use it as a context manager: on exit it shuts down the container it built itself,
and nothing it was handed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_registries.domain.runs import JobRunRegistry
from dq_registries.wiring.config import DQSettings, settings_from_mapping
from dq_registries.wiring.container import DQContainer, build_container, container_over
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore

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
    def from_container(
        cls,
        container: DQContainer,
        scope: Scope,
        *,
        on_close: Sequence[Callable[[], object]] = (),
    ) -> DQContext:
        """The registries ``container`` builds for ``scope`` (the container stays open)."""
        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")
        built = container.registries(scope)
        return cls(
            scope,
            contracts=built.contracts,
            job_definitions=built.job_definitions,
            action_profiles=built.action_profiles,
            job_runs=built.job_runs,
            on_close=on_close,
        )

    @classmethod
    def _owning(cls, container: DQContainer, scope: Scope) -> DQContext:
        try:
            return cls.from_container(container, scope, on_close=[container.shutdown_resources])
        except BaseException:
            container.shutdown_resources()
            raise

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

        ``backend=None``: the configuration default — the filesystem under
        ``$DQ_HOME`` or ``./.dq``, results beside it (``results`` must then be
        ``None``). With a ``backend``, ``results`` is the results store to use;
        ``None`` keeps results inline and refuses those above
        ``inline_result_limit`` bytes. Given objects are not closed by the context.

        Raises:
            InvalidScopeError: bad tenant or environment id (before anything is opened).
            ValueError: ``results`` without ``backend``.
        """
        scope = Scope(tenant, environment)
        if backend is None:
            if results is not None:
                raise ValueError("pass results only together with backend")
            settings = settings_from_mapping(
                {
                    "contracts": {"active_statuses": list(active_statuses)},
                    "results": {"inline_limit_bytes": inline_result_limit},
                }
            )
            return cls._owning(build_container(settings), scope)
        container = container_over(
            backend,
            results,
            active_statuses=tuple(active_statuses),
            inline_result_limit=inline_result_limit,
        )
        return cls._owning(container, scope)

    @classmethod
    def from_config(
        cls,
        tenant: str,
        environment: str,
        config: DQSettings | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    ) -> DQContext:
        """A context whose backends are chosen by configuration (see ``dq_registries.wiring.config``).

        ``config`` is a ``DQSettings``, a dict (the whole configuration), a YAML path,
        or ``None`` (``DQ_…`` environment variables and defaults). The context owns
        the container it builds and shuts it down on :meth:`close`.

        Raises:
            InvalidScopeError: bad tenant or environment id.
            MisconfiguredError: invalid or contradictory configuration.
        """
        scope = Scope(tenant, environment)
        return cls._owning(build_container(config), scope)

    def close(self) -> None:
        """Close what this context created (its container's resources); idempotent."""
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
