"""Telemetry on every backend: spans and duration measurements of store operations and
results-store calls with ``db.system`` / ``dq.backend``, error outcomes; and a canary —
a password in a PostgreSQL URL, an Azure account key, document bodies and keys/ids —
that must never appear in a span (name, attribute, event, status), a metric attribute
or a log record written by the instrumentation."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.backends import BACKENDS, backend_factory, results_for
from tests.support.canary import CanaryAzure, CanaryPostgres, variants
from tests.support.telemetry import (
    REGISTRY_METRIC,
    RETURNED_ROWS_METRIC,
    ROW_METRICS,
    STORE_METRIC,
    WRITTEN_ROWS_METRIC,
    Telemetry,
)

from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.wiring.context import DQContext
from dq_stores.backend import DocumentBackend
from dq_stores.documents import MUST_NOT_EXIST, DocumentWrite, IndexEntry, Put, Query
from dq_stores.results import ResultsStore

SCOPE = Scope("acme", "prod")
DB_SYSTEM = {"sqlite": "sqlite", "postgres": "postgresql"}
NAME = {"azure": "azure_blob"}


def write(key: str, n: int) -> DocumentWrite:
    return DocumentWrite.hashing(key, b'{"n":%d}' % n, IndexEntry({"tag": ("a",)}, f"{n:04d}"))


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, Any]]:
    backend = backend_factory(request, tmp_path)()
    results = results_for(request, tmp_path)
    yield request.param, backend, results
    results.close()
    backend.close()


def test_store_operations_on_every_backend(
    otel: Telemetry, stores: tuple[str, DocumentBackend, ResultsStore]
) -> None:
    which, backend, results = stores
    backend.put(SCOPE, "job", write("k1", 1), MUST_NOT_EXIST)
    backend.commit(SCOPE, [Put("job", write("k2", 2), MUST_NOT_EXIST)])
    assert len(backend.query(SCOPE, "job", Query(limit=10)).items) == 2
    backend.get(SCOPE, "job", "k1")
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, "job", "missing")
    with pytest.raises(ConflictError):
        backend.put(SCOPE, "job", write("k1", 3), MUST_NOT_EXIST)
    ref = results.upload(SCOPE, "run-1", "out.csv", [b"x" * 10])
    assert b"".join(results.open(SCOPE, ref)) == b"x" * 10

    spans = otel.spans()
    assert [s.name for s in spans] == [
        "put job",
        "commit",
        "query job",
        "get job",
        "get job",
        "put job",
        "upload results",
        "open results",
    ]
    name = NAME.get(which, which)
    for span in spans:
        assert span.attributes["dq.backend"] == name
        assert span.attributes.get("db.system") == DB_SYSTEM.get(which)
        assert span.attributes["dq.environment"] == "prod"
    assert spans[0].attributes["dq.rows_written"] == 1
    assert spans[1].attributes["dq.rows_written"] == 1
    assert "db.operation.batch.size" not in spans[1].attributes  # one operation: no batch
    assert spans[2].attributes["db.response.returned_rows"] == 2
    assert spans[3].attributes["db.response.returned_rows"] == 1
    assert "db.response.returned_rows" not in spans[4].attributes  # not found
    assert spans[4].attributes["error.type"] == "NotFoundError"
    assert spans[5].attributes["error.type"] == "ConflictError"
    assert spans[7].attributes["dq.bytes"] == 10
    assert otel.count(STORE_METRIC, dq__backend=name) == len(spans)
    assert otel.count(STORE_METRIC, dq__backend=name, db__operation__name="get") == 2
    assert otel.count(STORE_METRIC, dq__backend=name, error__type="ConflictError") == 1
    assert all(p.sum >= 0 for p in otel.points(STORE_METRIC))
    assert otel.values(RETURNED_ROWS_METRIC, dq__backend=name, db__operation__name="query").sum == 2
    assert otel.values(WRITTEN_ROWS_METRIC, dq__backend=name).sum == 2  # put, commit
    requests = [s.attributes.get("dq.requests") for s in spans]
    if which == "azure":  # every call sent at least one HTTP request, counted
        assert all(isinstance(n, int) and n >= 1 for n in requests), requests
    else:
        assert requests == [None] * len(spans)
    assert {r.name for r in otel.capture.records if r.name.startswith("dq_stores.")} >= {
        f"dq_stores.{name}"
    }


def test_batches_and_streams_on_every_backend(
    otel: Telemetry, stores: tuple[str, DocumentBackend, ResultsStore]
) -> None:
    which, backend, _results = stores
    assert backend.put_many(SCOPE, "job", (write(f"k{i}", i) for i in range(4))) == 4
    backend.commit(
        SCOPE,
        [Put("job", write("c1", 1), MUST_NOT_EXIST), Put("job", write("c2", 2), MUST_NOT_EXIST)],
    )
    stream = backend.iter_documents(SCOPE, "job")
    next(stream)
    next(stream)
    stream.close()  # stopped early
    assert len(list(backend.iter_documents(SCOPE, "job"))) == 6
    backend.iter_documents(SCOPE, "job").close()  # never read
    put_many, commit, early, full, unread = otel.spans()
    assert put_many.attributes["db.operation.batch.size"] == 4
    assert put_many.attributes["dq.rows_written"] == 4
    assert commit.attributes["db.operation.batch.size"] == 2
    assert commit.attributes["dq.rows_written"] == 2
    assert early.attributes["db.response.returned_rows"] == 2
    assert full.attributes["db.response.returned_rows"] == 6
    assert unread.attributes["db.response.returned_rows"] == 0
    if which == "azure":
        # put_many writes from worker threads: their requests count towards it too
        # (at least one per document), and a stream counts the requests of its pages
        assert put_many.attributes["dq.requests"] >= 4
        assert full.attributes["dq.requests"] >= 1


# -- the canary -------------------------------------------------------------------------
PERSONAL_ID = "jane.doe@example.com"  # an id that is personal data: must never be recorded
BODY_TEXT = "body-canary-5f1c0e"
CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": PERSONAL_ID,
    "version": "1.0.0",
    "status": "active",
    "description": {"purpose": BODY_TEXT},
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}


def _recorded_text(otel: Telemetry) -> list[str]:
    texts: list[str] = []
    for span in otel.spans():
        texts += [span.name, repr(dict(span.attributes)), repr(span.status.description)]
        texts += [repr((e.name, dict(e.attributes or {}))) for e in span.events]
        texts += [repr(dict(link.attributes or {})) for link in span.links]
        texts.append(repr(dict(span.resource.attributes)))
    for metric in (STORE_METRIC, REGISTRY_METRIC, *ROW_METRICS):
        texts += [repr(dict(p.attributes)) for p in otel.points(metric)]
    formatter = logging.Formatter("%(name)s %(message)s")
    for record in otel.capture.records:
        if record.name.split(".")[0] in ("dq_stores", "dq_registries"):
            texts += [formatter.format(record), repr(vars(record))]
    return texts


def _workload(dq: DQContext) -> None:
    dq.contracts.publish(CONTRACT, actor=PERSONAL_ID)
    dq.contracts.get(PERSONAL_ID)
    with pytest.raises(NotFoundError):
        dq.contracts.get(PERSONAL_ID + "-missing")
    dq.jobs.save(
        {
            "id": PERSONAL_ID,
            "name": BODY_TEXT,
            "job_type": "validation",
            "contract": {"id": PERSONAL_ID, "version": "1.0.0"},
            "dataset": "orders",
        }
    )
    run = dq.runs.start(PERSONAL_ID, idempotency_key=PERSONAL_ID)
    dq.runs.mark_running(run.run_id)
    dq.runs.finish(run.run_id, "succeeded", results=BODY_TEXT.encode() * 50)
    b"".join(dq.runs.open_results(run.run_id))
    dq.runs.attach_report(run.run_id, dataset="orders", title=BODY_TEXT)
    dq.contracts.list()


def _assert_clean(otel: Telemetry, secrets: list[str]) -> None:
    texts = _recorded_text(otel)
    assert len(otel.spans()) > 20
    forbidden = [form for s in (*secrets, PERSONAL_ID, BODY_TEXT) for form in variants(s)]
    leaks = [(form, text) for text in texts for form in forbidden if form in text]
    assert not leaks, f"recorded: {leaks[:3]}"


@pytest.mark.postgres
def test_canary_postgres(otel: Telemetry, canary_postgres: CanaryPostgres) -> None:
    sql = pytest.importorskip("dq_stores.sql")
    backend = sql.SqlBackend(canary_postgres.url, pool_size=2)
    results = sql.SqlResultsStore(canary_postgres.url)
    with DQContext.create("acme", "prod", backend, results, inline_result_limit=16) as dq:
        _workload(dq)
    results.close()
    backend.close()
    assert otel.span("contracts.publish").attributes["dq.outcome"] == "ok"
    assert otel.span("get contract_head").attributes["db.system"] == "postgresql"
    _assert_clean(otel, [canary_postgres.password])


@pytest.mark.azure
def test_canary_azure(otel: Telemetry, canary_azure: CanaryAzure) -> None:
    azure_blob = pytest.importorskip("dq_stores.azure_blob")
    conn = canary_azure.account_key_connection_string
    backend = azure_blob.AzureBlobBackend(canary_azure.container, connection_string=conn)
    results = azure_blob.AzureBlobResultsStore(canary_azure.container, connection_string=conn)
    with DQContext.create("acme", "prod", backend, results, inline_result_limit=16) as dq:
        _workload(dq)
    results.close()
    backend.close()
    assert otel.span("upload results").attributes["dq.backend"] == "azure_blob"
    _assert_clean(otel, [canary_azure.account_key, canary_azure.signature])


# -- the FastAPI wiring of docs/telemetry.md ----------------------------------------------
SERVICE = """
import json, sys, warnings
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
warnings.simplefilter("ignore")
from fastapi.testclient import TestClient
sys.path.insert(0, sys.argv[1])
from examples.fastapi_service import app
from dq_registries.data import orders_contract

with TestClient(app) as client:
    assert client.post("/acme/prod/contracts", json=orders_contract()).status_code == 201
    assert client.get("/acme/prod/datasets/orders/contract").status_code == 200
spans = exporter.get_finished_spans()
ids = {s.context.span_id: s.name for s in spans}
print(json.dumps({
    "spans": [[s.name, ids.get(s.parent.span_id) if s.parent else None] for s in spans],
    "metrics": sorted({m.name for rm in reader.get_metrics_data().resource_metrics
                       for sm in rm.scope_metrics for m in sm.metrics}),
}))
"""


def test_a_fastapi_service_with_providers_set_first_is_traced(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", SERVICE, str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin", "DQ_HOME": str(tmp_path)},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    spans = [tuple(s) for s in seen["spans"]]
    parents = dict(spans)
    # a request span of the web framework (recent FastAPI traces itself), or none
    assert not str(parents["contracts.get_latest_for_dataset"]).startswith("contracts.")
    assert ("query contract", "contracts.get_latest_for_dataset") in spans
    assert ("commit", "contracts.publish") in spans
    assert {REGISTRY_METRIC, STORE_METRIC} <= set(seen["metrics"])
