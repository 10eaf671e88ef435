"""Generic method instrumentation: one span, one duration measurement and one log record
per call of a public method, installed by replacing class attributes and removed again.

Used by :mod:`dq_stores.telemetry` (store ports) and ``dq_registries.wiring.telemetry``
(registries). Nothing here runs until :func:`patch_class` is called: an uninstrumented
class is exactly the class as written, so instrumentation that is off costs nothing.

The OpenTelemetry API is imported once, on first need (:func:`otel`); without it the
wrappers still time calls and write log records, and skip spans and metrics.

What is recorded is chosen here and nowhere else, so that no value that could carry
personal data or a secret is ever recorded: operation names, kinds and environments
(validated ids), backend and registry names, outcome class names, counts and sizes —
never keys, document ids, tenants, arguments, bodies, exception messages or URLs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import FunctionType, SimpleNamespace
from typing import Any

from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_metadata.scope import ID_PATTERN, Scope
from dq_stores._redact import RedactingFilter

__all__ = [
    "REQUESTS",
    "Counts",
    "Identity",
    "Layer",
    "otel",
    "patch_class",
    "patch_request_counting",
    "unpatch_all",
]

#: Histogram bucket boundaries (seconds) advised by the OpenTelemetry database conventions.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
#: Histogram bucket boundaries of row counts (rows, documents).
ROW_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000)
#: Outcomes that are answers, not failures: logged at DEBUG; every other one at WARNING.
EXPECTED = (NotFoundError, ConflictError, ValidationError)
#: Public methods never wrapped: lifecycle, not operations.
SKIPPED = frozenset({"close"})

_api: SimpleNamespace | None = None
_api_tried = False
_lock = threading.RLock()
_MISSING = object()
# (class, attribute name, what the class's own __dict__ held before: a function or _MISSING)
_patches: list[tuple[type, str, object]] = []
#: The request counter of the store operation running in this context (``None``: no
#: operation, or one of a backend that does not count requests). ``next(counter)``
#: counts one; it is atomic, so worker threads given a copy of the context can count.
REQUESTS: ContextVar[Iterator[int] | None] = ContextVar("dq_stores.requests", default=None)
#: Span attributes holding counts of one call: name → value.
Counts = dict[str, int]
#: ``(operation, args, kwargs, result)`` → the call's counts; ``result`` is
#: :data:`FAILED` when the call raised.
CountsOf = Callable[[str, tuple[Any, ...], dict[str, Any], object], Counts]
#: The ``result`` given to a :data:`CountsOf` when the call raised.
FAILED = object()


def otel() -> SimpleNamespace | None:
    """The OpenTelemetry API modules (``trace``, ``metrics``, ``context``, ``status``),
    or ``None`` when ``opentelemetry-api`` is not installed. Imported once."""
    global _api, _api_tried
    if not _api_tried:
        with _lock:
            if not _api_tried:
                try:
                    from opentelemetry import context, metrics, trace
                    from opentelemetry.trace import status
                except ImportError:
                    _api = None
                else:
                    _api = SimpleNamespace(context=context, metrics=metrics, trace=trace)
                    _api.status = status
                _api_tried = True
    return _api


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("dq-platform-core")
    except Exception:  # not installed as a distribution (e.g. PYTHONPATH=src)
        return None


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the library's secret redaction attached."""
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())
    return log


_valid_ids: dict[str, bool] = {}
_MAX_NAMES = 4096  # span names cached per wrapped method (by kind and target)


def safe_id(value: object) -> str | None:
    """``value`` when it is a valid kind/environment id (never free text), else ``None``."""
    if not isinstance(value, str):
        return None
    valid = _valid_ids.get(value)
    if valid is None:
        valid = ID_PATTERN.fullmatch(value) is not None and ".." not in value
        if len(_valid_ids) < 4096:
            _valid_ids[value] = valid
    return value if valid else None


@dataclass(frozen=True, slots=True)
class Identity:
    """What a call's target always records: constant attributes, its logger, the
    noun of its span name when the call names no kind (``"results"``, ``"contracts"``),
    and whether its calls count the HTTP requests they send (``dq.requests``)."""

    attributes: dict[str, str]
    logger: logging.Logger
    target: str
    requests: bool = False


_STREAMS = ("Iterator", "Generator", "collections.abc.Iterator", "typing.Iterator")


def _returns_stream(func: Callable[..., Any]) -> bool:
    """Whether ``func``'s return annotation is an iterator (a stream)."""
    try:
        returns = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return False
    text = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
    return text.startswith(_STREAMS)


class _Op:
    """One wrapped method: where its ``kind`` and ``scope`` arguments are, whether it
    returns a stream (from its annotation), and its span names by kind."""

    __slots__ = ("identity", "kind_at", "name", "names", "scope_at", "streams")

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        identity: Identity | None,
        overridden: Iterable[Callable[..., Any]] = (),
    ):
        signature = inspect.signature(func)
        params = list(signature.parameters)[1:]  # after self
        self.name = name
        self.kind_at = params.index("kind") if "kind" in params else None
        self.scope_at = params.index("scope") if "scope" in params else None
        self.identity = identity  # fixed by the class (registries); None: from the instance
        # a stream when the method, or one it overrides (the port's), says it returns one:
        # a plug-in's override without annotations is still the port's stream
        self.streams = any(_returns_stream(f) for f in (func, *overridden))
        self.names: dict[tuple[str | None, str], str] = {}

    def arg(self, at: int | None, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if at is not None and at < len(args):
            return args[at]
        return kwargs.get(name) if kwargs else None


class Layer:
    """One instrumented layer (stores or registries): its instrumentation scope, span
    naming, attribute names, histograms and re-entrancy guard.

    A call made while another call of the same layer is running in the same context
    (``restore`` → ``restore_many``, a registry method calling another) is a plain
    call: one span and one measurement per operation the caller asked for.

    ``counts`` says which counts a call's result (or arguments) give: span attributes
    such as ``db.response.returned_rows``; ``stream_rows`` is the attribute that holds
    the number of rows a stream yielded (a list item counts its length: one key's
    history). ``row_metrics`` maps a count attribute to the name and description of a
    histogram (unit ``{row}``) recording it with the duration's attributes.
    """

    def __init__(
        self,
        *,
        scope_name: str,
        operation_attribute: str,
        metric: str,
        metric_description: str,
        span_kind: str,
        identify: Callable[[object], Identity],
        span_name: Callable[[str, str | None, Identity], str],
        counts: CountsOf | None = None,
        stream_rows: str = "dq.rows",
        row_metrics: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.scope_name = scope_name
        self.operation_attribute = operation_attribute
        self.metric = metric
        self.metric_description = metric_description
        self.span_kind = span_kind
        self.identify = identify
        self.span_name = span_name
        self.counts = counts or list_counts
        self.stream_rows = stream_rows
        self.row_metrics = dict(row_metrics or {})
        self.guard: ContextVar[bool] = ContextVar(f"{scope_name}.telemetry", default=False)
        self._cache_attr = f"_dq_telemetry_{scope_name}"
        self._api: Any = None
        self._tracer: Any = None
        self._histogram: Any = None
        self._row_histograms: dict[str, Any] = {}

    def start(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        """Take this layer's tracer and histograms from the given providers, or from the
        global ones (which follow the application's set-up, even a later one). Without
        the API there are none: calls are then only timed and logged."""
        api = otel()
        if api is None:
            return
        version = _version()
        meters = meter_provider if meter_provider is not None else api.metrics
        tracers = tracer_provider if tracer_provider is not None else api.trace
        meter = meters.get_meter(self.scope_name, version)
        self._histogram = meter.create_histogram(
            self.metric,
            unit="s",
            description=self.metric_description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._row_histograms = {
            attribute: meter.create_histogram(
                name,
                unit="{row}",
                description=description,
                explicit_bucket_boundaries_advisory=list(ROW_BUCKETS),
            )
            for attribute, (name, description) in self.row_metrics.items()
        }
        self._tracer = tracers.get_tracer(self.scope_name, version)
        self._api = api

    def stop(self) -> None:
        """Forget the tracer and histograms (after the methods were put back)."""
        self._api = self._tracer = self._histogram = None
        self._row_histograms = {}

    def _identity(self, op: _Op, obj: object) -> Identity:
        if op.identity is not None:
            return op.identity
        cached = getattr(obj, self._cache_attr, None)
        if isinstance(cached, Identity):
            return cached
        identity = self.identify(obj)
        with contextlib.suppress(AttributeError, TypeError):  # __slots__: every time
            object.__setattr__(obj, self._cache_attr, identity)
        return identity

    def call(
        self,
        op: _Op,
        func: Callable[..., Any],
        obj: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run ``func(obj, *args, **kwargs)`` inside a span; measure and log it."""
        identity = self._identity(op, obj)
        attributes = dict(identity.attributes)
        attributes[self.operation_attribute] = op.name
        kind = safe_id(op.arg(op.kind_at, "kind", args, kwargs))
        if kind is not None:
            attributes["db.collection.name"] = kind
        scope = op.arg(op.scope_at, "scope", args, kwargs)
        if not isinstance(scope, Scope):
            scope = getattr(obj, "scope", None)
        if isinstance(scope, Scope):
            attributes["dq.environment"] = scope.environment
        name = op.names.get((kind, identity.target))
        if name is None:
            name = self.span_name(op.name, kind, identity)
            if len(op.names) < _MAX_NAMES:  # a store of many kinds: stop caching, not grow
                op.names[(kind, identity.target)] = name
        requests = itertools.count() if identity.requests else None
        record = _Record(self, identity, name, attributes, requests)
        token = self.guard.set(True)
        counting = REQUESTS.set(requests)
        attached = record.enter()
        try:  # finished inside the span's context, so that the log record carries it
            result = func(obj, *args, **kwargs)
        except BaseException as exc:
            counts = self.counts(op.name, args, kwargs, FAILED)
            record.finish(type(exc).__name__, counts, failure=not isinstance(exc, EXPECTED))
            raise
        else:
            if op.streams and isinstance(result, Iterator):
                return _Stream(self, result, record)
            record.finish("ok", self.counts(op.name, args, kwargs, result))
            return result
        finally:
            record.leave(attached)
            REQUESTS.reset(counting)
            self.guard.reset(token)


def list_counts(
    operation: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: object
) -> Counts:
    """The registries' counts: ``dq.rows`` of a list or a page; ``dq.bytes`` of a result."""
    if isinstance(result, (list, tuple)):
        return {"dq.rows": len(result)}
    items = getattr(result, "items", None)
    if isinstance(items, list):
        return {"dq.rows": len(items)}
    size = result_bytes(result)
    return {} if size is None else {"dq.bytes": size}


def result_bytes(result: object) -> int | None:
    """The size of a :class:`~dq_stores.results.ResultRef` (``None`` for anything else)."""
    if type(result).__name__ == "ResultRef":
        size = getattr(result, "size", None)
        return size if isinstance(size, int) else None
    return None


class _Stream(Iterator[Any]):
    """A stream returned by a recorded call, with the call's span kept open until the
    stream ends: exhausted, failed, closed, or dropped unread (garbage collected).
    Each item is fetched inside the span's context (nested store calls are not
    recorded again, HTTP requests count towards the call). A stream stopped early is
    ``ok`` with the rows read so far."""

    __slots__ = ("_bytes", "_items", "_layer", "_record", "_rows")

    def __init__(self, layer: Layer, items: Iterator[Any], record: _Record) -> None:
        self._layer = layer
        self._items = items
        self._record: _Record | None = record
        self._rows = 0
        self._bytes: int | None = None  # a stream of bytes counts bytes, not rows

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        record = self._record
        if record is None:
            raise StopIteration
        layer = self._layer
        token = layer.guard.set(True)
        counting = REQUESTS.set(record.requests)
        attached = record.enter()
        try:
            item = next(self._items)
        except StopIteration:
            self._finish("ok")
            raise
        except BaseException as exc:
            self._finish(type(exc).__name__, failure=not isinstance(exc, EXPECTED))
            raise
        finally:
            record.leave(attached)
            REQUESTS.reset(counting)
            layer.guard.reset(token)
        if isinstance(item, bytes):
            self._bytes = (self._bytes or 0) + len(item)
        elif isinstance(item, list):
            self._rows += len(item)
        else:
            self._rows += 1
        return item

    def close(self) -> None:
        """Stop early: close the underlying stream and end the span (idempotent).

        The underlying stream's clean-up runs inside the call, as its items do; if it
        raises, the span ends with that outcome and the exception propagates."""
        record = self._record
        if record is None:
            return
        close = getattr(self._items, "close", None)
        layer = self._layer
        token = layer.guard.set(True)
        counting = REQUESTS.set(record.requests)
        attached = record.enter()
        try:
            if close is not None:
                close()
        except BaseException as exc:
            self._finish(type(exc).__name__, failure=not isinstance(exc, EXPECTED))
            raise
        else:
            self._finish("ok")
        finally:
            record.leave(attached)
            REQUESTS.reset(counting)
            layer.guard.reset(token)

    def __del__(self) -> None:  # dropped without being read to the end
        with contextlib.suppress(Exception):
            self.close()

    def _finish(self, outcome: str, *, failure: bool = False) -> None:
        record, self._record = self._record, None
        if record is None:
            return
        counts: Counts
        if self._bytes is not None:
            counts = {"dq.bytes": self._bytes}
        else:
            counts = {self._layer.stream_rows: self._rows}
        record.finish(outcome, counts, failure=failure)


class _Record:
    """One call in flight: its span (when the API is there), its start time, and the
    counter of the HTTP requests it sends (``None`` when its backend does not count)."""

    __slots__ = ("api", "attributes", "identity", "layer", "name", "requests", "span", "started")

    def __init__(
        self,
        layer: Layer,
        identity: Identity,
        name: str,
        attributes: dict[str, Any],
        requests: Iterator[int] | None = None,
    ):
        self.layer = layer
        self.identity = identity
        self.name = name
        self.attributes = attributes
        self.requests = requests
        self.api = api = layer._api
        self.span: Any = None
        if api is not None:
            kind = getattr(api.trace.SpanKind, layer.span_kind)
            self.span = layer._tracer.start_span(name, kind=kind, attributes=attributes)
        self.started = time.perf_counter()

    def enter(self) -> object:
        span = self.span
        if span is None or not span.get_span_context().is_valid:  # no SDK: nothing to nest
            return None
        return self.api.context.attach(self.api.trace.set_span_in_context(self.span))

    def leave(self, token: object) -> None:
        if token is not None:
            self.api.context.detach(token)

    def finish(self, outcome: str, counts: Counts | None = None, *, failure: bool = False) -> None:
        """Record the call's outcome (``"ok"`` or an exception class name) and its
        ``counts`` (span attributes; some also measured): end the span, measure the
        duration, write the log record (WARNING for a ``failure``)."""
        duration = time.perf_counter() - self.started
        counts = dict(counts) if counts else {}
        if self.requests is not None:
            counts["dq.requests"] = next(self.requests)  # how many were counted before
        attributes = self.attributes
        attributes["dq.outcome"] = outcome
        if outcome != "ok":
            attributes["error.type"] = outcome
        layer = self.layer
        if layer._histogram is not None:
            layer._histogram.record(duration, attributes)
            for attribute, histogram in layer._row_histograms.items():
                value = counts.get(attribute)
                if value is not None:
                    histogram.record(value, attributes)
        log = self.identity.logger
        level = logging.WARNING if failure else logging.DEBUG
        if log.isEnabledFor(level):
            fields = {k.replace(".", "_"): v for k, v in attributes.items()}
            fields.update(dq_duration_s=duration, dq_rows=None, dq_bytes=None)
            fields.update({k.replace(".", "_"): v for k, v in counts.items()})
            log.log(level, "%s: %s in %.3f ms", self.name, outcome, duration * 1e3, extra=fields)
        span = self.span
        if span is not None:
            if counts:
                span.set_attributes(counts)
            span.set_attribute("dq.outcome", outcome)
            if outcome != "ok":
                status = self.api.status
                span.set_attribute("error.type", outcome)
                span.set_status(status.Status(status.StatusCode.ERROR))
            span.end()


def _wrap(
    func: Callable[..., Any],
    name: str,
    layer: Layer,
    identity: Identity | None,
    overridden: Iterable[Callable[..., Any]] = (),
) -> Any:
    op = _Op(func, name, identity, overridden)
    guard = layer.guard

    @functools.wraps(func)
    def instrumented(self: object, *args: Any, **kwargs: Any) -> Any:
        if guard.get():
            return func(self, *args, **kwargs)
        return layer.call(op, func, self, args, kwargs)

    instrumented.__dq_layer__ = layer  # type: ignore[attr-defined]
    return instrumented


def public_methods(cls: type) -> list[str]:
    """Names of the plain public functions defined in ``cls`` itself (not inherited)."""
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and name not in SKIPPED and isinstance(value, FunctionType)
    ]


def patch_class(
    cls: type, layer: Layer, names: Iterable[str], identity: Identity | None = None
) -> None:
    """Wrap ``cls``'s methods ``names`` (as ``cls`` resolves them) unless already wrapped.

    A method ``cls`` inherits from an already instrumented class is left alone; one it
    defines or takes from a mixin is wrapped in ``cls``'s own ``__dict__``.
    """
    with _lock:
        for name in names:
            target = getattr(cls, name, None)
            if not isinstance(target, FunctionType) or hasattr(target, "__dq_layer__"):
                continue
            overridden = [
                f for base in cls.__mro__[1:] if isinstance(f := vars(base).get(name), FunctionType)
            ]
            _patches.append((cls, name, vars(cls).get(name, _MISSING)))
            setattr(cls, name, _wrap(target, name, layer, identity, overridden))


def unpatch_all() -> None:
    """Put back every attribute :func:`patch_class` replaced, newest first."""
    with _lock:
        while _patches:
            cls, name, before = _patches.pop()
            if before is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, before)


def is_patched(cls: type, name: str) -> bool:
    """True when ``cls.name`` is an instrumented wrapper."""
    return hasattr(getattr(cls, name, None), "__dq_layer__")


def _counting_send(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    def counted(self: object, *args: Any, **kwargs: Any) -> Any:
        counter = REQUESTS.get()
        if counter is not None:
            next(counter)
        return send(self, *args, **kwargs)

    return counted


def _context_submit(submit: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(submit)
    def in_context(self: object, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    return in_context


def patch_request_counting(transport: type, send: str, pool: type | None = None) -> None:
    """Count the HTTP requests of store calls: wrap ``transport.send`` so that each
    request sent counts towards the store call running in its context
    (:data:`REQUESTS`), and ``pool.submit`` (a thread pool class) so that work it runs
    in other threads keeps the submitting context (its span and its counter).

    Both are our own subclasses with nothing of their own while telemetry is off:
    :func:`unpatch_all` puts them back to exactly that. Idempotent.
    """
    with _lock:
        for cls, name, make in (
            (transport, send, _counting_send),
            (pool, "submit", _context_submit),
        ):
            if cls is None:
                continue
            target = getattr(cls, name)
            if getattr(target, "__dq_counting__", False):
                continue
            wrapper = make(target)
            wrapper.__dq_counting__ = True  # type: ignore[attr-defined]
            _patches.append((cls, name, vars(cls).get(name, _MISSING)))
            setattr(cls, name, wrapper)
