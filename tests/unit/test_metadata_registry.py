"""MetadataRegistry: read-only run metadata through the RunReader protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dq_metadata.errors import NotFoundError, ValidationError
from dq_metadata.models import JobDefinition, RunStatus
from dq_metadata.registry import MetadataRegistry, RunReader
from dq_metadata.scope import Scope
from dq_registries.domain.runs import JobRunRegistry
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore

SCOPE = Scope("acme", "dev")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=10)
        return self.now


@pytest.fixture
def store() -> JobRunStore:
    backend = MemoryBackend()
    for job_id in ("nightly", "hourly"):
        JobDefinitionStore(backend).put(
            SCOPE,
            JobDefinition.model_validate(
                {
                    "id": job_id,
                    "name": job_id,
                    "job_type": "validation",
                    "contract": {"id": "orders", "version": "1.0.0"},
                    "dataset": "orders",
                }
            ),
        )
    return JobRunStore(backend)


@pytest.fixture
def runs(store: JobRunStore) -> JobRunRegistry:
    return JobRunRegistry(
        SCOPE,
        store,
        reports=ReportStore(store.backend),
        job_definitions=JobDefinitionStore(store.backend),
        results=MemoryResultsStore(),
        inline_result_limit=64,
        clock=Clock(),
    )


def test_job_run_store_is_a_run_reader(store: JobRunStore) -> None:
    reader: RunReader = store  # checked statically by mypy, structurally
    assert MetadataRegistry(reader, SCOPE).runs_for_job("nightly") == []


def test_run_metadata_summarises_a_finished_run(store: JobRunStore, runs: JobRunRegistry) -> None:
    run_id = runs.start("nightly", triggered_by="cron").run_id
    runs.mark_running(run_id)
    runs.record_checkpoint(run_id, {"name": "not-null", "passed": True})
    runs.record_checkpoint(run_id, {"name": "unique", "passed": False})
    runs.finish(run_id, "failed", metrics={"rows": 5}, results={"bad": "x" * 100}, error="dupes")

    meta = MetadataRegistry(store, SCOPE).run_metadata(run_id)
    assert meta.status is RunStatus.FAILED
    assert meta.revision == 5
    assert meta.duration_seconds == 10.0  # started at +20 s, finished at +30 s
    assert meta.checkpoints_total == 2
    assert meta.failed_checkpoints == ("unique",)
    assert meta.results == "object"
    assert meta.result_size is not None
    assert meta.result_size > 64
    as_dict = meta.to_dict()
    assert as_dict["tenant"] == "acme"
    assert as_dict["status"] == "failed"
    assert as_dict["triggered_by"] == "cron"
    assert as_dict["metrics"] == {"rows": 5.0}


def test_latest_run_and_runs_for_job_are_newest_first(
    store: JobRunStore, runs: JobRunRegistry
) -> None:
    registry = MetadataRegistry(store, SCOPE)
    assert registry.latest_run("nightly") is None
    ids = [runs.start("nightly").run_id for _ in range(4)]
    runs.start("hourly")
    runs.mark_running(ids[1])
    runs.finish(ids[1], "succeeded", results={"ok": True})
    latest = registry.latest_run("nightly")
    assert latest is not None
    assert latest.run_id == ids[3]
    succeeded = registry.latest_run("nightly", status=RunStatus.SUCCEEDED)
    assert succeeded is not None
    assert succeeded.run_id == ids[1]
    assert succeeded.results == "inline"
    assert [m.run_id for m in registry.runs_for_job("nightly", limit=3)] == ids[:0:-1]


def test_reads_are_scoped_and_validated(store: JobRunStore, runs: JobRunRegistry) -> None:
    run_id = runs.start("nightly").run_id
    with pytest.raises(NotFoundError):
        MetadataRegistry(store, Scope("acme", "prod")).run_metadata(run_id)
    registry = MetadataRegistry(store, SCOPE)
    with pytest.raises(ValidationError):
        registry.run_metadata("")
    with pytest.raises(ValidationError):
        registry.runs_for_job("nightly", limit=0)
