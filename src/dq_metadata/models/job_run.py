"""Job runs and reports."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from dq_metadata.models.base import DQModel, Identifier, NonEmptyStr, UtcDatetime

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "CheckpointResult",
    "JobRun",
    "Report",
    "ResultObject",
    "RunStatus",
]


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})

#: Legal status changes. A queued run may fail (it could not be launched) or be
#: cancelled, but only a run that ran can succeed.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

#: A metric value: a finite number (NaN and infinities have no JSON form).
Metric = Annotated[float, Field(allow_inf_nan=False)]


class CheckpointResult(DQModel):
    name: NonEmptyStr
    passed: bool
    severity: Literal["info", "warning", "error", "critical"] = "error"
    observed: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None


class ResultObject(DQModel):
    """A large result kept in a results store; the run keeps only this reference."""

    uri: NonEmptyStr
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = "application/octet-stream"


class JobRun(DQModel):
    """One execution of a job definition."""

    schema_version: Literal[1] = 1
    run_id: Identifier
    job_id: Identifier
    status: RunStatus = RunStatus.QUEUED
    idempotency_key: str | None = None
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    triggered_by: str | None = None
    checkpoint_results: list[CheckpointResult] = Field(default_factory=list)
    metrics: dict[NonEmptyStr, Metric] = Field(default_factory=dict)
    results: dict[str, Any] | None = None
    result_object: ResultObject | None = None
    error: str | None = None
    cancel_reason: str | None = None
    #: When the process running the run last said it is alive (``runs.heartbeat``);
    #: ``dq runs reap`` fails running runs whose heartbeat (or ``started_at``) is old.
    #: Optional: documents written before it existed read as ``None``.
    last_heartbeat_at: UtcDatetime | None = None


class Report(DQModel):
    """A report attached to a run and a dataset."""

    schema_version: Literal[1] = 1
    report_id: Identifier
    run_id: Identifier
    job_id: Identifier
    dataset: NonEmptyStr
    created_at: UtcDatetime
    title: str | None = None
    format: Literal["json", "markdown", "html", "text"] = "json"
    summary: dict[str, Any] = Field(default_factory=dict)
    content: str | None = None
