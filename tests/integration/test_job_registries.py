"""Job definitions and action profiles on real backends (memory and filesystem)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.models import ContractVersion, DataContract
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_stores.backend import DocumentBackend
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

SCOPE = Scope("acme", "dev")


@pytest.fixture(params=["memory", "filesystem"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    backend: DocumentBackend = (
        MemoryBackend() if request.param == "memory" else FilesystemBackend(tmp_path / "dq")
    )
    with backend:
        ContractStore(backend).create(
            SCOPE,
            ContractVersion(
                contract=DataContract(
                    id="Air_Quality",
                    version="1.2.0",
                    status="active",
                    schema=[{"name": "measurements"}, {"name": "stations"}],
                ),
                published_by="me",
                published_at=datetime.now(UTC),
            ),
        )
        yield backend


def profile(profile_id: str) -> dict[str, Any]:
    return {
        "id": profile_id,
        "name": profile_id,
        "action_type": "send_notification",
        "channel": "webhook",
        "url": "https://hooks.example.com/dq",
        "secret": "keyvault://ops/webhook-signing",
    }


def job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": job_id,
        "job_type": "validation",
        "contract": {"id": "Air_Quality", "version_range": ">=1.0.0,<2"},
        "dataset": "measurements",
        "checkpoints": [{"name": "range", "check": "between", "params": {"min": 0}}],
        "trigger": {"type": "cron", "expression": "*/10 * * * *", "timezone": "UTC"},
        **extra,
    }


def test_profiles_jobs_and_guarded_delete_round_trip(backend: DocumentBackend) -> None:
    actions = ActionProfileRegistry(
        SCOPE, ActionProfileStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    jobs = JobDefinitionRegistry(
        SCOPE,
        JobDefinitionStore(backend),
        contracts=ContractStore(backend),
        action_profiles=ActionProfileStore(backend),
    )
    actions.save(profile("hook"))
    actions.save(profile("a/b ../weird id"))
    jobs.save(job("aq/nightly", on_failure=["hook"], tags=["air", "nightly"]))
    jobs.save(job("aq-stations", dataset="stations", on_success=["a/b ../weird id"], tags=["air"]))

    assert [v.item.id for v in jobs.list_by_tags(["air", "nightly"]).items] == ["aq/nightly"]
    assert len(jobs.list_by_tags(["air"]).items) == 2
    assert [v.item.id for v in actions.list_by_type("send_notification").items] == [
        "a/b ../weird id",
        "hook",
    ]
    with pytest.raises(ConflictError, match="aq/nightly"):
        actions.delete("hook")
    with pytest.raises(NotFoundError, match="ghost"):
        jobs.save(job("other", on_failure=["ghost"]))
    jobs.delete("aq/nightly")
    actions.delete("hook")
    assert [v.item.id for v in actions.list().items] == ["a/b ../weird id"]


def test_concurrent_updates_with_the_same_expected_revision_one_wins(
    backend: DocumentBackend,
) -> None:
    jobs = JobDefinitionRegistry(
        SCOPE,
        JobDefinitionStore(backend),
        contracts=ContractStore(backend),
        action_profiles=ActionProfileStore(backend),
    )
    jobs.save(job("shared"), expected_revision=0)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def update(i: int) -> None:
        barrier.wait()
        try:
            jobs.save(job("shared", description=f"writer {i}"), expected_revision=1)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=update, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]
    assert [r.revision for r in jobs.history("shared")] == [1, 2]


def test_filesystem_data_survives_a_new_backend_instance(tmp_path: Path) -> None:
    root = tmp_path / "dq"
    with FilesystemBackend(root) as first:
        ContractStore(first).create(
            SCOPE,
            ContractVersion(
                contract=DataContract(
                    id="Air_Quality", version="1.0.0", status="active", schema=[{"name": "m"}]
                ),
                published_by="me",
                published_at=datetime.now(UTC),
            ),
        )
        ActionProfileRegistry(
            SCOPE, ActionProfileStore(first), job_definitions=JobDefinitionStore(first)
        ).save(profile("hook"))
        JobDefinitionRegistry(
            SCOPE,
            JobDefinitionStore(first),
            contracts=ContractStore(first),
            action_profiles=ActionProfileStore(first),
        ).save(job("j", dataset="m", on_failure=["hook"]))
    with FilesystemBackend(root) as second:
        assert (
            JobDefinitionRegistry(
                SCOPE,
                JobDefinitionStore(second),
                contracts=ContractStore(second),
                action_profiles=ActionProfileStore(second),
            )
            .get("j")
            .dataset
            == "m"
        )
        with pytest.raises(ConflictError):
            ActionProfileRegistry(
                SCOPE, ActionProfileStore(second), job_definitions=JobDefinitionStore(second)
            ).delete("hook")


def test_registries_take_their_stores_and_open_no_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for registry in (ActionProfileRegistry, JobDefinitionRegistry):
        with pytest.raises(TypeError):
            registry(SCOPE)  # type: ignore[call-arg]
    assert list(tmp_path.iterdir()) == []
