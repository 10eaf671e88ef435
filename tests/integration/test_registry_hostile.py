"""Hostile inputs against the registries' cross-document rules, on every backend.

Reuses the backend fixtures of ``test_registry_atomicity`` (memory, filesystem,
SQLite, PostgreSQL, Azurite).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.integration import test_registry_atomicity as atomicity
from tests.integration.test_registry_atomicity import contract, job, registries

from dq_metadata.errors import ConflictError
from dq_registries.domain.contracts import ContractInUseError
from dq_stores import DocumentBackend, MemoryBackend

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


def _start_or_disabled(reg: atomicity.Registries, key: str) -> str:
    try:
        return reg.runs.start("j", idempotency_key=key).run_id
    except ConflictError as exc:
        if "disabled" not in str(exc):
            raise
        return "disabled"


def _race_round(factory: atomicity.Factory, key: str) -> list[str]:
    """4 starts with ``key`` (each retried once) and one disable of job ``j``, released
    together; the answers of the starts."""
    barrier = threading.Barrier(5, timeout=60)

    def act(i: int) -> str:
        made = factory()
        try:
            reg = registries(made)
            barrier.wait()
            if i == 4:
                reg.jobs.save({**job("j", "c"), "enabled": False})
                return "-"
            first = _start_or_disabled(reg, key)
            return first if first == "disabled" else _start_or_disabled(reg, key)  # a retry
        finally:
            if not isinstance(made, MemoryBackend):  # the memory factory shares one
                made.close()

    with ThreadPoolExecutor(5) as pool:
        return list(pool.map(act, range(5)))[:4]


def test_starts_racing_a_disable_never_answer_disabled_for_a_run_that_exists(
    backend_factory: atomicity.Factory,
) -> None:
    # Never both: a run started under the key, and a start with that key told
    # "disabled" (which reads as "nothing was started").
    setup_backend = backend_factory()
    setup = registries(setup_backend)
    setup.contracts.publish(contract("c"), actor="ann")
    for rnd in range(max(3, atomicity.ROUNDS // 10)):
        setup.jobs.save(job("j", "c"))
        answers = _race_round(backend_factory, f"k{rnd}")
        started = {a for a in answers if a != "disabled"}
        assert len(started) <= 1, answers
        runs = {v.item.run_id for v in setup.runs.list(job_id="j", limit=500).items}
        if "disabled" in answers:
            assert not runs & started, (rnd, answers)
            assert setup.runs.find_by_idempotency_key(f"k{rnd}") is None, (rnd, answers)
    if not isinstance(setup_backend, MemoryBackend):
        setup_backend.close()
