"""Backend plug-ins: one ``BackendPlugin`` per technology, found by name.

The built-in technologies (``memory``, ``filesystem``, ``postgres``, ``sqlite``,
``azure_blob``) are a static table here and are also declared in the entry-point
group ``dq.backends``; a third-party package adds its own with::

    [project.entry-points."dq.backends"]
    mongo = "dq_mongo:PLUGIN"          # a BackendPlugin instance

The configuration then names it like any built-in (``default_backend: mongo``) and
its settings go under ``plugins.mongo`` (``DQ_PLUGINS__MONGO__URL``). A plug-in
is imported only when the configuration uses it. This module and
:mod:`dq_registries.wiring.container` are the only places in ``dq_registries`` that name
adapter modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel

from dq_metadata.errors import MisconfiguredError
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore

__all__ = [
    "BUILTIN_BACKENDS",
    "ENTRY_POINT_GROUP",
    "BackendPlugin",
    "BackendRegistry",
    "sql_schema",
]

ENTRY_POINT_GROUP = "dq.backends"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class BackendPlugin:
    """How to open one technology's adapters from its settings section.

    Attributes:
        backend: called with the section's keys as keyword arguments; returns a
            ``DocumentBackend`` (the container closes it on shutdown).
        results: the same for a ``ResultsStore``; ``None`` when the technology
            keeps no result objects (then ``stores.results`` must name another).
        settings: pydantic model of the section (``plugins.<name>``) for a
            third-party plug-in; ``None`` means "no settings". Built-ins have
            their sections in ``DQSettings``.
        health: ``dq doctor``'s technology-specific checks, called with the
            section and a label before anything is opened; returns
            ``dq_registries.operations.doctor.Check`` items. ``None``: only the generic checks.
    """

    backend: Callable[..., DocumentBackend]
    results: Callable[..., ResultsStore] | None = None
    settings: type[BaseModel] | None = None
    health: Callable[[Mapping[str, Any], str], list[Any]] | None = None


def sql_schema() -> ModuleType:
    """The SQL backends' migration module (``dq db``); needs the postgres or sqlite extra.

    Raises:
        ImportError: SQLAlchemy / Alembic are not installed.
    """
    from dq_stores.sql import schema

    return schema


# -- built-in technologies (adapters imported only when opened) ----------------
def _memory_backend() -> DocumentBackend:
    from dq_stores.memory import MemoryBackend

    return MemoryBackend()


def _memory_results() -> ResultsStore:
    from dq_stores.memory_results import MemoryResultsStore

    return MemoryResultsStore()


def _filesystem_backend(
    root: str, durability: Literal["full", "process"] = "full"
) -> DocumentBackend:
    from dq_stores.filesystem import FilesystemBackend

    return FilesystemBackend(Path(root), durability=durability)


def _filesystem_results(root: str, **_durability: Any) -> ResultsStore:
    from dq_stores.filesystem.results import FilesystemResultsStore

    return FilesystemResultsStore(Path(root))


def _postgres_backend(url: str, **pool: Any) -> DocumentBackend:
    from dq_stores.sql import PostgresBackend

    return PostgresBackend(url, **pool)


def _postgres_results(url: str, *, pool_timeout: float, **_pool: Any) -> ResultsStore:
    from dq_stores.sql import SqlResultsStore

    return SqlResultsStore(url, pool_timeout=pool_timeout)


def _sqlite_backend(url: str) -> DocumentBackend:
    from dq_stores.sql import SqliteBackend

    return SqliteBackend(url)


def _sqlite_results(url: str) -> ResultsStore:
    from dq_stores.sql import SqlResultsStore

    return SqlResultsStore(url)


def _azure_credentials(section: Mapping[str, Any]) -> dict[str, Any]:
    # With an account URL the adapter uses DefaultAzureCredential (azure-identity).
    if section.get("connection_string"):
        return {"connection_string": section["connection_string"]}
    return {"account_url": section["account_url"]}


def _azure_backend(container: str, **section: Any) -> DocumentBackend:
    from dq_stores.azure_blob import AzureBlobBackend

    return AzureBlobBackend(
        container,
        **_azure_credentials(section),
        create_container=bool(section.get("create_container")),
        prefix=section.get("prefix") or "",
    )


def _azure_results(container: str, **section: Any) -> ResultsStore:
    from dq_stores.azure_blob import AzureBlobResultsStore

    return AzureBlobResultsStore(
        container,
        **_azure_credentials(section),
        create_container=bool(section.get("create_container")),
        prefix=section.get("prefix") or "",
    )


def _filesystem_health(section: Mapping[str, Any], label: str) -> list[Any]:
    from dq_stores.filesystem.health import filesystem_checks

    return filesystem_checks(str(section["root"]), label)


def _azure_health(section: Mapping[str, Any], label: str) -> list[Any]:
    from dq_stores.azure_blob.health import azure_checks

    return azure_checks(dict(section), label)


def _sql_health(section: Mapping[str, Any], label: str) -> list[Any]:
    from dq_stores.sql.health import sql_checks

    return sql_checks(str(section.get("url") or ""), label)


MEMORY = BackendPlugin(_memory_backend, _memory_results)
FILESYSTEM = BackendPlugin(_filesystem_backend, _filesystem_results, health=_filesystem_health)
POSTGRES = BackendPlugin(_postgres_backend, _postgres_results, health=_sql_health)
SQLITE = BackendPlugin(_sqlite_backend, _sqlite_results, health=_sql_health)
AZURE_BLOB = BackendPlugin(_azure_backend, _azure_results, health=_azure_health)

#: name → plug-in; each name is also its settings section in ``DQSettings``.
BUILTIN_BACKENDS: Mapping[str, BackendPlugin] = {
    "memory": MEMORY,
    "filesystem": FILESYSTEM,
    "postgres": POSTGRES,
    "sqlite": SQLITE,
    "azure_blob": AZURE_BLOB,
}
_BUILTIN_VALUES = {f"{__name__}:{name.upper()}" for name in BUILTIN_BACKENDS}


class BackendRegistry:
    """The technologies the configuration may name: built-ins plus ``dq.backends``.

    Build it with :meth:`discover`; pass ``entry_points`` to inject plug-ins (tests,
    applications embedding their own adapters) instead of scanning installed packages.
    """

    def __init__(self, plugins: Mapping[str, BackendPlugin | EntryPoint]) -> None:
        self._plugins = dict(plugins)

    @classmethod
    def discover(cls, entry_points_: Iterable[EntryPoint] | None = None) -> BackendRegistry:
        """Built-ins plus the entry points of group ``dq.backends`` (installed ones by default).

        Raises:
            MisconfiguredError: a plug-in name is not ``[a-z][a-z0-9_]*``, or two
                entry points claim one name.
        """
        found = entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_
        plugins: dict[str, BackendPlugin | EntryPoint] = dict(BUILTIN_BACKENDS)
        for point in found:
            if point.value in _BUILTIN_VALUES and point.name in BUILTIN_BACKENDS:
                continue  # our own declaration of a built-in
            if not _NAME.fullmatch(point.name):
                raise MisconfiguredError(
                    f"backend plug-in {point.value!r}: name {point.name!r} must match "
                    "[a-z][a-z0-9_]*"
                )
            if point.name in plugins:
                raise MisconfiguredError(
                    f"two backend plug-ins are named {point.name!r} (one is {point.value!r}): "
                    "uninstall one"
                )
            plugins[point.name] = point
        return cls(plugins)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BackendRegistry):
            return NotImplemented
        return self.names() == other.names()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BackendRegistry({list(self.names())})"

    def names(self) -> tuple[str, ...]:
        """Every name the configuration may use, sorted."""
        return tuple(sorted(self._plugins))

    def is_builtin(self, name: str) -> bool:
        return name in BUILTIN_BACKENDS and self._plugins.get(name) is BUILTIN_BACKENDS[name]

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def get(self, name: str) -> BackendPlugin:
        """The plug-in called ``name``, importing it on first use.

        Raises:
            MisconfiguredError: no such plug-in, or its entry point cannot be
                loaded or does not name a ``BackendPlugin``.
        """
        try:
            plugin = self._plugins[name]
        except KeyError:
            raise MisconfiguredError(
                f"unknown backend {name!r}: use one of {list(self.names())}"
            ) from None
        if isinstance(plugin, BackendPlugin):
            return plugin
        try:
            loaded = plugin.load()
        except Exception as exc:
            raise MisconfiguredError(
                f"backend plug-in {name!r} ({plugin.value}) cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(loaded, BackendPlugin):
            raise MisconfiguredError(
                f"backend plug-in {name!r} ({plugin.value}) is a {type(loaded).__name__}, "
                "not a dq_registries.wiring.plugins.BackendPlugin"
            )
        self._plugins[name] = loaded
        return loaded
