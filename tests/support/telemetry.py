"""Telemetry under test: the SDK's in-memory span exporter and metric reader, wired
through ``instrument(tracer_provider=…, meter_provider=…)`` so that no global provider
is ever set (other tests of the same worker must stay uninstrumented)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from dq_registries.wiring import telemetry

STORE_METRIC = "db.client.operation.duration"
REGISTRY_METRIC = "dq.registry.operation.duration"
RETURNED_ROWS_METRIC = "db.client.response.returned_rows"
WRITTEN_ROWS_METRIC = "dq.client.operation.written_rows"
ROW_METRICS = (RETURNED_ROWS_METRIC, WRITTEN_ROWS_METRIC)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Telemetry:
    """What the instrumentation recorded since the fixture started (or :meth:`clear`)."""

    exporter: Any  # InMemorySpanExporter
    reader: Any  # InMemoryMetricReader
    capture: _Capture = field(default_factory=_Capture)

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> Any:
        found = [s for s in self.spans() if s.name == name]
        assert found, f"no span {name!r} in {[s.name for s in self.spans()]}"
        return found[-1]

    def clear(self) -> None:
        self.exporter.clear()
        self.capture.records.clear()

    def points(self, metric: str) -> list[Any]:
        """Every histogram data point of ``metric`` (cumulative since the start)."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        assert m.unit == ("{row}" if metric in ROW_METRICS else "s")
                        out += list(m.data.data_points)
        return out

    def values(self, metric: str, **attributes: str) -> Any:
        """Count and sum of the measurements of ``metric`` carrying all of ``attributes``."""
        matching = [
            p
            for p in self.points(metric)
            if all(p.attributes.get(k.replace("__", ".")) == v for k, v in attributes.items())
        ]
        return SimpleNamespace(
            count=sum(p.count for p in matching), sum=sum(p.sum for p in matching)
        )

    def count(self, metric: str, **attributes: str) -> int:
        """How many measurements of ``metric`` carry all of ``attributes``."""
        return sum(
            p.count
            for p in self.points(metric)
            if all(p.attributes.get(k.replace("__", ".")) == v for k, v in attributes.items())
        )


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    """Instrumented stores and registries recording into in-memory exporters."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = sdk_trace.TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    recorded = Telemetry(exporter, reader)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(recorded.capture)
    telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield recorded
    finally:
        telemetry.uninstrument()
        root.removeHandler(recorded.capture)
        root.setLevel(old_level)
        tracer_provider.shutdown()
        meter_provider.shutdown()
