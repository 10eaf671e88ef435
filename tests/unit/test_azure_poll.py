"""Waiting out another writer (``_locks.poll_until``): backoff, deadline, answer — on a fake clock."""

from __future__ import annotations

import pytest

pytest.importorskip("azure.storage.blob")

from dq_stores.azure_blob import _locks
from dq_stores.azure_blob._locks import poll_until


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sleeps taken, on a clock that only they advance."""
    taken: list[float] = []
    monkeypatch.setattr(_locks.time, "monotonic", lambda: sum(taken))
    monkeypatch.setattr(_locks.time, "sleep", taken.append)
    return taken


def test_backs_off_to_the_cap_and_answers_as_soon_as_done(sleeps: list[float]) -> None:
    calls = iter([False] * 5 + [True])
    assert poll_until(lambda: next(calls), 10.0, 0.01, 0.05)
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05, 0.05])


def test_the_last_sleep_is_cut_to_the_deadline_then_false(sleeps: list[float]) -> None:
    checked: list[float] = []
    assert not poll_until(lambda: checked.append(sum(sleeps)) or False, 0.1, 0.04, 1.0)
    assert sleeps == pytest.approx([0.04, 0.06])
    assert checked == pytest.approx([0.04, 0.1])  # done() is asked once more at the deadline


@pytest.mark.parametrize("seconds", [0.0, -3.0])
def test_no_time_left_is_no_wait_and_no_call(sleeps: list[float], seconds: float) -> None:
    assert not poll_until(lambda: pytest.fail("called"), seconds, 0.01, 0.1)
    assert sleeps == []
