"""Job runs on real backends: filesystem documents + filesystem results (and memory)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dq_metadata.errors import ConflictError, IllegalTransitionError, IntegrityError
from dq_metadata.models import JobDefinition, RunStatus
from dq_metadata.registry import MetadataRegistry
from dq_metadata.scope import Scope
from dq_registries.domain.runs import JobRunRegistry
from dq_registries.wiring.context import DQContext
from dq_stores.backend import DocumentBackend
from dq_stores.filesystem import FilesystemBackend, FilesystemResultsStore
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultsStore
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore

SCOPE = Scope("acme", "dev")


@dataclass
class Env:
    backend: DocumentBackend
    results: ResultsStore
    root: Path | None

    def runs(self, scope: Scope = SCOPE, limit: int = 1024) -> JobRunRegistry:
        return JobRunRegistry(
            scope,
            JobRunStore(self.backend),
            reports=ReportStore(self.backend),
            job_definitions=JobDefinitionStore(self.backend),
            results=self.results,
            inline_result_limit=limit,
        )


def add_job(backend: DocumentBackend, scope: Scope = SCOPE) -> None:
    JobDefinitionStore(backend).put(
        scope,
        JobDefinition.model_validate(
            {
                "id": "nightly",
                "name": "nightly",
                "job_type": "profiling",
                "contract": {"id": "orders", "version": "1.0.0"},
                "dataset": "orders",
            }
        ),
    )


@pytest.fixture(params=["filesystem", "memory"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    if request.param == "filesystem":
        root = tmp_path / "dq"
        current = Env(FilesystemBackend(root), FilesystemResultsStore(root / "results"), root)
    else:
        current = Env(MemoryBackend(), MemoryResultsStore(), None)
    with current.backend:
        add_job(current.backend)
        add_job(current.backend, Scope("acme", "prod"))
        yield current
        current.results.close()


def result_files(env: Env) -> list[str]:
    assert env.root is not None
    return [
        name
        for _, _, files in os.walk(env.root / "results")
        for name in files
        if not name.startswith(".")
    ]


def test_full_lifecycle_with_a_large_streamed_result(env: Env) -> None:
    runs = env.runs()
    run = runs.start("nightly", idempotency_key="2026-03-01", triggered_by="cron")
    runs.mark_running(run.run_id)
    runs.record_checkpoint(run.run_id, {"name": "rows", "passed": True, "observed": {"n": 9}})
    chunks = [os.urandom(64 * 1024) for _ in range(40)]  # 2.5 MiB, streamed as chunks
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    done = runs.finish(
        run.run_id, "succeeded", metrics={"rows": 9.0}, results=iter(chunks), content_type="x/y"
    )
    assert done.status is RunStatus.SUCCEEDED
    assert done.result_object is not None
    assert done.result_object.sha256 == digest
    assert done.result_object.size == 40 * 64 * 1024
    streamed = list(runs.open_results(run.run_id))
    assert hashlib.sha256(b"".join(streamed)).hexdigest() == digest
    assert runs.start("nightly", idempotency_key="2026-03-01").run_id == run.run_id
    report = runs.attach_report(run.run_id, dataset="orders", summary={"rows": 9})
    assert [v.item.report_id for v in runs.list_reports(run_id=run.run_id).items] == [
        report.report_id
    ]
    meta = MetadataRegistry(JobRunStore(env.backend), SCOPE).run_metadata(run.run_id)
    assert meta.results == "object"
    assert meta.result_sha256 == digest


def test_concurrent_starts_with_one_key_yield_one_run(env: Env) -> None:
    runs = env.runs()
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def start() -> None:
        barrier.wait()
        ids.append(runs.start("nightly", idempotency_key="once").run_id)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8
    assert len(set(ids)) == 1
    assert JobRunStore(env.backend).count(SCOPE) == 1


def test_concurrent_finishers_exactly_one_wins_and_losers_leave_no_object(env: Env) -> None:
    runs = env.runs(limit=16)
    run_id = runs.start("nightly").run_id
    runs.mark_running(run_id)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def finish(i: int) -> None:
        barrier.wait()
        try:
            runs.finish(
                run_id, "failed" if i % 2 else "succeeded", results={"writer": i, "pad": "x" * 64}
            )
            outcomes.append("won")
        except ConflictError:
            outcomes.append("lost")

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]
    final = runs.get(run_id)
    assert final.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
    assert b"".join(runs.open_results(run_id)).startswith(b'{"pad"')
    if env.root is not None:
        assert len(result_files(env)) == 1
    with pytest.raises(IllegalTransitionError):
        runs.cancel(run_id)


@pytest.mark.parametrize("env", ["filesystem"], indirect=True)
def test_tampered_result_objects_fail_integrity_on_read(env: Env) -> None:
    assert env.root is not None
    runs = env.runs(limit=0)
    run_id = runs.start("nightly").run_id
    runs.mark_running(run_id)
    runs.finish(run_id, "succeeded", results=b"exact bytes")
    (path,) = [
        os.path.join(d, f)
        for d, _, files in os.walk(env.root / "results")
        for f in files
        if not f.startswith(".")
    ]
    Path(path).write_bytes(b"other bytes")
    with pytest.raises(IntegrityError):
        b"".join(runs.open_results(run_id))


def test_listing_across_environments_and_reopened_backend(env: Env) -> None:
    dev, prod = env.runs(), env.runs(Scope("acme", "prod"))
    a = dev.start("nightly").run_id
    b = prod.start("nightly").run_id
    page = dev.list(all_environments=True)
    assert {v.item.run_id for v in page.items} == {a, b}
    assert [v.item.run_id for v in dev.list().items] == [a]
    if env.root is not None:
        with FilesystemBackend(env.root) as again:
            reread = JobRunRegistry(
                SCOPE,
                JobRunStore(again),
                reports=ReportStore(again),
                job_definitions=JobDefinitionStore(again),
                results=env.results,
            )
            assert reread.get(a).status is RunStatus.QUEUED


def test_the_filesystem_default_keeps_documents_and_results_under_dq_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DQ_HOME", str(tmp_path / "home"))
    dq = DQContext.create(SCOPE.tenant, SCOPE.environment, inline_result_limit=8)
    runs = dq.runs
    assert isinstance(runs.store.backend, FilesystemBackend)
    assert isinstance(runs.results, FilesystemResultsStore)
    add_job(runs.store.backend)
    run_id = runs.start("nightly").run_id
    runs.mark_running(run_id)
    runs.finish(run_id, "succeeded", results={"big": "x" * 100})
    assert b"".join(runs.open_results(run_id)) == b'{"big":"' + b"x" * 100 + b'"}'
    # documents and results share the root: <tenant>/<env>/docs and <tenant>/<env>/results
    assert (tmp_path / "home" / SCOPE.tenant / SCOPE.environment / "results").is_dir()
    dq.close()
