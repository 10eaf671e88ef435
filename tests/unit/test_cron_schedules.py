"""Cron schedules that never fire are refused on save, naming ``trigger.expression``."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_jobs import SCOPE, job, publish

from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.jobs import CRON_HORIZON_YEARS, JobDefinitionRegistry, _fires
from dq_stores.memory import MemoryBackend
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

# The longest month each month can have (29 for February, in leap years).
_LONGEST = {month: calendar.monthrange(2024, month)[1] for month in range(1, 13)}


def _registry() -> tuple[JobDefinitionRegistry, MemoryBackend]:
    backend = MemoryBackend()
    publish(backend, "1.0.0", ["orders"])
    return JobDefinitionRegistry(
        SCOPE,
        JobDefinitionStore(backend),
        contracts=ContractStore(backend),
        action_profiles=ActionProfileStore(backend),
    ), backend


def _save(expression: str) -> None:
    registry, _ = _registry()
    registry.save(job(trigger={"type": "cron", "expression": expression}))


@pytest.mark.parametrize(
    "expression",
    ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "0 0 31 6 *", "0 0 31 9 *", "0 0 31 11 *",
     "0 0 30,31 2 *", "0 0 31 2,4,6,9,11 *", "0 0 1 1 * 0 2020"],
)  # fmt: skip
def test_schedules_that_never_fire_are_refused(expression: str) -> None:
    registry, backend = _registry()

    with pytest.raises(ValidationError) as info:
        registry.save(job(trigger={"type": "cron", "expression": expression}))

    assert [p.loc for p in info.value.problems] == ["trigger.expression"]
    assert "never fires" in str(info.value)
    assert JobDefinitionStore(backend).count(Scope("acme", "dev")) == 0


@pytest.mark.parametrize(
    "expression",
    ["0 0 29 2 *", "0 0 31 * *", "0 0 31 1,2 *", "0 0 30 2 1", "59 23 31 12 *", "0 0 1 1 *",
     "*/15 * * * *"],
)  # fmt: skip
def test_rare_schedules_that_do_fire_are_accepted(expression: str) -> None:
    _save(expression)


@settings(max_examples=60, deadline=None)
@given(month=st.integers(1, 12), day=st.integers(1, 31), hour=st.integers(0, 23))
def test_a_day_of_month_is_accepted_exactly_when_the_month_can_have_it(
    month: int, day: int, hour: int
) -> None:
    expression = f"0 {hour} {day} {month} *"
    if day <= _LONGEST[month]:
        _save(expression)
    else:
        with pytest.raises(ValidationError, match=r"trigger\.expression"):
            _save(expression)


def test_the_horizon_covers_the_longest_gap_between_29_februaries() -> None:
    assert CRON_HORIZON_YEARS >= 2104 - 2096
    assert CRON_HORIZON_YEARS >= 2112 - 2072  # 29 February on one weekday, across 2100


def test_the_fifth_monday_of_february_is_accepted() -> None:
    """It exists only when 29 February is a Monday: 2044 is the next such year."""
    _save("0 0 * 2 1#5")


@settings(max_examples=80, deadline=None)
@given(
    weekday=st.integers(0, 6),
    start=st.datetimes(datetime(2000, 1, 1), datetime(2399, 12, 31), timezones=st.just(UTC)),
)
def test_the_nth_weekday_of_february_fires_from_any_start_in_the_gregorian_cycle(
    weekday: int, start: datetime
) -> None:
    """``0 0 * 2 W#5`` needs 29 February on weekday W: from any moment of the 400-year
    cycle, the next one is within the horizon, and it is the one croniter finds."""
    expression = f"0 0 * 2 {weekday}#5"
    assert _fires(expression, start)
    cron_weekday = (weekday - 1) % 7  # cron: 0 = Sunday; Python: 0 = Monday
    year = start.year + (start.month > 2)  # the next February at or after ``start``
    while not (calendar.isleap(year) and date(year, 2, 29).weekday() == cron_weekday):
        year += 1
    assert year - start.year <= CRON_HORIZON_YEARS
