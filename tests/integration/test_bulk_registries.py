"""``JobDefinitionRegistry.save_many`` on every backend: checked first, then one commit per job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_stores import (
    ActionProfileStore,
    ContractStore,
    DocumentBackend,
    FilesystemBackend,
    JobDefinitionStore,
    MemoryBackend,
)

SCOPE = Scope("acme", "prod")


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgres", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    kind = request.param
    made: DocumentBackend
    if kind == "memory":
        made = MemoryBackend()
    elif kind == "filesystem":
        made = FilesystemBackend(tmp_path / "dq")
    elif kind in ("sqlite", "postgres"):
        sql = pytest.importorskip("dq_stores.sql")
        url = (
            f"sqlite:///{tmp_path / 'dq.sqlite'}"
            if kind == "sqlite"
            else request.getfixturevalue("postgres_url")
        )
        made = sql.SqlBackend(url)
    else:
        azure_blob = pytest.importorskip("dq_stores.azure_blob")
        made = azure_blob.AzureBlobBackend(
            request.getfixturevalue("azure_container"),
            connection_string=request.getfixturevalue("azure_connection_string"),
        )
    yield made
    made.close()


def _jobs_registry(backend: DocumentBackend) -> JobDefinitionRegistry:
    contracts, jobs = ContractStore(backend), JobDefinitionStore(backend)
    profiles = ActionProfileStore(backend)
    ContractRegistry(SCOPE, contracts, job_definitions=jobs).publish(
        {
            "apiVersion": "v3.1.0",
            "kind": "DataContract",
            "id": "orders",
            "version": "1.0.0",
            "status": "active",
            "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "string"}]}],
        },
        actor="me",
    )
    ActionProfileRegistry(SCOPE, profiles, job_definitions=jobs).save(
        {"id": "pager", "name": "pager", "action_type": "quarantine", "target": "q"}
    )
    return JobDefinitionRegistry(SCOPE, jobs, contracts=contracts, action_profiles=profiles)


def _job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": f"job {job_id}",
        "job_type": "validation",
        "contract": {"id": "orders", "version": "1.0.0"},
        "dataset": "orders",
        "checkpoints": [{"name": "nn", "check": "not_null", "params": {"column": "id"}}],
        "on_failure": ["pager"],
        **extra,
    }


def test_save_many_saves_each_job_and_resaving_adds_no_revision(
    backend: DocumentBackend,
) -> None:
    jobs = _jobs_registry(backend)
    saved = jobs.save_many(_job(f"j{i}") for i in range(5))
    assert [(v.key, v.revision) for v in saved] == [(f"j{i}", 1) for i in range(5)]
    again = jobs.save_many([_job("j0"), _job("j1", name="renamed")])
    assert [v.revision for v in again] == [1, 2]
    assert jobs.get("j1").name == "renamed"


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (_job("x", dataset="nope"), ValidationError, r"items\[2\]"),
        (_job("x", on_failure=["missing"]), NotFoundError, r"items\[2\].*missing"),
        (_job("j0"), ValidationError, r"also items\[0\]"),
    ],
)
def test_save_many_checks_every_job_before_writing_any(
    backend: DocumentBackend, bad: dict[str, Any], error: type[Exception], match: str
) -> None:
    jobs = _jobs_registry(backend)
    with pytest.raises(error, match=match):
        jobs.save_many([_job("j0"), _job("j1"), bad])
    assert jobs.store.count(SCOPE) == 0


def test_save_many_names_the_invalid_item_and_refuses_one_mapping(
    backend: DocumentBackend,
) -> None:
    jobs = _jobs_registry(backend)
    with pytest.raises(ValidationError, match=r"items\[1\]") as raised:
        jobs.save_many([_job("j0"), {"id": "x"}, _job("j2")])
    assert all(p.loc.startswith("items[1]") for p in raised.value.problems)
    with pytest.raises(ValidationError, match="iterable"):
        jobs.save_many(_job("j0"))  # type: ignore[arg-type]
    assert jobs.store.count(SCOPE) == 0
