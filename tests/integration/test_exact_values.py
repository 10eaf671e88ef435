"""Registry entry points: free-form values are stored exactly or refused with a path.

Run results, checkpoint observed values, report summaries and action parameters
take any JSON a caller hands over. Property: for generated JSON-like values
(NaN, lone surrogates, tuples, bytes, non-str keys, deep nesting, huge ints,
-0.0…) the call either stores the value so it reads back with the same JSON
types, or raises our ``ValidationError`` whose problem path leads to the value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from dq_metadata.errors import ValidationError
from dq_metadata.models import JobDefinition
from dq_metadata.scope import Scope
from dq_registries.wiring.context import DQContext
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.testing.fuzz import exactly_equal, hostile_json
from dq_stores.typed import JobDefinitionStore

SCOPE = Scope("acme", "prod")
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def dq() -> Iterator[DQContext]:
    backend = MemoryBackend()
    JobDefinitionStore(backend).put(
        SCOPE,
        JobDefinition.model_validate(
            {"id": "nightly", "name": "nightly", "job_type": "profiling",
             "contract": {"id": "orders", "version": "1.0.0"}, "dataset": "orders"}
        ),
    )  # fmt: skip
    with DQContext.create(
        SCOPE.tenant, SCOPE.environment, backend, MemoryResultsStore(), inline_result_limit=10**7
    ) as ctx:
        yield ctx


def _exact_or_refused(
    call: Callable[[], Any], read: Callable[[Any], Any], value: Any, path: str
) -> None:
    locs: list[str] | None = None
    try:
        stored = call()
    except ValidationError as exc:
        locs = [p.loc for p in exc.problems]
    if locs is not None:  # refused: every problem leads to the value
        assert locs
        assert all(path in loc for loc in locs), (locs, path)
        return
    assert exactly_equal(read(stored), value)


def _running(dq: DQContext) -> str:
    run = dq.runs.start("nightly", idempotency_key=uuid.uuid4().hex)
    return dq.runs.mark_running(run.run_id).run_id


@FUZZ
@given(value=hostile_json())
def test_checkpoint_observed_values_are_exact_or_refused(dq: DQContext, value: Any) -> None:
    run_id = _running(dq)
    _exact_or_refused(
        lambda: dq.runs.record_checkpoint(
            run_id, {"name": "c1", "passed": True, "observed": {"ratio": value}}
        ),
        lambda _: dq.runs.get(run_id).checkpoint_results[0].observed["ratio"],
        value,
        "observed.ratio",
    )


@FUZZ
@given(value=hostile_json())
def test_run_results_are_exact_or_refused(dq: DQContext, value: Any) -> None:
    run_id = _running(dq)
    _exact_or_refused(
        lambda: dq.runs.finish(run_id, "succeeded", results={"ratio": value}),
        lambda _: dq.runs.get(run_id).results["ratio"],  # type: ignore[index]
        value,
        "ratio",
    )


@FUZZ
@given(value=hostile_json())
def test_report_summaries_are_exact_or_refused(dq: DQContext, value: Any) -> None:
    run_id = dq.runs.start("nightly", idempotency_key=uuid.uuid4().hex).run_id
    _exact_or_refused(
        lambda: dq.runs.attach_report(run_id, dataset="orders", summary={"s": value}),
        lambda report: dq.runs.get_report(report.report_id).summary["s"],
        value,
        "summary.s",
    )


@FUZZ
@given(value=hostile_json())
def test_action_params_are_exact_or_refused(dq: DQContext, value: Any) -> None:
    profile_id = f"p-{uuid.uuid4().hex}"
    _exact_or_refused(
        lambda: dq.actions.save(
            {
                "id": profile_id,
                "name": "n",
                "action_type": "custom",
                "handler": "h",
                "params": {"extra": value},
            }
        ),
        lambda _: dq.actions.get(profile_id).params["extra"],  # type: ignore[union-attr]
        value,
        "params.extra",
    )


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (float("nan"), "results.ratio"),
        (float("inf"), "results.ratio"),
        ("\ud83d", "results.ratio"),
        ((1, 2), "results.ratio"),
        ({1: "x"}, "results.ratio.1"),
        ({(1, 2): "x"}, "results.ratio"),
        (b"raw", "results.ratio"),
        ({1, 2}, "results.ratio"),
    ],
)
def test_finish_refuses_what_json_cannot_hold_naming_the_path(
    dq: DQContext, value: Any, where: str
) -> None:
    run_id = _running(dq)
    with pytest.raises(ValidationError) as info:
        dq.runs.finish(run_id, "succeeded", results={"ratio": value})
    assert where in str(info.value)
    assert dq.runs.get(run_id).status.value == "running"


@pytest.mark.parametrize("value", [1, 1.0, -0.0, 1e308, 2**70, "2026-01-01", [1, 1.0], {"a": None}])
def test_integers_floats_and_date_strings_keep_their_json_type(dq: DQContext, value: Any) -> None:
    run_id = _running(dq)
    dq.runs.finish(run_id, "succeeded", results={"v": value})
    assert exactly_equal(dq.runs.get(run_id).results, {"v": value})
