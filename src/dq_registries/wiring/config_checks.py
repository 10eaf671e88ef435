"""The rules a configuration must satisfy; each broken rule is a ``Problem`` naming its key.

Fails closed where a silent fallback would surprise: a backend's settings given
while no store uses it, a backend name nobody registered, documents that must
commit together split over two backends, results sent to a directory nobody
chose, or a third-party plug-in's section that does not validate.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pydantic

from dq_metadata.errors import DQError, Problem
from dq_metadata.scope import validate_id
from dq_registries.wiring.defaults import DQ_HOME_ENV
from dq_registries.wiring.plugins import BackendRegistry
from dq_stores.azure_names import container_name_problem

if TYPE_CHECKING:
    from dq_registries.wiring.config import DQSettings

__all__ = ["check_settings", "results_default"]

_BUILTIN_SECTIONS = ("filesystem", "postgres", "sqlite", "azure_blob")


def results_default(runs_backend: str, backends: BackendRegistry) -> str | None:
    """Results live with the runs that reference them, when that backend keeps result objects."""
    if runs_backend not in backends:
        return runs_backend  # reported as an unknown name
    try:
        has_results = backends.get(runs_backend).results is not None
    except DQError:
        return runs_backend  # reported when the plug-in is opened
    return runs_backend if has_results else None


def check_settings(settings: DQSettings, backends: BackendRegistry) -> list[Problem]:
    """Every problem of ``settings`` (stores already filled), in key order."""
    from dq_registries.wiring.config import DOCUMENT_GROUPS, STORE_NAMES

    problems = _ids(settings)
    keys: dict[str, str | None] = {"default_backend": settings.default_backend}
    keys |= {f"stores.{name}": getattr(settings.stores, name) for name in STORE_NAMES}
    keys["stores.results"] = settings.stores.results
    for key, name in keys.items():
        unknown_default = settings.default_backend not in backends
        if unknown_default and key != "default_backend" and name == settings.default_backend:
            continue  # filled from default_backend: reported once, there
        if name is None:
            problems.append(
                Problem(
                    key,
                    f"{_runs_key(settings)} {settings.stores.job_runs!r} keeps no result "
                    "objects: name a backend that does (e.g. stores.results: azure_blob)",
                )
            )
        elif name not in backends:
            problems.append(Problem(key, _unknown(name, backends)))
        elif key == "stores.results" and backends.get(name).results is None:
            problems.append(
                Problem(key, f"backend {name!r} keeps no result objects: name one that does")
            )
    problems += _groups(settings, DOCUMENT_GROUPS)
    users = _users(settings, (*STORE_NAMES, "results"))
    problems += _required(settings, users)
    problems += _unused(settings, users)
    problems += _results_root(settings, users)
    problems += _volatile_results(settings)
    problems += _plugin_sections(settings, backends, users)
    return problems


def _runs_key(settings: DQSettings) -> str:
    # the key that chose the runs' backend, which results follow by default
    same = settings.stores.job_runs == settings.default_backend
    return "default_backend" if same else "stores.job_runs"


def _ids(settings: DQSettings) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("tenant", "environment"):
        try:
            validate_id(getattr(settings, key), key)
        except DQError as exc:
            problems.append(Problem(key, str(exc)))
    return problems


def _unknown(name: str, backends: BackendRegistry) -> str:
    close = difflib.get_close_matches(name, backends.names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown backend {name!r}{hint}: use one of {list(backends.names())} "
        "or install a plug-in of the 'dq.backends' entry-point group"
    )


def _users(settings: DQSettings, names: tuple[str, ...]) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for name in names:
        backend = getattr(settings.stores, name)
        if backend is not None:
            users.setdefault(backend, []).append(f"stores.{name}")
    return users


def _groups(settings: DQSettings, groups: tuple[tuple[str, ...], ...]) -> list[Problem]:
    problems = []
    for group in groups:
        chosen = {name: getattr(settings.stores, name) for name in group}
        if len(set(chosen.values())) > 1:
            split = ", ".join(f"stores.{name}={backend}" for name, backend in chosen.items())
            problems.append(
                Problem(
                    "stores." + "/".join(group),
                    f"must use one backend ({split}): their documents are committed "
                    "together; give them the same backend",
                )
            )
    return problems


def _why(users: dict[str, list[str]], backend: str) -> str:
    who = users[backend]
    return f"required because {', '.join(who)} use{'s' if len(who) == 1 else ''} {backend}"


def _required(settings: DQSettings, users: dict[str, list[str]]) -> list[Problem]:
    problems: list[Problem] = []
    if "postgres" in users:
        url = settings.postgres.url
        if url is None or not url.get_secret_value().strip():
            problems.append(Problem("postgres.url", _why(users, "postgres")))
        elif not url.get_secret_value().startswith("postgresql"):
            problems.append(
                Problem("postgres.url", "must be a postgresql:// or postgresql+psycopg:// URL")
            )
    if "sqlite" in users:
        if not settings.sqlite.url:
            problems.append(Problem("sqlite.url", _why(users, "sqlite")))
        elif not settings.sqlite.url.startswith("sqlite"):
            problems.append(Problem("sqlite.url", "must be a sqlite:/// URL"))
        elif (database := _sqlite_file(settings.sqlite.url)) and Path(database).is_dir():
            problems.append(
                Problem(
                    "sqlite.url",
                    f"names {database!r}, which is a directory: name a database file in it, "
                    f"e.g. sqlite:///{Path(database) / 'dq.sqlite3'}",
                )
            )
    if "filesystem" in users:
        problems += _filesystem_root(settings)
    if "azure_blob" in users:
        azure = settings.azure_blob
        if not azure.container:
            problems.append(Problem("azure_blob.container", _why(users, "azure_blob")))
        elif (why := container_name_problem(azure.container)) is not None:
            # the adapters apply the same rule: doctor cannot pass a name they refuse
            problems.append(Problem("azure_blob.container", why))
        has_conn = azure.connection_string is not None
        if has_conn == (azure.account_url is not None):
            problems.append(
                Problem(
                    "azure_blob",
                    "set exactly one of connection_string or account_url"
                    + (" (both are set)" if has_conn else f" ({_why(users, 'azure_blob')})"),
                )
            )
    return problems


def _unused(settings: DQSettings, users: dict[str, list[str]]) -> list[Problem]:
    problems = []
    sections = {name: getattr(settings, name).model_fields_set for name in _BUILTIN_SECTIONS}
    sections |= {f"plugins.{name}": set(section) for name, section in settings.plugins.items()}
    for section, fields in sections.items():
        backend = section.removeprefix("plugins.")
        if fields and backend not in users:
            key = f"{section}.{sorted(fields)[0]}"
            problems.append(
                Problem(
                    key,
                    f"is set but no store uses {backend}: select it with "
                    f"default_backend: {backend} (DQ_DEFAULT_BACKEND) or "
                    f"stores.<name>: {backend}, or remove the setting",
                )
            )
    return problems


def _sqlite_file(url: str) -> str | None:
    """The database path of a ``sqlite[+driver]:///PATH[?query]`` URL (``None``: in memory)."""
    _, sep, rest = url.partition(":///")
    database = rest.split("?", 1)[0]
    return database if sep and database and database != ":memory:" else None


def _filesystem_root(settings: DQSettings) -> list[Problem]:
    root = settings.filesystem.root
    if not root.exists() or root.is_dir():
        return []
    chosen = "root" in settings.filesystem.model_fields_set
    source = "" if chosen else f" (from ${DQ_HOME_ENV})"
    fix = "filesystem.root" if chosen else DQ_HOME_ENV
    return [
        Problem(
            "filesystem.root",
            f"{str(root)!r}{source} exists and is not a directory: set {fix} to a directory "
            "(it is created if missing)",
        )
    ]


def _results_root(settings: DQSettings, users: dict[str, list[str]]) -> list[Problem]:
    # Documents elsewhere and results on the filesystem: only with a root someone chose,
    # never the ./.dq of whatever directory the process happens to run in.
    if users.get("filesystem") != ["stores.results"]:
        return []
    if "root" in settings.filesystem.model_fields_set or os.environ.get(DQ_HOME_ENV, "").strip():
        return []
    return [
        Problem(
            "filesystem.root",
            "required because stores.results uses filesystem while the documents are "
            f"in {settings.stores.job_runs}: set the directory explicitly",
        )
    ]


def _volatile_results(settings: DQSettings) -> list[Problem]:
    # Runs that outlive the process must not reference results kept in its memory.
    runs = settings.stores.job_runs
    if settings.stores.results != "memory" or runs == "memory":
        return []
    return [
        Problem(
            "stores.results",
            f"memory keeps results only for this process, while stores.job_runs={runs} keeps "
            f"the runs that reference them: use {runs} (remove stores.results)",
        )
    ]


def _plugin_sections(
    settings: DQSettings, backends: BackendRegistry, users: dict[str, list[str]]
) -> list[Problem]:
    problems: list[Problem] = []
    for name in sorted(settings.plugins):
        if name not in backends or backends.is_builtin(name):
            problems.append(
                Problem(
                    f"plugins.{name}",
                    f"no third-party backend is named {name!r} (built-in backends have their "
                    "own top-level section)",
                )
            )
    for name in sorted(users):
        if name not in backends or backends.is_builtin(name):
            continue
        model = backends.get(name).settings
        if model is None:
            continue
        try:
            model.model_validate(settings.plugins.get(name, {}))
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(part) for part in error["loc"])
                problems.append(Problem(f"plugins.{name}.{loc}", error["msg"]))
    return problems
