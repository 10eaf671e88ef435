"""``dq doctor``: check a deployment's configured stores, one result per check.

For each technology the configuration uses (and the stores using it): it is
reachable; SQL: the schema is at the migration head, the connecting role has the
grants of ``docs/operations.md`` and (PostgreSQL) row-level security is in force
for it — a superuser or ``BYPASSRLS`` role is a warning; Azure: the container
exists; filesystem: the root exists (reported, never created) and is writable and
supports renames, hard links and ``flock``; every backend: a probe document is
written, read back, deleted and its history pruned in the scratch scope
``dq-doctor/probe`` (a reserved tenant: ``iter_scopes`` leaves it out); the
results store round-trips a small object. The Azure container name is checked
with the configuration (``dq_stores.azure_names``), as the adapters check it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dq_metadata.errors import DQError
from dq_registries.wiring.config import STORE_NAMES, DQSettings
from dq_registries.wiring.container import ConfigSource, _settings, build_container
from dq_registries.wiring.plugins import BUILTIN_BACKENDS, BackendRegistry
from dq_stores.health import Check, guarded, probe_backend, probe_results

__all__ = ["Check", "DoctorReport", "diagnose"]

_SQL = ("postgres", "sqlite")


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check, in order. ``ok``: no check is an error (warnings allowed)."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != "error" for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def diagnose(
    config: ConfigSource = None, *, backends: BackendRegistry | None = None
) -> DoctorReport:
    """Run every check for the configuration ``config`` (as :func:`build_container`).

    Never raises for a failing store: each failure is an error check with its fix.
    Probes write only in the scratch scope ``dq-doctor/probe`` and clean up after.
    """
    try:
        settings = _settings(config, backends)
    except DQError as exc:
        fix = "fix the configuration; `dq config show` prints what was read"
        return DoctorReport([Check("config", "config", "error", str(exc), fix)])
    checks = [Check("config", "config", "ok", "configuration is valid")]
    users = _users(settings)
    container = build_container(settings)
    try:
        for tech, stores in users.items():
            label = f"{tech} ({', '.join(stores)})"
            checks.extend(_technology(settings, container, tech, label, stores))
    finally:
        container.shutdown_resources()
    return DoctorReport(checks)


def _users(settings: DQSettings) -> dict[str, list[str]]:
    """technology → the stores (results included) configured to use it."""
    stores = settings.stores.model_dump()
    users: dict[str, list[str]] = {}
    for name in (*STORE_NAMES, "results"):
        users.setdefault(stores[name], []).append(name)
    return users


def _technology(
    settings: DQSettings, container: Any, tech: str, label: str, stores: list[str]
) -> list[Check]:
    section = settings.section(tech)
    checks = _before_opening(tech, section, label)
    if any(c.status == "error" for c in checks):
        return checks  # no point probing what cannot be reached or used
    fix = _probe_fix(tech)
    backend = None
    if any(s != "results" for s in stores):
        # Opened as the application opens it (an empty SQL database is migrated
        # when auto_create is on), so the checks below see what it would see.
        try:
            backend = getattr(container, f"{tech}_backend")()
        except (DQError, OSError) as exc:
            checks.append(Check("open", label, "error", f"{type(exc).__name__}: {exc}", fix))
    if tech in _SQL:
        checks.extend(_sql(tech, section, label))
    if tech == "memory":
        checks.extend(_memory_warning(label))
    if backend is not None:
        checks.extend(guarded("read-write", label, fix, lambda: probe_backend(backend, label)))
    if "results" in stores:
        results = container.results_store
        checks.extend(
            guarded("results-round-trip", label, fix, lambda: probe_results(results(), label))
        )
    return checks


def _memory_warning(label: str) -> list[Check]:
    return [
        Check(
            "durability", label, "warning", "memory keeps nothing beyond the process",
            "configure filesystem, postgres, sqlite or azure_blob for real use",
        )
    ]  # fmt: skip


def _before_opening(tech: str, section: dict[str, Any], label: str) -> list[Check]:
    health = BUILTIN_BACKENDS[tech].health if tech in BUILTIN_BACKENDS else None
    if tech == "filesystem" and health is not None:
        return health(section, label)
    if tech == "azure_blob" and health is not None:
        fix = "check azure_blob.connection_string / account_url and the network path to it"
        return guarded("reachable", label, fix, lambda: health(section, label))
    return []


def _sql(tech: str, section: dict[str, Any], label: str) -> list[Check]:
    health = BUILTIN_BACKENDS[tech].health
    assert health is not None
    fix = f"check {tech}.url (host, port, database, user, password) and that the server is up"
    found = guarded("reachable", label, fix, lambda: health(section, label))
    if found[0].name == "reachable":
        return found
    return [Check("reachable", label, "ok", "connected"), *found]


def _probe_fix(tech: str) -> str:
    if tech == "postgres":
        return "grant the application role the privileges of docs/operations.md (see `grants`)"
    if tech == "azure_blob":
        return "give the credential write access to the container (Storage Blob Data Contributor)"
    return f"check the {tech} settings and permissions (docs/operations.md)"
