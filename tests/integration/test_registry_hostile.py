"""Hostile inputs against the registries' cross-document rules, on every backend.

Reuses the backend fixtures of ``test_registry_atomicity`` (memory, filesystem,
SQLite, PostgreSQL, Azurite).
"""

from __future__ import annotations

import pytest
from tests.integration import test_registry_atomicity as atomicity
from tests.integration.test_registry_atomicity import contract, job, registries

from dq_metadata.errors import ConflictError
from dq_registries.contracts import ContractInUseError
from dq_stores import DocumentBackend

# the same five backends (fixtures are found by name in this module)
backend_factory = atomicity.backend_factory
backend = atomicity.backend


@pytest.mark.parametrize(
    ("published", "referenced"),
    [("1.0.0", "1.0"), ("1.0", "1.0.0"), ("1.0.0", "v1.0.0"), ("1.0.0", "1")],
)
def test_a_version_referenced_under_another_spelling_cannot_be_retired(
    backend: DocumentBackend, published: str, referenced: str
) -> None:
    # "1.0" and "1.0.0" are one version (the job save resolves either); the retire
    # guard compared the strings, so it retired a version an enabled job runs against.
    reg = registries(backend)
    reg.contracts.publish(contract("c", published), actor="ann")
    body = job("j", "c")
    body["contract"]["version"] = referenced
    reg.jobs.save(body)
    with pytest.raises(ContractInUseError) as info:
        reg.contracts.retire("c", published, actor="ann")
    assert info.value.job_ids == ("j",)
    assert reg.contracts.get("c", published).status == "deprecated"


def test_a_retried_start_returns_its_run_after_the_job_was_disabled(
    backend: DocumentBackend,
) -> None:
    # The first start succeeded but its answer was lost; meanwhile the job was
    # disabled. The retry must say "this run" (it is queued and will run), not
    # "disabled" — which reads as "nothing was started".
    reg = registries(backend)
    reg.contracts.publish(contract("c"), actor="ann")
    reg.jobs.save(job("j", "c"))
    first = reg.runs.start("j", idempotency_key="nightly-42")
    reg.jobs.save({**job("j", "c"), "enabled": False})
    again = reg.runs.start("j", idempotency_key="nightly-42")
    assert again.run_id == first.run_id
    with pytest.raises(ConflictError, match="disabled"):
        reg.runs.start("j", idempotency_key="nightly-43")
    with pytest.raises(ConflictError, match="disabled"):
        reg.runs.start("j")
    assert [run.item.run_id for run in reg.runs.list(job_id="j").items] == [first.run_id]
