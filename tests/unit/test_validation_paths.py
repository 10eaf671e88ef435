"""Validation problems name the user's JSON path: ``recipients[1]``, ``items[3].url``.

Never a pydantic union tag (``custom.id``) nor a dotted list position
(``recipients.0``); a job over the action-profile limit names the reference that
goes over it, in whichever of ``on_success`` / ``on_failure`` / ``on_anomaly`` it is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import NotFoundError, Problem, ValidationError
from dq_metadata.models import ContractVersion, DataContract
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.jobs import MAX_PROFILES_PER_JOB, JobDefinitionRegistry
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

SCOPE = Scope("acme", "dev")

_VALID: dict[str, dict[str, Any]] = {
    "send_notification": {
        "channel": "email", "recipients": ["a@example.com", "b@example.com"],
        "template": "t",
    },
    "quarantine": {"target": "q", "mode": "flag"},
    "emit_lineage": {"endpoint": "https://marquez.example.com", "namespace": "dq"},
    "open_ticket": {"system": "jira", "project": "DQ", "priority": "high"},
    "custom": {"handler": "pkg.mod:fn", "params": {"a": [1, 2]}},
}  # fmt: skip
_TAGS = sorted(_VALID)
_WRONG = st.one_of(
    st.integers(), st.just(None), st.just([]), st.just({}), st.just(""), st.just([1, {}])
)


@st.composite
def _bad_profile(draw: st.DrawFn) -> dict[str, Any]:
    """A profile of a random type with 1 to 4 random faults (wrong types, missing or
    extra fields — some named like a union tag — and bad list items)."""
    action_type = draw(st.sampled_from(_TAGS))
    profile: dict[str, Any] = {"id": "p1", "name": "P", "action_type": action_type}
    profile.update(_VALID[action_type])
    for _ in range(draw(st.integers(1, 4))):
        fault = draw(st.sampled_from(["wrong", "missing", "extra", "item"]))
        fields = [k for k in profile if k != "action_type"]
        if fault == "wrong" and fields:
            profile[draw(st.sampled_from(fields))] = draw(_WRONG)
        elif fault == "missing" and fields:
            del profile[draw(st.sampled_from(fields))]
        elif fault == "extra":
            key = draw(st.sampled_from([*_TAGS, "extra", "url2"]))
            profile[key] = draw(st.one_of(_WRONG, st.just({"id": 1, "handler": 2})))
        elif fault == "item" and isinstance(profile.get("recipients"), list):
            items = list(profile["recipients"])
            items.insert(draw(st.integers(0, len(items))), draw(_WRONG))
            profile["recipients"] = items
    return profile


_SEGMENT = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def _segments(path: str) -> list[int | str]:
    out: list[int | str] = []
    for index, name in _SEGMENT.findall(path):
        out.append(int(index) if index else name)
    assert "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in out).lstrip(".") == path
    return out


def _assert_names_a_place(document: Any, path: str) -> None:
    """``path`` walks ``document``; only its last step may be a missing field."""
    node = document
    segments = _segments(path)
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if isinstance(segment, int):
            assert isinstance(node, list), (path, document)
            assert 0 <= segment < len(node), (path, document)
            node = node[segment]
        else:
            assert isinstance(node, dict), (path, document)
            assert segment in node or last, (path, document)
            node = node.get(segment)


def _registry() -> ActionProfileRegistry:
    backend = MemoryBackend()
    return ActionProfileRegistry(
        SCOPE, ActionProfileStore(backend), job_definitions=JobDefinitionStore(backend)
    )


@settings(max_examples=300)
@given(profile=_bad_profile())
def test_every_profile_problem_names_a_json_path_of_the_input(profile: dict[str, Any]) -> None:
    problems: tuple[Problem, ...] = ()
    try:
        _registry().validate(profile)
    except ValidationError as exc:
        problems = exc.problems
    for problem in problems:
        _assert_names_a_place(profile, problem.loc)
        first = _segments(problem.loc)[0] if problem.loc else None
        assert first not in _TAGS or first in profile  # never a pydantic union tag


@settings(max_examples=100)
@given(
    profile=_bad_profile(),
    position=st.integers(0, 4),
)
def test_a_bad_profile_in_a_batch_is_named_by_its_position(
    profile: dict[str, Any], position: int
) -> None:
    store = ActionProfileStore(MemoryBackend())
    batch: list[Any] = [{**profile, "id": f"p{i}"} for i in range(5)]
    batch[:position] = [
        {"id": f"ok{i}", "name": "ok", "action_type": "quarantine", "target": "q"}
        for i in range(position)
    ]
    problems: tuple[Problem, ...] | None = None
    try:
        store.create_many(SCOPE, batch)
    except ValidationError as exc:
        problems = exc.problems
    if problems is None:  # some faults leave a valid profile (an empty template, say)
        assert store.count(SCOPE) == 5
        return
    assert store.count(SCOPE) == 0
    for problem in problems:
        assert problem.loc.startswith(f"items[{position}]")
        _assert_names_a_place({"items": batch}, problem.loc)


def test_examples_of_paths() -> None:
    with pytest.raises(ValidationError) as info:
        _registry().validate(
            {"id": "", "name": "n", "action_type": "custom", "handler": 3, "params": {}}
        )
    assert [p.loc for p in info.value.problems] == ["id", "handler"]
    with pytest.raises(ValidationError) as info:
        ActionProfileStore(MemoryBackend()).create_many(
            SCOPE,
            [
                {"id": f"p{i}", "name": "n", "action_type": "quarantine", "target": "q"}
                for i in range(3)
            ]
            + [
                {
                    "id": "hook", "name": "n", "action_type": "send_notification",
                    "channel": "email", "recipients": ["a@example.com", 7],
                }
            ],
        )  # fmt: skip
    assert [p.loc for p in info.value.problems] == ["items[3].recipients[1]"]


def _jobs() -> JobDefinitionRegistry:
    backend = MemoryBackend()
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


_FIELDS = ("on_success", "on_failure", "on_anomaly")


@settings(max_examples=150)
@given(
    refs=st.lists(
        st.tuples(st.sampled_from(_FIELDS), st.integers(0, MAX_PROFILES_PER_JOB + 10)),
        min_size=1,
        max_size=90,
    )
)
def test_the_profile_over_the_limit_is_named_where_it_is(refs: list[tuple[str, int]]) -> None:
    job: dict[str, Any] = {
        "id": "nightly", "name": "n", "job_type": "validation",
        "contract": {"id": "orders", "version": "1.0.0"}, "dataset": "orders",
        **{field: [] for field in _FIELDS},
    }  # fmt: skip
    for field, n in refs:
        job[field].append(f"profile-{n}")
    places = [(f"{f}[{i}]", p) for f in _FIELDS for i, p in enumerate(job[f])]
    distinct = list(dict.fromkeys(p for _, p in places))
    if len(distinct) <= MAX_PROFILES_PER_JOB:
        with pytest.raises(NotFoundError):  # under the limit: the (absent) profiles are looked up
            _jobs().validate(job)
        return
    with pytest.raises(ValidationError) as info:
        _jobs().validate(job)
    [problem] = info.value.problems
    over = distinct[MAX_PROFILES_PER_JOB]
    assert problem.loc == next(place for place, p in places if p == over)
    assert str(MAX_PROFILES_PER_JOB) in problem.message
