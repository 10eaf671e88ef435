"""The conformance suites with telemetry on (SDK providers, spans and measurements
recorded): instrumentation must not change what any operation does — its results,
errors, streams, atomicity or concurrency. The wrappers are the same for every
backend: memory runs by default, filesystem and SQLite in the slow run (`-m slow`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dq_registries.wiring import telemetry
from dq_stores import DocumentBackend, MemoryBackend
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing import DocumentBackendConformance, ResultsStoreConformance

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")


@pytest.fixture(scope="class", autouse=True)
def _instrumented() -> Iterator[None]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = sdk_trace.TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield
    finally:
        telemetry.uninstrument()
        assert exporter.get_finished_spans(), "the suite ran uninstrumented"
        tracer_provider.shutdown()
        meter_provider.shutdown()


class TestInstrumentedMemory(DocumentBackendConformance):
    supports_multiprocess = False

    @pytest.fixture
    def backend_factory(self) -> Callable[[], DocumentBackend]:
        shared = MemoryBackend()
        return lambda: shared


@pytest.mark.slow
class TestInstrumentedFilesystem(DocumentBackendConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(FilesystemBackend, tmp_path / "store")


@pytest.mark.slow
class TestInstrumentedSqlite(DocumentBackendConformance):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        sql = pytest.importorskip("dq_stores.sql")
        return functools.partial(sql.SqliteBackend, f"sqlite:///{tmp_path / 'dq.sqlite'}")


class TestInstrumentedMemoryResults(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self) -> ResultsStore:
        return MemoryResultsStore()

    @pytest.fixture
    def reopened_results_store(self, results_store: ResultsStore) -> ResultsStore:
        return results_store

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        from urllib.parse import quote

        run, name = quote(ref.run_id, safe=""), quote(ref.name, safe="")
        return f"memory://{ref.scope.tenant}/{ref.scope.environment}/{run}/{name}"
