"""Configuration: which backend each store uses, and how to reach it.

One ``DQSettings`` model, loaded by :func:`load_config` from (lowest to highest
precedence) built-in defaults, a YAML file, ``DQ_…`` environment variables (nested
with ``__``: ``DQ_POSTGRES__URL``, ``DQ_STORES__RESULTS=azure_blob``) and explicit
overrides. Example::

    default_backend: filesystem          # memory | filesystem | postgres | sqlite | azure_blob
    stores: {job_runs: postgres, reports: postgres}       # per-store overrides
    filesystem: {root: /var/lib/dq}
    postgres: {url: "postgresql+psycopg://dq:***@db/dq", pool_size: 10}
    azure_blob: {container: dq-data, account_url: "https://acct.blob.core.windows.net"}
    plugins: {mongo: {url: "mongodb://db"}}   # sections of third-party backends
    contracts: {active_statuses: [active, production]}
    results: {inline_limit_bytes: 262144}

Backend names are those of :class:`~dq_registries.wiring.plugins.BackendRegistry`
(built-ins plus the ``dq.backends`` entry points). After validation every
``stores.<name>`` is filled (``default_backend`` applies where no override is
given; results live with the runs that reference them — ``stores.job_runs``' backend)
and the configuration fails closed
(:mod:`dq_registries.wiring.config_checks`): contradictions, settings of a backend no
store uses, unknown ``DQ_…`` variables and split document groups are each a
``MisconfiguredError`` naming the key. Secrets are ``SecretStr``: ``repr`` and
error messages never show them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dq_metadata.errors import MisconfiguredError, Problem, ValidationError
from dq_registries.wiring.config_checks import check_settings, results_default
from dq_registries.wiring.config_env import (
    check_environment,
    malformed_env_message,
    redact_setting,
    redact_url,
    sources_of,
)
from dq_registries.wiring.defaults import default_root
from dq_registries.wiring.plugins import BackendRegistry
from dq_registries.yaml12 import load_yaml
from dq_stores._redact import redact

__all__ = [
    "DOCUMENT_GROUPS",
    "STORE_NAMES",
    "AzureBlobSettings",
    "ContractsSettings",
    "DQSettings",
    "FilesystemSettings",
    "LoadedConfig",
    "PostgresSettings",
    "ResultsSettings",
    "SqliteSettings",
    "StoresSettings",
    "load_config",
    "load_config_with_sources",
    "settings_from_mapping",
]

#: The document stores, in the order the container builds them (``results`` is separate).
STORE_NAMES = ("contracts", "job_definitions", "action_profiles", "job_runs", "reports")

# The registry names are checked against, for the validation running in this context
# (pydantic's documented way to give __init__-time validators a context).
_REGISTRY: ContextVar[BackendRegistry | None] = ContextVar("dq_backend_registry", default=None)

#: Stores that must share one backend (documents of a group are committed together).
DOCUMENT_GROUPS = (("contracts", "job_definitions", "action_profiles"), ("job_runs", "reports"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # a URL setting may carry a password or a SAS (``account_url=…?sv=…&sig=…``,
        # ``sqlite.url=…?password=…``): str/repr show where, never how to log in
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if isinstance(value, str) else value


class FilesystemSettings(_Section):
    """``filesystem:`` — root directory (default ``$DQ_HOME`` or ``./.dq``) and durability.

    ``durability: full`` (default) fsyncs every write; ``process`` (development, CI)
    skips fsyncs — atomic against process crashes, not against power loss.
    """

    root: Path = Field(default_factory=default_root)
    durability: Literal["full", "process"] = "full"

    @pydantic.field_validator("root", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        # Path("") is ".": a blank root would write into whatever directory the
        # process runs in. Unset the key for the default instead.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a directory: unset it for the default ($DQ_HOME or ./.dq)")
        if isinstance(value, (str, Path)):
            return Path(value).expanduser()  # "~/dq" is the home directory's dq, not ./~/dq
        return value


class PostgresSettings(_Section):
    """``postgres:`` — SQLAlchemy URL (``postgresql+psycopg://…``) and pool settings."""

    url: SecretStr | None = None
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout: float = Field(default=30.0, gt=0)
    pool_pre_ping: bool = True


class SqliteSettings(_Section):
    """``sqlite:`` — SQLAlchemy URL, e.g. ``sqlite:///./.dq/dq.sqlite3``."""

    url: str | None = None


class AzureBlobSettings(_Section):
    """``azure_blob:`` — container plus either a connection string or an account URL.

    With ``account_url`` the credential is ``DefaultAzureCredential`` (azure-identity).
    """

    container: str | None = None
    connection_string: SecretStr | None = None
    account_url: str | None = None
    create_container: bool = False
    prefix: str = ""


class StoresSettings(_Section):
    """``stores:`` — per-store backend name; ``None`` means "use ``default_backend``"."""

    contracts: str | None = None
    job_definitions: str | None = None
    action_profiles: str | None = None
    job_runs: str | None = None
    reports: str | None = None
    results: str | None = None


class ContractsSettings(_Section):
    """``contracts:`` — which ODCS statuses count as active for ``get_latest_for_dataset``."""

    active_statuses: tuple[str, ...] = Field(default=("active",), min_length=1)


class ResultsSettings(_Section):
    """``results:`` — results above this size go to the results store, not the run."""

    inline_limit_bytes: int = Field(default=256 * 1024, ge=0)


class DQSettings(BaseSettings):
    """The whole configuration.

    Build it with :func:`load_config` (file, environment, overrides) or
    :func:`settings_from_mapping` (a dict alone); the model itself reads nothing.
    ``backends`` (the registry the names were checked against) is kept for the
    container.
    """

    model_config = SettingsConfigDict(
        env_prefix="DQ_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    tenant: str = "default"
    environment: str = "dev"
    default_backend: str = "filesystem"
    stores: StoresSettings = StoresSettings()
    filesystem: FilesystemSettings = Field(default_factory=FilesystemSettings)
    postgres: PostgresSettings = PostgresSettings()
    sqlite: SqliteSettings = SqliteSettings()
    azure_blob: AzureBlobSettings = AzureBlobSettings()
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    contracts: ContractsSettings = ContractsSettings()
    results: ResultsSettings = ResultsSettings()
    _backends: BackendRegistry | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # plug-in sections are free-form: their secrets are masked as `dq config show` does
        for name, value in super().__repr_args__():
            yield name, redact_setting(name, value) if name == "plugins" else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_config() layers file < env < overrides itself; the model alone only
        # validates what it is given, so a dict config is never mixed with DQ_ vars.
        return (init_settings,)

    @model_validator(mode="after")
    def _fill_and_check(self) -> Self:
        backends = _REGISTRY.get() or BackendRegistry.discover()
        self._backends = backends
        default = self.default_backend
        filled = {name: getattr(self.stores, name) or default for name in STORE_NAMES}
        runs = filled["job_runs"]
        filled["results"] = self.stores.results or results_default(runs, backends)
        object.__setattr__(self, "stores", StoresSettings(**filled))
        problems = check_settings(self, backends)
        if problems:
            raise MisconfiguredError(
                "invalid configuration: " + "; ".join(str(p) for p in problems)
            )
        return self

    @property
    def backends(self) -> BackendRegistry:
        """The backend registry this configuration was validated against."""
        return self._backends or BackendRegistry.discover()

    def backends_in_use(self) -> set[str]:
        """Every backend some store (results included) is configured to use."""
        return {getattr(self.stores, name) for name in (*STORE_NAMES, "results")}

    def sql_url(self) -> str:
        """The URL of the SQL backend the stores use (postgres first, then sqlite).

        Raises:
            MisconfiguredError: no store uses postgres or sqlite.
        """
        in_use = self.backends_in_use()
        if "postgres" in in_use and self.postgres.url is not None:
            return self.postgres.url.get_secret_value()
        if "sqlite" in in_use and self.sqlite.url:
            return self.sqlite.url
        raise MisconfiguredError(
            "no store uses a SQL database: set default_backend (DQ_DEFAULT_BACKEND) to "
            "postgres or sqlite, with postgres.url or sqlite.url"
        )

    def section(self, backend: str) -> dict[str, Any]:
        """Plain settings of ``backend`` (secrets revealed: never print them).

        A built-in's section is its top-level key; a third-party backend's is
        ``plugins.<name>``, validated by its plug-in's settings model when it has one.
        """
        registry = self.backends
        if not registry.is_builtin(backend):
            raw = dict(self.plugins.get(backend, {}))
            model = registry.get(backend).settings
            return raw if model is None else model.model_validate(raw).model_dump()
        if backend == "memory":
            return {}
        data: dict[str, Any] = {}
        section = getattr(self, backend)
        for key in type(section).model_fields:
            value = getattr(section, key)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Path):
                value = str(value)
            data[key] = value
        return data

    def container_config(self) -> dict[str, Any]:
        """Plain data for the container's ``config`` provider, secrets revealed (never print it).

        ``backends.<name>`` holds the settings section of each backend in use.
        """
        return {
            "tenant": self.tenant,
            "environment": self.environment,
            "default_backend": self.default_backend,
            "stores": self.stores.model_dump(),
            "backends": {name: self.section(name) for name in sorted(self.backends_in_use())},
            "contracts": {"active_statuses": list(self.contracts.active_statuses)},
            "results": {"inline_limit_bytes": self.results.inline_limit_bytes},
        }


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Settings plus where each value came from (for ``dq config show``)."""

    settings: DQSettings
    #: dotted key → "file <path>", "environment DQ_…", "override" or "default".
    sources: dict[str, str]


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MisconfiguredError(f"config file not found: {redact(str(path))}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MisconfiguredError(
            f"cannot read config file {path}: {exc.__class__.__name__}"
        ) from None
    try:
        data = load_yaml(text, source=f"config file {path}")
    except ValidationError as exc:
        where = f" at {exc.problems[0].loc}" if exc.problems and exc.problems[0].loc else ""
        raise MisconfiguredError(f"config file {path} is not valid YAML{where}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise MisconfiguredError(f"config file {path}: the top level must be a mapping")
    return dict(data)


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _problem_of(error: Mapping[str, Any]) -> Problem:
    loc = ".".join(str(part) for part in error["loc"])
    return Problem(loc, error["msg"])


@contextmanager
def _registry(backends: BackendRegistry) -> Iterator[None]:
    token = _REGISTRY.set(backends)
    try:
        yield
    finally:
        _REGISTRY.reset(token)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    backends: BackendRegistry | None = None,
) -> DQSettings:
    """Load and validate the configuration.

    Precedence, highest first: ``overrides`` > ``DQ_…`` env vars > the YAML file at
    ``path`` > built-in defaults. Nested mappings merge key by key. ``backends``:
    the registry backend names are checked against (default: built-ins plus
    installed ``dq.backends`` entry points).

    Raises:
        MisconfiguredError: unreadable file, invalid YAML, unknown or bad keys, an
            unknown ``DQ_…`` environment variable, or contradictions (each problem
            named by its dotted key).
    """
    return load_config_with_sources(path, overrides, backends=backends).settings


def load_config_with_sources(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    backends: BackendRegistry | None = None,
) -> LoadedConfig:
    """:func:`load_config`, also saying where each value came from.

    Raises:
        MisconfiguredError: as :func:`load_config`.
    """
    check_environment(os.environ, DQSettings)
    file_data = _read_file(Path(path)) if path is not None else {}
    try:
        env_data = EnvSettingsSource(DQSettings)()
    except ValueError as exc:  # a DQ_ variable holding malformed JSON
        raise MisconfiguredError(malformed_env_message(str(exc), os.environ)) from None
    settings = settings_from_mapping(
        _merge(_merge(file_data, env_data), overrides or {}), backends=backends
    )
    layers = (
        ("override", overrides or {}),
        ("environment", env_data),
        (f"file {path}", file_data),
    )
    return LoadedConfig(settings, sources_of(settings, layers, os.environ))


def settings_from_mapping(
    data: Mapping[str, Any], *, backends: BackendRegistry | None = None
) -> DQSettings:
    """Validate a complete configuration given as a dict (no file, no environment).

    Raises:
        MisconfiguredError: unknown or bad keys, or contradictions, each named.
    """
    if not isinstance(data, Mapping):
        raise MisconfiguredError(f"configuration must be a mapping, got {type(data).__name__}")
    try:
        with _registry(backends or BackendRegistry.discover()):
            return DQSettings(**{str(k): v for k, v in data.items()})
    except pydantic.ValidationError as exc:
        problems = [_problem_of(e) for e in exc.errors()]
        raise MisconfiguredError(
            "invalid configuration: " + "; ".join(str(p) for p in problems)
        ) from None
