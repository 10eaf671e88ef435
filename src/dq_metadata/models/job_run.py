"""Job runs and reports."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from dq_metadata.models._legacy_results import parse_legacy_uri
from dq_metadata.models.base import DQModel, Identifier, NonEmptyStr, UtcDatetime
from dq_metadata.scope import ID_PATTERN

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


# An unreadable old ``uri`` may hold a SAS: validation errors of a run (whose text
# ends up in chained tracebacks) must not echo their input.
_NO_INPUT_IN_ERRORS = ConfigDict(**DQModel.model_config, hide_input_in_errors=True)
_SCOPE_ID = f"^(?:{ID_PATTERN.pattern})$"
#: A result's run id or name: any non-empty string without NUL (a store key).
ResultName = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00]+$")]


class ResultObject(DQModel):
    """A large result kept in a results store; the run keeps only this reference.

    A **logical** name (ADR 0012): the object's scope (``tenant``, ``environment``),
    ``run_id`` and ``name`` inside the results store, plus ``size`` (bytes),
    ``sha256`` (hex) and ``content_type``. Never a URL, path or credential: the
    configured store resolves it when the results are read.

    Documents written before ADR 0012 carry ``{"uri": …, "size", "sha256",
    "content_type"}``; they are read into this form (see ``_legacy_results``). A
    ``uri`` this version cannot read is a validation error that does not quote it
    (it may hold a SAS).
    """

    model_config = _NO_INPUT_IN_ERRORS

    tenant: str = Field(pattern=_SCOPE_ID)
    environment: str = Field(pattern=_SCOPE_ID)
    run_id: ResultName
    name: ResultName
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: NonEmptyStr = "application/octet-stream"

    @model_validator(mode="before")
    @classmethod
    def _upgrade_legacy_uri(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "uri" not in data:
            return data
        upgraded = {k: v for k, v in data.items() if k != "uri"}
        uri = data["uri"]
        name = parse_legacy_uri(uri) if isinstance(uri, str) else None
        if name is None:
            raise ValueError(
                "uri: an old-style results reference this version cannot read "
                "(expected memory://, sql://, file:// or an Azure blob URL)"
            )
        upgraded.update(zip(("tenant", "environment", "run_id", "name"), name, strict=True))
        return upgraded


class JobRun(DQModel):
    """One execution of a job definition."""

    model_config = _NO_INPUT_IN_ERRORS
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
