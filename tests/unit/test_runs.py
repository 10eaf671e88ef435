"""JobRunRegistry: start/idempotency, state machine, checkpoints, results, listing, reports."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import (
    ConflictError,
    IllegalTransitionError,
    MisconfiguredError,
    NotFoundError,
    ValidationError,
)
from dq_metadata.models import JobDefinition, RunStatus
from dq_metadata.scope import Scope
from dq_registries.domain.runs import JobRunRegistry
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore

SCOPE = Scope("acme", "dev")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def add_job(
    backend: MemoryBackend, job_id: str = "nightly", scope: Scope = SCOPE, **extra: Any
) -> None:
    JobDefinitionStore(backend).put(
        scope,
        JobDefinition.model_validate(
            {
                "id": job_id,
                "name": job_id,
                "job_type": "validation",
                "contract": {"id": "orders", "version": "1.0.0"},
                "dataset": "orders",
                **extra,
            }
        ),
    )


@pytest.fixture
def backend() -> MemoryBackend:
    backend = MemoryBackend()
    add_job(backend)
    add_job(backend, "hourly")
    return backend


@pytest.fixture
def results() -> MemoryResultsStore:
    return MemoryResultsStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runs(backend: MemoryBackend, results: MemoryResultsStore, clock: Clock) -> JobRunRegistry:
    return JobRunRegistry(
        SCOPE,
        JobRunStore(backend),
        reports=ReportStore(backend),
        job_definitions=JobDefinitionStore(backend),
        results=results,
        inline_result_limit=1024,
        clock=clock,
    )


def running(runs: JobRunRegistry, job_id: str = "nightly") -> str:
    run_id = runs.start(job_id).run_id
    runs.mark_running(run_id)
    return run_id


# -- start and idempotency ------------------------------------------------------------
def test_start_queues_a_run_of_an_existing_job(runs: JobRunRegistry) -> None:
    run = runs.start("nightly", triggered_by="scheduler")
    assert run.status is RunStatus.QUEUED
    assert run.triggered_by == "scheduler"
    assert runs.get(run.run_id) == run


def test_start_refuses_unknown_and_disabled_jobs(
    runs: JobRunRegistry, backend: MemoryBackend
) -> None:
    with pytest.raises(NotFoundError):
        runs.start("ghost")
    add_job(backend, "paused", enabled=False)
    with pytest.raises(ConflictError, match="disabled"):
        runs.start("paused")
    assert JobRunStore(backend).count(SCOPE) == 0


def test_a_retried_start_with_the_same_key_returns_the_same_run(
    runs: JobRunRegistry, backend: MemoryBackend
) -> None:
    first = runs.start("nightly", idempotency_key="2026-03-01")
    runs.mark_running(first.run_id)
    again = runs.start("nightly", idempotency_key="2026-03-01")
    assert again.run_id == first.run_id
    assert again.status is RunStatus.RUNNING
    assert runs.find_by_idempotency_key("2026-03-01") == again
    assert runs.start("nightly", idempotency_key="2026-03-02").run_id != first.run_id
    assert JobRunStore(backend).count(SCOPE) == 2


def test_a_key_already_used_by_another_job_is_a_conflict(runs: JobRunRegistry) -> None:
    runs.start("nightly", idempotency_key="k")
    with pytest.raises(ConflictError, match="nightly"):
        runs.start("hourly", idempotency_key="k")


def test_concurrent_starts_with_one_key_create_one_run(
    runs: JobRunRegistry, backend: MemoryBackend
) -> None:
    barrier = threading.Barrier(12)
    seen: list[str] = []

    def start() -> None:
        barrier.wait()
        seen.append(runs.start("nightly", idempotency_key="once").run_id)

    threads = [threading.Thread(target=start) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 12
    assert len(set(seen)) == 1
    assert JobRunStore(backend).count(SCOPE) == 1


def test_idempotency_scope_day_dedupes_within_a_utc_day(
    backend: MemoryBackend, runs: JobRunRegistry, clock: Clock
) -> None:
    add_job(backend, "daily", idempotency_scope="day")
    first = runs.start("daily", idempotency_key="k")
    assert runs.start("daily", idempotency_key="k").run_id == first.run_id
    clock.now += timedelta(days=1)
    assert runs.start("daily", idempotency_key="k").run_id != first.run_id


def test_idempotency_scope_trigger_dedupes_per_trigger(
    backend: MemoryBackend, runs: JobRunRegistry
) -> None:
    add_job(backend, "evented", idempotency_scope="trigger")
    a = runs.start("evented", idempotency_key="k", triggered_by="event-1")
    assert runs.start("evented", idempotency_key="k", triggered_by="event-1").run_id == a.run_id
    assert runs.start("evented", idempotency_key="k", triggered_by="event-2").run_id != a.run_id


# -- state machine ----------------------------------------------------------------------
# Written out independently of the implementation's table on purpose.
LEGAL = {
    ("queued", "running"),
    ("queued", "failed"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
}


def _apply(runs: JobRunRegistry, run_id: str, to: str) -> None:
    if to == "running":
        runs.mark_running(run_id)
    elif to == "cancelled":
        runs.cancel(run_id, reason="operator")
    else:
        runs.finish(run_id, to)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["running", "succeeded", "failed", "cancelled"]), max_size=6))
def test_state_machine_allows_exactly_the_documented_transitions(steps: list[str]) -> None:
    backend = MemoryBackend()
    add_job(backend)
    runs = JobRunRegistry(
        SCOPE,
        JobRunStore(backend),
        reports=ReportStore(backend),
        job_definitions=JobDefinitionStore(backend),
        results=MemoryResultsStore(),
    )
    run_id = runs.start("nightly").run_id
    state = "queued"
    for to in steps:
        revision = runs.get_versioned(run_id).revision
        if (state, to) in LEGAL:
            _apply(runs, run_id, to)
            state = to
        else:
            with pytest.raises(IllegalTransitionError):
                _apply(runs, run_id, to)
            assert runs.get_versioned(run_id).revision == revision  # nothing written
        assert runs.get(run_id).status.value == state


def test_timestamps_and_reasons_are_recorded(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    started = runs.get(run_id).started_at
    assert started is not None
    cancelled = runs.cancel(run_id, reason="maintenance window")
    assert cancelled.cancel_reason == "maintenance window"
    assert cancelled.finished_at is not None
    assert cancelled.finished_at > started
    assert [r.item.status.value for r in runs.history(run_id) if r.item] == [
        "queued",
        "running",
        "cancelled",
    ]


def test_finish_only_accepts_succeeded_or_failed(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    for status in ("cancelled", "queued", "done"):
        with pytest.raises(ValidationError):
            runs.finish(run_id, status)  # type: ignore[arg-type]
    assert runs.get(run_id).status is RunStatus.RUNNING


def test_concurrent_finishers_exactly_one_wins(
    runs: JobRunRegistry, results: MemoryResultsStore
) -> None:
    run_id = running(runs)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def finish(i: int) -> None:
        barrier.wait()
        try:
            runs.finish(run_id, "succeeded" if i % 2 else "failed", results={"x": "y" * 4000})
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    final = runs.get(run_id)
    assert final.result_object is not None
    # every loser removed its upload: only the winner's object is left
    assert len(results._objects) == 1
    obj = final.result_object
    assert set(results._objects) == {(obj.tenant, obj.environment, obj.run_id, obj.name)}


# -- checkpoints and metrics --------------------------------------------------------------
def test_checkpoint_results_are_appended_in_order(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    runs.record_checkpoint(run_id, {"name": "not-null", "passed": True})
    runs.record_checkpoint(run_id, {"name": "unique", "passed": False, "observed": {"dupes": 3}})
    runs.record_checkpoint(run_id, {"name": "unique", "passed": False, "observed": {"dupes": 3}})
    with pytest.raises(ConflictError):
        runs.record_checkpoint(run_id, {"name": "unique", "passed": True})
    assert [c.name for c in runs.get(run_id).checkpoint_results] == ["not-null", "unique"]


def test_checkpoints_need_a_running_run_and_a_valid_result(runs: JobRunRegistry) -> None:
    run_id = runs.start("nightly").run_id
    with pytest.raises(IllegalTransitionError):
        runs.record_checkpoint(run_id, {"name": "c", "passed": True})
    runs.mark_running(run_id)
    with pytest.raises(ValidationError):
        runs.record_checkpoint(run_id, {"name": "", "passed": True})
    with pytest.raises(ValidationError):
        runs.record_checkpoint(run_id, {"name": "c", "passed": True, "severity": "meh"})


def test_concurrent_checkpoint_recorders_all_land(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    barrier = threading.Barrier(6)

    def record(i: int) -> None:
        barrier.wait()
        runs.record_checkpoint(run_id, {"name": f"c{i}", "passed": True})

    threads = [threading.Thread(target=record, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.name for c in runs.get(run_id).checkpoint_results) == [
        f"c{i}" for i in range(6)
    ]


@pytest.mark.parametrize(
    "metrics", [{"rows": float("nan")}, {"rows": "many"}, {"": 1.0}, {"rows": float("inf")}]
)
def test_bad_metrics_are_rejected_before_anything_is_written(
    runs: JobRunRegistry, results: MemoryResultsStore, metrics: dict[str, Any]
) -> None:
    run_id = running(runs)
    revision = runs.get_versioned(run_id).revision
    with pytest.raises(ValidationError):
        runs.finish(run_id, "succeeded", metrics=metrics, results=b"x" * 5000)
    assert runs.get_versioned(run_id).revision == revision
    assert results._objects == {}


# -- results --------------------------------------------------------------------------------
def read(runs: JobRunRegistry, run_id: str) -> bytes:
    return b"".join(runs.open_results(run_id))


def test_small_mapping_results_stay_inline(
    runs: JobRunRegistry, results: MemoryResultsStore
) -> None:
    run_id = running(runs)
    payload = {"failed_rows": [1, 2, 3], "summary": {"ok": False}}
    run = runs.finish(run_id, "failed", metrics={"rows": 10}, results=payload, error="3 bad rows")
    assert run.results == payload
    assert run.result_object is None
    assert run.error == "3 bad rows"
    assert read(runs, run_id) == canonical_json(payload)
    assert results._objects == {}


def test_large_mapping_results_go_to_the_results_store(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    payload = {"rows": [{"id": i, "v": "x" * 20} for i in range(200)]}
    run = runs.finish(run_id, "succeeded", results=payload)
    body = canonical_json(payload)
    assert run.results is None
    assert run.result_object is not None
    assert run.result_object.size == len(body)
    assert run.result_object.sha256 == content_hash(body)
    assert run.result_object.content_type == "application/json"
    assert read(runs, run_id) == body


@pytest.mark.parametrize(
    "make",
    [
        lambda data: data,
        io.BytesIO,
        lambda data: (data[i : i + 100] for i in range(0, len(data), 100)),
    ],
    ids=["bytes", "file", "chunks"],
)
def test_bytes_and_streams_are_stored_as_objects(
    runs: JobRunRegistry, make: Callable[[bytes], Any]
) -> None:
    data = bytes(range(256)) * 9
    run_id = running(runs)
    run = runs.finish(run_id, "succeeded", results=make(data), content_type="text/csv")
    assert run.result_object is not None
    assert run.result_object.content_type == "text/csv"
    assert run.result_object.sha256 == content_hash(data)
    assert read(runs, run_id) == data


def test_invalid_results_are_rejected(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    for bad in ("text", 42, {"x": object()}):
        with pytest.raises(ValidationError):
            runs.finish(run_id, "succeeded", results=bad)  # type: ignore[arg-type]
    assert runs.get(run_id).status is RunStatus.RUNNING


def test_results_without_any_are_not_found(runs: JobRunRegistry) -> None:
    run_id = running(runs)
    runs.finish(run_id, "succeeded")
    with pytest.raises(NotFoundError):
        runs.open_results(run_id)


def test_large_results_need_a_results_store(backend: MemoryBackend) -> None:
    runs = JobRunRegistry(
        SCOPE,
        JobRunStore(backend),
        reports=ReportStore(backend),
        job_definitions=JobDefinitionStore(backend),
        inline_result_limit=10,
    )
    run_id = running(runs)
    with pytest.raises(MisconfiguredError):
        runs.finish(run_id, "succeeded", results={"x": "y" * 100})
    assert runs.get(run_id).status is RunStatus.RUNNING
    assert runs.finish(run_id, "succeeded", results={"x": 1}).results == {"x": 1}


# -- listing --------------------------------------------------------------------------------
def test_lists_newest_first_by_job_status_and_time_window(
    runs: JobRunRegistry, backend: MemoryBackend, clock: Clock
) -> None:
    ids = []
    for i in range(6):
        run_id = runs.start("nightly" if i % 2 == 0 else "hourly").run_id
        ids.append(run_id)
        if i < 3:
            runs.mark_running(run_id)
    created = [runs.get(r).created_at for r in ids]

    def listed(**kwargs: Any) -> list[str]:
        return [v.item.run_id for v in runs.list(**kwargs).items]

    assert listed() == ids[::-1]
    assert listed(job_id="nightly") == [ids[4], ids[2], ids[0]]
    assert listed(status="running") == [ids[2], ids[1], ids[0]]
    assert listed(status=["queued"], job_id="hourly") == [ids[5], ids[3]]
    assert listed(since=created[2], until=created[4]) == [ids[3], ids[2]]
    with pytest.raises(ValidationError):
        runs.list(since=created[4], until=created[2])
    with pytest.raises(ValidationError):
        runs.list(since=datetime(2026, 1, 1))  # naive
    with pytest.raises(ValidationError):
        runs.list(status="paused")


def test_pagination_never_repeats_or_skips(runs: JobRunRegistry) -> None:
    ids = [runs.start("nightly").run_id for _ in range(11)]
    seen: list[str] = []
    token = None
    while True:
        page = runs.list(limit=4, page_token=token)
        seen.extend(v.item.run_id for v in page.items)
        token = page.next_token
        if token is None:
            break
    assert seen == ids[::-1]


def test_all_environments_lists_the_whole_tenant(
    backend: MemoryBackend, results: MemoryResultsStore, clock: Clock
) -> None:
    prod = Scope("acme", "prod")
    add_job(backend, scope=prod)
    add_job(backend, scope=Scope("globex", "dev"))
    dev_runs = JobRunRegistry(
        SCOPE,
        JobRunStore(backend),
        reports=ReportStore(backend),
        job_definitions=JobDefinitionStore(backend),
        results=results,
        clock=clock,
    )
    prod_runs = JobRunRegistry(
        prod,
        JobRunStore(backend),
        reports=ReportStore(backend),
        job_definitions=JobDefinitionStore(backend),
        results=results,
        clock=clock,
    )
    other = JobRunRegistry(
        Scope("globex", "dev"),
        JobRunStore(backend),
        reports=ReportStore(backend),
        job_definitions=JobDefinitionStore(backend),
        clock=clock,
    )
    a = dev_runs.start("nightly").run_id
    b = prod_runs.start("nightly").run_id
    other.start("nightly")
    assert [v.item.run_id for v in dev_runs.list().items] == [a]
    page = dev_runs.list(all_environments=True)
    assert [(v.scope.environment, v.item.run_id) for v in page.items] == [("prod", b), ("dev", a)]


# -- reports ---------------------------------------------------------------------------------
def test_reports_attach_to_an_existing_run_and_a_dataset(
    runs: JobRunRegistry, backend: MemoryBackend
) -> None:
    run_id = running(runs)
    other = running(runs, "hourly")
    first = runs.attach_report(run_id, dataset="orders", title="Orders", summary={"bad": 3})
    runs.attach_report(run_id, dataset="order_lines", content="# ok", format="markdown")
    runs.attach_report(other, dataset="orders")
    assert first.job_id == "nightly"
    assert runs.get_report(first.report_id) == first
    assert len(runs.list_reports(run_id=run_id).items) == 2
    assert len(runs.list_reports(dataset="orders").items) == 2
    assert [v.item.report_id for v in runs.list_reports(run_id=run_id, dataset="orders").items] == [
        first.report_id
    ]
    with pytest.raises(NotFoundError):
        runs.attach_report("run-ghost", dataset="orders")
    with pytest.raises(ValidationError):
        runs.attach_report(run_id, dataset="orders", format="pdf")
    with pytest.raises(ValidationError):
        runs.attach_report(run_id, dataset="")
    assert ReportStore(backend).count(SCOPE) == 3
