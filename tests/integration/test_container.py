"""The container: backends chosen by configuration, swapped by configuration only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from dq_metadata.errors import MisconfiguredError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.wiring.container import DQContainer, build_container
from dq_registries.wiring.context import DQContext
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

SCOPE = Scope("acme", "prod")
DOCS = ("contracts", "job_definitions", "action_profiles")


def contract(version: str = "1.0.0") -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "orders",
        "version": version,
        "status": "active",
        "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
    }


def fs_config(root: Path, **extra: Any) -> dict[str, Any]:
    return {"default_backend": "filesystem", "filesystem": {"root": str(root)}, **extra}


def publish_and_read(container: DQContainer) -> str:
    with DQContext.from_container(container, SCOPE) as dq:
        dq.contracts.publish(contract(), actor="test")
    with DQContext.from_container(container, SCOPE) as dq:
        return dq.contracts.get_latest_for_dataset("orders").version


def test_memory_config_wires_every_store_to_one_memory_backend() -> None:
    container = build_container({"default_backend": "memory"})
    backend = container.contracts_backend()
    assert isinstance(backend, MemoryBackend)
    for name in ("job_definitions", "action_profiles", "job_runs", "reports"):
        assert getattr(container, f"{name}_backend")() is backend
    assert isinstance(container.results_store(), MemoryResultsStore)
    assert publish_and_read(container) == "1.0.0"
    container.shutdown_resources()


def test_filesystem_config_persists_across_containers(tmp_path: Path) -> None:
    first = build_container(fs_config(tmp_path))
    assert publish_and_read(first) == "1.0.0"
    first.shutdown_resources()
    second = build_container(fs_config(tmp_path))
    with DQContext.from_container(second, SCOPE) as dq:
        assert dq.contracts.get("orders").version == "1.0.0"
    second.shutdown_resources()


@pytest.mark.parametrize(
    ("given", "durability"), [({}, "full"), ({"durability": "process"}, "process")]
)
def test_filesystem_durability_reaches_the_backend(
    tmp_path: Path, given: dict[str, str], durability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = {"root": str(tmp_path), **given}
    container = build_container({"default_backend": "filesystem", "filesystem": section})
    assert container.contracts_backend().durability == durability
    assert publish_and_read(container) == "1.0.0"
    container.shutdown_resources()
    monkeypatch.setenv("DQ_FILESYSTEM__DURABILITY", "process")
    monkeypatch.setenv("DQ_HOME", str(tmp_path))
    from_env = build_container(None)
    assert from_env.contracts_backend().durability == "process"
    from_env.shutdown_resources()


def test_swapping_the_backend_is_a_config_change_only(tmp_path: Path) -> None:
    on_disk = build_container(fs_config(tmp_path))
    publish_and_read(on_disk)
    on_disk.shutdown_resources()
    in_memory = build_container({"default_backend": "memory"})
    with DQContext.from_container(in_memory, SCOPE) as dq, pytest.raises(NotFoundError):
        dq.contracts.get("orders")
    in_memory.shutdown_resources()


def test_per_store_overrides_split_stores_across_backends(tmp_path: Path) -> None:
    container = build_container(
        fs_config(tmp_path, default_backend="memory", stores=dict.fromkeys(DOCS, "filesystem"))
    )
    assert not isinstance(container.contracts_backend(), MemoryBackend)
    assert isinstance(container.job_runs_backend(), MemoryBackend)
    publish_and_read(container)
    container.shutdown_resources()
    # Only the contracts went to disk: a fresh container sees them, not the rest.
    again = build_container(
        fs_config(tmp_path, default_backend="memory", stores=dict.fromkeys(DOCS, "filesystem"))
    )
    with DQContext.from_container(again, SCOPE) as dq:
        assert dq.contracts.get("orders").version == "1.0.0"
        assert dq.runs.list().items == []
    again.shutdown_resources()


def test_init_resources_opens_only_the_selected_backends() -> None:
    # Only the selected technologies get a provider: nothing else can be opened.
    container = build_container({"default_backend": "memory"})
    container.init_resources()
    assert not hasattr(container, "postgres_backend")
    assert not hasattr(container, "azure_blob_backend")
    assert isinstance(container.memory_backend(), MemoryBackend)
    container.shutdown_resources()


class RecordingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_shutdown_closes_the_backends_it_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    import dq_stores.memory

    monkeypatch.setattr(dq_stores.memory, "MemoryBackend", RecordingBackend)
    container = build_container({"default_backend": "memory"})
    backend = container.contracts_backend()
    assert isinstance(backend, RecordingBackend)
    container.shutdown_resources()
    assert backend.closed == 1


def test_providers_can_be_overridden_in_tests() -> None:
    container = build_container({"default_backend": "memory"})
    backend = MemoryBackend()
    shared = ContractStore(backend)
    with (
        container.contract_store.override(providers.Object(shared)),
        container.job_definition_store.override(providers.Object(JobDefinitionStore(backend))),
        container.action_profile_store.override(providers.Object(ActionProfileStore(backend))),
        DQContext.from_container(container, SCOPE) as dq,
    ):
        dq.contracts.publish(contract(), actor="test")
    assert shared.get_version(SCOPE, "orders", "1.0.0").item.version == "1.0.0"


def test_overriding_one_store_of_a_commit_group_onto_another_backend_fails_closed() -> None:
    # Contracts and job definitions commit together (ADR 0011): never split silently.
    container = build_container({"default_backend": "memory"})
    with (
        container.contract_store.override(providers.Object(ContractStore(MemoryBackend()))),
        pytest.raises(MisconfiguredError, match="share one backend"),
    ):
        DQContext.from_container(container, SCOPE)


def test_configured_active_statuses_and_inline_limit_reach_the_registries() -> None:
    container = build_container(
        {
            "default_backend": "memory",
            "contracts": {"active_statuses": ["production"]},
            "results": {"inline_limit_bytes": 10},
        }
    )
    with DQContext.from_container(container, SCOPE) as dq:
        dq.contracts.publish({**contract(), "status": "production"}, actor="test")
        assert dq.contracts.get_latest_for_dataset("orders").status == "production"
        dq.jobs.save(
            {
                "id": "j",
                "name": "j",
                "job_type": "validation",
                "contract": {"id": "orders", "version": "1.0.0"},
                "dataset": "orders",
            }
        )
        run = dq.runs.start("j")
        dq.runs.mark_running(run.run_id)
        done = dq.runs.finish(run.run_id, "succeeded", results={"rows": list(range(100))})
        assert done.result_object is not None
        assert (done.result_object.tenant, done.result_object.run_id) == ("acme", run.run_id)
        assert b"".join(dq.runs.open_results(run.run_id)).startswith(b"{")
    container.shutdown_resources()


def test_a_contradictory_config_fails_before_anything_is_built() -> None:
    with pytest.raises(MisconfiguredError, match=r"postgres\.url"):
        build_container({"default_backend": "postgres"})


def test_sqlite_is_one_config_change_away(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    config = {
        "default_backend": "sqlite",
        "sqlite": {"url": f"sqlite:///{tmp_path / 'dq.sqlite3'}"},
    }
    container = build_container(config)
    assert container.contracts_backend() is not None
    assert publish_and_read(container) == "1.0.0"
    container.shutdown_resources()
    reopened = build_container(config)
    with DQContext.from_container(reopened, SCOPE) as dq:
        assert dq.contracts.get("orders").version == "1.0.0"
    reopened.shutdown_resources()


def test_from_config_context_owns_and_shuts_down_its_container(tmp_path: Path) -> None:
    with DQContext.from_config("acme", "prod", fs_config(tmp_path)) as dq:
        dq.contracts.publish(contract(), actor="test")
    with DQContext.from_config("acme", "prod", fs_config(tmp_path)) as dq:
        assert dq.contracts.get("orders").version == "1.0.0"
