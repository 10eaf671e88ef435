"""A version range with a bound that is not a version is refused at ``version_range``
(the field the caller wrote), quoting the clause — not at ``version``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_metadata.sortkeys import parse_version_range
from dq_registries.wiring.context import DQContext
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore


@settings(max_examples=80, deadline=None)
@given(
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    bound=st.sampled_from(["2 <3", "1.0.0 <=2.1", "x", "1.2.3.4", "01.0", "1.0.0-01", "^2"]),
    prefix=st.sampled_from(["", ">=1.0.0, "]),
)
def test_a_bad_bound_is_reported_at_version_range(op: str, bound: str, prefix: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_version_range(f"{prefix}{op}{bound}")
    assert [p.loc for p in info.value.problems] == ["version_range"]
    assert bound in str(info.value)


def test_resolve_names_version_range() -> None:
    dq = DQContext.create("acme", "prod", MemoryBackend(), MemoryResultsStore())
    with dq, pytest.raises(ValidationError) as info:
        dq.contracts.resolve("orders", version_range=">=2 <3")
    assert [p.loc for p in info.value.problems] == ["version_range"]
