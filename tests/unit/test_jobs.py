"""JobDefinitionRegistry: validation, same-scope references, tags, concurrency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_metadata.models import ContractVersion, DataContract
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import version_in_range
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

SCOPE = Scope("acme", "dev")


def publish(
    backend: MemoryBackend, version: str, datasets: list[str], scope: Scope = SCOPE
) -> None:
    ContractStore(backend).create(
        scope,
        ContractVersion(
            contract=DataContract(
                id="orders",
                version=version,
                status="active",
                schema=[{"name": d} for d in datasets],
            ),
            published_by="me",
            published_at=datetime.now(UTC),
        ),
    )


def add_profile(backend: MemoryBackend, profile_id: str, scope: Scope = SCOPE) -> None:
    ActionProfileStore(backend).create(
        scope,
        ActionProfileStore(backend).validate(
            {"id": profile_id, "name": profile_id, "action_type": "quarantine", "target": "q"}
        ),
    )


def job(job_id: str = "nightly", **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": "Nightly orders",
        "job_type": "validation",
        "contract": {"id": "orders", "version": "1.0.0"},
        "dataset": "orders",
        "checkpoints": [
            {"name": "not-null", "check": "not_null", "params": {"column": "id"}},
            {"name": "unique", "check": "unique", "params": {"column": "id"}},
        ],
        **extra,
    }


@pytest.fixture
def backend() -> MemoryBackend:
    backend = MemoryBackend()
    publish(backend, "1.0.0", ["orders"])
    publish(backend, "1.4.0", ["orders", "order_lines"])
    publish(backend, "2.0.0", ["order_lines"])
    add_profile(backend, "page-oncall")
    add_profile(backend, "quarantine")
    return backend


@pytest.fixture
def registry(backend: MemoryBackend) -> JobDefinitionRegistry:
    return JobDefinitionRegistry(
        SCOPE,
        JobDefinitionStore(backend),
        contracts=ContractStore(backend),
        action_profiles=ActionProfileStore(backend),
    )


def stored(backend: MemoryBackend) -> int:
    return JobDefinitionStore(backend).count(SCOPE)


def test_saves_a_job_with_ordered_checkpoints_and_references(
    registry: JobDefinitionRegistry,
) -> None:
    saved = registry.save(
        job(
            on_failure=["page-oncall", "quarantine"],
            on_anomaly=["page-oncall"],
            trigger={"type": "cron", "expression": "0 3 * * 1-5", "timezone": "Europe/Paris"},
            tags=["finance", "nightly"],
            severity_threshold="warning",
            idempotency_scope="day",
        )
    )
    got = registry.get("nightly")
    assert got == saved
    assert [c.name for c in got.checkpoints] == ["not-null", "unique"]
    assert got.action_profile_ids() == ["page-oncall", "quarantine"]


@pytest.mark.parametrize("job_type", ["validation", "cleansing", "profiling"])
def test_accepts_each_job_type(registry: JobDefinitionRegistry, job_type: str) -> None:
    assert registry.save(job(job_type=job_type)).job_type.value == job_type


def test_a_version_range_resolves_to_the_highest_match_and_checks_its_datasets(
    registry: JobDefinitionRegistry, backend: MemoryBackend
) -> None:
    # 1.4.0 is the highest version in range and governs order_lines; 1.0.0 does not.
    registry.save(
        job(
            "lines", dataset="order_lines", contract={"id": "orders", "version_range": ">=1.0.0,<2"}
        )
    )
    with pytest.raises(ValidationError) as info:
        registry.save(
            job("v2", dataset="orders", contract={"id": "orders", "version_range": ">=2"})
        )
    assert [p.loc for p in info.value.problems] == ["dataset"]
    assert stored(backend) == 1


@pytest.mark.parametrize(
    ("contract", "needle"),
    [
        ({"id": "orders", "version": "9.9.9"}, "9.9.9"),
        ({"id": "customers", "version": "1.0.0"}, "customers"),
        ({"id": "orders", "version_range": ">=3.0.0"}, ">=3.0.0"),
    ],
)
def test_a_missing_contract_reference_is_not_found_and_named(
    registry: JobDefinitionRegistry,
    backend: MemoryBackend,
    contract: dict[str, str],
    needle: str,
) -> None:
    with pytest.raises(NotFoundError, match=needle.replace(".", r"\.")):
        registry.save(job(contract=contract))
    assert stored(backend) == 0


def test_references_must_live_in_the_same_scope(backend: MemoryBackend) -> None:
    prod = Scope("acme", "prod")
    registry = JobDefinitionRegistry(
        prod,
        JobDefinitionStore(backend),
        contracts=ContractStore(backend),
        action_profiles=ActionProfileStore(backend),
    )
    with pytest.raises(NotFoundError, match="orders"):
        registry.save(job())
    publish(backend, "1.0.0", ["orders"], scope=prod)
    with pytest.raises(NotFoundError, match="page-oncall"):
        registry.save(job(on_success=["page-oncall"]))
    add_profile(backend, "page-oncall", scope=prod)
    registry.save(job(on_success=["page-oncall"]))
    assert JobDefinitionStore(backend).count(prod) == 1


def test_missing_action_profiles_are_all_named_with_their_field(
    registry: JobDefinitionRegistry, backend: MemoryBackend
) -> None:
    with pytest.raises(NotFoundError) as info:
        registry.save(job(on_success=["quarantine", "ghost"], on_failure=["phantom"]))
    message = str(info.value)
    assert "on_success[1]='ghost'" in message
    assert "on_failure[0]='phantom'" in message
    assert "quarantine" not in message
    assert stored(backend) == 0


def test_the_dataset_must_be_governed_by_the_contract_version(
    registry: JobDefinitionRegistry,
) -> None:
    with pytest.raises(ValidationError) as info:
        registry.save(job(dataset="order_lines"))  # 1.0.0 only governs orders
    assert [p.loc for p in info.value.problems] == ["dataset"]


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"trigger": {"type": "cron", "expression": "61 * * * *"}}, "trigger.expression"),
        ({"trigger": {"type": "cron", "expression": "every day"}}, "trigger.expression"),
        (
            {"trigger": {"type": "cron", "expression": "0 * * * *", "timezone": "Mars/Olympus"}},
            "trigger.timezone",
        ),
        ({"trigger": {"type": "event"}}, "trigger.event"),
        ({"job_type": "scrubbing"}, "job_type"),
        ({"severity_threshold": "fatal"}, "severity_threshold"),
        ({"idempotency_scope": "week"}, "idempotency_scope"),
        ({"contract": {"id": "orders"}}, "contract"),
        ({"contract": {"id": "orders", "version": "1.0.0", "version_range": ">=1"}}, "contract"),
        ({"contract": {"id": "orders", "version": "v1.x"}}, "contract.version"),
        ({"contract": {"id": "orders", "version_range": "~1.2"}}, "contract.version_range"),
        (
            {"checkpoints": [{"name": "a", "check": "x"}, {"name": "a", "check": "y"}]},
            "checkpoints",
        ),
        ({"dataset": ""}, "dataset"),
    ],
)
def test_invalid_definitions_are_rejected_with_a_path_and_nothing_is_written(
    registry: JobDefinitionRegistry, backend: MemoryBackend, changes: dict[str, Any], loc: str
) -> None:
    with pytest.raises(ValidationError) as info:
        registry.save(job(**changes))
    assert loc in [p.loc for p in info.value.problems], info.value
    assert stored(backend) == 0


def test_accepts_manual_event_and_valid_cron_triggers(registry: JobDefinitionRegistry) -> None:
    registry.save(job("manual"))
    registry.save(job("event", trigger={"type": "event", "event": "orders.landed"}))
    registry.save(job("cron", trigger={"type": "cron", "expression": "*/15 * * * *"}))
    assert registry.get("event").trigger.type == "event"


def test_list_by_tags_all_and_any(registry: JobDefinitionRegistry) -> None:
    registry.save(job("a", tags=["finance", "nightly"]))
    registry.save(job("b", tags=["finance"]))
    registry.save(job("c", tags=["nightly", "pii"]))
    registry.save(job("d"))

    def ids(page: Any) -> list[str]:
        return [v.item.id for v in page.items]

    assert ids(registry.list_by_tags(["finance", "nightly"])) == ["a"]
    assert ids(registry.list_by_tags(["finance", "nightly"], match="any")) == ["a", "b", "c"]
    assert ids(registry.list_by_tags("pii")) == ["c"]
    assert ids(registry.list(tag="finance")) == ["a", "b"]
    with pytest.raises(ValidationError):
        registry.list_by_tags([])
    with pytest.raises(ValidationError):
        registry.list_by_tags(["x"], match="some")  # type: ignore[arg-type]


def test_list_filters_and_pagination(registry: JobDefinitionRegistry) -> None:
    for i in range(7):
        registry.save(job(f"job-{i}", job_type="profiling" if i % 2 else "validation"))
    seen: list[str] = []
    token = None
    while True:
        page = registry.list(limit=3, page_token=token)
        seen.extend(v.item.id for v in page.items)
        token = page.next_token
        if token is None:
            break
    assert seen == [f"job-{i}" for i in range(7)]
    assert [v.item.id for v in registry.list(job_type="profiling").items] == [
        "job-1",
        "job-3",
        "job-5",
    ]
    with pytest.raises(ValidationError):
        registry.list(job_type="scrubbing")


def test_optimistic_concurrency_history_and_delete(registry: JobDefinitionRegistry) -> None:
    assert registry.save_versioned(job(), expected_revision=0).revision == 1
    registry.save(job(name="Renamed"), expected_revision=1)
    with pytest.raises(ConflictError):
        registry.save(job(name="Lost update"), expected_revision=1)
    registry.save(job(name="Renamed"))  # identical content: no new revision
    assert [r.revision for r in registry.history("nightly")] == [1, 2]
    registry.delete("nightly", expected_revision=2)
    with pytest.raises(NotFoundError):
        registry.get("nightly")
    assert registry.history("nightly")[-1].deleted


@settings(max_examples=50, deadline=None)
@given(
    major=st.integers(0, 30),
    minor=st.integers(0, 30),
    patch=st.integers(0, 30),
    bound=st.integers(0, 30),
)
def test_partial_range_bounds_mean_the_zero_filled_version(
    major: int, minor: int, patch: int, bound: int
) -> None:
    version = f"{major}.{minor}.{patch}"
    assert version_in_range(version, f"<{bound}") == (major < bound)
    assert version_in_range(version, f">={bound}.{minor}") == ((major, minor) >= (bound, minor))


def test_every_range_clause_is_checked_even_after_a_failing_one() -> None:
    with pytest.raises(ValidationError):
        version_in_range("0.1.0", ">=1.0.0,~2")
