"""Inline credentials in documents: where they are, named by JSON path, never echoed.

Secrets are references (an Azure Key Vault secret URI
``https://<vault>.vault.azure.net/secrets/<name>[/<version>]``,
``keyvault://<vault>/<name>``, ``env://NAME``; see
:mod:`dq_metadata.models.action_profile`). :func:`find_inline_secrets` finds a field
named like a secret (``password``, ``token``, ``Authorization``…) whose value is not a
reference, or any value at any depth that looks like a credential — an
incoming-webhook URL of Slack, Teams, Discord or Google Chat, a URL with a token or
signature in its query (``sig=``, ``token=``, ``access_token=``, ``api_key=``,
``X-Amz-Signature=``…) or a password in its user part, an ``Authorization`` header
value, a connection string, a JWT, a long key blob. Values are checked as written and
as a URL reader sees them (percent-decoded, port / trailing dot / doubled slashes /
fragment normalised: :mod:`dq_metadata._secret_shapes`); every scalar under a
secret-named field (in lists and objects too) and the value of a header pair
(``[name, value]``, ``{name: …, value: …}``) whose name names a credential must be a
reference.

Pure functions (no I/O): the registries check before anything is read, and the typed
stores of ``dq_stores`` check again on every write, so no path persists a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from dq_metadata._secret_shapes import forms, header_pairs, url_password
from dq_metadata.errors import Problem, ValidationError
from dq_metadata.models.action_profile import is_secret_ref

__all__ = ["find_inline_secrets", "refuse_inline_secrets"]

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


def refuse_inline_secrets(document: Any, what: str, path: str = "") -> None:
    """Raise if ``document`` holds an inline secret anywhere under ``path``.

    Raises:
        ValidationError: ``"<what> holds inline secrets"``, one ``Problem`` per place,
            each naming the JSON path (never the value) and how to reference it.
    """
    secrets = list(find_inline_secrets(document, path))
    if secrets:
        raise ValidationError(f"{what} holds inline secrets", secrets)
