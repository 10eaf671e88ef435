"""Job definitions: what to run against which dataset, and what to do on outcomes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

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
    """A contract reference: an exact ``version`` or a ``version_range`` (e.g. ``>=1.2.0,<2``)."""

    id: Identifier
    version: str | None = None
    version_range: str | None = None


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

    def action_profile_ids(self) -> list[str]:
        """Every action profile this job references, de-duplicated and sorted."""
        return sorted({*self.on_success, *self.on_failure, *self.on_anomaly})
