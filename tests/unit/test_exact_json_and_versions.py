"""Properties: canonical JSON is exact or refused with a path; semver sort keys hold
precedence for numbers of any length; shorthand versions map to semver; one id rule."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.canonical import MAX_DEPTH, canonical_json, check_json
from dq_metadata.errors import ValidationError
from dq_metadata.models import CheckpointResult, Report
from dq_metadata.models.base import parse_model
from dq_metadata.scope import validate_document_id
from dq_metadata.sortkeys import MAX_VERSION_LENGTH, normalize_version, semver_sort_key
from dq_stores.testing.fuzz import exactly_equal, hostile_json

big = st.one_of(st.integers(0, 30), st.integers(0, 10**45), st.sampled_from([10**20 - 1, 10**20]))
ident = st.one_of(big.map(str), st.from_regex(r"[0-9]*[A-Za-z-][0-9A-Za-z-]{0,5}", fullmatch=True))
versions = st.builds(
    lambda ma, mi, pa, pre: f"{ma}.{mi}.{pa}" + (f"-{'.'.join(pre)}" if pre else ""),
    big, big, big, st.lists(ident, max_size=3),
).filter(lambda v: len(v) <= MAX_VERSION_LENGTH)  # fmt: skip


@given(versions, versions)
def test_sort_key_order_is_semver_precedence_for_numbers_of_any_length(a: str, b: str) -> None:
    expected = semver.Version.parse(a).compare(b)
    ka, kb = semver_sort_key(a), semver_sort_key(b)
    assert (ka > kb) - (ka < kb) == expected


def test_the_issue_examples_order_numerically() -> None:
    assert semver_sort_key("1.0.0-100000000000000000000") > semver_sort_key(
        "1.0.0-99999999999999999999"
    )
    assert semver_sort_key("100000000000000000000.0.0") > semver_sort_key(
        "99999999999999999999.9.9"
    )


@given(versions, st.sampled_from(["", "v", "V"]))
def test_shorthands_normalise_to_the_semver_they_stand_for(version: str, prefix: str) -> None:
    core, _, rest = version.partition("-")
    major, minor, patch = core.split(".")
    assert normalize_version(prefix + version) == version
    if minor == patch == "0" and not rest:
        assert normalize_version(prefix + major) == version
        assert normalize_version(f"{prefix}{major}.0") == version
        assert semver_sort_key(prefix + major) == semver_sort_key(version)


@given(hostile_json())
def test_canonical_json_is_exact_or_refused_with_a_path(value: Any) -> None:
    try:
        body = canonical_json({"results": {"ratio": value}})
    except ValidationError as exc:
        assert exc.problems[0].loc.startswith("results.ratio")  # noqa: PT017
        return
    import json

    assert exactly_equal(json.loads(body)["results"]["ratio"], value)


@pytest.mark.parametrize(
    ("value", "loc"),
    [
        (float("nan"), "x"),
        ({"a": [1, float("-inf")]}, "x.a[1]"),
        ("\ud83d", "x"),
        ({"\udc00": 1}, "x.'\\udc00'"),
        ((1,), "x"),
        ({1: 1}, "x.1"),
        (b"x", "x"),
        ({1, 2}, "x"),
        (10**4000, "x"),
    ],
)
def test_check_json_names_the_path(value: Any, loc: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_json({"x": value})
    assert [p.loc for p in info.value.problems] == [loc]


def test_the_nesting_limit_is_documented_and_refused_beyond() -> None:
    def nest(n: int) -> Any:
        v: Any = 1
        for _ in range(n):
            v = [v]
        return v

    check_json(nest(MAX_DEPTH))
    for depth in (MAX_DEPTH + 1, 1000, 100_000):
        with pytest.raises(ValidationError, match="nested deeper than 64"):
            check_json(nest(depth))


@pytest.mark.parametrize("bad", [float("nan"), (1, 2), {2: 1}, b"x", {1}, "\ud83d", object()])
def test_free_form_model_fields_refuse_non_json_with_the_field_path(bad: Any) -> None:
    data = {"name": "c", "passed": True, "observed": {"v": bad}}
    with pytest.raises(ValidationError) as info:
        parse_model(pydantic.TypeAdapter(CheckpointResult), data, "checkpoint")
    assert info.value.problems[0].loc.startswith("observed.v")


def test_a_1000_level_report_summary_is_a_validation_error_not_a_crash() -> None:
    summary: Any = "x"
    for _ in range(1000):
        summary = {"n": summary}
    with pytest.raises(pydantic.ValidationError, match="nested deeper"):
        Report(
            report_id="r", run_id="r", job_id="j", dataset="d",
            created_at="2026-01-01T00:00:00Z", summary={"s": summary},  # type: ignore[arg-type]
        )  # fmt: skip


@pytest.mark.parametrize("good", ["\t", " x", "a/b", "..", "é" * 256, "x" * 512, "a b"])
def test_one_id_rule_accepts_what_models_accept(good: str) -> None:
    assert validate_document_id(good, "id") == good


@pytest.mark.parametrize("bad", ["", "a\x00b", "\ud83d", "x" * 513, "é" * 257, "😀" * 129, 5, None])
def test_one_id_rule_refuses_with_the_field(bad: Any) -> None:
    with pytest.raises(ValidationError) as info:
        validate_document_id(bad, "contract_id")
    assert [p.loc for p in info.value.problems] == ["contract_id"]
