"""Action profiles: typed, reusable actions fired on job outcomes.

A discriminated union by ``action_type``; each type validates its own
parameters. Secrets are references (``keyvault://vault/secret``), never values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from dq_metadata.models.base import DQModel, Identifier, NonEmptyStr

__all__ = [
    "ACTION_PROFILE_ADAPTER",
    "ActionProfile",
    "CustomProfile",
    "EmitLineageProfile",
    "OpenTicketProfile",
    "QuarantineProfile",
    "SecretRef",
    "SendNotificationProfile",
]

#: A reference to a secret held elsewhere, e.g. ``keyvault://my-vault/smtp-password``.
SecretRef = Annotated[str, Field(pattern=r"^(keyvault|env|secret)://[^\s/]+(/[^\s]+)?$")]


class _ProfileBase(DQModel):
    schema_version: Literal[1] = 1
    id: Identifier
    name: NonEmptyStr
    description: str | None = None


class SendNotificationProfile(_ProfileBase):
    action_type: Literal["send_notification"] = "send_notification"
    channel: Literal["email", "teams", "slack", "webhook"]
    recipients: list[NonEmptyStr] = Field(default_factory=list)
    url: str | None = None
    secret: SecretRef | None = None
    template: str | None = None


class QuarantineProfile(_ProfileBase):
    action_type: Literal["quarantine"] = "quarantine"
    target: NonEmptyStr
    mode: Literal["move", "flag", "copy"] = "flag"


class EmitLineageProfile(_ProfileBase):
    action_type: Literal["emit_lineage"] = "emit_lineage"
    endpoint: NonEmptyStr
    namespace: NonEmptyStr
    secret: SecretRef | None = None


class OpenTicketProfile(_ProfileBase):
    action_type: Literal["open_ticket"] = "open_ticket"
    system: Literal["jira", "servicenow", "github", "azure_devops"]
    project: NonEmptyStr
    priority: Literal["low", "medium", "high", "critical"] = "medium"
    secret: SecretRef | None = None


class CustomProfile(_ProfileBase):
    action_type: Literal["custom"] = "custom"
    handler: NonEmptyStr
    params: dict[str, Any] = Field(default_factory=dict)


ActionProfile = Annotated[
    SendNotificationProfile
    | QuarantineProfile
    | EmitLineageProfile
    | OpenTicketProfile
    | CustomProfile,
    Field(discriminator="action_type"),
]

ACTION_PROFILE_ADAPTER: TypeAdapter[ActionProfile] = TypeAdapter(ActionProfile)
