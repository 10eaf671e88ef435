"""Credential-bearing values are refused in any action parameter at any depth, by path,
without echoing them; the documented reference forms are accepted everywhere."""

from __future__ import annotations

from typing import Any

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
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=12, max_size=40
)
_host = st.from_regex(r"[a-z][a-z0-9]{2,10}\.(com|net|io)", fullmatch=True)

# Each strategy gives (value, the secret part that must never be echoed).
_SECRETS = {
    "slack webhook": st.builds(lambda t: f"https://hooks.slack.com/services/T0{t[:6]}/B0{t[6:]}/{t}", _token),
    "teams webhook": st.builds(lambda t: f"https://contoso.webhook.office.com/webhookb2/{t}@x/IncomingWebhook/{t}", _token),
    "legacy teams webhook": st.builds(lambda t: f"https://outlook.office.com/webhook/{t}", _token),
    "discord webhook": st.builds(lambda t: f"https://discord.com/api/webhooks/123456/{t}", _token),
    "google chat webhook": st.builds(lambda t: f"https://chat.googleapis.com/v1/spaces/AAA/messages?key={t}&token={t}", _token),
    "query token": st.builds(
        lambda h, p, t: f"https://{h}/api?{p}={t}",
        _host, st.sampled_from(["sig", "token", "access_token", "api_key", "X-Amz-Signature", "signature", "apikey"]), _token,
    ),
    "bearer header": st.builds(lambda s, t: f"{s} {t}", st.sampled_from(["Bearer", "Basic", "bearer", "Token"]), _token),
    "password in url": st.builds(lambda h, t: f"https://svc:{t}@{h}/hook", _host, _token),
}  # fmt: skip

_REFS = st.one_of(
    st.from_regex(r"https://[a-z][a-z0-9-]{2,20}\.vault\.azure\.net/secrets/[a-z][a-z0-9-]{0,30}(/[0-9a-f]{32})?", fullmatch=True),
    st.from_regex(r"keyvault://[a-z][a-z0-9-]{2,20}/[a-z][a-z0-9-]{0,30}", fullmatch=True),
    st.from_regex(r"env://[A-Z_][A-Z0-9_]{0,30}", fullmatch=True),
)  # fmt: skip

_benign_key = st.from_regex(r"(level|node|item|cfg)[0-9]", fullmatch=True)


def _registry() -> tuple[ActionProfileRegistry, MemoryBackend]:
    backend = MemoryBackend()
    return ActionProfileRegistry(
        SCOPE, ActionProfileStore(backend), job_definitions=JobDefinitionStore(backend)
    ), backend


def _custom(params: dict[str, Any]) -> dict[str, Any]:
    return {"id": "hook", "name": "Hook", "action_type": "custom", "handler": "h", "params": params}


@st.composite
def _nested(draw: st.DrawFn, value: st.SearchStrategy[str]) -> tuple[dict[str, Any], str, str]:
    """A params mapping holding ``value`` at a random depth; its JSON path; the value."""
    leaf = draw(value)
    document: Any = leaf
    path = ""
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            index = draw(st.integers(0, 2))
            document = [*(["plain"] * index), document]
            path = f"[{index}]{path}"
        else:
            key = draw(_benign_key)
            document = {key: document}
            path = f".{key}{path}"
    key = draw(st.sampled_from(["target", "url", "header", "value"]))
    return {key: document}, f"params.{key}{path}", leaf


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shape=st.sampled_from(sorted(_SECRETS)))
def test_secret_bearing_values_at_any_depth_are_refused_by_path_without_echo(
    data: st.DataObject, shape: str
) -> None:
    params, path, secret = data.draw(_nested(_SECRETS[shape]))
    registry, backend = _registry()

    with pytest.raises(ValidationError) as info:
        registry.save(_custom(params))

    assert [p.loc for p in info.value.problems] == [path]
    message = str(info.value)
    assert secret not in message
    assert "vault.azure.net/secrets" in message
    assert "env://" in message
    assert ActionProfileStore(backend).count(SCOPE) == 0


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_reference_forms_are_accepted_at_any_depth(data: st.DataObject) -> None:
    params, _, _ = data.draw(_nested(_REFS))
    registry, _ = _registry()

    assert registry.save(_custom(params)).model_dump()["params"] == params


@settings(max_examples=40, deadline=None)
@given(ref=_REFS, channel=st.sampled_from(["slack", "teams", "webhook"]))
def test_a_notification_refers_to_its_webhook_url_by_reference(ref: str, channel: str) -> None:
    registry, _ = _registry()
    profile = {
        "id": "n",
        "name": "N",
        "action_type": "send_notification",
        "channel": channel,
        "url": ref,
    }

    assert registry.save(profile).url == ref  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456",
        "https://discord.com/api/webhooks/1/abcdefghijk",
    ],
)
def test_an_inline_chat_webhook_url_is_refused(url: str) -> None:
    registry, _ = _registry()
    profile = {
        "id": "n",
        "name": "N",
        "action_type": "send_notification",
        "channel": "slack",
        "url": url,
    }

    with pytest.raises(ValidationError) as info:
        registry.save(profile)

    assert [p.loc for p in info.value.problems] == ["url"]
    assert url not in str(info.value)


@pytest.mark.parametrize("name", ["Authorization", "authorization", "headers_Authorization"])
def test_an_authorization_header_field_must_be_a_reference(name: str) -> None:
    registry, _ = _registry()

    with pytest.raises(ValidationError, match=name):
        registry.save(_custom({"headers": {name: "opaque-value"}}))
    assert registry.save(_custom({"headers": {name: "env://HOOK_AUTH"}})).id == "hook"


@pytest.mark.parametrize(
    "value",
    [
        "https://example.com/hook?page=2",
        "https://docs.example.com/token-rotation",
        "Bearer",
        "https://my-vault.vault.azure.net/secrets/x?api-version=7.4",
    ],
)
def test_ordinary_values_are_not_mistaken_for_secrets(value: str) -> None:
    registry, _ = _registry()

    assert registry.save(_custom({"note": value})).id == "hook"
