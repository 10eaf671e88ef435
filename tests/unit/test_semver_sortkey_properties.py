"""Property tests: the string order of ``semver_sort_key`` is semver 2.0 precedence."""

from __future__ import annotations

import itertools

import semver
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.sortkeys import semver_sort_key

_numbers = st.integers(min_value=0, max_value=10**6) | st.integers(min_value=0, max_value=10**19)
_alnum = st.from_regex(r"[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*", fullmatch=True).filter(
    lambda s: 0 < len(s) <= 12
)
_numeric_ident = st.integers(min_value=0, max_value=10**9).map(str)
_prerelease = st.lists(_alnum | _numeric_ident, min_size=1, max_size=4).map(".".join)
_build = st.lists(st.from_regex(r"[0-9A-Za-z-]{1,8}", fullmatch=True), min_size=1, max_size=2)


@st.composite
def versions(draw: st.DrawFn) -> str:
    core = ".".join(str(draw(_numbers)) for _ in range(3))
    if draw(st.booleans()):
        core += "-" + draw(_prerelease)
    if draw(st.booleans()):
        core += "+" + ".".join(draw(_build))
    return core


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


@given(versions(), versions())
def test_string_order_of_sort_keys_equals_semver_precedence(a: str, b: str) -> None:
    ka, kb = semver_sort_key(a), semver_sort_key(b)

    expected = semver.Version.parse(a).compare(b)

    assert _sign((ka > kb) - (ka < kb)) == _sign(expected)


@given(versions())
def test_a_prerelease_sorts_below_its_release(version: str) -> None:
    release = str(semver.Version.parse(version).finalize_version())

    assert semver_sort_key(version) <= semver_sort_key(release)


@given(st.lists(versions(), min_size=2, max_size=8))
def test_sorting_by_key_sorts_by_precedence(items: list[str]) -> None:
    by_key = sorted(items, key=semver_sort_key)

    for lower, higher in itertools.pairwise(by_key):
        assert semver.Version.parse(lower).compare(higher) <= 0


def test_known_orderings() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.9.0", "1.10.0", "2.0.0"]  # fmt: skip

    shuffled = ordered[::-1]

    assert sorted(shuffled, key=semver_sort_key) == ordered
