import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata import ValidationError, canonical_json, content_hash
from dq_metadata.sortkeys import semver_sort_key, time_sort_key, version_in_range

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips_and_is_stable(value: object) -> None:
    data = canonical_json(value)
    assert json.loads(data) == value
    assert canonical_json(json.loads(data)) == data


@given(st.dictionaries(st.text(), st.integers(), min_size=2))
def test_key_order_does_not_change_bytes_or_hash(d: dict[str, int]) -> None:
    reordered = dict(reversed(list(d.items())))
    assert canonical_json(d) == canonical_json(reordered)
    assert content_hash(canonical_json(d)) == content_hash(canonical_json(reordered))


def test_canonical_json_is_compact_sorted_utf8() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: object()}, {"s": {1, 2}}])
def test_canonical_json_rejects_non_json(bad: object) -> None:
    with pytest.raises(ValidationError):
        canonical_json(bad)


ident = st.from_regex(r"(0|[1-9][0-9]{0,3}|[0-9]{0,5}[A-Za-z-][0-9A-Za-z-]{0,5})", fullmatch=True)
versions = st.builds(
    lambda ma, mi, pa, pre: f"{ma}.{mi}.{pa}" + (f"-{'.'.join(pre)}" if pre else ""),
    st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6),
    st.lists(ident, max_size=4),
)  # fmt: skip


@given(versions, versions)
def test_semver_sort_key_order_equals_semver_precedence(a: str, b: str) -> None:
    expected = semver.Version.parse(a).compare(b)
    ka, kb = semver_sort_key(a), semver_sort_key(b)
    actual = (ka > kb) - (ka < kb)
    assert actual == expected


def test_semver_examples() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
               "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.9.0", "1.10.0"]  # fmt: skip
    assert sorted(ordered, key=semver_sort_key) == ordered
    assert semver_sort_key("1.0.0+build.5") == semver_sort_key("1.0.0")


@pytest.mark.parametrize(
    "bad", ["", "1.0.0-", "01.0.0", "1.01", "2.x", "1.0.0.0", "v", "latest", "٣.0.0"]
)
def test_non_semver_is_a_validation_error_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError, match="version"):
        semver_sort_key(bad)


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_time_sort_key_orders_like_time(a: datetime, b: datetime) -> None:
    assert (time_sort_key(a) < time_sort_key(b)) == (a < b)


def test_time_sort_key_normalises_zones_and_refuses_naive() -> None:
    plus2 = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert time_sort_key(plus2) == "2026-01-01T10:00:00.000000Z"
    with pytest.raises(ValidationError):
        time_sort_key(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [("1.4.2", ">=1.2.0,<2.0.0", True), ("2.0.0", ">=1.2.0,<2.0.0", False),
     ("1.2.0", "==1.2.0", True), ("1.2.0-rc.1", ">=1.2.0", False), ("3.0.0", "!=3.0.0", False)],
)  # fmt: skip
def test_version_ranges(version: str, spec: str, expected: bool) -> None:
    assert version_in_range(version, spec) is expected


@pytest.mark.parametrize("spec", ["", "~1.2", ">=x", "1.2.0"])
def test_bad_ranges_are_validation_errors(spec: str) -> None:
    with pytest.raises(ValidationError):
        version_in_range("1.0.0", spec)
