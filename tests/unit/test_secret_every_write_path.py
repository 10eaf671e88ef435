"""No write path persists an inline credential: the typed stores refuse it too.

The registries refuse a secret-looking value before anything is read; the typed
``ActionProfileStore`` and ``JobDefinitionStore`` (checkpoint ``params``) refuse it on
every write they make (put, create, update, the bulk writes, idempotent creates and
commit operations), with the JSON path and never the value, and write nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_metadata.models import ContractVersion, DataContract
from dq_metadata.scope import Scope
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_stores.base import Store
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

SCOPE = Scope("acme", "dev")

_token = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=12, max_size=40
)
_host = st.from_regex(r"[a-z][a-z0-9]{2,10}\.(com|net|io)", fullmatch=True)
_SECRET = st.one_of(
    st.builds(lambda t: f"https://hooks.slack.com/services/T0{t[:6]}/B0{t[6:]}/{t}", _token),
    st.builds(lambda h, t: f"https://{h}/api?access_token={t}", _host, _token),
    st.builds(lambda t: f"Bearer {t}", _token),
    st.builds(lambda h, t: f"https://svc:{t}@{h}/hook", _host, _token),
    st.builds(lambda t: f"AccountName=x;AccountKey={t}", _token),
)
_key = st.from_regex(r"(level|node|item|cfg)[0-9]", fullmatch=True)


@st.composite
def _nested(draw: st.DrawFn) -> tuple[Any, str, str]:
    """A value holding a secret at a random depth; the JSON path below it; the secret."""
    secret = draw(_SECRET)
    document: Any = secret
    path = ""
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            index = draw(st.integers(0, 2))
            document = [*(["plain"] * index), document]
            path = f"[{index}]{path}"
        else:
            key = draw(_key)
            document = {key: document}
            path = f".{key}{path}"
    return document, path, secret


def _profile(params: dict[str, Any]) -> dict[str, Any]:
    return {"id": "hook", "name": "Hook", "action_type": "custom", "handler": "h", "params": params}


def _job(params: dict[str, Any], job_id: str = "nightly") -> dict[str, Any]:
    return {
        "id": job_id,
        "name": "Nightly",
        "job_type": "validation",
        "contract": {"id": "orders", "version": "1.0.0"},
        "dataset": "orders",
        "checkpoints": [
            {"name": "ok", "check": "not_null", "params": {"column": "id"}},
            {"name": "bad", "check": "webhook", "params": params},
        ],
    }


def _writes(store: Store[Any], item: Any) -> dict[str, Callable[[], object]]:
    """Every way a typed store persists ``item`` (a model instance, trusted as it is)."""
    backend = store.backend
    return {
        "put": lambda: store.put(SCOPE, item),
        "create": lambda: store.create(SCOPE, item),
        "update": lambda: store.update(SCOPE, item, 1),
        "create_or_same": lambda: store.create_or_same(SCOPE, item),
        "put_if_changed": lambda: store.put_if_changed(SCOPE, item),
        "put_many": lambda: store.put_many(SCOPE, [item]),
        "create_many": lambda: store.create_many(SCOPE, [item]),
        "commit": lambda: backend.commit(SCOPE, [store.put_operation(item)]),
    }


def _assert_refused(write: Callable[[], object], path: str, secret: str) -> None:
    with pytest.raises(ValidationError) as info:
        write()
    assert any(p.loc.endswith(path) for p in info.value.problems), info.value.problems
    assert secret not in str(info.value)
    assert secret not in repr(info.value.problems)


@settings(max_examples=40)
@given(found=_nested())
def test_action_profile_store_refuses_inline_secrets_on_every_write(
    found: tuple[Any, str, str],
) -> None:
    value, below, secret = found
    backend = MemoryBackend()
    store = ActionProfileStore(backend)
    # model_copy(update=...): an instance the store trusts without validating it again
    item = store.validate(_profile({"ok": 1})).model_copy(update={"params": {"target": value}})
    for name, write in _writes(store, item).items():
        _assert_refused(write, f"params.target{below}", secret)
        assert store.count(SCOPE) == 0, name


@settings(max_examples=40)
@given(found=_nested())
def test_job_definition_store_refuses_secrets_in_checkpoint_params(
    found: tuple[Any, str, str],
) -> None:
    value, below, secret = found
    backend = MemoryBackend()
    store = JobDefinitionStore(backend)
    item = store.validate(_job({"url": value}))
    for name, write in _writes(store, item).items():
        _assert_refused(write, f"checkpoints[1].params.url{below}", secret)
        assert store.count(SCOPE) == 0, name
    with pytest.raises(ValidationError):
        store.put(SCOPE, _job({"url": value}))  # a mapping, validated first
    assert store.count(SCOPE) == 0


def _registry(backend: MemoryBackend) -> JobDefinitionRegistry:
    ContractStore(backend).create(
        SCOPE,
        ContractVersion(
            contract=DataContract(
                id="orders", version="1.0.0", status="active", schema=[{"name": "orders"}]
            ),
            published_by="me",
            published_at=datetime.now(UTC),
        ),
    )
    return JobDefinitionRegistry(
        SCOPE,
        JobDefinitionStore(backend),
        contracts=ContractStore(backend),
        action_profiles=ActionProfileStore(backend),
    )


@settings(max_examples=25)
@given(found=_nested(), position=st.integers(0, 3))
def test_job_registry_refuses_secrets_in_checkpoint_params_before_any_write(
    found: tuple[Any, str, str], position: int
) -> None:
    value, below, secret = found
    backend = MemoryBackend()
    jobs = _registry(backend)
    bad = _job({"url": value}, job_id=f"job-{position}")
    _assert_refused(lambda: jobs.save(bad), f"checkpoints[1].params.url{below}", secret)
    _assert_refused(lambda: jobs.validate(bad), f"checkpoints[1].params.url{below}", secret)
    batch = [_job({"column": "id"}, job_id=f"job-{i}") for i in range(4)]
    batch[position] = bad
    _assert_refused(
        lambda: jobs.save_many(batch), f"items[{position}].checkpoints[1].params.url{below}", secret
    )
    assert JobDefinitionStore(backend).count(SCOPE) == 0


def test_ordinary_checkpoint_params_are_saved() -> None:
    backend = MemoryBackend()
    jobs = _registry(backend)
    saved = jobs.save(_job({"url": "https://example.com/hook", "threshold": 3}))
    assert saved.checkpoints[1].params["threshold"] == 3
