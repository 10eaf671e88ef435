"""Action profiles: typed, reusable actions fired on job outcomes.

A discriminated union by ``action_type``; each type validates its own
parameters. Secrets are references, never values (:data:`SECRET_REF_PATTERN`):

* ``https://<vault>.vault.azure.net/secrets/<name>[/<version>]`` — an Azure Key
  Vault secret URI, as the portal and ``az keyvault secret show`` print it;
* ``keyvault://<vault>/<name>[/<version>]`` — the same secret, shorter;
* ``env://<NAME>`` — the environment variable ``NAME`` of the process that runs
  the action;
* ``secret://<store>/<name>`` — a secret in another store the runner knows.

A notification's ``url`` (the Slack / Teams incoming-webhook URL is itself a
credential) may be such a reference instead of the URL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, TypeAdapter, ValidationInfo, field_validator

from dq_metadata.models.base import DQModel, Identifier, NonEmptyStr

__all__ = [
    "ACTION_PROFILE_ADAPTER",
    "SECRET_REF_PATTERN",
    "ActionProfile",
    "CustomProfile",
    "EmitLineageProfile",
    "OpenTicketProfile",
    "QuarantineProfile",
    "SecretRef",
    "SendNotificationProfile",
    "is_secret_ref",
]

#: The reference forms a secret may be written as (see the module docstring).
SECRET_REF_PATTERN = (
    r"^(?:(?:keyvault|secret)://[A-Za-z0-9-]+(?:/[A-Za-z0-9_.-]+){0,2}"
    r"|env://[A-Za-z_][A-Za-z0-9_]*"
    r"|https://[A-Za-z0-9-]+\.vault\.azure\.net/secrets/[A-Za-z0-9-]+(?:/[A-Za-z0-9]+)?)$"
)
_SECRET_REF = re.compile(SECRET_REF_PATTERN)

#: A reference to a secret held elsewhere, e.g. ``keyvault://my-vault/smtp-password``.
SecretRef = Annotated[str, Field(pattern=SECRET_REF_PATTERN)]


def is_secret_ref(value: str) -> bool:
    """Whether ``value`` is one of the secret reference forms (not a secret itself)."""
    return _SECRET_REF.fullmatch(value) is not None


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _is_https_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname)


class _ProfileBase(DQModel):
    schema_version: Literal[1] = 1
    id: Identifier
    name: NonEmptyStr
    description: str | None = None


class SendNotificationProfile(_ProfileBase):
    """Notify people or systems. Email needs recipients; teams, slack and webhook an https url.

    ``url`` is an https URL or a secret reference to one (an incoming-webhook URL of
    Slack or Teams must be a reference: the registry refuses it inline).
    """

    action_type: Literal["send_notification"] = "send_notification"
    channel: Literal["email", "teams", "slack", "webhook"]
    recipients: list[NonEmptyStr] = Field(default_factory=list, validate_default=True)
    url: str | None = Field(default=None, validate_default=True)
    secret: SecretRef | None = None
    template: str | None = None

    @field_validator("recipients")
    @classmethod
    def _email_recipients(cls, recipients: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("channel") == "email":
            if not recipients:
                raise ValueError("an email notification needs at least one recipient")
            bad = [r for r in recipients if not _EMAIL.fullmatch(r)]
            if bad:
                raise ValueError(f"not an email address: {bad[0]!r}")
        return recipients

    @field_validator("url")
    @classmethod
    def _https_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        channel = info.data.get("channel")
        if url is None:
            if channel in ("teams", "slack", "webhook"):
                raise ValueError(f"a {channel} notification needs an https:// url")
            return url
        if not (_is_https_url(url) or is_secret_ref(url)):
            raise ValueError(
                "must be an https:// URL with a host, or a secret reference "
                "(https://<vault>.vault.azure.net/secrets/<name>, keyvault://…, env://NAME)"
            )
        return url


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
