"""Hostile telemetry tests on Azurite: the Azure client with telemetry off behaves as
before (default, SAS connection string, a caller's client), also after on → off → on;
HTTP request counts (``dq.requests``) do not leak between concurrent calls; SAS and
account keys never appear in what is recorded."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.support.azurite import sas_connection_string
from tests.support.telemetry import STORE_METRIC, Telemetry

from dq_metadata.scope import Scope
from dq_registries.wiring import telemetry
from dq_stores.documents import MUST_NOT_EXIST, DocumentWrite, IndexEntry, Query

SCOPE = Scope("acme", "prod")


def write(key: str, n: int = 1) -> DocumentWrite:
    return DocumentWrite.hashing(key, b'{"n":%d}' % n, IndexEntry({"tag": ("a",)}, f"{n:04d}"))


def _round_trip(backend: Any, prefix: str) -> None:
    backend.put(SCOPE, "job", write(f"{prefix}-k1"), MUST_NOT_EXIST)
    assert backend.put_many(SCOPE, "job", [write(f"{prefix}-b{i}") for i in range(3)]) == 3
    assert backend.get(SCOPE, "job", f"{prefix}-k1").key == f"{prefix}-k1"
    assert len(backend.query(SCOPE, "job", Query(limit=100)).items) >= 4
    assert len(list(backend.iter_documents(SCOPE, "job"))) >= 4


def _backends(connection_string: str, container: str) -> list[tuple[str, Any]]:
    from azure.storage.blob import BlobServiceClient

    from dq_stores.azure_blob.backend import AzureBlobBackend

    caller = BlobServiceClient.from_connection_string(connection_string)
    return [
        ("default", AzureBlobBackend(container, connection_string=connection_string)),
        (
            "sas",
            AzureBlobBackend(
                container, connection_string=sas_connection_string(connection_string, container)
            ),
        ),
        ("client", AzureBlobBackend(container, client=caller)),
    ]


def test_the_azure_client_works_off_on_off_on(
    azure_connection_string: str, azure_container: str
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dq_stores.azure_blob._client import Pool, Transport

    assert not telemetry.instrumented()
    backends = _backends(azure_connection_string, azure_container)
    try:
        for phase in ("off1", "on1", "off2", "on2"):
            exporter = InMemorySpanExporter()
            if phase.startswith("on"):
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                telemetry.instrument(tracer_provider=provider, meter_provider=MeterProvider())
            else:
                assert "send" not in vars(Transport)
                assert "submit" not in vars(Pool)
            try:
                for which, backend in backends:
                    _round_trip(backend, f"{phase}-{which}")
            finally:
                telemetry.uninstrument()
            spans = exporter.get_finished_spans()
            if phase.startswith("off"):
                assert spans == ()
                continue
            by_client: dict[str, list[Any]] = {}
            per_backend = len(spans) // len(backends)
            for i, (which, _) in enumerate(backends):
                by_client[which] = list(spans[i * per_backend : (i + 1) * per_backend])
            for which, recorded in by_client.items():
                requests = [s.attributes.get("dq.requests") for s in recorded]
                if which == "client":  # a caller's client: not counted
                    assert requests == [None] * len(recorded)
                else:
                    assert all(isinstance(n, int) and n >= 1 for n in requests), (which, requests)
    finally:
        for _, backend in backends:
            backend.close()


def test_request_counts_do_not_leak_between_concurrent_azure_calls(
    otel: Telemetry, azure_connection_string: str, azure_container: str
) -> None:
    from dq_stores.azure_blob.backend import AzureBlobBackend

    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as backend:
        backend.put(SCOPE, "job", write("solo"), MUST_NOT_EXIST)
        backend.get(SCOPE, "job", "solo")
        solo = otel.span("get job").attributes["dq.requests"]
        otel.clear()
        stop = threading.Event()

        def bulk() -> None:  # many requests, many in the backend's worker pools
            i = 0
            while not stop.is_set():
                backend.put_many(SCOPE, "bulk", [write(f"b{i}-{j}") for j in range(16)])
                i += 1

        def reads() -> None:
            for _ in range(15):
                backend.get(SCOPE, "job", "solo")

        with ThreadPoolExecutor(3) as pool:
            writer = pool.submit(bulk)
            readers = [pool.submit(reads) for _ in range(2)]
            for r in readers:
                r.result()
            stop.set()
            writer.result()
        gets = [s for s in otel.spans() if s.name == "get job"]
        assert len(gets) == 30
        assert {s.attributes["dq.requests"] for s in gets} == {solo}
        puts = [s for s in otel.spans() if s.name == "put_many bulk"]
        assert puts
        assert all(s.attributes["dq.requests"] >= 16 for s in puts)


def test_sas_and_account_key_are_never_recorded(
    otel: Telemetry, azure_connection_string: str, azure_container: str
) -> None:
    from dq_stores.azure_blob.backend import AzureBlobBackend

    sas = sas_connection_string(azure_connection_string, azure_container)
    fields = dict(
        p.split("=", 1) for p in azure_connection_string.strip(";").split(";") if "=" in p
    )
    token = dict(p.split("=", 1) for p in sas.strip(";").split(";") if "=" in p)[
        "SharedAccessSignature"
    ]
    signature = dict(p.split("=", 1) for p in token.split("&"))["sig"]
    with AzureBlobBackend(azure_container, connection_string=sas) as backend:
        _round_trip(backend, "sas")
        with pytest.raises(Exception, match="not found"):
            backend.get(SCOPE, "job", "missing")
    recorded = [json.dumps([s.name, dict(s.attributes)], default=str) for s in otel.spans()]
    recorded += [json.dumps(dict(p.attributes)) for p in otel.points(STORE_METRIC)]
    recorded += [
        r.getMessage() + json.dumps(vars(r), default=str) for r in otel.capture.records
    ]  # every logger: the SDK's and urllib3's too, through the redacting filter
    text = "\n".join(recorded)
    assert "sas-k1" not in "\n".join(recorded[: len(otel.spans())])
    for secret in (fields["AccountKey"], signature, signature.replace("%2B", "+")):
        assert secret not in text
