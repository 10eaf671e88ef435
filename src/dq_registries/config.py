"""Configuration: which backend each store uses, and how to reach it.

One ``DQSettings`` model, loaded by :func:`load_config` from (lowest to highest
precedence) built-in defaults, a YAML file, ``DQ_…`` environment variables (nested
with ``__``: ``DQ_POSTGRES__URL``, ``DQ_STORES__RESULTS=azure_blob``) and explicit
overrides. Example::

    default_backend: filesystem          # memory | filesystem | postgres | sqlite | azure_blob
    stores: {contracts: postgres, results: azure_blob}   # per-store overrides
    filesystem: {root: /var/lib/dq}
    postgres: {url: "postgresql+psycopg://dq:***@db/dq", pool_size: 10}
    azure_blob: {container: dq, account_url: "https://acct.blob.core.windows.net"}
    contracts: {active_statuses: [active, production]}
    results: {inline_limit_bytes: 262144}

After validation every ``stores.<name>`` is filled (the default backend applies
where no override is given) and contradictions are rejected with a
``MisconfiguredError`` naming each bad key. Secrets are ``SecretStr``: ``repr`` and
error messages never show them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dq_metadata.errors import DQError, MisconfiguredError, Problem, ValidationError
from dq_metadata.scope import validate_id
from dq_registries.defaults import default_root
from dq_registries.yaml12 import load_yaml

__all__ = [
    "STORE_NAMES",
    "AzureBlobSettings",
    "BackendName",
    "ContractsSettings",
    "DQSettings",
    "FilesystemSettings",
    "PostgresSettings",
    "ResultsBackendName",
    "ResultsSettings",
    "SqliteSettings",
    "StoresSettings",
    "load_config",
    "settings_from_mapping",
]

BackendName = Literal["memory", "filesystem", "postgres", "sqlite", "azure_blob"]
ResultsBackendName = Literal["memory", "filesystem", "azure_blob"]

#: The document stores, in the order the container builds them (``results`` is separate).
STORE_NAMES = ("contracts", "job_definitions", "action_profiles", "job_runs", "reports")

# Where run results go when only a document backend is chosen: SQL keeps no blobs.
_RESULTS_FOR: dict[str, ResultsBackendName] = {
    "memory": "memory",
    "filesystem": "filesystem",
    "postgres": "filesystem",
    "sqlite": "filesystem",
    "azure_blob": "azure_blob",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilesystemSettings(_Section):
    """``filesystem:`` — root directory (default ``$DQ_HOME`` or ``./.dq``)."""

    root: Path = Field(default_factory=default_root)


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
    """``stores:`` — per-store backend; ``None`` means "use ``default_backend``"."""

    contracts: BackendName | None = None
    job_definitions: BackendName | None = None
    action_profiles: BackendName | None = None
    job_runs: BackendName | None = None
    reports: BackendName | None = None
    results: ResultsBackendName | None = None


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
    default_backend: BackendName = "filesystem"
    stores: StoresSettings = StoresSettings()
    filesystem: FilesystemSettings = Field(default_factory=FilesystemSettings)
    postgres: PostgresSettings = PostgresSettings()
    sqlite: SqliteSettings = SqliteSettings()
    azure_blob: AzureBlobSettings = AzureBlobSettings()
    contracts: ContractsSettings = ContractsSettings()
    results: ResultsSettings = ResultsSettings()

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
        default = self.default_backend
        filled = {name: getattr(self.stores, name) or default for name in STORE_NAMES}
        filled["results"] = self.stores.results or _RESULTS_FOR[default]
        object.__setattr__(self, "stores", StoresSettings(**filled))
        problems = _check(self)
        if problems:
            raise MisconfiguredError(
                "invalid configuration: " + "; ".join(str(p) for p in problems)
            )
        return self

    def backends_in_use(self) -> set[str]:
        """Every backend some store (results included) is configured to use."""
        return {getattr(self.stores, name) for name in (*STORE_NAMES, "results")}

    def sql_url(self) -> str:
        """The URL of the configured SQL backend (postgres first, then sqlite).

        Raises:
            MisconfiguredError: neither a postgres nor a sqlite URL is configured.
        """
        in_use = self.backends_in_use()
        postgres = self.postgres.url.get_secret_value() if self.postgres.url else None
        for name, url in (("postgres", postgres), ("sqlite", self.sqlite.url)):
            if name in in_use and url:
                return url
        for url in (postgres, self.sqlite.url):
            if url:
                return url
        raise MisconfiguredError(
            "no SQL database configured: set postgres.url (DQ_POSTGRES__URL) "
            "or sqlite.url (DQ_SQLITE__URL)"
        )

    def container_config(self) -> dict[str, Any]:
        """Plain data for ``DQContainer.config``, with secrets revealed (never print it)."""
        data = self.model_dump(mode="python")
        data["postgres"]["url"] = (
            self.postgres.url.get_secret_value() if self.postgres.url else None
        )
        conn = self.azure_blob.connection_string
        data["azure_blob"]["connection_string"] = conn.get_secret_value() if conn else None
        data["filesystem"]["root"] = str(self.filesystem.root)
        data["contracts"]["active_statuses"] = list(self.contracts.active_statuses)
        return data


def _check(settings: DQSettings) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("tenant", "environment"):
        try:
            validate_id(getattr(settings, key), key)
        except DQError as exc:
            problems.append(Problem(key, str(exc)))
    users: dict[str, list[str]] = {}
    for name in (*STORE_NAMES, "results"):
        users.setdefault(getattr(settings.stores, name), []).append(f"stores.{name}")

    def why(backend: str) -> str:
        return (
            "required because "
            + ", ".join(users[backend])
            + f" use{'s' if len(users[backend]) == 1 else ''} {backend}"
        )

    if "postgres" in users:
        url = settings.postgres.url
        if url is None or not url.get_secret_value().strip():
            problems.append(Problem("postgres.url", why("postgres")))
        elif not url.get_secret_value().startswith("postgresql"):
            problems.append(
                Problem("postgres.url", "must be a postgresql:// or postgresql+psycopg:// URL")
            )
    if "sqlite" in users:
        if not settings.sqlite.url:
            problems.append(Problem("sqlite.url", why("sqlite")))
        elif not settings.sqlite.url.startswith("sqlite"):
            problems.append(Problem("sqlite.url", "must be a sqlite:/// URL"))
    if "azure_blob" in users:
        azure = settings.azure_blob
        if not azure.container:
            problems.append(Problem("azure_blob.container", why("azure_blob")))
        has_conn = azure.connection_string is not None
        if has_conn == (azure.account_url is not None):
            problems.append(
                Problem(
                    "azure_blob",
                    "set exactly one of connection_string or account_url"
                    + (" (both are set)" if has_conn else f" ({why('azure_blob')})"),
                )
            )
    return problems


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MisconfiguredError(f"config file not found: {path}") from None
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


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> DQSettings:
    """Load and validate the configuration.

    Precedence, highest first: ``overrides`` > ``DQ_…`` env vars > the YAML file at
    ``path`` > built-in defaults. Nested mappings merge key by key.

    Raises:
        MisconfiguredError: unreadable file, invalid YAML, unknown or bad keys, or
            contradictions (each problem named by its dotted key).
    """
    file_data = _read_file(Path(path)) if path is not None else {}
    try:
        env_data = EnvSettingsSource(DQSettings)()
    except ValueError as exc:  # a DQ_ variable holding malformed JSON
        raise MisconfiguredError(f"invalid configuration in the environment: {exc}") from None
    return settings_from_mapping(_merge(_merge(file_data, env_data), overrides or {}))


def settings_from_mapping(data: Mapping[str, Any]) -> DQSettings:
    """Validate a complete configuration given as a dict (no file, no environment).

    Raises:
        MisconfiguredError: unknown or bad keys, or contradictions, each named.
    """
    if not isinstance(data, Mapping):
        raise MisconfiguredError(f"configuration must be a mapping, got {type(data).__name__}")
    try:
        return DQSettings(**{str(k): v for k, v in data.items()})
    except pydantic.ValidationError as exc:
        problems = [_problem_of(e) for e in exc.errors()]
        raise MisconfiguredError(
            "invalid configuration: " + "; ".join(str(p) for p in problems)
        ) from None
