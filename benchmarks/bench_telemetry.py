"""Cost of the telemetry (issue 15): store operations and a registry call, with the
instrumentation off, on without an SDK, and on with the OpenTelemetry SDK.

    .venv/bin/python benchmarks/bench_telemetry.py [--quick] [--backends memory,filesystem,sqlite]

In one run, interleaved block by block (``BLOCK`` calls of one mode, then the next mode),
times each operation in four modes and prints the fastest block mean of each mode (on
a shared machine the slower blocks time the neighbours' load) and ratios to the floor:

* ``floor``: the methods as written — what runs when telemetry is off. Off is the
  default: ``build_container`` switches it on only when the application has set an
  OpenTelemetry provider, so without ``opentelemetry-api`` (or without a provider)
  nothing is wrapped.
* ``default``: after ``container_over`` decided not to instrument (no provider set) —
  the same methods as the floor, timed separately as a check of the noise.
* ``no-sdk``: ``instrument()`` called with only the API: wrappers, non-recording spans
  and no-op instruments (the worst case of a mis-set service).
* ``sdk``: ``instrument(tracer_provider=…, meter_provider=…)`` with the SDK: a
  ``BatchSpanProcessor`` to an exporter that drops the batches, and a
  ``MeterProvider`` with an ``InMemoryMetricReader`` — what a service pays before its
  exporter's own cost.

With ``--absent`` the floor and default modes also run in a child process in which
``opentelemetry`` cannot be imported (ratios of that process to itself).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dq_metadata.scope import Scope
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.wiring import telemetry
from dq_registries.wiring.container import container_over
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Query
from dq_stores.typed import ContractStore, JobDefinitionStore

SCOPE = Scope("bench", "dev")
BLOCK = 200
CONTRACT = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}


@contextmanager
def open_backend(name: str, where: Path) -> Iterator[DocumentBackend]:
    if name == "memory":
        from dq_stores.memory import MemoryBackend

        backend: DocumentBackend = MemoryBackend()
    elif name == "filesystem":
        from dq_stores.filesystem import FilesystemBackend

        backend = FilesystemBackend(where / "fs")
    else:
        from dq_stores.sql import SqlBackend

        backend = SqlBackend(f"sqlite:///{where / 'dq.sqlite'}")
    with backend:
        yield backend


def operations(backend: DocumentBackend) -> dict[str, Callable[[], object]]:
    writes = [
        DocumentWrite.hashing(f"k{i:03d}", b'{"n":%d}' % i, IndexEntry({"t": ("a",)}, f"{i:03d}"))
        for i in range(50)
    ]
    backend.put_many(SCOPE, "doc", writes)
    registry = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    registry.publish(CONTRACT, actor="bench")
    query = Query(limit=10)
    return {
        "get": lambda: backend.get(SCOPE, "doc", "k007"),
        "query 10": lambda: backend.query(SCOPE, "doc", query),
        "put": lambda: backend.put(SCOPE, "doc", writes[3], ANY),
        "latest (registry)": lambda: registry.get_latest_for_dataset("orders"),
    }


def block(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) * 1e6 / n


def sdk_providers() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def sdk_alone(providers: tuple[Any, Any], rounds: int) -> float:
    """µs of one bare SDK span (6 attributes) plus one histogram record, no wrapper."""
    tracer = providers[0].get_tracer("bench")
    histogram = providers[1].get_meter("bench").create_histogram("bench", unit="s")
    attributes = {
        "db.operation.name": "get",
        "db.collection.name": "doc",
        "dq.backend": "memory",
        "dq.store": "documents",
        "dq.environment": "dev",
        "dq.outcome": "ok",
    }

    def once() -> None:
        tracer.start_span("get doc", attributes=attributes).end()
        histogram.record(0.001, attributes)

    return min(block(once, BLOCK) for _ in range(rounds))


def modes(with_api: bool) -> dict[str, Callable[[], None]]:
    def default() -> None:
        telemetry.uninstrument()
        container_over(open_memory())  # decides: no provider set, stay off
        assert not telemetry.instrumented()

    found: dict[str, Callable[[], None]] = {"floor": telemetry.uninstrument, "default": default}
    if with_api:
        providers = sdk_providers()
        found["no-sdk"] = telemetry.instrument
        found["sdk"] = lambda: telemetry.instrument(
            tracer_provider=providers[0], meter_provider=providers[1]
        )
    return found


def open_memory() -> DocumentBackend:
    from dq_stores.memory import MemoryBackend

    return MemoryBackend()


def bench(name: str, rounds: int, with_api: bool) -> None:
    switch = modes(with_api)
    n = BLOCK if name == "memory" else BLOCK // 10
    with tempfile.TemporaryDirectory() as where, open_backend(name, Path(where)) as backend:
        ops = operations(backend)
        for op, call in ops.items():
            times: dict[str, list[float]] = {mode: [] for mode in switch}
            block(call, n)  # warm up
            for _ in range(rounds):
                for mode, enter in switch.items():
                    enter()
                    times[mode].append(block(call, n))
            telemetry.uninstrument()
            # the fastest block of each mode: on a shared machine the slower blocks time
            # the neighbours' load, not the code (timeit's rule)
            med = {mode: min(ts) for mode, ts in times.items()}
            ratios = "".join(f"{med[m] / med['floor']:>9.3f}x" for m in switch if m != "floor")
            print(f"{name:<11}{op:<19}{med['floor']:>9.2f}{ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--backends", default="memory,filesystem,sqlite")
    parser.add_argument("--absent", action="store_true", help="also without opentelemetry")
    parser.add_argument("--no-api", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds = 15 if args.quick else 60
    with_api = not args.no_api
    if args.no_api:
        assert not telemetry.instrument_if_configured()
        assert "opentelemetry" not in sys.modules
    else:
        print("fastest block mean, µs per call; ratios to the floor (methods as written)")
        columns = "".join(f"{m:>10}" for m in ("default", "no-sdk", "sdk"))
        print(f"{'backend':<11}{'operation':<19}{'floor':>9}{columns}")
    for name in args.backends.split(","):
        bench(name, rounds, with_api)
    if with_api:
        alone = sdk_alone(sdk_providers(), rounds)
        print(f"reference: one bare SDK span + one histogram record = {alone:.2f} µs")
    if args.absent:
        print("without opentelemetry (child process; columns floor, default):")
        blocker = (
            "import sys\n"
            "class B:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'opentelemetry': raise ImportError(name)\n"
            "sys.meta_path.insert(0, B())\n"
            f"sys.argv = {[__file__, '--no-api', '--backends', args.backends] + (['--quick'] if args.quick else [])!r}\n"
            f"exec(compile(open({__file__!r}).read(), {__file__!r}, 'exec'))\n"
        )
        subprocess.run([sys.executable, "-c", blocker], check=True)


if __name__ == "__main__":
    main()
