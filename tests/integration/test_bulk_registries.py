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


def _counting_commits(backend: DocumentBackend, before_first: Any = None) -> list[int]:
    """Patch ``backend.commit`` to record each commit's size; ``before_first`` runs once
    before the first commit goes through (to move a reference under the batch)."""
    sizes: list[int] = []
    real = backend.commit

    def commit(scope: Scope, operations: Any) -> Any:
        if before_first is not None and not sizes:
            sizes.append(0)
            before_first()
        sizes.append(len(operations))
        return real(scope, operations)

    backend.commit = commit  # type: ignore[method-assign]
    return sizes


def test_save_many_writes_in_commits_of_at_most_max_operations(backend: DocumentBackend) -> None:
    jobs = _jobs_registry(backend)
    sizes = _counting_commits(backend)
    saved = jobs.save_many(_job(f"j{i:03d}") for i in range(250))
    assert [v.key for v in saved] == [f"j{i:03d}" for i in range(250)]
    assert all(v.revision == 1 for v in saved)
    assert jobs.store.count(SCOPE) == 250
    # 96 jobs + a guard and a usage stamp for the contract and for the profile per commit
    assert sizes == [100, 100, 62]
    assert len(jobs.history("j249")) == 1
    stamps = [
        backend.get(SCOPE, "usage_stamp", k) for k in ("contract/orders", "action_profile/pager")
    ]
    assert all(s.revision >= 2 for s in stamps)  # every commit moved the stamps it guards


def test_save_many_re_saves_a_commit_job_by_job_when_a_reference_moved(
    backend: DocumentBackend,
) -> None:
    jobs = _jobs_registry(backend)
    contracts = ContractRegistry(SCOPE, jobs.contracts, job_definitions=jobs.store)
    _counting_commits(backend, lambda: contracts.deprecate("orders", "1.0.0", actor="me"))
    saved = jobs.save_many(_job(f"j{i:03d}") for i in range(120))
    assert [v.revision for v in saved] == [1] * 120
    assert jobs.store.count(SCOPE) == 120


def test_save_many_stops_at_the_first_job_a_moved_reference_makes_invalid(
    backend: DocumentBackend,
) -> None:
    jobs = _jobs_registry(backend)
    contracts = ContractRegistry(SCOPE, jobs.contracts, job_definitions=jobs.store)
    contracts.deprecate("orders", "1.0.0", actor="me")
    sizes = _counting_commits(backend, lambda: contracts.retire("orders", "1.0.0", actor="me"))
    with pytest.raises(ValidationError, match=r"items\[0\].*0 of the 3 items are saved") as raised:
        jobs.save_many([_job("j0"), _job("j1"), _job("j2")])
    assert all(p.loc.startswith("items[0]") for p in raised.value.problems)
    assert "retired" in str(raised.value)
    assert jobs.store.count(SCOPE) == 0
    assert sizes[-1] == 7  # the batch's one commit (3 jobs, 2 guards, 2 stamps) was refused
