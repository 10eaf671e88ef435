"""Job runs and reports."""

from __future__ import annotations

import contextlib
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from dq_metadata.models import _legacy_results
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

    ``digest_name`` is set only on a reference read from such a ``uri`` whose name
    had been stored as its digest (a name whose storage encoding is over 180
    characters): the original name is not in the ``uri``, so ``name`` is that
    digest (``_h`` + sha256 hex of the name's UTF-8) and the results stores resolve
    it as one (ADR 0012, "Long names"). It is left out of the JSON when false.
    """

    model_config = _NO_INPUT_IN_ERRORS

    tenant: str = Field(pattern=_SCOPE_ID)
    environment: str = Field(pattern=_SCOPE_ID)
    run_id: ResultName
    name: ResultName
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: NonEmptyStr = "application/octet-stream"
    digest_name: bool = False

    @model_validator(mode="before")
    @classmethod
    def _upgrade_legacy_uri(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "uri" not in data:
            return data
        return _legacy_results.upgrade(data)

    @classmethod
    def of_run(cls, run: Any) -> ResultObject | None:
        """The ``result_object`` of a run document's JSON data (``None`` if it has none),
        an old-style one read with the run's id as :class:`JobRun` reads it.

        Raises:
            pydantic.ValidationError: the reference does not validate.
        """
        obj = run.get("result_object") if isinstance(run, dict) else None
        if obj is None:
            return None
        if isinstance(obj, dict) and "uri" in obj:
            # unreadable: validating it as it is raises the model's error for it
            with contextlib.suppress(ValueError):
                obj = _legacy_results.upgrade(obj, run.get("run_id"))
        return cls.model_validate(obj)

    @model_validator(mode="after")
    def _digest_name_is_a_digest(self) -> ResultObject:
        if self.digest_name and not _legacy_results.DIGEST_NAME.fullmatch(self.name):
            raise ValueError("name: with digest_name it must be '_h' + 64 lower-case hex digits")
        return self

    @model_serializer(mode="wrap")
    def _omit_default_digest_flag(
        self, handler: SerializerFunctionWrapHandler, _info: SerializationInfo
    ) -> Any:
        data = handler(self)
        if isinstance(data, dict) and not self.digest_name:
            data.pop("digest_name", None)
        return data


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

    @model_validator(mode="before")
    @classmethod
    def _upgrade_legacy_result_object(cls, data: Any) -> Any:
        # Here, not only in ResultObject: a run id the old ``uri`` holds as a digest
        # is recovered from the run's own id.
        obj = data.get("result_object") if isinstance(data, dict) else None
        if not isinstance(obj, dict) or "uri" not in obj:
            return data
        try:
            return {**data, "result_object": _legacy_results.upgrade(obj, data.get("run_id"))}
        except ValueError:
            return data  # ResultObject raises it again, at the field's location


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
