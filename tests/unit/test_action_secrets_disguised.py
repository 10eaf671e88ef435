"""Credentials in disguise are still refused: the same secret shapes, written the ways
people (and tools) actually write them — URL-encoded, with a port or a trailing dot in
the host, an upper-case scheme, a doubled slash, a token in the fragment, an empty user
name before the password — and in the places secrets hide: under a secret-named key
inside a list or object, as the value of a header pair (``[name, value]`` or
``{name: …, value: …}``), or as a mapping key. References stay accepted there."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, JobDefinitionStore

SCOPE = Scope("acme", "dev")

_token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=12, max_size=30
)

_WEBHOOKS = {
    "slack": lambda t: f"https://hooks.slack.com/services/T0/B0/{t}",
    "discord": lambda t: f"https://discord.com/api/webhooks/123/{t}",
    "teams": lambda t: f"https://contoso.webhook.office.com/webhookb2/{t}@x/IncomingWebhook/{t}",
    "query token": lambda t: f"https://api.example.com/notify?token={t}",
}  # fmt: skip


def _with_port(url: str) -> str:
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    return f"{scheme}://{host}:443/{path}"


def _trailing_dot(url: str) -> str:
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    return f"{scheme}://{host}./{path}"


def _double_slash(url: str) -> str:
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    return f"{scheme}://{host}//{path}"


_DISGUISES = {
    "percent-encoded": lambda u: quote(u, safe=""),
    "percent-encoded twice": lambda u: quote(quote(u, safe=""), safe=""),
    "encoded path": lambda u: u.split("://", 1)[0] + "://" + quote(u.split("://", 1)[1], safe=".@?=&"),
    "port": _with_port,
    "trailing dot": _trailing_dot,
    "double slash": _double_slash,
    "upper case": str.upper,
}  # fmt: skip


def _registry() -> ActionProfileRegistry:
    backend = MemoryBackend()
    return ActionProfileRegistry(
        SCOPE, ActionProfileStore(backend), job_definitions=JobDefinitionStore(backend)
    )


def _custom(params: dict[str, Any]) -> dict[str, Any]:
    return {"id": "hook", "name": "Hook", "action_type": "custom", "handler": "h", "params": params}


def _refused_at(params: dict[str, Any], path: str, secret: str) -> None:
    with pytest.raises(ValidationError) as info:
        _registry().save(_custom(params))
    assert path in [p.loc for p in info.value.problems], info.value.problems
    assert secret not in str(info.value)


@settings(max_examples=120, deadline=None)
@given(
    token=_token,
    shape=st.sampled_from(sorted(_WEBHOOKS)),
    disguise=st.sampled_from(sorted(_DISGUISES)),
)
def test_disguised_credential_urls_are_refused(token: str, shape: str, disguise: str) -> None:
    value = _DISGUISES[disguise](_WEBHOOKS[shape](token))
    _refused_at({"target": value}, "params.target", token)


@settings(max_examples=40, deadline=None)
@given(token=_token, param=st.sampled_from(["access_token", "token", "code", "sig"]))
def test_tokens_in_a_url_fragment_are_refused(token: str, param: str) -> None:
    _refused_at(
        {"callback": f"https://app.example.com/cb#{param}={token}"}, "params.callback", token
    )


@settings(max_examples=40, deadline=None)
@given(token=_token, scheme=st.sampled_from(["https", "HTTPS", "git+https", "amqps"]))
def test_a_password_after_an_empty_user_name_is_refused(token: str, scheme: str) -> None:
    _refused_at({"repo": f"{scheme}://:{token}@dev.azure.com/org/p"}, "params.repo", token)


@settings(max_examples=60, deadline=None)
@given(
    token=_token,
    key=st.sampled_from(["password", "token", "apiKey", "client_secret", "Authorization"]),
    wrap=st.sampled_from(["list", "dict", "list of lists"]),
)
def test_a_secret_named_key_holding_a_container_is_refused(token: str, key: str, wrap: str) -> None:
    inner: Any = {"list": [token], "dict": {"value": token}, "list of lists": [[token]]}[wrap]
    with pytest.raises(ValidationError) as info:
        _registry().save(_custom({key: inner}))
    assert any(p.loc.startswith(f"params.{key}") for p in info.value.problems)
    assert token not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    token=_token,
    header=st.sampled_from(["Authorization", "X-Api-Key", "api-key", "Ocp-Apim-Subscription-Key", "X-Auth-Token"]),
    scheme=st.sampled_from(["", "ApiKey ", "GenieKey ", "Splunk ", "Bot "]),
    shape=st.sampled_from(["pair", "name/value", "key/value", "header/value"]),
)  # fmt: skip
def test_header_pairs_carrying_credentials_are_refused(
    token: str, header: str, scheme: str, shape: str
) -> None:
    value = scheme + token
    entry: Any = (
        [header, value]
        if shape == "pair"
        else {shape.split("/", maxsplit=1)[0]: header, "value": value}
    )
    with pytest.raises(ValidationError) as info:
        _registry().save(_custom({"headers": [["Content-Type", "application/json"], entry]}))
    assert any(p.loc.startswith("params.headers[1]") for p in info.value.problems)
    assert token not in str(info.value)


@settings(max_examples=30, deadline=None)
@given(token=_token)
def test_a_credential_url_as_a_mapping_key_is_refused(token: str) -> None:
    url = f"https://hooks.slack.com/services/T0/B0/{token}"
    with pytest.raises(ValidationError) as info:
        _registry().save(_custom({"routes": {url: "alerts"}}))
    assert token not in str(info.value)


@pytest.mark.parametrize(
    "params",
    [
        {"password": ["env://DB_PASSWORD"]},
        {"token": {"primary": "keyvault://ops/api-token", "fallback": None}},
        {"headers": [["Authorization", "env://HOOK_AUTH"], ["Content-Type", "application/json"]]},
        {"headers": [{"name": "X-Api-Key", "value": "https://ops.vault.azure.net/secrets/key"}]},
        {"headers": [["Accept", "application/json"], {"name": "User-Agent", "value": "dq/1.0"}]},
        {"links": ["https://example.com/docs%20page", "https://example.com:8443/status"]},
        {"pair": ["token", ""], "names": ["password", "token"]},
    ],
)
def test_references_and_ordinary_values_in_the_same_places_are_accepted(
    params: dict[str, Any],
) -> None:
    assert _registry().save(_custom(params)).model_dump()["params"] == params


def test_fields_that_describe_a_secret_next_to_its_reference_are_accepted() -> None:
    params = {
        "credentials": {"username": "svc-dq", "password": "env://DQ_PASSWORD", "type": "basic"},
        "oauth": {"client_id": "3f2a", "client_secret": "keyvault://ops/dq-client"},
    }
    assert _registry().save(_custom(params)).model_dump()["params"] == params
