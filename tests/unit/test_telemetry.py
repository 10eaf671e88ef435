"""Telemetry on the memory backend: a span, a duration measurement and a log record per
store operation and registry call, with the attributes docs/telemetry.md lists; the
methods are plain again after ``uninstrument``; without ``opentelemetry`` nothing is
wrapped unless asked, and asking gives log records only."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from tests.support.telemetry import (
    REGISTRY_METRIC,
    RETURNED_ROWS_METRIC,
    STORE_METRIC,
    WRITTEN_ROWS_METRIC,
    Telemetry,
)

from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.wiring import telemetry
from dq_registries.wiring.context import DQContext
from dq_stores._instrument import public_methods
from dq_stores._redact import RedactingFilter
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    ConditionCheck,
    DocumentWrite,
    IndexEntry,
    Put,
    Query,
    at_revision,
)
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultsStore

SCOPE = Scope("acme", "prod")
SRC = Path(__file__).resolve().parents[2] / "src"
CONTRACT = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}


def doc(key: str, n: int = 1) -> DocumentWrite:
    return DocumentWrite.hashing(key, b'{"n":%d}' % n, IndexEntry({"tag": ("a",)}, f"{n:04d}"))


def test_every_public_port_method_is_instrumented_and_put_back(otel: Telemetry) -> None:
    for port in (DocumentBackend, ResultsStore):
        names = public_methods(port)
        assert names
        assert "close" not in names
        assert all(hasattr(getattr(port, n), "__dq_layer__") for n in names)
    # adapters' own overrides (verify_scope, repair_index…) too, mixins included
    from dq_stores.filesystem import FilesystemBackend

    assert hasattr(FilesystemBackend.verify_scope, "__dq_layer__")
    telemetry.uninstrument()
    assert not any(
        hasattr(getattr(DocumentBackend, n), "__dq_layer__")
        for n in public_methods(DocumentBackend)
    )
    assert "verify_scope" not in vars(FilesystemBackend)
    assert not telemetry.instrumented()


def test_store_operations_make_spans_metrics_and_log_records(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    backend.put_many(SCOPE, "job", [doc("k2"), doc("k3")])
    backend.get(SCOPE, "job", "k1")
    backend.get_revision(SCOPE, "job", "k1", 1)
    backend.history(SCOPE, "job", "k1")
    page = backend.query(SCOPE, "job", Query(limit=2))
    backend.query_tenant("acme", "job")
    backend.count(SCOPE, "job")
    assert len(list(backend.iter_documents(SCOPE, "job"))) == 3
    list(backend.iter_histories(SCOPE))
    backend.list_environments("acme")
    list(backend.iter_scopes())
    backend.commit(SCOPE, [Put("job", doc("k4"), MUST_NOT_EXIST)])
    backend.delete(SCOPE, "job", "k4")
    backend.put(SCOPE, "job", doc("k1", 2), ANY)
    assert backend.prune_history(SCOPE, "job", "k1", 2) == 1
    backend.pruned_prefix(SCOPE, "job", "k1")
    backend.repair_index(SCOPE)
    assert page.next_token is not None

    names = [s.name for s in otel.spans()]
    assert names[:3] == ["put job", "put_many job", "get job"]
    assert {"query job", "query_tenant job", "commit", "delete job", "iter_scopes"} <= set(names)
    assert "iter_documents job" in names
    assert "iter_histories" in names
    get = otel.span("get job")
    assert dict(get.attributes) == {
        "db.operation.name": "get",
        "db.collection.name": "job",
        "dq.backend": "memory",
        "dq.store": "documents",
        "dq.environment": "prod",
        "dq.outcome": "ok",
        "db.response.returned_rows": 1,
    }
    assert get.kind.name == "CLIENT"
    assert otel.span("query job").attributes["db.response.returned_rows"] == 2
    assert otel.span("put_many job").attributes["dq.rows_written"] == 2
    assert otel.span("put_many job").attributes["db.operation.batch.size"] == 2
    assert otel.span("iter_documents job").attributes["db.response.returned_rows"] == 3
    assert otel.span("prune_history job").attributes["dq.rows_removed"] == 1
    assert "dq.environment" not in otel.span("query_tenant job").attributes  # no scope given
    assert not _counted(otel.span("count job"))  # an answer, not rows

    assert otel.count(STORE_METRIC, db__operation__name="get", dq__outcome="ok") == 1
    assert otel.count(STORE_METRIC, db__operation__name="put", db__collection__name="job") == 2
    assert sum(p.count for p in otel.points(STORE_METRIC)) == len(names)
    point = next(p for p in otel.points(STORE_METRIC) if p.attributes["db.operation.name"] == "get")
    assert "db.system" not in point.attributes  # the conventions have no value for memory

    records = [r for r in otel.capture.records if r.name == "dq_stores.memory"]
    assert len(records) == len(names)
    first = records[0]
    assert first.levelno == logging.DEBUG
    assert first.getMessage().startswith("put job: ok in ")
    assert (first.db_operation_name, first.dq_backend, first.dq_outcome) == ("put", "memory", "ok")  # type: ignore[attr-defined]
    assert first.dq_duration_s > 0  # type: ignore[attr-defined]
    assert any(
        isinstance(f, RedactingFilter) for f in logging.getLogger("dq_stores.memory").filters
    )


COUNTS = (
    "db.response.returned_rows",
    "db.operation.batch.size",
    "dq.rows_written",
    "dq.rows_removed",
    "dq.requests",
)


def _counted(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k in COUNTS}


def test_rows_returned_and_written_by_each_operation(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    backend.put(SCOPE, "job", doc("k1", 2), ANY)
    backend.put_many(SCOPE, "job", [doc("k2")])  # one document: not a batch
    backend.put_many(SCOPE, "job", (doc(f"b{i}") for i in range(3)))  # a generator
    backend.get_revision(SCOPE, "job", "k1", 1)
    backend.history(SCOPE, "job", "k1")
    backend.query(SCOPE, "job", Query(limit=10))
    backend.query_tenant("acme", "job")
    backend.search(SCOPE, "job", "nothing")
    backend.commit(SCOPE, [Put("job", doc("c1"), MUST_NOT_EXIST)])
    backend.commit(
        SCOPE,
        [
            Put("job", doc("c2"), MUST_NOT_EXIST),
            Put("job", doc("c3"), MUST_NOT_EXIST),
            ConditionCheck("job", "k2", at_revision(1)),
        ],
    )
    with pytest.raises(ConflictError):  # a failed batch still says its size, writes nothing
        backend.commit(
            SCOPE, [Put("job", doc("c2"), MUST_NOT_EXIST), Put("job", doc("c4"), MUST_NOT_EXIST)]
        )
    backend.delete(SCOPE, "job", "c1")
    histories = [h for h in backend.iter_histories(SCOPE, "job") if h[0].key in ("k1", "k2")]
    target = MemoryBackend()
    target.restore(
        SCOPE, "job", "k1", histories[0] if histories[0][0].key == "k1" else histories[1]
    )
    target.restore_many(SCOPE, "job", [(h[0].key, h) for h in histories], replace=True)
    spans: dict[str, list[dict[str, Any]]] = {}
    for span in otel.spans():  # in order, by name
        spans.setdefault(span.name, []).append(_counted(span))
    assert spans["put job"] == [{"dq.rows_written": 1}, {"dq.rows_written": 1}]
    assert spans["put_many job"] == [
        {"dq.rows_written": 1},
        {"dq.rows_written": 3, "db.operation.batch.size": 3},
    ]
    assert spans["get_revision job"] == [{"db.response.returned_rows": 1}]
    assert spans["history job"] == [{"db.response.returned_rows": 2}]
    assert spans["query job"] == [{"db.response.returned_rows": 5}]
    assert spans["query_tenant job"] == [{"db.response.returned_rows": 5}]
    assert spans["search job"] == [{"db.response.returned_rows": 0}]
    assert spans["commit"] == [
        {"dq.rows_written": 1},
        {"dq.rows_written": 2, "db.operation.batch.size": 3},
        {"db.operation.batch.size": 2},
    ]
    assert spans["delete job"] == [{"dq.rows_written": 1}]
    # every revision of every key: k1 (2), k2, b0..b2, c1 (2: a tombstone), c2, c3
    assert spans["iter_histories job"] == [{"db.response.returned_rows": 10}]
    assert spans["restore job"] == [{"dq.rows_written": 2}]
    assert spans["restore_many job"] == [{"dq.rows_written": 3, "db.operation.batch.size": 2}]
    # the histograms: one point per operation that returned / wrote rows
    returned = otel.values(RETURNED_ROWS_METRIC, db__operation__name="history")
    assert (returned.count, returned.sum) == (1, 2)
    written = otel.values(WRITTEN_ROWS_METRIC, db__operation__name="put_many")
    assert (written.count, written.sum) == (2, 4)
    assert otel.values(WRITTEN_ROWS_METRIC, db__operation__name="get").count == 0


def test_error_outcomes_are_recorded_by_class_name(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, "job", "missing-key")
    with pytest.raises(ConflictError):
        backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    missing, conflict = [s for s in otel.spans() if s.attributes["dq.outcome"] != "ok"]
    assert missing.attributes["error.type"] == "NotFoundError"
    assert conflict.attributes["error.type"] == "ConflictError"
    assert missing.status.status_code.name == "ERROR"
    assert missing.status.description is None  # never the message (it names the key)
    assert not missing.events  # no exception event: its message and traceback name keys
    assert otel.count(STORE_METRIC, dq__outcome="NotFoundError", error__type="NotFoundError") == 1
    assert otel.count(STORE_METRIC, dq__outcome="ConflictError") == 1
    # answers (not found, conflict) log at DEBUG; failures at WARNING
    assert all(r.levelno == logging.DEBUG for r in otel.capture.records)


def test_a_failure_logs_a_warning(otel: Telemetry) -> None:
    class Broken(MemoryBackend):
        def _get(self, scope: Scope, kind: str, key: str):  # type: ignore[no-untyped-def]
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        Broken().get(SCOPE, "job", "k1")
    (record,) = [r for r in otel.capture.records if r.name.startswith("dq_stores.")]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("get job: OSError in ")
    assert otel.span("get job").attributes["error.type"] == "OSError"


def test_nested_calls_of_one_layer_record_once(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    history = backend.history(SCOPE, "job", "k1")
    otel.clear()
    target = MemoryBackend()
    target.restore(SCOPE, "job", "k1", history)  # runs restore_many inside
    assert [s.name for s in otel.spans()] == ["restore job"]


def test_a_stream_is_timed_until_it_ends_and_an_abandoned_one_still_ends(
    otel: Telemetry,
) -> None:
    backend = MemoryBackend()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(5)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    assert otel.spans() == []  # still open
    next(stream)
    stream.close()  # the consumer stops early: recorded as ok with what it read
    span = otel.span("iter_documents job")
    assert (span.attributes["dq.outcome"], span.attributes["db.response.returned_rows"]) == (
        "ok",
        1,
    )
    stream.close()  # idempotent: still one span
    assert list(stream) == []
    assert len(otel.spans()) == 1


def test_an_unread_stream_ends_its_span_when_closed_or_dropped(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(3)])
    otel.clear()
    backend.iter_documents(SCOPE, "job").close()  # closed before reading anything
    stream = backend.iter_documents(SCOPE, "job")
    del stream  # dropped unread (reference counting frees it at once)
    gc.collect()
    spans = [s for s in otel.spans() if s.name == "iter_documents job"]
    assert [
        (s.attributes["dq.outcome"], s.attributes["db.response.returned_rows"]) for s in spans
    ] == [
        ("ok", 0),
        ("ok", 0),
    ]
    assert all(s.end_time is not None for s in spans)
    assert otel.values(RETURNED_ROWS_METRIC, db__operation__name="iter_documents").count == 2


def test_adapters_defined_after_instrumenting_are_instrumented(otel: Telemetry) -> None:
    class Late(MemoryBackend):
        telemetry_name = "late-plugin"

        def repair_index(self, scope: Scope) -> bool:
            return super().repair_index(scope)

    assert hasattr(Late.repair_index, "__dq_layer__")
    Late().repair_index(SCOPE)
    span = otel.span("repair_index")
    assert span.attributes["dq.backend"] == "late-plugin"
    assert len(otel.spans()) == 1  # the override's super() call is not counted twice
    telemetry.uninstrument()
    assert not hasattr(Late.repair_index, "__dq_layer__")


def test_results_store_operations(otel: Telemetry) -> None:
    results = MemoryResultsStore()
    ref = results.upload(SCOPE, "run-1", "out.csv", [b"a,b\n", b"1,2\n"])
    assert b"".join(results.open(SCOPE, ref)) == b"a,b\n1,2\n"
    assert [o.name for o in results.iter_objects(SCOPE)] == ["out.csv"]
    results.delete_object(SCOPE, "run-1", "out.csv")  # runs delete inside: one span
    names = [s.name for s in otel.spans()]
    assert names == [
        "upload results",
        "open results",
        "iter_objects results",
        "delete_object results",
    ]
    assert otel.span("upload results").attributes["dq.bytes"] == 8
    assert otel.span("open results").attributes["dq.bytes"] == 8
    assert "db.response.returned_rows" not in otel.span("open results").attributes  # bytes
    assert otel.span("iter_objects results").attributes["db.response.returned_rows"] == 1
    assert otel.span("open results").attributes["dq.store"] == "results"
    assert otel.count(STORE_METRIC, dq__store="results") == 4


def test_registry_calls_are_parents_of_their_store_operations(otel: Telemetry) -> None:
    with DQContext.create("acme", "prod", MemoryBackend(), MemoryResultsStore()) as dq:
        dq.contracts.publish(CONTRACT, actor="me")
        dq.contracts.get_latest_for_dataset("orders")
        dq.jobs.save(
            {
                "id": "nightly",
                "name": "n",
                "job_type": "validation",
                "contract": {"id": "orders", "version": "1.0.0"},
                "dataset": "orders",
            }
        )
        with dq.runs.running("nightly") as run:
            dq.runs.finish(run.run_id, "succeeded")
        dq.runs.attach_report(run.run_id, dataset="orders", title="t")
        dq.actions.list()
        with pytest.raises(NotFoundError):
            dq.contracts.get("nope")
    publish = otel.span("contracts.publish")
    assert dict(publish.attributes) == {
        "dq.registry": "contracts",
        "dq.operation": "publish",
        "dq.environment": "prod",
        "dq.outcome": "ok",
    }
    assert publish.kind.name == "INTERNAL"
    children = [s for s in otel.spans() if s.parent and s.parent.span_id == publish.context.span_id]
    assert children
    assert all(s.attributes["dq.store"] == "documents" for s in children)
    names = {s.name for s in otel.spans()}
    assert {"jobs.save", "runs.running", "runs.finish", "reports.attach_report"} <= names
    assert otel.span("actions.list").attributes["dq.rows"] == 0
    assert otel.span("contracts.get").attributes["error.type"] == "NotFoundError"
    assert otel.count(REGISTRY_METRIC, dq__registry="contracts", dq__operation="publish") == 1
    assert otel.count(REGISTRY_METRIC, dq__registry="reports") == 1
    loggers = {r.name for r in otel.capture.records}
    assert {"dq_registries.contracts", "dq_registries.jobs", "dq_registries.runs"} <= loggers


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", **env},
        timeout=120,
        check=False,
    )


def test_build_container_instruments_when_the_application_set_a_provider() -> None:
    code = """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from dq_registries.wiring import telemetry
    from dq_registries.wiring.container import container_over
    from dq_stores.memory import MemoryBackend
    container_over(MemoryBackend())
    print(telemetry.instrumented())
    trace.set_tracer_provider(TracerProvider())
    container_over(MemoryBackend())
    print(telemetry.instrumented())
    """
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
    done = _python(code, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="x, dq-platform-core")
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_without_the_api_nothing_is_wrapped_and_instrument_logs_only() -> None:
    done = _python(
        """
        import logging, sys
        class NoOtel:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("blocked for the test")
        sys.meta_path.insert(0, NoOtel())
        from dq_metadata.scope import Scope
        from dq_registries.wiring import telemetry
        from dq_registries.wiring.context import DQContext
        from dq_stores import telemetry as stores
        from dq_stores.backend import DocumentBackend
        from dq_stores.memory import MemoryBackend
        plain = DocumentBackend.get
        with DQContext.create("acme", "prod", MemoryBackend()) as dq:
            dq.actions.list()
        print(stores.api_available(), stores.provider_configured(), telemetry.instrumented())
        print(DocumentBackend.get is plain, "opentelemetry" in sys.modules)
        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(message)s", stream=sys.stdout)
        telemetry.instrument()
        MemoryBackend().count(Scope("acme", "prod"), "job")
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "False False False"
    assert lines[1] == "True False"
    assert lines[2].startswith("dq_stores.memory count job: ok in ")
