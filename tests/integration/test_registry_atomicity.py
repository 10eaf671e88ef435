"""Multi-document registry operations are all-or-nothing on every backend.

Publish (version + head), retire vs job save, profile delete vs job save and run
start each commit atomically (``DocumentBackend.commit``). The races run in real
processes (threads for the in-memory backend) on memory, filesystem, SQLite,
PostgreSQL and Azurite.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import ConflictError, DQError, NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_registries.domain.runs import JobRunRegistry
from dq_stores import (
    ActionProfileStore,
    ContractStore,
    DocumentBackend,
    JobDefinitionStore,
    JobRunStore,
    MemoryBackend,
    ReportStore,
)
from dq_stores.filesystem import FilesystemBackend

SCOPE = Scope("acme", "prod")
Factory = Callable[[], DocumentBackend]

#: Processes x rounds of each race. CI runs the full size; DQ_TEST_RACE_ROUNDS shortens it.
WORKERS = 8
ROUNDS = int(os.environ.get("DQ_TEST_RACE_ROUNDS", "100"))
#: On Azurite a guarded commit is ~11 requests: the normal run races 8 x 12 rounds there
#: and ``test_full_size_races_on_azurite`` (marked slow) the full 8 x ROUNDS.
AZURE_ROUNDS = 12


@dataclass
class Registries:
    contracts: ContractRegistry
    jobs: JobDefinitionRegistry
    actions: ActionProfileRegistry
    runs: JobRunRegistry


def registries(backend: DocumentBackend) -> Registries:
    contracts, jobs = ContractStore(backend), JobDefinitionStore(backend)
    profiles = ActionProfileStore(backend)
    return Registries(
        ContractRegistry(SCOPE, contracts, job_definitions=jobs),
        JobDefinitionRegistry(SCOPE, jobs, contracts=contracts, action_profiles=profiles),
        ActionProfileRegistry(SCOPE, profiles, job_definitions=jobs),
        JobRunRegistry(
            SCOPE, JobRunStore(backend), reports=ReportStore(backend), job_definitions=jobs
        ),
    )


def contract(
    contract_id: str, version: str = "1.0.0", dataset: str = "orders", status: str = "deprecated"
) -> dict[str, Any]:
    # deprecated: the one status from which a version may be retired
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": contract_id,
        "version": version,
        "status": status,
        "schema": [{"name": dataset, "properties": [{"name": "id", "logicalType": "string"}]}],
    }


def job(job_id: str, contract_id: str, profile_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job_id,
        "name": f"job {job_id}",
        "job_type": "validation",
        "contract": {"id": contract_id, "version": "1.0.0"},
        "dataset": "orders",
        "checkpoints": [{"name": "not-null", "check": "not_null", "params": {"column": "id"}}],
    }
    if profile_id is not None:
        body["on_failure"] = [profile_id]
    return body


def profile(profile_id: str) -> dict[str, Any]:
    return {
        "id": profile_id,
        "name": f"profile {profile_id}",
        "action_type": "send_notification",
        "channel": "email",
        "recipients": ["dq@example.com"],
    }


# -- backends ------------------------------------------------------------------------


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgres", "azure"])
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    kind = request.param
    if kind == "memory":
        shared = MemoryBackend()
        yield lambda: shared
    elif kind == "filesystem":
        yield functools.partial(FilesystemBackend, tmp_path / "dq")
    elif kind == "sqlite":
        sql = pytest.importorskip("dq_stores.sql")
        yield functools.partial(sql.SqlBackend, f"sqlite:///{tmp_path / 'dq.sqlite'}")
    elif kind == "postgres":
        sql = pytest.importorskip("dq_stores.sql")
        url = request.getfixturevalue("postgres_url")
        yield functools.partial(sql.SqlBackend, url, pool_size=2)
    else:
        azure_blob = pytest.importorskip("dq_stores.azure_blob")
        conn = request.getfixturevalue("azure_connection_string")
        container = request.getfixturevalue("azure_container")
        yield functools.partial(azure_blob.AzureBlobBackend, container, connection_string=conn)


@pytest.fixture
def backend(backend_factory: Factory) -> Iterator[DocumentBackend]:
    made = backend_factory()
    yield made
    made.close()


def _in_memory(backend: DocumentBackend) -> bool:
    return isinstance(backend, MemoryBackend)


# -- a refused operation leaves nothing behind -------------------------------------------


def test_a_refused_first_publish_leaves_no_phantom_version(backend: DocumentBackend) -> None:
    reg = registries(backend)
    too_long = contract("phantom", "2.0.0", dataset="d" * 600)  # over the index value limit
    with pytest.raises(ValidationError):
        reg.contracts.publish(too_long, actor="ann")
    with pytest.raises(NotFoundError):
        reg.contracts.get("phantom")
    result = reg.contracts.publish(contract("phantom", "1.0.0"), actor="ann")
    assert result.created
    assert reg.contracts.get("phantom").version == "1.0.0"


def test_a_refused_job_save_writes_no_usage_stamp(backend: DocumentBackend) -> None:
    reg = registries(backend)
    reg.contracts.publish(contract("c"), actor="ann")
    with pytest.raises(NotFoundError):
        reg.jobs.save(job("j", "c", profile_id="missing"))
    assert [d.kind for d in backend.iter_documents(SCOPE)] == ["contract", "contract_head"]


def test_an_enabled_job_cannot_reference_a_retired_version(backend: DocumentBackend) -> None:
    reg = registries(backend)
    reg.contracts.publish(contract("c"), actor="ann")
    reg.contracts.retire("c", "1.0.0", actor="ann")
    with pytest.raises(ValidationError, match="retired"):
        reg.jobs.save(job("j", "c"))
    reg.jobs.save({**job("j", "c"), "enabled": False})  # a disabled job may keep it


def test_a_run_of_a_job_disabled_meanwhile_is_not_started(backend: DocumentBackend) -> None:
    reg = registries(backend)
    reg.contracts.publish(contract("c"), actor="ann")
    reg.jobs.save(job("j", "c"))
    reg.jobs.save({**job("j", "c"), "enabled": False})
    with pytest.raises(ConflictError, match="disabled"):
        reg.runs.start("j", idempotency_key="k")
    assert reg.runs.find_by_idempotency_key("k") is None


# -- races -----------------------------------------------------------------------------


def _setup_rounds(backend: DocumentBackend, rounds: int) -> None:
    reg = registries(backend)
    for r in range(rounds):
        reg.contracts.publish(contract(f"c{r}"), actor="setup")
        reg.actions.save(profile(f"p{r}"))


def _act(reg: Registries, race: str, worker: int, r: int) -> bool:
    """One worker's move in round ``r``; True if it succeeded."""
    try:
        if race == "publish":
            return reg.contracts.publish(contract(f"c{r}"), actor=f"w{worker}").created
        if worker % 2 == 0:
            if race == "retire":
                reg.contracts.retire(f"c{r}", "1.0.0", actor=f"w{worker}")
            else:
                reg.actions.delete(f"p{r}")
        else:
            reg.jobs.save(job(f"j{r}-{worker}", f"c{r}", profile_id=f"p{r}"))
    except (ConflictError, NotFoundError, ValidationError):
        return False
    return True


def _worker(factory: Factory, race: str, worker: int, rounds: int, gate: Any, wins: Any) -> None:
    backend = factory()
    try:
        reg = registries(backend)
        for r in range(rounds):
            gate.wait(60)
            if _act(reg, race, worker, r):
                with wins.get_lock():
                    wins[r * WORKERS + worker] = 1
    finally:
        backend.close()


def _race(backend: DocumentBackend, factory: Factory, race: str, rounds: int) -> list[list[int]]:
    """Run ``WORKERS`` workers for ``rounds`` rounds; wins[r] lists who succeeded."""
    if _in_memory(backend):
        gate: Any = threading.Barrier(WORKERS)
        flags = [0] * (rounds * WORKERS)

        def run(worker: int) -> None:
            reg = registries(backend)
            for r in range(rounds):
                gate.wait(60)
                if _act(reg, race, worker, r):
                    flags[r * WORKERS + worker] = 1

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(run, range(WORKERS)))
    else:
        ctx = multiprocessing.get_context("spawn")
        gate = ctx.Barrier(WORKERS)
        shared = ctx.Array("i", rounds * WORKERS)
        procs = [
            ctx.Process(target=_worker, args=(factory, race, w, rounds, gate, shared))
            for w in range(WORKERS)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(600)
        assert [p.exitcode for p in procs] == [0] * WORKERS
        flags = list(shared)
    return [[w for w in range(WORKERS) if flags[r * WORKERS + w]] for r in range(rounds)]


def _enabled_jobs_of(reg: Registries, **filters: str) -> list[str]:
    return [j.item.id for j in reg.jobs.list(enabled=True, limit=1000, **filters).items]


def _rounds(request: pytest.FixtureRequest) -> int:
    return (
        AZURE_ROUNDS if request.node.callspec.params.get("backend_factory") == "azure" else ROUNDS
    )


def _check_removal_race(backend: DocumentBackend, factory: Factory, race: str, rounds: int) -> None:
    _setup_rounds(backend, rounds)
    wins = _race(backend, factory, race, rounds)
    reg = registries(backend)
    for r, winners in enumerate(wins):
        removed = any(w % 2 == 0 for w in winners)
        saved = [w for w in winners if w % 2 == 1]
        assert not (removed and saved), f"round {r}: removal and job saves {saved} all succeeded"
        users = _enabled_jobs_of(reg, contract_id=f"c{r}")
        assert sorted(users) == sorted(f"j{r}-{w}" for w in saved)
        if race == "retire":
            status = reg.contracts.get(f"c{r}", "1.0.0").status
            assert (status == "retired") == removed
            assert not (status == "retired" and users), f"round {r}: retired but used by {users}"
        else:
            try:
                reg.actions.get(f"p{r}")
                gone = False
            except NotFoundError:
                gone = True
            assert gone == removed
            assert not (gone and users), f"round {r}: profile deleted but used by {users}"


def _check_publish_race(backend: DocumentBackend, factory: Factory, rounds: int) -> None:
    wins = _race(backend, factory, "publish", rounds)
    reg = registries(backend)
    for r, winners in enumerate(wins):
        assert len(winners) == 1, f"round {r}: created={winners}"
        assert [v.item.version for v in reg.contracts.list(contract_id=f"c{r}").items] == ["1.0.0"]


@pytest.mark.parametrize("race", ["retire", "delete"])
def test_removing_a_target_and_saving_a_job_that_references_it_never_both_succeed(
    backend: DocumentBackend, backend_factory: Factory, race: str, request: pytest.FixtureRequest
) -> None:
    _check_removal_race(backend, backend_factory, race, _rounds(request))


def test_identical_publishes_racing_create_once_and_return_the_rest(
    backend: DocumentBackend, backend_factory: Factory, request: pytest.FixtureRequest
) -> None:
    _check_publish_race(backend, backend_factory, _rounds(request))


@pytest.mark.slow
@pytest.mark.azure
@pytest.mark.parametrize("race", ["retire", "delete", "publish"])
def test_full_size_races_on_azurite(request: pytest.FixtureRequest, race: str) -> None:
    azure_blob = pytest.importorskip("dq_stores.azure_blob")
    conn = request.getfixturevalue("azure_connection_string")
    container = request.getfixturevalue("azure_container")
    factory = functools.partial(azure_blob.AzureBlobBackend, container, connection_string=conn)
    with factory() as backend:
        if race == "publish":
            _check_publish_race(backend, factory, ROUNDS)
        else:
            _check_removal_race(backend, factory, race, ROUNDS)


def test_racing_idempotent_starts_give_one_run_on_every_backend(
    backend: DocumentBackend,
) -> None:
    reg = registries(backend)
    reg.contracts.publish(contract("c"), actor="ann")
    reg.jobs.save(job("j", "c"))
    barrier = threading.Barrier(8)

    def start(_: int) -> str:
        barrier.wait()
        return reg.runs.start("j", idempotency_key="nightly").run_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(start, range(8)))
    assert len(ids) == 1
    assert len(reg.runs.list(job_id="j").items) == 1


def test_errors_are_ours(backend: DocumentBackend) -> None:
    reg = registries(backend)
    with pytest.raises(DQError):
        reg.jobs.save(job("j", "nope"))
