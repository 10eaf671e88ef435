"""A batch job that gets a ``DQContext`` and records a validation run.

Runs on the filesystem default with nothing else installed::

    python examples/batch_job.py orders.csv            # stores under $DQ_HOME or ./.dq
    python examples/batch_job.py orders.csv --config dq.yaml --tenant acme --env prod

It makes sure the shipped ``orders`` contract, an action profile and a job
definition exist (re-publishing identical content is a no-op), validates the CSV
against the contract and prints the recorded run. Exit code 0 if the run
succeeded, 1 if the data failed validation, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from dq_metadata.errors import DQError
from dq_registries import DQContext
from dq_registries.data import orders_contract
from dq_registries.validation import run_validation_job

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="orders CSV with a header row")
    parser.add_argument("--config", help="YAML config (default: DQ_* env vars, filesystem)")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--env", default="dev")
    args = parser.parse_args(argv)
    try:
        with DQContext.from_config(args.tenant, args.env, args.config) as dq:
            dq.contracts.publish(orders_contract(), actor="batch-job")
            dq.actions.save(PROFILE)
            dq.jobs.save(JOB)
            # One run per file per day: a retry of the same batch returns the same run.
            key = f"{args.csv.name}@{datetime.now(UTC):%Y-%m-%d}"
            run, outcome = run_validation_job(
                dq, JOB["id"], args.csv, idempotency_key=key, triggered_by="batch-job"
            )
    except DQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run {run.run_id}: {run.status.value}")
    for result in run.checkpoint_results:
        mark = "ok " if result.passed else "FAIL"
        print(f"  [{mark}] {result.name}" + (f" — {result.message}" if result.message else ""))
    if outcome is None:
        print("  (already recorded for this file today)")
    return 0 if run.status.value == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
