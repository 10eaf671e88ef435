"""Heartbeats, the reaper and ``runs.running`` on every backend.

The reaper races a late finisher (and a heartbeat) in threads on the real stores:
each write is conditional on the revision read, so exactly one of them wins.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support.backends import BACKENDS, backend_factory

from dq_metadata.errors import ConflictError, IllegalTransitionError, ValidationError
from dq_metadata.models import JobDefinition, RunStatus
from dq_metadata.scope import Scope
from dq_registries.domain.runs import JobRunRegistry
from dq_registries.domain.runs.liveness import REAPED_PREFIX
from dq_stores.backend import DocumentBackend
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore

SCOPE = Scope("acme", "prod")
HOUR = timedelta(hours=1)


class Clock:
    """A settable clock (registries of one test share or offset it)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    made = backend_factory(request, tmp_path)()
    yield made
    made.close()


def registry(backend: DocumentBackend, clock: Callable[[], datetime]) -> JobRunRegistry:
    jobs = JobDefinitionStore(backend)
    return JobRunRegistry(
        SCOPE, JobRunStore(backend), reports=ReportStore(backend), job_definitions=jobs, clock=clock
    )


def add_job(backend: DocumentBackend, job_id: str = "nightly") -> None:
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


def running_run(runs: JobRunRegistry) -> str:
    run = runs.start("nightly")
    return runs.mark_running(run.run_id).run_id


def test_heartbeat_records_liveness_and_is_refused_once_finished(backend: DocumentBackend) -> None:
    add_job(backend)
    clock = Clock()
    runs = registry(backend, clock)
    run_id = running_run(runs)
    assert runs.get(run_id).last_heartbeat_at is None
    clock.now += timedelta(minutes=5)
    assert runs.heartbeat(run_id).last_heartbeat_at == clock.now
    runs.finish(run_id, "succeeded")
    with pytest.raises(IllegalTransitionError, match="no heartbeat"):
        runs.heartbeat(run_id)


def test_reap_fails_only_running_runs_without_a_recent_sign_of_life(
    backend: DocumentBackend,
) -> None:
    add_job(backend)
    clock = Clock()
    runs = registry(backend, clock)
    silent = running_run(runs)  # started, never a heartbeat
    beating = running_run(runs)
    queued = runs.start("nightly").run_id
    done = running_run(runs)
    runs.finish(done, "succeeded")
    clock.now += 2 * HOUR
    runs.heartbeat(beating)
    clock.now += timedelta(minutes=30)

    assert [r.run_id for r in runs.reap(HOUR, dry_run=True)] == [silent]
    assert runs.get(silent).status is RunStatus.RUNNING  # a dry run writes nothing
    reaped = runs.reap(HOUR, reason="batch host lost")
    assert [r.run_id for r in reaped] == [silent]
    after = runs.get(silent)
    assert after.status is RunStatus.FAILED
    assert after.error is not None
    assert after.error.startswith(REAPED_PREFIX)
    assert "batch host lost" in after.error
    assert after.finished_at == clock.now
    assert runs.get(beating).status is RunStatus.RUNNING
    assert runs.get(queued).status is RunStatus.QUEUED
    assert runs.get(done).status is RunStatus.SUCCEEDED
    assert runs.reap(HOUR) == []  # nothing left to reap
    with pytest.raises(ValidationError):
        runs.reap(timedelta(0))


@pytest.mark.parametrize("late", ["finish", "heartbeat", "cancel"])
def test_reaper_and_a_late_writer_exactly_one_wins(backend: DocumentBackend, late: str) -> None:
    add_job(backend)
    clock = Clock()
    worker = registry(backend, clock)
    reaper = registry(backend, lambda: clock.now + 2 * HOUR)
    for _ in range(6):
        run_id = running_run(worker)
        barrier = threading.Barrier(2)
        outcome: dict[str, object] = {}

        def write_late(
            run_id: str = run_id,
            barrier: threading.Barrier = barrier,
            outcome: dict[str, object] = outcome,
        ) -> None:
            barrier.wait()
            try:
                if late == "finish":
                    worker.finish(run_id, "succeeded")
                elif late == "heartbeat":
                    # a heartbeat "now" from the reaper's point of view keeps the run alive
                    reaper.heartbeat(run_id)
                else:
                    worker.cancel(run_id, "operator")
                outcome["late"] = True
            except ConflictError:
                outcome["late"] = False

        def reap(
            barrier: threading.Barrier = barrier, outcome: dict[str, object] = outcome
        ) -> None:
            barrier.wait()
            outcome["reaped"] = bool(reaper.reap(HOUR))

        threads = [threading.Thread(target=write_late), threading.Thread(target=reap)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = worker.get(run_id)
        assert outcome["late"] != outcome["reaped"], outcome
        if outcome["reaped"]:
            assert final.status is RunStatus.FAILED
            assert final.error.startswith(REAPED_PREFIX)
        else:
            expected = {"finish": RunStatus.SUCCEEDED, "cancel": RunStatus.CANCELLED}
            assert final.status is expected.get(late, RunStatus.RUNNING)
            if late == "heartbeat":
                worker.finish(run_id, "failed")  # leave nothing running for the next round


def test_running_context_heartbeats_and_finishes(backend: DocumentBackend) -> None:
    add_job(backend)
    runs = registry(backend, lambda: datetime.now(UTC))
    with runs.running("nightly", heartbeat_interval=0.05) as run:
        assert run.status is RunStatus.RUNNING
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while runs.get(run.run_id).last_heartbeat_at is None:
            assert datetime.now(UTC) < deadline, "no heartbeat within 20 s"
            threading.Event().wait(0.05)
        runs.record_checkpoint(run.run_id, {"name": "rows", "passed": True})
    assert runs.get(run.run_id).status is RunStatus.SUCCEEDED

    with (
        pytest.raises(RuntimeError, match="source down"),
        runs.running("nightly", heartbeat_interval=0.05) as failing,
    ):
        raise RuntimeError("source down")
    after = runs.get(failing.run_id)
    assert after.status is RunStatus.FAILED
    assert after.error == "RuntimeError: source down"

    with runs.running("nightly") as finished_inside:
        runs.finish(finished_inside.run_id, "failed", error="own verdict")
    assert runs.get(finished_inside.run_id).error == "own verdict"
    with pytest.raises(ValidationError), runs.running("nightly", heartbeat_interval=0):
        pass
