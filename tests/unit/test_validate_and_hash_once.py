"""Each registry operation validates each new document once and hashes each body once.

The counters wrap pydantic's validation entry points (``TypeAdapter.validate_python``
/ ``validate_json``, ``BaseModel.__init__`` / ``model_validate``) and our own
``content_hash`` wherever a module of ours imported it, so a second validation or
hash anywhere on the write path fails these tests. Reads of stored documents
(``validate_json``) are counted apart: an operation that must read the current
revision shows exactly those reads.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest

from dq_metadata import canonical
from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_registries.domain.runs import JobRunRegistry
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, DocumentWrite
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.typed import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    ReportStore,
)

SCOPE = Scope("acme", "dev")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or type(tp).__name__


@dataclass
class Counts:
    """What one operation did: validations of new data, decodes of stored data, hashes."""

    validated: Counter[str] = field(default_factory=Counter)
    decoded: Counter[str] = field(default_factory=Counter)
    hashed: Counter[bytes] = field(default_factory=Counter)

    def reset(self) -> None:
        self.validated.clear()
        self.decoded.clear()
        self.hashed.clear()


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    seen = Counts()
    validate_python = pydantic.TypeAdapter.validate_python
    validate_json = pydantic.TypeAdapter.validate_json
    model_init = pydantic.BaseModel.__init__
    model_validate = pydantic.BaseModel.model_validate.__func__  # type: ignore[attr-defined]
    original_hash = canonical.content_hash

    def counted_python(self: pydantic.TypeAdapter[Any], *args: Any, **kwargs: Any) -> Any:
        seen.validated[_name(self._type)] += 1
        return validate_python(self, *args, **kwargs)

    def counted_json(self: pydantic.TypeAdapter[Any], *args: Any, **kwargs: Any) -> Any:
        seen.decoded[_name(self._type)] += 1
        return validate_json(self, *args, **kwargs)

    def counted_init(self: pydantic.BaseModel, /, **data: Any) -> None:
        seen.validated[type(self).__name__] += 1
        model_init(self, **data)

    def counted_validate(cls: type[pydantic.BaseModel], *args: Any, **kwargs: Any) -> Any:
        seen.validated[cls.__name__] += 1
        return model_validate(cls, *args, **kwargs)

    def counted_hash(data: bytes) -> str:
        seen.hashed[bytes(data)] += 1
        return original_hash(data)

    monkeypatch.setattr(pydantic.TypeAdapter, "validate_python", counted_python)
    monkeypatch.setattr(pydantic.TypeAdapter, "validate_json", counted_json)
    monkeypatch.setattr(pydantic.BaseModel, "__init__", counted_init)
    monkeypatch.setattr(pydantic.BaseModel, "model_validate", classmethod(counted_validate))
    for name, module in list(sys.modules.items()):
        if name.startswith("dq_") and getattr(module, "content_hash", None) is original_hash:
            monkeypatch.setattr(module, "content_hash", counted_hash)
    return seen


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["memory", "filesystem"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    made: DocumentBackend = (
        MemoryBackend() if request.param == "memory" else FilesystemBackend(tmp_path / "dq")
    )
    with made:
        yield made


CONTRACT = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "string"}]}],
}
PROFILE = {"id": "quarantine", "name": "q", "action_type": "quarantine", "target": "q"}
JOB = {
    "id": "nightly",
    "name": "Nightly orders",
    "job_type": "validation",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
    "on_failure": ["quarantine"],
}

#: ``JobDefinition.trigger``'s default factory builds one (a default, not a re-check).
DEFAULT_TRIGGER = {"ManualTrigger": 1}


@dataclass
class Registries:
    contracts: ContractRegistry
    actions: ActionProfileRegistry
    jobs: JobDefinitionRegistry
    runs: JobRunRegistry


@pytest.fixture
def dq(backend: DocumentBackend) -> Registries:
    contracts, jobs = ContractStore(backend), JobDefinitionStore(backend)
    profiles = ActionProfileStore(backend)
    return Registries(
        ContractRegistry(SCOPE, contracts, job_definitions=jobs, clock=Clock()),
        ActionProfileRegistry(SCOPE, profiles, job_definitions=jobs),
        JobDefinitionRegistry(SCOPE, jobs, contracts=contracts, action_profiles=profiles),
        JobRunRegistry(
            SCOPE,
            JobRunStore(backend),
            reports=ReportStore(backend),
            job_definitions=jobs,
            results=MemoryResultsStore(),
            inline_result_limit=64,
            clock=Clock(),
        ),
    )


def measure(counts: Counts, operation: Callable[[], Any]) -> Counts:
    counts.reset()
    operation()
    return Counts(Counter(counts.validated), Counter(counts.decoded), Counter(counts.hashed))


def assert_each_body_hashed_once(seen: Counts, bodies: int) -> None:
    assert len(seen.hashed) == bodies, seen.hashed
    assert set(seen.hashed.values()) == {1}, "a body was hashed more than once"


def test_publish_validates_each_document_once_and_hashes_each_body_once(
    dq: Registries, counts: Counts
) -> None:
    seen = measure(counts, lambda: dq.contracts.publish(CONTRACT, actor="me"))

    # the ODCS document, the version record around it, and the contract's head with
    # its search tokens
    assert seen.validated == Counter(
        {
            "DataContract": 1,
            "ContractVersion": 1,
            "LifecycleEvent": 1,
            "ContractHead": 1,
            "ContractSearchTokens": 1,
        }
    )
    assert_each_body_hashed_once(seen, bodies=2)  # the version and the head
    assert seen.decoded == Counter()  # nothing to read back in an empty scope


def test_action_profile_and_job_saves_validate_once_and_hash_once(
    dq: Registries, counts: Counts
) -> None:
    dq.contracts.publish(CONTRACT, actor="me")

    seen = measure(counts, lambda: dq.actions.save(PROFILE))
    assert sum(seen.validated.values()) == 1
    assert_each_body_hashed_once(seen, bodies=1)

    # The job plus one usage stamp per referenced target (the contract and the
    # profile), written in the same atomic commit (ADR 0011): each built and hashed once.
    stamps = {"UsageStamp": 2}
    seen = measure(counts, lambda: dq.jobs.save(JOB))
    assert seen.validated == Counter({"JobDefinition": 1, **DEFAULT_TRIGGER, **stamps})
    assert_each_body_hashed_once(seen, bodies=3)
    # reading what the references point at: the contract version (its datasets); the
    # profile is only checked for existence and revision, from the stored document
    assert seen.decoded == Counter({"ContractVersion": 1})

    changed = {**JOB, "name": "renamed"}
    seen = measure(counts, lambda: dq.jobs.save(changed))  # an update: no re-encode on retry
    assert seen.validated == Counter({"JobDefinition": 1, **DEFAULT_TRIGGER, **stamps})
    assert_each_body_hashed_once(seen, bodies=3)

    seen = measure(counts, lambda: dq.jobs.save(changed))  # unchanged: no new revision
    assert seen.validated == Counter({"JobDefinition": 1, **DEFAULT_TRIGGER})
    assert_each_body_hashed_once(seen, bodies=1)
    assert dq.jobs.get_versioned("nightly").revision == 2


def test_run_lifecycle_validates_the_run_once_per_operation(dq: Registries, counts: Counts) -> None:
    dq.contracts.publish(CONTRACT, actor="me")
    dq.actions.save(PROFILE)
    dq.jobs.save(JOB)

    seen = measure(counts, lambda: dq.runs.start("nightly", idempotency_key="k1"))
    assert seen.validated == Counter({"JobRun": 1})
    assert_each_body_hashed_once(seen, bodies=1)
    assert seen.decoded == Counter({"JobDefinition": 1})  # is the job there and enabled?
    run_id = dq.runs.find_by_idempotency_key("k1").run_id  # type: ignore[union-attr]

    seen = measure(counts, lambda: dq.runs.start("nightly", idempotency_key="k1"))  # retry
    assert seen.validated == Counter({"JobRun": 1})
    assert seen.decoded == Counter({"JobDefinition": 1, "JobRun": 1})

    seen = measure(counts, lambda: dq.runs.mark_running(run_id))
    assert seen.validated == Counter({"JobRun": 1})
    assert seen.decoded == Counter({"JobRun": 1})
    assert_each_body_hashed_once(seen, bodies=1)

    check = {"name": "not-null", "passed": True}
    seen = measure(counts, lambda: dq.runs.record_checkpoint(run_id, check))
    assert seen.validated == Counter({"CheckpointResult": 1})  # the run is not re-checked
    assert seen.decoded == Counter({"JobRun": 1})
    assert_each_body_hashed_once(seen, bodies=1)

    seen = measure(counts, lambda: dq.runs.attach_report(run_id, dataset="orders"))
    assert seen.validated == Counter({"Report": 1})
    assert_each_body_hashed_once(seen, bodies=1)

    big = {"rows": list(range(100))}  # above the 64-byte inline limit: uploaded
    seen = measure(
        counts, lambda: dq.runs.finish(run_id, "succeeded", metrics={"r": 1.0}, results=big)
    )
    assert seen.validated == Counter({"JobRun": 1, "ResultObject": 1})
    assert seen.decoded == Counter({"JobRun": 1})
    assert_each_body_hashed_once(seen, bodies=1)
    assert dq.runs.get(run_id).result_object is not None


def test_finish_with_inline_results_validates_the_run_once(dq: Registries, counts: Counts) -> None:
    dq.contracts.publish(CONTRACT, actor="me")
    dq.actions.save(PROFILE)
    dq.jobs.save(JOB)
    run_id = dq.runs.start("nightly").run_id

    seen = measure(counts, lambda: dq.runs.finish(run_id, "failed", results={"n": 1}, error="x"))

    assert seen.validated == Counter({"JobRun": 1})
    assert_each_body_hashed_once(seen, bodies=1)
    assert dq.runs.get(run_id).results == {"n": 1}


def test_a_typed_store_trusts_its_own_model_but_validates_anything_else(
    dq: Registries, counts: Counts
) -> None:
    store = dq.actions.store
    item = store.validate(PROFILE)

    seen = measure(counts, lambda: store.put(SCOPE, item))
    assert seen.validated == Counter()
    assert_each_body_hashed_once(seen, bodies=1)

    seen = measure(counts, lambda: store.put(SCOPE, dict(PROFILE)))
    assert sum(seen.validated.values()) == 1


def test_the_port_rehashes_any_write_it_did_not_see_hashed(backend: DocumentBackend) -> None:
    trusted = DocumentWrite.hashing("k", b'{"a":1}')
    assert trusted.hash_is_derived
    # replace() builds a new write through the constructor: the flag does not survive,
    # so a body swapped after hashing is caught instead of stored under a stale hash.
    swapped = replace(trusted, body=b'{"a":2}')
    assert not swapped.hash_is_derived
    with pytest.raises(ValidationError, match="invalid document"):
        backend.put(SCOPE, "doc", swapped, ANY)
    claimed = DocumentWrite("k", b'{"a":1}', "0" * 64)
    with pytest.raises(ValidationError, match="invalid document"):
        backend.put(SCOPE, "doc", claimed, ANY)
    assert backend.put(SCOPE, "doc", trusted, ANY).sha256 == trusted.sha256
