"""Canonical pydantic models of the platform's artifacts."""

from dq_metadata.models.action_profile import (
    ACTION_PROFILE_ADAPTER,
    ActionProfile,
    CustomProfile,
    EmitLineageProfile,
    OpenTicketProfile,
    QuarantineProfile,
    SendNotificationProfile,
)
from dq_metadata.models.base import DQModel, parse_model, utcnow
from dq_metadata.models.contract import (
    ContractHead,
    ContractSearchTokens,
    ContractVersion,
    DataContract,
    ForcedPublish,
    LifecycleEvent,
    SchemaObject,
    SchemaProperty,
)
from dq_metadata.models.job_definition import (
    Checkpoint,
    ContractRef,
    CronTrigger,
    EventTrigger,
    JobDefinition,
    JobType,
    ManualTrigger,
    Severity,
)
from dq_metadata.models.job_run import (
    TERMINAL_STATUSES,
    CheckpointResult,
    JobRun,
    Report,
    ResultObject,
    RunStatus,
)
from dq_metadata.models.usage import UsageStamp, UsageTarget

__all__ = [
    "ACTION_PROFILE_ADAPTER",
    "TERMINAL_STATUSES",
    "ActionProfile",
    "Checkpoint",
    "CheckpointResult",
    "ContractHead",
    "ContractRef",
    "ContractSearchTokens",
    "ContractVersion",
    "CronTrigger",
    "CustomProfile",
    "DQModel",
    "DataContract",
    "EmitLineageProfile",
    "EventTrigger",
    "ForcedPublish",
    "JobDefinition",
    "JobRun",
    "JobType",
    "LifecycleEvent",
    "ManualTrigger",
    "OpenTicketProfile",
    "QuarantineProfile",
    "Report",
    "ResultObject",
    "RunStatus",
    "SchemaObject",
    "SchemaProperty",
    "SendNotificationProfile",
    "Severity",
    "UsageStamp",
    "UsageTarget",
    "parse_model",
    "utcnow",
]
