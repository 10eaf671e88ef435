"""Hostile tests of the telemetry: counts under failures, early stops, threads and
nesting; spans that must end exactly once; hostile keys and secrets that must never be
recorded; and nothing wrapped while off (by identity), also after on → off → on."""

from __future__ import annotations

import gc
import inspect
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.support.telemetry import (
    RETURNED_ROWS_METRIC,
    STORE_METRIC,
    WRITTEN_ROWS_METRIC,
    Telemetry,
)

from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_registries.wiring import telemetry
from dq_registries.wiring.context import DQContext
from dq_stores import telemetry as store_telemetry
from dq_stores._instrument import public_methods
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    MUST_NOT_EXIST,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Put,
    Query,
    StoredDocument,
)
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultsStore

SCOPE = Scope("acme", "prod")


def doc(key: str, n: int = 1) -> DocumentWrite:
    return DocumentWrite.hashing(key, b'{"n":%d}' % n, IndexEntry({"tag": ("a",)}, f"{n:04d}"))


def named(otel: Telemetry, name: str) -> list[Any]:
    return [s for s in otel.spans() if s.name == name]


# -- counts -----------------------------------------------------------------------------


def test_put_many_fed_by_a_generator_that_raises_midway(otel: Telemetry) -> None:
    backend = MemoryBackend()

    def writes() -> Iterator[DocumentWrite]:
        yield doc("g1")
        yield doc("g2")
        raise OSError("the source broke")

    with pytest.raises(OSError, match="the source broke"):
        backend.put_many(SCOPE, "job", writes())
    (span,) = named(otel, "put_many job")
    assert span.attributes["error.type"] == "OSError"
    # a failed call records what it knew before running: nothing of a generator
    assert "dq.rows_written" not in span.attributes
    assert "db.operation.batch.size" not in span.attributes
    assert (
        otel.values(
            WRITTEN_ROWS_METRIC, db__operation__name=span.attributes["db.operation.name"]
        ).count
        == 0
    )
    assert otel.count(STORE_METRIC, db__operation__name="put_many", error__type="OSError") == 1


def test_a_conflicting_commit_says_its_size_and_writes_nothing(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    otel.clear()
    with pytest.raises(ConflictError):
        backend.commit(
            SCOPE,
            [
                Put("job", doc("n1"), MUST_NOT_EXIST),
                Put("job", doc("n2"), MUST_NOT_EXIST),
                Put("job", doc("k1"), MUST_NOT_EXIST),
            ],
        )
    (span,) = named(otel, "commit")
    assert span.attributes["db.operation.batch.size"] == 3
    assert "dq.rows_written" not in span.attributes
    assert span.attributes["error.type"] == "ConflictError"
    assert (
        otel.values(
            WRITTEN_ROWS_METRIC, db__operation__name=span.attributes["db.operation.name"]
        ).count
        == 0
    )


def test_empty_batches_are_no_batches(otel: Telemetry) -> None:
    """The conventions: a batch has two or more operations; 0 is no batch either."""
    backend = MemoryBackend()
    assert backend.put_many(SCOPE, "job", []) == 0
    assert backend.restore_many(SCOPE, "job", []) == 0
    for span in otel.spans():
        assert "db.operation.batch.size" not in span.attributes, span.name


def test_a_query_that_finds_nothing_returns_zero_rows(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put(SCOPE, "job", doc("k1"), MUST_NOT_EXIST)
    otel.clear()
    page = backend.query(SCOPE, "job", Query(filters=(FieldFilter("tag", ("nope",)),), limit=10))
    assert page.items == []
    assert otel.span("query job").attributes["db.response.returned_rows"] == 0
    rows = otel.values(RETURNED_ROWS_METRIC, db__operation__name="query")
    assert (rows.count, rows.sum) == (1, 0)


def test_many_kinds_do_not_grow_the_span_name_cache(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generic store of many kinds: span names stay right, their cache stays bounded."""
    from dq_stores import _instrument

    monkeypatch.setattr(_instrument, "_MAX_NAMES", 3)
    backend = MemoryBackend()
    for i in range(10):
        assert backend.count(SCOPE, f"kind{i}") == 0
    assert [s.name for s in otel.spans()] == [f"count kind{i}" for i in range(10)]
    wrapped = next(
        cls.__dict__["count"] for cls in type(backend).__mro__ if "count" in cls.__dict__
    )
    op = inspect.getclosurevars(wrapped).nonlocals["op"]
    assert len(op.names) == 3


def test_a_stream_paused_then_resumed_counts_every_item_once(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(5)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    first = next(stream)
    backend.get(SCOPE, "job", first.key)  # another call in between: its own span
    assert [s.name for s in otel.spans()] == ["get job"]
    rest = list(stream)
    assert len(rest) == 4
    assert list(stream) == []  # exhausted: still one span
    stream.close()
    (span,) = named(otel, "iter_documents job")
    assert span.attributes["db.response.returned_rows"] == 5
    assert span.attributes["dq.outcome"] == "ok"
    get = otel.span("get job")
    assert get.parent is None  # not a child of the paused stream's span
    rows = otel.values(RETURNED_ROWS_METRIC, db__operation__name="iter_documents")
    assert (rows.count, rows.sum) == (1, 5)


def test_a_stream_consumed_in_another_thread(otel: Telemetry) -> None:
    class Nesting(MemoryBackend):  # each item fetched through a public call
        def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
            for d in super()._iter_documents(scope, kind):
                yield self.get(scope, d.kind, d.key)

    backend = Nesting()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(4)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    got: list[Any] = []
    worker = threading.Thread(target=lambda: got.extend(stream))
    worker.start()
    worker.join()
    assert len(got) == 4
    # the nested gets are part of the stream's operation: not recorded again
    assert [s.name for s in otel.spans()] == ["iter_documents job"]
    assert otel.span("iter_documents job").attributes["db.response.returned_rows"] == 4


def test_concurrent_calls_keep_their_own_counts_and_parents(otel: Telemetry) -> None:
    backend = MemoryBackend()
    tracer = otel_tracer(otel)
    barrier = threading.Barrier(2)

    def work(size: int) -> None:
        barrier.wait()
        for round_ in range(20):
            with tracer.start_as_current_span(f"root-{size}"):
                backend.put_many(SCOPE, "job", (doc(f"t{size}-{round_}-{i}") for i in range(size)))
                backend.query(SCOPE, "job", Query(limit=size))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(work, (2, 7)))
    spans = otel.spans()
    roots = {s.context.span_id: s.name for s in spans if s.name.startswith("root-")}
    puts = named(otel, "put_many job")
    assert len(puts) == 40
    for span in puts:
        size = int(roots[span.parent.span_id].split("-")[1])
        assert span.attributes["dq.rows_written"] == size
        assert span.attributes["db.operation.batch.size"] == size
    for span in named(otel, "query job"):
        size = int(roots[span.parent.span_id].split("-")[1])
        assert span.attributes["db.response.returned_rows"] == size


def otel_tracer(otel: Telemetry) -> Any:
    from dq_stores.telemetry import _LAYER

    return _LAYER._tracer


def test_store_calls_inside_a_registry_call_are_its_children(otel: Telemetry) -> None:
    with DQContext.create("acme", "prod", MemoryBackend(), MemoryResultsStore()) as dq:
        dq.actions.list()
    (registry,) = named(otel, "actions.list")
    stores = [s for s in otel.spans() if s.attributes.get("dq.store")]
    assert stores
    assert all(s.parent.span_id == registry.context.span_id for s in stores)
    assert all(s.end_time <= registry.end_time for s in stores)


# -- spans that never end, or end twice -------------------------------------------------


class Flaky(MemoryBackend):
    """A plug-in whose stream fails after ``fail_after`` items."""

    telemetry_name = "flaky"
    fail_after = 2

    def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
        for i, d in enumerate(super()._iter_documents(scope, kind)):
            if i == self.fail_after:
                raise OSError("connection reset while streaming")
            yield d


def test_an_exception_in_the_middle_of_a_stream_ends_its_span_once(otel: Telemetry) -> None:
    backend = Flaky()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(5)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    assert next(stream)
    assert next(stream)
    with pytest.raises(OSError, match="connection reset"):
        next(stream)
    with pytest.raises(StopIteration):
        next(stream)
    stream.close()
    del stream
    gc.collect()
    (span,) = otel.spans()
    assert span.attributes["error.type"] == "OSError"
    assert span.attributes["db.response.returned_rows"] == 2
    assert span.status.status_code.name == "ERROR"


def test_a_stream_whose_close_fails_ends_its_span_with_the_failure(otel: Telemetry) -> None:
    class BadClose(MemoryBackend):
        def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
            try:
                yield from super()._iter_documents(scope, kind)
            finally:
                raise OSError("could not release the cursor")

    backend = BadClose()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(3)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    next(stream)
    with pytest.raises(OSError, match="release the cursor"):
        stream.close()
    spans = otel.spans()  # ended now, as failed: not left open until garbage collection
    assert [s.name for s in spans] == ["iter_documents job"]
    assert spans[0].attributes["error.type"] == "OSError"
    assert spans[0].attributes["db.response.returned_rows"] == 1
    stream.close()
    del stream
    gc.collect()
    assert len(otel.spans()) == 1


def test_a_generator_closed_during_iteration_by_its_consumer(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(5)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    for i, _ in enumerate(stream):
        if i == 1:
            stream.close()  # inside the for loop: the loop then stops
    (span,) = otel.spans()
    assert span.attributes["db.response.returned_rows"] == 2
    assert span.attributes["dq.outcome"] == "ok"


def test_a_plugin_overriding_a_stream_without_annotations_is_still_a_stream(
    otel: Telemetry,
) -> None:
    class Unannotated(MemoryBackend):
        telemetry_name = "unannotated"

        def iter_documents(self, scope, kind=None):  # type: ignore[no-untyped-def]
            yield from super().iter_documents(scope, kind)

    backend = Unannotated()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(3)])
    otel.clear()
    stream = backend.iter_documents(SCOPE, "job")
    assert otel.spans() == []  # still open: not ended before a single item is read
    assert len(list(stream)) == 3
    (span,) = otel.spans()
    assert span.name == "iter_documents job"
    assert span.attributes["db.response.returned_rows"] == 3


def test_recursion_records_the_outer_call_only(otel: Telemetry) -> None:
    class Recursive(MemoryBackend):
        def count(self, scope: Scope, kind: str, depth: int = 5) -> int:  # type: ignore[override]
            return super().count(scope, kind) if depth == 0 else self.count(scope, kind, depth - 1)

    assert Recursive().count(SCOPE, "job") == 0
    assert [s.name for s in otel.spans()] == ["count job"]


def test_streams_dropped_in_bulk_each_end_once(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.put_many(SCOPE, "job", [doc(f"k{i}") for i in range(3)])
    otel.clear()
    streams = [backend.iter_documents(SCOPE, "job") for _ in range(50)]
    for stream in streams[::2]:
        next(stream)
    del stream
    cycle: list[Any] = [streams]
    cycle.append(cycle)  # only the cycle collector frees them
    del streams, cycle
    gc.collect()
    spans = named(otel, "iter_documents job")
    assert len(spans) == 50
    assert len({s.context.span_id for s in spans}) == 50
    assert sorted(s.attributes["db.response.returned_rows"] for s in spans) == [0] * 25 + [1] * 25


# -- request counting in threads --------------------------------------------------------


class FakeTransport:
    sent = 0

    def send(self, request: object) -> str:
        type(self).sent += 1
        time.sleep(0.001)
        return "ok"


class FakePool(ThreadPoolExecutor):
    pass


store_telemetry.count_requests(FakeTransport, "send", FakePool)
SHARED_POOL = FakePool(4)


class Counting(MemoryBackend):
    """A plug-in that sends ``requests[key]`` HTTP requests per ``get``, half of them in a
    pool shared by every thread."""

    telemetry_name = "counting"
    counts_requests = True

    def __init__(self, requests: dict[str, int]) -> None:
        super().__init__()
        self.requests = requests
        self.transport = FakeTransport()

    def _get(self, scope: Scope, kind: str, key: str) -> StoredDocument:
        n = self.requests[key]
        here, there = n - n // 2, n // 2
        for _ in range(here):
            self.transport.send("GET")
        futures = [SHARED_POOL.submit(self.transport.send, "GET") for _ in range(there)]
        for f in futures:
            f.result()
        return super()._get(scope, kind, key)


def test_request_counts_do_not_leak_between_threads(otel: Telemetry) -> None:
    counts = {"one": 1, "many": 9}
    backend = Counting(counts)
    backend.put(SCOPE, "job", doc("one"), MUST_NOT_EXIST)
    backend.put(SCOPE, "job", doc("many"), MUST_NOT_EXIST)
    otel.clear()
    barrier = threading.Barrier(4)

    def work(key: str) -> None:
        barrier.wait()
        tracer = otel_tracer(otel)
        for _ in range(10):
            with tracer.start_as_current_span(f"root {key}"):
                backend.get(SCOPE, "job", key)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, ["one", "many", "one", "many"]))
    roots = {s.context.span_id: s.name for s in otel.spans() if s.name.startswith("root")}
    gets = named(otel, "get job")
    assert len(gets) == 40
    for span in gets:
        key = roots[span.parent.span_id].split()[1]
        assert span.attributes["dq.requests"] == counts[key], (key, dict(span.attributes))
    # puts counted as 0 requests: the fake sends none on writes
    assert all(s.attributes["dq.requests"] == 0 for s in named(otel, "put job"))


def test_requests_outside_any_store_call_count_nowhere(otel: Telemetry) -> None:
    FakeTransport().send("GET")  # no store call running: nothing to count towards
    SHARED_POOL.submit(FakeTransport().send, "GET").result()
    backend = Counting({"k": 2})
    backend.put(SCOPE, "job", doc("k"), MUST_NOT_EXIST)
    backend.get(SCOPE, "job", "k")
    assert otel.span("get job").attributes["dq.requests"] == 2


# -- what must never be recorded --------------------------------------------------------

HOSTILE_KEYS = [
    "ünïcødé-ключ-鍵-🔑",
    "x" * 900,
    "password=hunter2",
    "sv=2024&sig=AbCdEfSecretSig%3D",
    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;",
    "alice@example.com",
]
SECRETS = [
    "hunter2",
    "AbCdEfSecretSig",
    "c2VjcmV0a2V5",
    "alice@example.com",
    "ключ",
    "🔑",
    "x" * 40,
]


def _everything_recorded(otel: Telemetry) -> str:
    parts: list[str] = []
    for span in otel.spans():
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes), default=str))
        parts.append(repr(span.status.description))
        parts += [e.name + json.dumps(dict(e.attributes or {}), default=str) for e in span.events]
    for metric in (STORE_METRIC, RETURNED_ROWS_METRIC, WRITTEN_ROWS_METRIC):
        parts += [json.dumps(dict(p.attributes), default=str) for p in otel.points(metric)]
    for record in otel.capture.records:
        if record.name.startswith(("dq_stores", "dq_registries")):
            parts.append(record.getMessage())
            parts.append(json.dumps(vars(record), default=str))
    return "\n".join(parts)


def test_hostile_keys_kinds_and_messages_are_never_recorded(otel: Telemetry) -> None:
    class Leaky(MemoryBackend):  # a failure whose message quotes its arguments
        def _delete(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError(f"cannot delete {args!r} with AccountKey=c2VjcmV0a2V5")

    backend = Leaky()
    for key in HOSTILE_KEYS:
        try:
            backend.put(SCOPE, "job", doc(key), MUST_NOT_EXIST)
        except ValidationError:
            continue  # a key the store refuses: refused, and still not recorded
        backend.get(SCOPE, "job", key)
        backend.history(SCOPE, "job", key)
        with pytest.raises(ConflictError):
            backend.put(SCOPE, "job", doc(key), MUST_NOT_EXIST)
        with pytest.raises(OSError, match="cannot delete"):
            backend.delete(SCOPE, "job", key)
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, "job", key + "-missing")
    for kind in ("password=hunter2", "alice@example.com", "ключ"):
        with pytest.raises(ValidationError):
            backend.get(SCOPE, kind, "k")
    list(backend.iter_documents(SCOPE, "job"))
    recorded = _everything_recorded(otel)
    assert len(otel.spans()) > 10
    for secret in SECRETS:
        assert secret not in recorded, secret


# -- off means off ----------------------------------------------------------------------


def _methods() -> dict[tuple[type, str], object]:
    """Every attribute telemetry may replace, as each class's own __dict__ holds it."""
    from dq_stores.azure_blob._client import Pool, Transport

    classes: list[type] = []
    for port in (DocumentBackend, ResultsStore):
        classes.append(port)
        queue = list(port.__subclasses__())
        while queue:
            sub = queue.pop()
            classes.append(sub)
            queue += sub.__subclasses__()
    names = set(public_methods(DocumentBackend)) | set(public_methods(ResultsStore))
    names |= {"send", "submit", "__init_subclass__"}
    out: dict[tuple[type, str], object] = {}
    for cls in [*classes, Transport, Pool, FakeTransport, FakePool]:
        for name in names:
            out[(cls, name)] = vars(cls).get(name, None)
    return out


def test_off_on_off_on_off_leaves_every_method_as_written() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from dq_stores.azure_blob._client import Pool, Transport

    assert not telemetry.instrumented()
    before = _methods()
    assert "send" not in vars(Transport)
    assert "submit" not in vars(Pool)
    for _ in range(2):
        telemetry.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
        telemetry.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
        assert hasattr(DocumentBackend.get, "__dq_layer__")
        assert getattr(Transport.send, "__dq_counting__", False)
        assert getattr(Pool.submit, "__dq_counting__", False)
        telemetry.uninstrument()
        after = _methods()
        changed = [f"{c.__name__}.{n}" for (c, n), v in after.items() if before[(c, n)] is not v]
        assert changed == []
        from azure.core.pipeline.transport import RequestsTransport

        assert Transport.send is RequestsTransport.send
        assert Pool.submit is ThreadPoolExecutor.submit


def test_work_submitted_while_off_runs_in_a_plain_pool() -> None:
    from dq_stores.azure_blob._client import Pool

    assert not telemetry.instrumented()
    marker: Any = __import__("contextvars").ContextVar("marker", default="unset")
    marker.set("caller")
    with Pool(1) as pool:  # exactly ThreadPoolExecutor: the worker has its own context
        assert pool.submit(marker.get).result() == "unset"


def test_identity_cache_does_not_keep_an_old_backend_name(otel: Telemetry) -> None:
    backend = MemoryBackend()
    backend.count(SCOPE, "job")
    telemetry.uninstrument()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    backend.count(SCOPE, "job")  # on again: recorded by the new provider
    assert [s.name for s in exporter.get_finished_spans()] == ["count job"]
