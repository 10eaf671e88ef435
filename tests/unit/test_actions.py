"""ActionProfileRegistry: typed profiles, inline-secret rejection, guarded deletes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_metadata.models import ContractVersion, DataContract, JobDefinition
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry, find_inline_secrets
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

SCOPE = Scope("acme", "dev")


def email(profile_id: str = "mail", **extra: Any) -> dict[str, Any]:
    return {
        "id": profile_id,
        "name": "Mail the data team",
        "action_type": "send_notification",
        "channel": "email",
        "recipients": ["data-team@example.com"],
        **extra,
    }


def custom(params: dict[str, Any], profile_id: str = "hook") -> dict[str, Any]:
    return {
        "id": profile_id,
        "name": "Custom",
        "action_type": "custom",
        "handler": "pkg.mod:fn",
        "params": params,
    }


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def registry(backend: MemoryBackend) -> ActionProfileRegistry:
    return ActionProfileRegistry(
        SCOPE, ActionProfileStore(backend), job_definitions=JobDefinitionStore(backend)
    )


def count(backend: MemoryBackend) -> int:
    return ActionProfileStore(backend).count(SCOPE)


def test_saves_and_reads_each_action_type(registry: ActionProfileRegistry) -> None:
    profiles = [
        email(),
        {
            "id": "teams",
            "name": "Teams",
            "action_type": "send_notification",
            "channel": "teams",
            "url": "https://dq-vault.vault.azure.net/secrets/teams-webhook",
        },
        {"id": "q", "name": "Quarantine", "action_type": "quarantine", "target": "s3://q"},
        {
            "id": "lineage",
            "name": "Lineage",
            "action_type": "emit_lineage",
            "endpoint": "https://marquez.example.com",
            "namespace": "dq",
            "secret": "keyvault://vault/marquez-token",
        },
        {
            "id": "ticket",
            "name": "Ticket",
            "action_type": "open_ticket",
            "system": "jira",
            "project": "DQ",
            "secret": "env://JIRA_TOKEN",
        },
        custom({"retries": 3}),
    ]
    for profile in profiles:
        registry.save(profile)
    assert registry.get("q").action_type == "quarantine"
    assert [v.item.id for v in registry.list().items] == sorted(p["id"] for p in profiles)
    notify = registry.list_by_type("send_notification").items
    assert sorted(v.item.id for v in notify) == ["mail", "teams"]
    assert [v.item.id for v in registry.list(action_type="custom").items] == ["hook"]


@pytest.mark.parametrize(
    ("profile", "path"),
    [
        (email(recipients=[]), "recipients"),
        (email(recipients=["not-an-email"]), "recipients"),
        (
            {"id": "s", "name": "n", "action_type": "send_notification", "channel": "slack"},
            "url",
        ),
        (
            {
                "id": "w",
                "name": "n",
                "action_type": "send_notification",
                "channel": "webhook",
                "url": "http://plain.example.com/hook",
            },
            "url",
        ),
        ({"id": "x", "name": "n", "action_type": "teleport"}, "action_type"),
        ({"id": "q", "name": "n", "action_type": "quarantine", "target": "t", "extra": 1}, "extra"),
    ],
)
def test_rejects_bad_parameters_with_their_path(
    registry: ActionProfileRegistry, backend: MemoryBackend, profile: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as info:
        registry.save(profile)
    assert any(path in p.loc for p in info.value.problems), info.value
    assert count(backend) == 0


@pytest.mark.parametrize(
    ("profile", "path"),
    [
        (custom({"password": "hunter2"}), "params.password"),
        (custom({"auth": {"api_key": "abc"}}), "params.auth.api_key"),
        (
            custom({"servers": [{"name": "a", "accessToken": "xyz"}]}),
            "params.servers[0].accessToken",
        ),
        (custom({"key": 12345}), "params.key"),
        (custom({"sas": "sv=2020&ss=b"}), "params.sas"),
        (custom({"ConnectionString": "Server=db"}), "params.ConnectionString"),
        (
            custom({"target": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy;"}),
            "params.target",
        ),
        (custom({"dsn": "Server=db;User Id=u;Password=p4ss;"}), "params.dsn"),
        (
            custom({"bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"}),
            "params.bearer",
        ),
        (custom({"blob": "q83vAbCdEfGh1234IjKlMnOp5678QrStUvWx9012"}), "params.blob"),
        (
            custom({"url": "https://acct.blob.core.windows.net/c?sv=2021&sig=abcDEF123%3D"}),
            "params.url",
        ),
        (custom({"db": "postgresql://user:s3cret@db.example.com/dq"}), "params.db"),
        (email(secret="plain-text-password"), "secret"),
    ],
)
def test_rejects_inline_secrets_anywhere_with_their_path(
    registry: ActionProfileRegistry, backend: MemoryBackend, profile: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as info:
        registry.save(profile)
    assert path in [p.loc for p in info.value.problems]
    assert count(backend) == 0


@pytest.mark.parametrize(
    "params",
    [
        {"api_key": "keyvault://vault/api-key", "password": "env://DB_PASSWORD"},
        {"partition_key": "customer_id", "token_url": "https://login.example.com/token"},
        {"monkey": "business", "keys": ["a", "b"], "sha256": "a" * 64},
        {"password": None, "token": ""},
        {"note": "Rotate the password monthly via the vault."},
    ],
)
def test_accepts_secret_references_and_ordinary_parameters(
    registry: ActionProfileRegistry, params: dict[str, Any]
) -> None:
    assert registry.save(custom(params)).id == "hook"


SECRET_NAMES = ["password", "db_password", "apiKey", "client_secret", "token", "credential", "sas"]


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(SECRET_NAMES),
    value=st.text(min_size=1, max_size=40).filter(lambda v: "://" not in v),
    depth=st.integers(min_value=0, max_value=3),
)
def test_any_plain_value_under_a_secret_name_is_found(name: str, value: str, depth: int) -> None:
    document: dict[str, Any] = {name: value}
    path = name
    for level in range(depth):
        document = {f"level{level}": document}
        path = f"level{level}.{path}"
    assert [p.loc for p in find_inline_secrets(document)] == [path]


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(SECRET_NAMES),
    vault=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    secret=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
)
def test_secret_references_are_never_flagged(name: str, vault: str, secret: str) -> None:
    assert list(find_inline_secrets({name: f"keyvault://{vault}/{secret}"})) == []


def test_optimistic_concurrency_and_history(registry: ActionProfileRegistry) -> None:
    first = registry.save_versioned(email(), expected_revision=0)
    assert first.revision == 1
    with pytest.raises(ConflictError):
        registry.save(email(), expected_revision=0)
    registry.save(email(name="Renamed"), expected_revision=1)
    with pytest.raises(ConflictError):
        registry.save(email(name="Stale"), expected_revision=1)
    registry.save(email(name="Renamed"))  # unchanged content: no new revision
    history = registry.history("mail")
    assert [r.revision for r in history] == [1, 2]
    assert history[-1].item is not None
    assert history[-1].item.name == "Renamed"


def test_scopes_are_isolated(backend: MemoryBackend, registry: ActionProfileRegistry) -> None:
    registry.save(email())
    other = ActionProfileRegistry(
        Scope("acme", "prod"),
        ActionProfileStore(backend),
        job_definitions=JobDefinitionStore(backend),
    )
    with pytest.raises(NotFoundError):
        other.get("mail")
    assert other.list().items == []


def test_list_by_unknown_type_is_a_validation_error(registry: ActionProfileRegistry) -> None:
    with pytest.raises(ValidationError):
        registry.list_by_type("teleport")


def _job(job_id: str, *, enabled: bool = True) -> JobDefinition:
    return JobDefinition.model_validate(
        {
            "id": job_id,
            "name": job_id,
            "job_type": "validation",
            "contract": {"id": "orders", "version": "1.0.0"},
            "dataset": "orders",
            "on_failure": ["mail"],
            "enabled": enabled,
        }
    )


def test_delete_is_refused_while_enabled_jobs_reference_the_profile(
    backend: MemoryBackend,
) -> None:
    registry = ActionProfileRegistry(
        SCOPE, ActionProfileStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    registry.save(email())
    ContractStore(backend).create(
        SCOPE,
        ContractVersion(
            contract=DataContract(
                id="orders", version="1.0.0", status="active", schema=[{"name": "orders"}]
            ),
            published_by="me",
            published_at=datetime.now(UTC),
        ),
    )
    jobs = JobDefinitionStore(backend)
    jobs.create(SCOPE, _job("nightly"))
    jobs.create(SCOPE, _job("hourly"))
    jobs.create(SCOPE, _job("paused", enabled=False))
    with pytest.raises(ConflictError) as info:
        registry.delete("mail")
    assert "hourly" in str(info.value)
    assert "nightly" in str(info.value)
    assert "paused" not in str(info.value)
    assert registry.get("mail").id == "mail"

    jobs.delete(SCOPE, "nightly")
    jobs.put(SCOPE, _job("hourly", enabled=False))
    registry.delete("mail")
    with pytest.raises(NotFoundError):
        registry.get("mail")


def test_delete_of_a_missing_profile_is_not_found(registry: ActionProfileRegistry) -> None:
    with pytest.raises(NotFoundError):
        registry.delete("nope")
