"""Action profiles: typed, reusable actions fired on job outcomes.

Rules enforced here, before anything is written:

* each profile validates as its ``action_type`` (a discriminated union), with
  channel-specific parameters for notifications (see ``dq_metadata.models``);
* secrets are references (an Azure Key Vault secret URI
  ``https://<vault>.vault.azure.net/secrets/<name>[/<version>]``,
  ``keyvault://<vault>/<name>``, ``env://NAME``; see
  :mod:`dq_metadata.models.action_profile`): a field named like a secret
  (``password``, ``token``, ``Authorization``…) whose value is not a reference, or
  any value at any depth that looks like a credential — an incoming-webhook URL
  of Slack, Teams, Discord or Google Chat, a URL with a token or signature in its
  query (``sig=``, ``token=``, ``access_token=``, ``api_key=``,
  ``X-Amz-Signature=``…) or a password in its user part, an ``Authorization``
  header value, a connection string, a JWT, a long key blob — is rejected with
  the JSON path of the offending value (never the value) and how to reference it.
  Values are checked as written and as a URL reader sees them (percent-decoded,
  port / trailing dot / doubled slashes / fragment normalised); every scalar under a
  secret-named field (in lists and objects too) and the value of a header pair
  (``[name, value]``, ``{name: …, value: …}``) whose name names a credential must be
  a reference;
* a profile referenced by an enabled job definition cannot be deleted.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator, Mapping
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
from dq_metadata.models.action_profile import is_secret_ref
from dq_metadata.scope import Scope
from dq_registries.domain._secret_shapes import forms, header_pairs, url_password
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

_HOW = (
    "store it in a vault and write a reference instead: "
    "https://<vault>.vault.azure.net/secrets/<name>, keyvault://<vault>/<name> or env://NAME"
)
# Field names whose last word (or last two words) names a credential.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "passphrase", "token", "secret", "secrets",
        "credential", "credentials", "sas", "apikey", "connectionstring", "connstr",
        "authorization", "cookie",
    }
)  # fmt: skip
_SECRET_PAIRS = frozenset(
    {
        "api_key", "access_key", "account_key", "private_key", "secret_key", "shared_key",
        "signing_key", "subscription_key", "master_key", "client_key", "encryption_key",
        "connection_string", "conn_str", "client_secret", "sas_url",
    }
)  # fmt: skip
_SECRET_VALUE_PATTERNS = (
    ("a Slack incoming-webhook URL", re.compile(r"(?i)\bhooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/\S")),
    ("a Teams incoming-webhook URL", re.compile(r"(?i)(?:\.webhook\.office\.com/|\boutlook\.office(?:365)?\.com/webhook)")),
    ("a Discord webhook URL", re.compile(r"(?i)\b(?:discord|discordapp)\.com/api(?:/v\d+)?/webhooks/\S")),
    ("a Google Chat webhook URL", re.compile(r"(?i)\bchat\.googleapis\.com/\S*[?&](?:key|token)=")),
    ("an Authorization header value", re.compile(r"(?i)(?:^\s*|\bauthorization\s*:\s*)(?:bearer|basic|token|digest|sharedkey|sharedaccesssignature|sso-key)\s+\S{6,}")),
    ("a signed URL", re.compile(r"(?i)[?&](?:signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=[^&\s]+")),
    ("a connection string", re.compile(r"(?i)\b(accountkey|password|pwd|sharedaccesskey)\s*=")),
    ("a SAS token", re.compile(r"(?i)(^|[?&])sig=[^&\s]+")),
    ("a credential in a URL query", re.compile(r"(?i)[?&](code|token|access_token|id_token|refresh_token|auth|api_key|api-key|apikey|key|password|passwd|secret|client_secret)=[^&\s]+")),
    ("a URL with a password", re.compile(r"(?i)^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
    ("a JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
    ("an access token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|sk-[A-Za-z0-9]{20,})")),
)  # fmt: skip
# Fields inside a secret-named object that describe the secret rather than hold it.
_NOT_SECRET_PARTS = [
    [w] for w in ("user", "username", "login", "name", "type", "kind", "id", "description",
                  "header", "scheme", "provider", "vault", "format", "expires", "expiry")
] + [["user", "name"], ["client", "id"], ["tenant", "id"], ["key", "id"]]  # fmt: skip
_BLOB = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _words(name: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", name).lower()) if w]


def _secret_like_name(name: str) -> bool:
    words = _words(name)
    if not words:
        return False
    if words == ["key"] or words[-1] in _SECRET_WORDS:
        return True
    return len(words) >= 2 and "_".join(words[-2:]) in _SECRET_PAIRS


def _secret_like_value(value: str) -> str | None:
    """What ``value`` looks like if it looks like an inline credential, else ``None``.

    Checked as written and as a URL reader sees it (decoded, normalised: see
    :func:`dq_registries.domain._secret_shapes.forms`).
    """
    if is_secret_ref(value):
        return None
    texts = forms(value)
    for what, pattern in _SECRET_VALUE_PATTERNS:
        if any(pattern.search(text) for text in texts):
            return what
    if url_password(value):
        return "a URL with a password"
    if _BLOB.fullmatch(value) and _mixed(value):
        return "a key or token"
    return None


def _mixed(value: str) -> bool:
    # Keys are random: upper, lower and digits together. Words, ids and hex digests are not.
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def find_inline_secrets(document: Any, path: str = "") -> Iterator[Problem]:
    """Every place in ``document`` (nested dicts/lists) that holds an inline secret."""
    if isinstance(document, Mapping):
        for key, value in document.items():
            what = _secret_like_value(str(key))
            if what:  # the path would echo it: name the object holding the key
                yield Problem(path or "(root)", f"a key looks like {what}; {_HOW}")
                continue
            where = f"{path}.{key}" if path else str(key)
            if _secret_like_name(str(key)):
                yield from _secret_leaves(value, where)
            else:
                yield from find_inline_secrets(value, where)
    elif isinstance(document, list | tuple):
        named = {i for i, name, value in header_pairs(list(document)) if _secret_like_name(name)}
        for i, value in enumerate(document):
            if i in named:
                yield from _secret_leaves(_pair_value(value), f"{path}[{i}]")
            else:
                yield from find_inline_secrets(value, f"{path}[{i}]")
    elif isinstance(document, str):
        what = _secret_like_value(document)
        if what:
            yield Problem(path, f"looks like {what}; {_HOW}")


def _pair_value(entry: Any) -> Any:
    return entry["value"] if isinstance(entry, Mapping) else entry[1]


def _secret_leaves(value: Any, path: str) -> Iterator[Problem]:
    """Every scalar under a secret-named field that is not a reference (at any depth)."""
    if isinstance(value, Mapping):
        for i, (key, item) in enumerate(value.items()):
            if _words(str(key)) in _NOT_SECRET_PARTS:  # credentials: {username: …, password: …}
                yield from find_inline_secrets(item, f"{path}.{key}")
            else:
                yield from _secret_leaves(item, f"{path}.<{i}>")  # keys may be secrets too
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _secret_leaves(item, f"{path}[{i}]")
    elif _holds_scalar_secret(value):
        yield Problem(path, f"looks like an inline secret; {_HOW}")


def _holds_scalar_secret(value: Any) -> bool:
    if value is None or value == "" or isinstance(value, bool):
        return False
    if isinstance(value, str):
        return not is_secret_ref(value)
    return not isinstance(value, Mapping | list | tuple)


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
        secrets = list(find_inline_secrets(raw))
        if secrets:
            raise ValidationError("action profile holds inline secrets", secrets)
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
