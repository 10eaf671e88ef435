"""A batch job that gets a ``DQContext`` and records a validation run, step by step.

Runs on the filesystem default with nothing else installed::

    python examples/batch_job.py orders.csv            # stores under $DQ_HOME or ./.dq
    python examples/batch_job.py orders.csv --config dq.yaml --tenant acme --env prod

It makes sure the shipped ``orders`` contract, an action profile and a job
definition exist (re-publishing identical content is a no-op), validates the CSV
against the contract and prints the recorded run. Exit code 0 if the run
succeeded, 1 if the data failed validation, 2 on bad input.

The whole life of a run, as ``docs/operations.md`` describes it:
``start`` (idempotent per file and day) → ``mark_running`` → ``heartbeat`` while
working (``dq runs reap`` fails runs whose heartbeat stops) → ``record_checkpoint``
per check → ``finish`` with metrics and results → ``attach_report`` →
``open_results`` to read the results back. Any exception after
``mark_running`` finishes the run ``failed`` (``runs.running(job_id)`` does all of
this, heartbeat thread included, for jobs that need no idempotency check first).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from dq_metadata.errors import DQError, NotFoundError
from dq_metadata.models import JobRun, RunStatus
from dq_registries import DQContext
from dq_registries.checks.csv import validate_csv
from dq_registries.data import orders_contract

JOB = {
    "id": "orders-nightly",
    "name": "Nightly orders validation",
    "job_type": "validation",
    "contract": {"id": "orders", "version_range": ">=1.0.0,<2.0.0"},
    "dataset": "orders",
    "trigger": {"type": "cron", "expression": "0 2 * * *"},
    "tags": ["orders", "nightly"],
    "on_failure": ["orders-team-mail"],
}
PROFILE = {
    "id": "orders-team-mail",
    "action_type": "send_notification",
    "name": "Mail the orders team",
    "channel": "email",
    "recipients": ["orders-team@example.com"],
}


def record_run(dq: DQContext, csv: Path, key: str) -> tuple[JobRun, bool]:
    """Validate ``csv`` as one run of the job; ``(run, False)`` if already recorded."""
    job = dq.jobs.get(JOB["id"])
    contract = dq.contracts.resolve(job.contract.id, version_range=job.contract.version_range)
    run = dq.runs.start(job.id, idempotency_key=key, triggered_by="batch-job")
    if run.status is not RunStatus.QUEUED:
        return run, False  # a retry of a batch that already ran
    dq.runs.mark_running(run.run_id)
    try:
        outcome = validate_csv(csv, contract.contract, job.dataset)
        dq.runs.heartbeat(run.run_id)  # long jobs: call this every few minutes
        for result in outcome.checkpoint_results:
            dq.runs.record_checkpoint(run.run_id, result)
        failed = outcome.failed(job.severity_threshold.value)
        finished = dq.runs.finish(
            run.run_id,
            RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
            metrics=outcome.metrics,
            results={"failures": outcome.failures, "truncated": outcome.failures_truncated},
        )
    except BaseException as exc:
        dq.runs.finish(run.run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    dq.runs.attach_report(
        run.run_id, dataset=job.dataset, title=f"{job.name}", summary=outcome.summary()
    )
    return finished, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="orders CSV with a header row")
    parser.add_argument("--config", help="YAML config (default: DQ_* env vars, filesystem)")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--env", default="dev")
    args = parser.parse_args(argv)
    try:
        if not args.csv.is_file():
            raise NotFoundError(f"no such file: {args.csv}")
        with DQContext.from_config(args.tenant, args.env, args.config) as dq:
            dq.contracts.publish(orders_contract(), actor="batch-job")
            dq.actions.save(PROFILE)
            dq.jobs.save(JOB)
            # One run per file per day: a retry of the same batch returns the same run.
            key = f"{args.csv.name}@{datetime.now(UTC):%Y-%m-%d}"
            run, recorded = record_run(dq, args.csv, key)
            results = json.loads(b"".join(dq.runs.open_results(run.run_id)))
    except DQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run {run.run_id}: {run.status.value}")
    for result in run.checkpoint_results:
        mark = "ok " if result.passed else "FAIL"
        print(f"  [{mark}] {result.name}" + (f" — {result.message}" if result.message else ""))
    print(f"  {len(results['failures'])} failing row(s) in the results")
    if not recorded:
        print("  (already recorded for this file today)")
    return 0 if run.status.value == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
