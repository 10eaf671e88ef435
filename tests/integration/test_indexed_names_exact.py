"""Names the stores index — a contract's dataset names (``schema[].name``) and a job's
tags — are stored exactly as written or refused at their own JSON path, before any
write; never refused later as an ``index.…`` entry, never trimmed silently.

Property over generated names (NUL, whitespace at the ends, any script, up to 700
characters around the 512-byte index limit): publish / save either succeeds and the
name finds the document again, or raises ``ValidationError`` at ``schema[0].name`` /
``tags[0]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_registries.wiring.context import DQContext
from dq_registries.yaml12 import load_yaml
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore

_ODCS = (
    Path(__file__).parents[1] / "data" / "odcs" / "fundamentals-table-column-description.odcs.yaml"
)

_names = st.one_of(
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "😀", "日"]), st.integers(1, 700)),
    st.builds(
        lambda a, b: f"{a}orders{b}",
        st.sampled_from(["", " ", "\t", "\x00", "\n"]),
        st.sampled_from(["", " ", "\x00", "\n"]),
    ),
)


def _context() -> DQContext:
    return DQContext.create("acme", "prod", MemoryBackend(), MemoryResultsStore())


def _refused_at(call: Any, path: str) -> bool:
    try:
        call()
    except ValidationError as exc:
        locs = [p.loc for p in exc.problems]
    else:
        return False
    assert locs == [path], locs
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_names)
def test_dataset_names_are_exact_or_refused_at_their_path(name: str) -> None:
    document = load_yaml(_ODCS.read_text())
    document["schema"][0]["name"] = name
    with _context() as dq:
        publish = lambda: dq.contracts.publish(  # noqa: E731
            dq.contracts.import_odcs(json.dumps(document)), actor="t"
        )
        if _refused_at(publish, "schema[0].name"):
            assert dq.contracts.list().items == []
            return
        found = dq.contracts.get_latest_for_dataset(name)
        assert found.contract.schema_[0].name == name  # type: ignore[index]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag=_names)
def test_job_tags_are_exact_or_refused_at_their_path(tag: str) -> None:
    document = load_yaml(_ODCS.read_text())
    with _context() as dq:
        dq.contracts.publish(dq.contracts.import_odcs(json.dumps(document)), actor="t")
        job = {"id": "j", "name": "j", "job_type": "profiling", "tags": [tag],
               "contract": {"id": document["id"], "version": document["version"]},
               "dataset": document["schema"][0]["name"]}  # fmt: skip
        if _refused_at(lambda: dq.jobs.save(job), "tags[0]"):
            assert dq.jobs.list().items == []
            return
        assert dq.jobs.get("j").tags == [tag]
        assert [j.item.id for j in dq.jobs.list_by_tags([tag]).items] == ["j"]


@pytest.mark.parametrize("tag", [" nightly", "nightly ", "\tnightly"])
def test_a_tag_with_surrounding_whitespace_is_refused_not_trimmed(tag: str) -> None:
    test_job_tags_are_exact_or_refused_at_their_path.hypothesis.inner_test(tag)  # type: ignore[attr-defined]
    with _context() as dq, pytest.raises(ValidationError, match="whitespace"):
        dq.jobs.validate({"id": "j", "name": "j", "job_type": "profiling", "tags": [tag],
                          "contract": {"id": "c", "version": "1.0.0"}, "dataset": "d"})  # fmt: skip
