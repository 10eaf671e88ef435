"""Telemetry of store operations: OpenTelemetry spans and metrics, and log records.

Off until switched on, and free while off: :func:`instrument` replaces the public
methods of the two store ports — every public method of
:class:`~dq_stores.backend.DocumentBackend` (methods added to the port later
included) and of :class:`~dq_stores.results.ResultsStore`, and their overrides in
every adapter, loaded now or later — by timed wrappers; :func:`uninstrument` puts the
originals back. ``close`` is lifecycle, not an operation, and is not recorded.

Per call (an operation that runs another of the same store, such as ``restore`` →
``restore_many``, is recorded once):

* a span (kind ``CLIENT``) named ``"<operation> <kind>"`` (``"get contract"``), or
  ``"<operation> results"`` for a results store, or the operation alone (``"commit"``);
* the histogram ``db.client.operation.duration`` (seconds), and the histograms
  ``db.client.response.returned_rows`` / ``dq.client.operation.written_rows`` (rows)
  of the calls that return / write documents;
* a log record on the logger ``dq_stores.<backend>`` (DEBUG; WARNING when the
  outcome is a failure rather than an answer such as not-found or conflict).

Attributes: ``db.operation.name``, ``db.collection.name`` (the document kind),
``db.system`` (``postgresql`` / ``sqlite`` where the conventions have a value),
``dq.backend`` (``memory``, ``filesystem``, ``postgres``, ``sqlite``, ``azure_blob``
or a plug-in's name), ``dq.store`` (``documents`` / ``results``),
``dq.environment``, ``dq.outcome`` (``ok`` or the exception's class name) and
``error.type``; on spans also the counts, where known: ``db.response.returned_rows``
(documents read, or items of a stream), ``db.operation.batch.size`` (operations of a
batch: ``commit``, ``put_many``, ``restore_many``; 2 or more, else absent), ``dq.rows_written``
(revisions written), ``dq.rows_removed`` (``prune_history``), ``dq.bytes`` (results)
and ``dq.requests`` (HTTP requests sent, retries included: Azure Blob). Never a
tenant, key, document id, argument, body, exception message or URL: see
``docs/telemetry.md`` for why.

Spans and metrics need ``opentelemetry-api`` (``pip install
'dq-platform-core[telemetry]'``) and a configured SDK; without the API the wrappers
only write log records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

from dq_stores._instrument import (
    FAILED,
    Counts,
    Identity,
    Layer,
    is_patched,
    logger,
    otel,
    patch_class,
    patch_request_counting,
    public_methods,
    result_bytes,
    unpatch_all,
)
from dq_stores._redact import install_log_redaction
from dq_stores.backend import DocumentBackend
from dq_stores.results import ResultsStore

__all__ = [
    "RETURNED_ROWS_METRIC",
    "STORE_METRIC",
    "WRITTEN_ROWS_METRIC",
    "api_available",
    "count_requests",
    "instrument",
    "instrumented",
    "provider_configured",
    "uninstrument",
]

#: The duration histogram of store operations (OpenTelemetry database conventions).
STORE_METRIC = "db.client.operation.duration"
#: Documents returned per call (OpenTelemetry database conventions, unit ``{row}``).
RETURNED_ROWS_METRIC = "db.client.response.returned_rows"
#: Revisions written per call (ours: the conventions have none, unit ``{row}``).
WRITTEN_ROWS_METRIC = "dq.client.operation.written_rows"
RETURNED = "db.response.returned_rows"
BATCH = "db.operation.batch.size"
WRITTEN = "dq.rows_written"
REMOVED = "dq.rows_removed"
#: ``db.system`` values of the conventions, by our backend name.
_DB_SYSTEM = {"postgres": "postgresql", "sqlite": "sqlite"}
_PORTS: tuple[tuple[type, str], ...] = ((DocumentBackend, "documents"), (ResultsStore, "results"))
_hooks: list[type] = []
#: ``(transport class, send method name, thread pool class)`` of adapters that count
#: their HTTP requests (:func:`count_requests`).
_request_classes: list[tuple[type, str, type | None]] = []


def backend_name(store: object) -> str:
    """Our name of ``store``'s technology: the ``dq.backend`` attribute.

    A class may say it with a ``telemetry_name`` attribute (plug-ins); the built-in
    adapters are known by their module, SQL ones by their URL's dialect.
    """
    named = getattr(type(store), "telemetry_name", None)
    if isinstance(named, str) and named:
        return named
    module = type(store).__module__
    if module.startswith("dq_stores.sql"):
        url = getattr(store, "_url", None)
        dialect = url.get_backend_name() if url is not None else ""
        return "postgres" if dialect == "postgresql" else "sqlite"
    for prefix, name in (
        ("dq_stores.memory", "memory"),
        ("dq_stores.filesystem", "filesystem"),
        ("dq_stores.azure_blob", "azure_blob"),
    ):
        if module.startswith(prefix):
            return name
    return type(store).__name__.lower()


def _identify(store: object) -> Identity:
    name = backend_name(store)
    results = isinstance(store, ResultsStore)
    attributes = {"dq.backend": name, "dq.store": "results" if results else "documents"}
    if name in _DB_SYSTEM:
        attributes["db.system"] = _DB_SYSTEM[name]
    requests = bool(getattr(store, "counts_requests", False))
    return Identity(attributes, logger(f"dq_stores.{name}"), "results" if results else "", requests)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], at: int, name: str) -> Any:
    return args[at] if at < len(args) else kwargs.get(name)


def _batch(counts: Counts, size: int) -> None:
    if size >= 2:  # the conventions: a batch has two or more operations (0 or 1: none)
        counts[BATCH] = size


def _counts(
    operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: object
) -> Counts:
    """What a store call returned or wrote, from its result (and arguments). Only
    lengths: never a value. ``result`` is ``FAILED`` when the call raised."""
    counts: Counts = {}
    if operation == "commit":  # (scope, operations)
        operations = _arg(args, kwargs, 1, "operations")
        if isinstance(operations, Sized):
            _batch(counts, len(operations))
        if isinstance(result, list):
            counts[WRITTEN] = sum(1 for doc in result if doc is not None)
        return counts
    if operation == "restore_many":  # (scope, kind, histories)
        histories = _arg(args, kwargs, 2, "histories")
        if isinstance(histories, Sized):
            _batch(counts, len(histories))
        if result is not FAILED and isinstance(histories, (list, tuple)):
            counts[WRITTEN] = sum(len(h[1]) for h in histories)
        return counts
    if result is FAILED or result is None:
        if operation == "restore" and result is None:  # (scope, kind, key, revisions)
            revisions = _arg(args, kwargs, 3, "revisions")
            if isinstance(revisions, Sized):
                counts[WRITTEN] = len(revisions)
        return counts
    kind = type(result).__name__
    if operation == "put_many" and isinstance(result, int):
        _batch(counts, result)
        counts[WRITTEN] = result
    elif operation == "prune_history" and isinstance(result, int):
        counts[REMOVED] = result
    elif kind == "StoredDocument":
        counts[WRITTEN if operation in ("put", "delete") else RETURNED] = 1
    elif operation == "history" and isinstance(result, list):
        counts[RETURNED] = len(result)
    elif kind == "Page":
        counts[RETURNED] = len(result.items)  # type: ignore[attr-defined]
    elif kind == "SearchPage":
        counts[RETURNED] = len(result.hits)  # type: ignore[attr-defined]
    else:
        size = result_bytes(result)
        if size is not None:
            counts["dq.bytes"] = size
    return counts


def _span_name(operation: str, kind: str | None, identity: Identity) -> str:
    noun = kind or identity.target
    return f"{operation} {noun}" if noun else operation


_LAYER = Layer(
    scope_name="dq_stores",
    operation_attribute="db.operation.name",
    metric=STORE_METRIC,
    metric_description="Duration of dq store operations",
    span_kind="CLIENT",
    identify=_identify,
    span_name=_span_name,
    counts=_counts,
    stream_rows=RETURNED,
    row_metrics={
        RETURNED: (RETURNED_ROWS_METRIC, "Documents returned by dq store operations"),
        WRITTEN: (WRITTEN_ROWS_METRIC, "Document revisions written by dq store operations"),
    },
)


def api_available() -> bool:
    """True when ``opentelemetry-api`` can be imported (checked once)."""
    return otel() is not None


def provider_configured() -> bool:
    """True when the application has set a tracer or meter provider (an SDK's)."""
    api = otel()
    if api is None:
        return False
    tracer_provider = api.trace.get_tracer_provider()
    if not isinstance(
        tracer_provider, (api.trace.ProxyTracerProvider, api.trace.NoOpTracerProvider)
    ):
        return True
    from opentelemetry.metrics import _internal

    proxy = getattr(_internal, "_ProxyMeterProvider", api.metrics.NoOpMeterProvider)
    meter_provider = api.metrics.get_meter_provider()
    return not isinstance(meter_provider, (proxy, api.metrics.NoOpMeterProvider))


def _subclasses(cls: type) -> Iterator[type]:
    """``cls``'s subclasses, each after its parent (breadth first)."""
    seen: set[type] = set()
    queue: list[type] = list(cls.__subclasses__())
    while queue:
        sub = queue.pop(0)
        if sub not in seen:
            seen.add(sub)
            yield sub
            queue.extend(sub.__subclasses__())


def _patch_port(port: type, sub: type) -> None:
    patch_class(sub, _LAYER, public_methods(port))


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Record every store operation from now on (process-wide; calling again only
    changes the providers).

    ``tracer_provider`` / ``meter_provider``: OpenTelemetry providers to use instead of
    the global ones (as OpenTelemetry instrumentors take them). Adapter classes defined
    later (SQL and Azure load on first use, plug-ins) are instrumented as they are
    defined.
    """
    install_log_redaction()  # every logger of our trees, including the new ones
    _LAYER.start(tracer_provider, meter_provider)
    for transport, send, pool in _request_classes:
        patch_request_counting(transport, send, pool)
    for port, _ in _PORTS:
        names = public_methods(port)
        patch_class(port, _LAYER, names)
        for sub in _subclasses(port):
            patch_class(sub, _LAYER, names)
        if port not in _hooks:
            _install_hook(port, names)


def _install_hook(port: type, names: list[str]) -> None:
    """Instrument each subclass of ``port`` defined from now on, as it is defined."""
    base: Any = port

    def hook(cls: Any, /, **kwargs: Any) -> None:
        super(base, cls).__init_subclass__(**kwargs)
        patch_class(cls, _LAYER, names)

    setattr(port, "__init_subclass__", classmethod(hook))  # noqa: B010 - a class hook
    _hooks.append(port)


def count_requests(transport: type, send: str = "send", pool: type | None = None) -> None:
    """Let an adapter count the HTTP requests of its calls (``dq.requests``).

    ``transport``: the class of the HTTP transport its clients send through — a
    subclass of its own, with nothing of its own while telemetry is off — whose
    ``send`` method sends one request; ``pool``: its own thread pool class, if it
    runs requests in other threads. Telemetry wraps both while on (now, if it is,
    or when switched on) and puts them back when off. The adapter's store objects
    say ``counts_requests = True``. Called by the Azure adapter when imported.
    """
    entry = (transport, send, pool)
    if entry not in _request_classes:
        _request_classes.append(entry)
    if instrumented():
        patch_request_counting(transport, send, pool)


def uninstrument() -> None:
    """Stop recording: put every instrumented method back as it was (idempotent).

    Also removes what ``dq_registries.wiring.telemetry.instrument`` added.
    """
    unpatch_all()
    _LAYER.stop()
    while _hooks:
        port = _hooks.pop()
        if "__init_subclass__" in vars(port):
            del port.__init_subclass__


def instrumented() -> bool:
    """True while store operations are being recorded."""
    return is_patched(DocumentBackend, "get")
