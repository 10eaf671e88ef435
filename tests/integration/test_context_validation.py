"""CSV validation against a contract, and validation runs recorded through a DQContext."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import NotFoundError, ValidationError
from dq_metadata.models import Checkpoint, DataContract, RunStatus
from dq_registries import DQContext
from dq_registries.checks.csv import run_validation_job, validate_csv
from dq_stores.memory import MemoryBackend

CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [
        {
            "name": "orders",
            "properties": [
                {"name": "id", "logicalType": "integer", "required": True, "unique": True},
                {"name": "amount", "logicalType": "number", "required": True},
                {"name": "day", "logicalType": "date"},
                {"name": "gift", "logicalType": "boolean"},
                {"name": "note", "logicalType": "string"},
            ],
        }
    ],
}
HEADER = "id,amount,day,gift,note\n"


def outcome_of(text: str, **kwargs: Any) -> dict[str, bool]:
    result = validate_csv(
        text.splitlines(keepends=True), DataContract.model_validate(CONTRACT), "orders", **kwargs
    )
    return {r.name: r.passed for r in result.checkpoint_results}


def test_a_clean_file_passes_every_check() -> None:
    assert all(outcome_of(HEADER + "1,2.5,2026-01-02,true,x\n2,3,,no,\n").values())


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        ("", {"row_count"}),
        ("1,,2026-01-02,true,x\n", {"required"}),
        ("1,abc,2026-01-02,true,x\n", {"types"}),
        ("1.5,2,2026-01-02,true,x\n", {"types"}),
        ("1,2,02/01/2026,true,x\n", {"types"}),
        ("1,2,2026-01-02,maybe,x\n", {"types"}),
        ("1,nan,2026-01-02,true,x\n", {"types"}),
        ("1,2,,,\n1,3,,,\n", {"unique"}),
    ],
)
def test_each_check_catches_its_problem(rows: str, failing: set[str]) -> None:
    results = outcome_of(HEADER + rows)
    assert {name for name, ok in results.items() if not ok} == failing


def test_a_missing_column_fails_the_columns_check_only_once() -> None:
    results = outcome_of("id,amount,day,gift\n1,2,2026-01-02,true\n")
    assert {n for n, ok in results.items() if not ok} == {"columns"}


def test_row_failures_name_row_column_and_check_and_are_capped() -> None:
    text = HEADER + "".join(f"{i},x,,,\n" for i in range(5))
    result = validate_csv(
        text.splitlines(keepends=True),
        DataContract.model_validate(CONTRACT),
        "orders",
        max_failures=3,
    )
    assert result.failures[0] == {
        "row": 2,
        "column": "amount",
        "check": "types",
        "message": "'x' is not a valid number",
    }
    assert len(result.failures) == 3
    assert result.failures_truncated
    assert result.metrics["failed_values"] == 5


def test_row_count_bounds_come_from_checkpoint_params() -> None:
    cps = [Checkpoint(name="size", check="row_count", params={"min": 1, "max": 1})]
    assert outcome_of(HEADER + "1,2,,,\n", checkpoints=cps) == {"size": True}
    assert outcome_of(HEADER + "1,2,,,\n2,2,,,\n", checkpoints=cps) == {"size": False}


def test_unknown_checks_and_datasets_are_refused_before_reading() -> None:
    contract = DataContract.model_validate(CONTRACT)
    with pytest.raises(ValidationError, match=r"checkpoints\[0\]\.check"):
        validate_csv(iter(()), contract, "orders", checkpoints=[Checkpoint(name="x", check="nope")])
    with pytest.raises(NotFoundError, match="no dataset 'customers'"):
        validate_csv(iter(()), contract, "customers")


@pytest.fixture
def dq() -> DQContext:
    ctx = DQContext.create("acme", "prod", backend=MemoryBackend())
    ctx.contracts.publish(CONTRACT, actor="test")
    ctx.jobs.save(
        {
            "id": "orders-check",
            "name": "Orders check",
            "job_type": "validation",
            "contract": {"id": "orders", "version_range": ">=1.0.0,<2.0.0"},
            "dataset": "orders",
        }
    )
    return ctx


def test_a_validation_run_records_checkpoints_metrics_results_and_a_report(
    dq: DQContext, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "1,2,,,\n1,x,,,\n", encoding="utf-8")
    run, outcome = run_validation_job(dq, "orders-check", path, triggered_by="test")
    assert outcome is not None
    stored = dq.runs.get(run.run_id)
    assert stored.status is RunStatus.FAILED
    assert [c.name for c in stored.checkpoint_results] == [
        "row_count",
        "columns",
        "required",
        "types",
        "unique",
    ]
    assert stored.metrics["rows"] == 2
    results = stored.results or json.loads(b"".join(dq.runs.open_results(run.run_id)))
    assert {f["check"] for f in results["failures"]} == {"types", "unique"}
    (report,) = dq.runs.list_reports(run_id=run.run_id).items
    assert report.item.summary["checks"]["unique"] == "failed"


def test_a_clean_run_succeeds_and_a_retry_with_the_key_is_not_rerun(
    dq: DQContext, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "1,2,,,\n", encoding="utf-8")
    first, outcome = run_validation_job(dq, "orders-check", path, idempotency_key="day-1")
    assert outcome is not None
    assert first.status is RunStatus.SUCCEEDED
    again, none = run_validation_job(dq, "orders-check", path, idempotency_key="day-1")
    assert none is None
    assert again.run_id == first.run_id
    assert len(dq.runs.list().items) == 1


def test_a_missing_file_starts_no_run(dq: DQContext, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        run_validation_job(dq, "orders-check", tmp_path / "absent.csv")
    assert dq.runs.list().items == []
