"""``collect_garbage`` (``dq gc``) on every backend with its results store.

What goes: old revisions (with a recorded pruned prefix), finished runs with their
reports and results objects, orphaned results. What never goes: current revisions,
contract versions, unfinished runs. A dry run writes nothing; a writer racing gc
loses nothing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.backends import BACKENDS, backend_factory, results_for

from dq_metadata.errors import NotFoundError, ValidationError
from dq_metadata.models import RunStatus
from dq_registries import DQContext
from dq_registries.operations.retention import RetentionPolicy, collect_garbage
from dq_stores.keys import encode_key

DAY = timedelta(days=1)
CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}
JOB = {
    "id": "nightly",
    "name": "Nightly",
    "job_type": "validation",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
}


def later(days: float = 10) -> Any:
    return lambda: datetime.now(UTC) + timedelta(days=days)


@pytest.fixture(params=BACKENDS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DQContext]:
    backend = backend_factory(request, tmp_path)()
    results = results_for(request, tmp_path)
    with DQContext.create("acme", "prod", backend, results, inline_result_limit=16) as made:
        made.contracts.publish(CONTRACT, actor="test")
        made.contracts.deprecate("orders", "1.0.0", actor="test")
        for n in range(5):
            made.jobs.save({**JOB, "description": f"edit {n}"})
        yield made
    results.close()
    backend.close()


def job_revisions(ctx: DQContext) -> list[int]:
    return [r.revision for r in ctx.jobs.store.history(ctx.scope, "nightly")]


def finished_run(ctx: DQContext, payload: bytes = b"x" * 100) -> str:
    with ctx.runs.running("nightly") as run:
        ctx.runs.finish(run.run_id, "succeeded", results=payload)
        ctx.runs.attach_report(run.run_id, dataset="orders", title="r")
    return run.run_id


def test_history_by_count_and_age_keeps_heads_and_contracts(ctx: DQContext) -> None:
    contract_history = ctx.jobs.contracts.history(ctx.scope, "orders@1.0.0")
    assert job_revisions(ctx) == [1, 2, 3, 4, 5]
    report = collect_garbage(ctx, RetentionPolicy(keep_revisions=2))
    jobs = [i for i in report.items if i.kind == "job_definition"]
    assert [(i.what, i.key, i.count, i.detail) for i in jobs] == [
        ("history", "nightly", 3, "revisions 1..3")
    ]
    assert {i.kind for i in report.items} <= {"job_definition", "usage_stamp", "contract_head"}
    assert job_revisions(ctx) == [4, 5]
    prefix = ctx.jobs.store.backend.pruned_prefix(ctx.scope, "job_definition", "nightly")
    assert prefix is not None
    assert prefix.pruned_through == 3
    assert ctx.jobs.get("nightly").description == "edit 4"
    # nothing written since: by age, everything but the head goes
    assert collect_garbage(ctx, RetentionPolicy(history_older_than=DAY)).items == []
    collect_garbage(ctx, RetentionPolicy(history_older_than=DAY), clock=later())
    assert job_revisions(ctx) == [5]
    # a contract version's history is its publication record: untouched
    after = ctx.jobs.contracts.history(ctx.scope, "orders@1.0.0")
    assert [r.revision for r in after] == [r.revision for r in contract_history] == [1, 2]
    ctx.jobs.save({**JOB, "description": "after gc"})
    assert job_revisions(ctx) == [5, 6]


def test_dry_run_reports_and_writes_nothing(ctx: DQContext) -> None:
    run_id = finished_run(ctx)
    policy = RetentionPolicy(keep_revisions=1, runs_older_than=DAY)
    report = collect_garbage(ctx, policy, dry_run=True, clock=later())
    assert report.dry_run
    totals = report.totals()
    assert sum(i.count for i in report.items if i.kind == "job_definition") == 4
    assert (totals["run"], totals["report"], totals["result_object"]) == (1, 1, 1)
    assert job_revisions(ctx) == [1, 2, 3, 4, 5]
    assert ctx.runs.get(run_id).status is RunStatus.SUCCEEDED
    assert b"".join(ctx.runs.open_results(run_id)) == b"x" * 100


def test_finished_runs_go_with_reports_and_results_unfinished_stay(ctx: DQContext) -> None:
    old = finished_run(ctx)
    old_run = ctx.runs.get(old)
    assert old_run.result_object is not None
    stuck = ctx.runs.mark_running(ctx.runs.start("nightly").run_id).run_id
    queued = ctx.runs.start("nightly").run_id
    kept = collect_garbage(ctx, RetentionPolicy(runs_older_than=DAY))  # all too recent
    assert kept.items == []
    report = collect_garbage(ctx, RetentionPolicy(runs_older_than=DAY), clock=later())
    assert [(i.what, i.key) for i in report.items if i.what == "run"] == [("run", old)]
    with pytest.raises(NotFoundError):
        ctx.runs.get(old)
    assert ctx.runs.list_reports(run_id=old).items == []
    names = [(o.run_id, o.name) for o in ctx.runs.results.iter_objects(ctx.scope)]  # type: ignore[union-attr]
    assert (old, old_run.result_object.name) not in names
    (tombstone,) = ctx.runs.store.history(ctx.scope, old)  # only the tombstone is left
    assert tombstone.deleted
    assert ctx.runs.get(stuck).status is RunStatus.RUNNING
    assert ctx.runs.get(queued).status is RunStatus.QUEUED


def test_orphaned_results_go_referenced_ones_stay(ctx: DQContext) -> None:
    run_id = finished_run(ctx)
    results = ctx.runs.results
    assert results is not None
    orphan = results.upload(ctx.scope, "run-crashed", "results-1.bin", [b"lost"])
    young = collect_garbage(ctx, RetentionPolicy(orphaned_results_older_than=DAY))
    assert young.items == []
    report = collect_garbage(ctx, RetentionPolicy(orphaned_results_older_than=DAY), clock=later())
    assert [(i.what, i.key) for i in report.items] == [("orphaned_result", orphan.describe())]
    with pytest.raises(NotFoundError):
        b"".join(results.open(ctx.scope, orphan))
    assert b"".join(ctx.runs.open_results(run_id)) == b"x" * 100


def test_a_writer_racing_gc_loses_nothing(ctx: DQContext) -> None:
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(15):
                ctx.jobs.save({**JOB, "description": f"racing {n}"})
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        collect_garbage(ctx, RetentionPolicy(keep_revisions=2))
    thread.join()
    assert not errors, errors
    revisions = job_revisions(ctx)
    assert revisions[-1] == 20
    assert revisions == list(range(revisions[0], 21))
    assert ctx.jobs.get("nightly").description == "racing 14"


def test_policy_is_checked() -> None:
    for bad in ({"keep_revisions": 0}, {"keep_revisions": True}, {"runs_older_than": -DAY}):
        with pytest.raises(ValidationError):
            RetentionPolicy(**bad)


def test_long_named_results_orphans_go_referenced_ones_stay(ctx: DQContext) -> None:
    """Names whose storage form is a digest: listed by name, so gc sees them (and an
    old reference that holds only the digest still protects its object)."""
    results = ctx.runs.results
    assert results is not None
    long_run, long_name = "crashed" + "._" * 28, "orphelin-" + "é" * 120 + ".json"
    orphan = results.upload(ctx.scope, long_run, long_name, [b"lost"])
    for name, digest in (("kept-" + "é" * 120, False), ("old-" + "ü" * 120, True)):
        with ctx.runs.running("nightly") as started:
            ctx.runs.finish(started.run_id, "succeeded")
        run_id = started.run_id
        ref = results.upload(ctx.scope, run_id, name, [b"kept"])
        if digest:  # what an old uri holding only the digest is read into
            ref = dataclasses.replace(ref, name=encode_key(name), digest_name=True)
        run = ctx.runs.get(run_id)
        ctx.runs.store.put(ctx.scope, run.model_copy(update={"result_object": ref.to_object()}))
    report = collect_garbage(ctx, RetentionPolicy(orphaned_results_older_than=DAY), clock=later())
    assert [(i.what, i.key) for i in report.items] == [("orphaned_result", orphan.describe())]
    with pytest.raises(NotFoundError):
        b"".join(results.open(ctx.scope, orphan))
    for run in ctx.runs.list().items:
        assert b"".join(ctx.runs.open_results(run.item.run_id)) == b"kept"
    assert len(list(results.iter_objects(ctx.scope))) == 2
