"""The lifecycle table: legal and illegal status moves."""

from __future__ import annotations

import pytest

from dq_metadata.errors import ConflictError, ValidationError
from dq_registries.domain.contracts import LIFECYCLE_STATUSES, check_transition

LEGAL = {
    ("proposed", "draft"), ("proposed", "active"), ("proposed", "retired"),
    ("draft", "active"), ("draft", "retired"),
    ("active", "deprecated"),
    ("deprecated", "active"), ("deprecated", "retired"),
}  # fmt: skip


@pytest.mark.parametrize("current", LIFECYCLE_STATUSES)
@pytest.mark.parametrize("target", LIFECYCLE_STATUSES)
def test_exactly_the_documented_moves_are_legal(current: str, target: str) -> None:
    if (current, target) in LEGAL:
        check_transition(current, target)
    else:
        with pytest.raises(ConflictError, match="illegal status transition"):
            check_transition(current, target)


@pytest.mark.parametrize("current", ["production", "in development", "Active"])
@pytest.mark.parametrize("target", LIFECYCLE_STATUSES)
def test_statuses_outside_the_lifecycle_may_enter_it_anywhere(current: str, target: str) -> None:
    check_transition(current, target)


@pytest.mark.parametrize("target", ["production", "", "ACTIVE"])
def test_targets_outside_the_lifecycle_are_invalid(target: str) -> None:
    with pytest.raises(ValidationError, match="to_status"):
        check_transition("draft", target)
