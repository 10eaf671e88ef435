"""Job definitions: what to run against which dataset, and what to do on outcomes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dq_metadata.models.base import DQModel, Identifier, Label, NonEmptyStr

__all__ = [
    "Checkpoint",
    "ContractRef",
    "CronTrigger",
    "EventTrigger",
    "JobDefinition",
    "JobType",
    "ManualTrigger",
    "Severity",
    "Trigger",
]


class JobType(StrEnum):
    VALIDATION = "validation"
    CLEANSING = "cleansing"
    PROFILING = "profiling"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class ContractRef(DQModel):
    """A contract reference: an exact ``version`` or a ``version_range`` (e.g. ``>=1.2.0,<2``).

    Exactly one of the two is set; the registry checks that it resolves when saving.
    """

    id: Identifier
    version: NonEmptyStr | None = None
    version_range: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _one_of_version_or_range(self) -> ContractRef:
        if (self.version is None) == (self.version_range is None):
            raise ValueError("give exactly one of 'version' or 'version_range'")
        return self


class Checkpoint(DQModel):
    """One ordered step of a job: a named check with its parameters."""

    name: NonEmptyStr
    check: NonEmptyStr
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = Severity.ERROR


class ManualTrigger(DQModel):
    type: Literal["manual"] = "manual"


class CronTrigger(DQModel):
    type: Literal["cron"] = "cron"
    expression: NonEmptyStr
    timezone: str = "UTC"


class EventTrigger(DQModel):
    type: Literal["event"] = "event"
    event: NonEmptyStr


Trigger = Annotated[ManualTrigger | CronTrigger | EventTrigger, Field(discriminator="type")]


class JobDefinition(DQModel):
    """A validation, cleansing or profiling job over one dataset of a contract."""

    schema_version: Literal[1] = 1
    id: Identifier
    name: NonEmptyStr
    job_type: JobType
    contract: ContractRef
    dataset: NonEmptyStr
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    trigger: Trigger = Field(default_factory=ManualTrigger)
    tags: list[Label] = Field(default_factory=list)
    severity_threshold: Severity = Severity.ERROR
    idempotency_scope: Literal["run", "day", "trigger"] = "run"
    on_success: list[Identifier] = Field(default_factory=list)
    on_failure: list[Identifier] = Field(default_factory=list)
    on_anomaly: list[Identifier] = Field(default_factory=list)
    enabled: bool = True
    description: str | None = None

    @field_validator("checkpoints")
    @classmethod
    def _unique_checkpoint_names(cls, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        seen: set[str] = set()
        for checkpoint in checkpoints:
            if checkpoint.name in seen:
                raise ValueError(f"checkpoint names must be unique: {checkpoint.name!r} repeats")
            seen.add(checkpoint.name)
        return checkpoints

    def action_profile_ids(self) -> list[str]:
        """Every action profile this job references, de-duplicated and sorted."""
        return sorted({*self.on_success, *self.on_failure, *self.on_anomaly})
