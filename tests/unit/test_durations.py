"""``parse_duration``: the durations ``dq runs reap`` and ``dq gc`` take."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_registries.durations import parse_duration

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1))
def test_parts_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    total = sum(n * UNITS[u] for n, u in parts)
    if total == 0 or total > 36_500 * 86_400:
        with pytest.raises(ValidationError):
            parse_duration(text)
    else:
        assert parse_duration(text) == timedelta(seconds=total)


@pytest.mark.parametrize("text", ["", "10", "m", "1y", "-5m", "1.5h", "1h 30m", "soon"])
def test_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValidationError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999999999999d", "5000000d", "36501d"])
def test_refuses_durations_whose_cutoff_is_not_a_date(text: str) -> None:
    with pytest.raises(ValidationError, match="duration"):
        parse_duration(text)


def test_accepts_the_longest_duration() -> None:
    assert parse_duration("36500d") == timedelta(days=36_500)
