"""Action profiles: typed, reusable actions fired on job outcomes.

Rules enforced here, before anything is written:

* each profile validates as its ``action_type`` (a discriminated union), with
  channel-specific parameters for notifications (see ``dq_metadata.models``);
* secrets are references (an Azure Key Vault secret URI
  ``https://<vault>.vault.azure.net/secrets/<name>[/<version>]``,
  ``keyvault://<vault>/<name>``, ``env://NAME``): a value that looks like an inline
  credential (see :mod:`dq_metadata.secrets` for the shapes) is rejected with the
  JSON path of the offending value (never the value) and how to reference it. The
  typed ``ActionProfileStore`` refuses the same on every write, so writing through
  the store does not bypass the rule;
* a profile referenced by an enabled job definition cannot be deleted.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, get_args

from dq_metadata.canonical import check_json
from dq_metadata.errors import (
    ConflictError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.models import ActionProfile
from dq_metadata.scope import Scope
from dq_metadata.secrets import find_inline_secrets, refuse_inline_secrets
from dq_registries.domain._storeops import (
    check_id,
    check_limit,
    check_revision,
    write,
)
from dq_stores.base import ItemPage, Revision, Versioned
from dq_stores.documents import Operation
from dq_stores.typed import ActionProfileStore, JobDefinitionStore, UsageStampStore

__all__ = ["ACTION_TYPES", "ActionProfileRegistry", "find_inline_secrets"]

_DELETE_ATTEMPTS = 5

#: The ``action_type`` values a profile may have.
ACTION_TYPES: tuple[str, ...] = tuple(
    get_args(member.model_fields["action_type"].annotation)[0]
    for member in get_args(get_args(ActionProfile)[0])
)


class ActionProfileRegistry:
    """Action profiles of one scope.

    ``job_definitions`` is read to refuse deleting a referenced profile; the
    container gives both stores the same backend.
    """

    def __init__(
        self,
        scope: Scope,
        store: ActionProfileStore,
        *,
        job_definitions: JobDefinitionStore,
    ) -> None:
        if not isinstance(scope, Scope):
            raise ValidationError("scope must be a Scope")
        self.scope = scope
        self.store = store
        self.job_definitions = job_definitions
        if self.job_definitions.backend is not self.store.backend:
            raise MisconfiguredError(
                "action profiles and job definitions must share one backend: deleting a "
                "profile and saving a job that references it commit atomically"
            )
        self._usage = UsageStampStore(self.store.backend)

    def validate(self, profile: ActionProfile | Mapping[str, Any]) -> ActionProfile:
        """Validate ``profile`` (type, parameters, no inline secrets) without saving it."""
        raw = profile.model_dump(mode="json") if hasattr(profile, "model_dump") else profile
        if not isinstance(raw, Mapping):
            raise ValidationError(f"an action profile must be a mapping, got {type(raw).__name__}")
        if raw.get("action_type") not in ACTION_TYPES:
            raise ValidationError(
                "invalid action profile",
                [
                    Problem(
                        "action_type",
                        f"{raw.get('action_type')!r}: use one of {list(ACTION_TYPES)}",
                    )
                ],
            )
        check_json(dict(raw), what="invalid action profile")  # exact JSON before any walk
        refuse_inline_secrets(raw, "action profile")
        return self.store.validate(dict(raw))

    def save(
        self, profile: ActionProfile | Mapping[str, Any], *, expected_revision: int | None = None
    ) -> ActionProfile:
        """Create or update a profile.

        ``expected_revision=None`` writes unconditionally (no new revision if the
        content is unchanged); ``0`` means "must not exist yet"; ``n`` means the
        current revision must be ``n``.

        Raises:
            ValidationError: bad type/parameters or an inline secret (with its path).
            ConflictError: ``expected_revision`` is stale.
        """
        return self.save_versioned(profile, expected_revision=expected_revision).item

    def save_versioned(
        self, profile: ActionProfile | Mapping[str, Any], *, expected_revision: int | None = None
    ) -> Versioned[ActionProfile]:
        """Like :meth:`save`, returning the stored revision too."""
        item = self.validate(profile)
        check_revision(expected_revision)
        return write(self.store, self.scope, item, expected_revision)

    def get(self, profile_id: str) -> ActionProfile:
        """The current profile. Raises ``NotFoundError``."""
        return self.get_versioned(profile_id).item

    def get_versioned(self, profile_id: str) -> Versioned[ActionProfile]:
        return self.store.get(self.scope, check_id(profile_id, "profile_id"))

    def list(
        self, action_type: str | None = None, limit: int = 100, page_token: str | None = None
    ) -> ItemPage[ActionProfile]:
        """One page of profiles ordered by id, optionally of one ``action_type``."""
        if action_type is not None:
            return self.list_by_type(action_type, limit=limit, page_token=page_token)
        return self.store.list(self.scope, limit=check_limit(limit), page_token=page_token)

    def list_by_type(
        self, action_type: str, *, limit: int = 100, page_token: str | None = None
    ) -> ItemPage[ActionProfile]:
        """One page of the profiles of ``action_type`` (one of :data:`ACTION_TYPES`)."""
        if action_type not in ACTION_TYPES:
            raise ValidationError(
                "invalid action type",
                [Problem("action_type", f"{action_type!r} is not one of {list(ACTION_TYPES)}")],
            )
        return self.store.list_by_type(self.scope, action_type, limit=limit, page_token=page_token)

    def history(self, profile_id: str) -> builtins.list[Revision[ActionProfile]]:
        """Every revision of the profile, oldest first. Raises ``NotFoundError``."""
        return self.store.history(self.scope, check_id(profile_id, "profile_id"))

    def delete(self, profile_id: str, *, expected_revision: int | None = None) -> int:
        """Delete a profile; returns the tombstone revision.

        Raises:
            NotFoundError: no such profile.
            ConflictError: enabled job definitions reference it (their ids are listed),
                or ``expected_revision`` is stale.
        """
        check_id(profile_id, "profile_id")
        check_revision(expected_revision, allow_zero=False)
        stamp_key = self._usage.key_for("action_profile", profile_id)
        for _ in range(_DELETE_ATTEMPTS):
            # The stamp is read BEFORE the jobs are: a job saved after this read moves it,
            # and the guard below then refuses the delete instead of racing the save.
            stamp = self._usage.revision_of(self.scope, "action_profile", profile_id)
            current = self.store.get(self.scope, profile_id)
            if expected_revision is not None and current.revision != expected_revision:
                raise ConflictError(
                    f"action profile {profile_id!r} is at revision {current.revision}, "
                    f"expected revision {expected_revision}"
                )
            users = self.referencing_jobs(profile_id)
            if users:
                shown = ", ".join(users[:20]) + (" ..." if len(users) > 20 else "")
                raise ConflictError(
                    f"action profile {profile_id!r} is used by enabled job definitions: {shown}"
                )
            operations: list[Operation] = [
                self.store.delete_operation(profile_id, current.revision),
                self._usage.check_operation(stamp_key, stamp),
            ]
            try:
                tombstone = self.store.backend.commit(self.scope, operations)[0]
            except (ConflictError, NotFoundError):
                continue  # the profile or a job referencing it changed: check again
            assert tombstone is not None
            return tombstone.revision
        raise ConflictError(
            f"action profile {profile_id!r} or the jobs referencing it keep changing; retry"
        )

    def referencing_jobs(self, profile_id: str, *, enabled_only: bool = True) -> builtins.list[str]:
        """Ids of the job definitions referencing ``profile_id`` (index lookups only)."""
        filters: dict[str, str] = {"action_profile": check_id(profile_id, "profile_id")}
        if enabled_only:
            filters["enabled"] = "true"
        ids: builtins.list[str] = []
        token: str | None = None
        while True:
            page = self.job_definitions.list(
                self.scope, filters=filters, limit=500, page_token=token
            )
            ids.extend(v.item.id for v in page.items)
            token = page.next_token
            if token is None:
                return ids
