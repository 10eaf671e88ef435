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
import functools
import inspect
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

__all__ = ["Identity", "Layer", "otel", "patch_class", "unpatch_all"]

#: Histogram bucket boundaries (seconds) advised by the OpenTelemetry database conventions.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
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
    """What a call's target always records: constant attributes, its logger, and the
    noun of its span name when the call names no kind (``"results"``, ``"contracts"``)."""

    attributes: dict[str, str]
    logger: logging.Logger
    target: str


_STREAMS = ("Iterator", "Generator", "collections.abc.Iterator", "typing.Iterator")


class _Op:
    """One wrapped method: where its ``kind`` and ``scope`` arguments are, whether it
    returns a stream (from its annotation), and its span names by kind."""

    __slots__ = ("identity", "kind_at", "name", "names", "scope_at", "streams")

    def __init__(self, func: Callable[..., Any], name: str, identity: Identity | None):
        signature = inspect.signature(func)
        params = list(signature.parameters)[1:]  # after self
        self.name = name
        self.kind_at = params.index("kind") if "kind" in params else None
        self.scope_at = params.index("scope") if "scope" in params else None
        self.identity = identity  # fixed by the class (registries); None: from the instance
        returns = signature.return_annotation
        text = returns if isinstance(returns, str) else getattr(returns, "__name__", "")
        self.streams = text.startswith(_STREAMS)
        self.names: dict[tuple[str | None, str], str] = {}

    def arg(self, at: int | None, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if at is not None and at < len(args):
            return args[at]
        return kwargs.get(name) if kwargs else None


class Layer:
    """One instrumented layer (stores or registries): its instrumentation scope, span
    naming, attribute names, duration histogram and re-entrancy guard.

    A call made while another call of the same layer is running in the same context
    (``restore`` → ``restore_many``, a registry method calling another) is a plain
    call: one span and one measurement per operation the caller asked for.
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
        counted: frozenset[str] = frozenset(),
    ) -> None:
        self.scope_name = scope_name
        self.operation_attribute = operation_attribute
        self.metric = metric
        self.metric_description = metric_description
        self.span_kind = span_kind
        self.identify = identify
        self.span_name = span_name
        self.counted = counted  # operations whose int result counts documents/rows
        self.guard: ContextVar[bool] = ContextVar(f"{scope_name}.telemetry", default=False)
        self._cache_attr = f"_dq_telemetry_{scope_name}"
        self._api: Any = None
        self._tracer: Any = None
        self._histogram: Any = None

    def start(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        """Take this layer's tracer and histogram from the given providers, or from the
        global ones (which follow the application's set-up, even a later one). Without
        the API there are none: calls are then only timed and logged."""
        api = otel()
        if api is None:
            return
        version = _version()
        meters = meter_provider if meter_provider is not None else api.metrics
        tracers = tracer_provider if tracer_provider is not None else api.trace
        self._histogram = meters.get_meter(self.scope_name, version).create_histogram(
            self.metric,
            unit="s",
            description=self.metric_description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._tracer = tracers.get_tracer(self.scope_name, version)
        self._api = api

    def stop(self) -> None:
        """Forget the tracer and histogram (after the methods were put back)."""
        self._api = self._tracer = self._histogram = None

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
            name = op.names[(kind, identity.target)] = self.span_name(op.name, kind, identity)
        record = _Record(self, identity, name, attributes)
        token = self.guard.set(True)
        attached = record.enter()
        try:  # finished inside the span's context, so that the log record carries it
            result = func(obj, *args, **kwargs)
        except BaseException as exc:
            record.finish(type(exc).__name__, failure=not isinstance(exc, EXPECTED))
            raise
        else:
            if op.streams and isinstance(result, Iterator):
                return self._stream(result, record)
            record.finish("ok", self._rows(op.name, result), _bytes(result))
            return result
        finally:
            record.leave(attached)
            self.guard.reset(token)

    def _stream(self, items: Iterator[Any], record: _Record) -> Iterator[Any]:
        """``items`` with the call's span kept open until the stream ends."""
        count = size = 0
        outcome, failure = "ok", False
        try:
            while True:
                token = self.guard.set(True)
                attached = record.enter()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    record.leave(attached)
                    self.guard.reset(token)
                count += 1
                if isinstance(item, bytes):
                    size += len(item)
                yield item
        except GeneratorExit:  # the consumer stopped early: its choice, not a failure
            raise
        except BaseException as exc:
            outcome, failure = type(exc).__name__, not isinstance(exc, EXPECTED)
            raise
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            attached = record.enter()
            try:
                record.finish(outcome, count, size or None, failure=failure)
            finally:
                record.leave(attached)

    def _rows(self, operation: str, result: object) -> int | None:
        if isinstance(result, bool) or result is None:
            return None
        if isinstance(result, int):
            return result if operation in self.counted else None
        if isinstance(result, (list, tuple)):
            return len(result)
        items = getattr(result, "items", None)
        if isinstance(items, list):
            return len(items)
        if type(result).__name__ == "StoredDocument":
            return 1
        return None


def _bytes(result: object) -> int | None:
    if type(result).__name__ == "ResultRef":
        size = getattr(result, "size", None)
        return size if isinstance(size, int) else None
    return None


class _Record:
    """One call in flight: its span (when the API is there) and its start time."""

    __slots__ = ("api", "attributes", "identity", "layer", "name", "span", "started")

    def __init__(self, layer: Layer, identity: Identity, name: str, attributes: dict[str, Any]):
        self.layer = layer
        self.identity = identity
        self.name = name
        self.attributes = attributes
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

    def finish(
        self,
        outcome: str,
        rows: int | None = None,
        size: int | None = None,
        *,
        failure: bool = False,
    ) -> None:
        """Record the call's outcome (``"ok"`` or an exception class name): end the
        span, measure the duration, write the log record (WARNING for a ``failure``)."""
        duration = time.perf_counter() - self.started
        attributes = self.attributes
        attributes["dq.outcome"] = outcome
        if outcome != "ok":
            attributes["error.type"] = outcome
        layer = self.layer
        if layer._histogram is not None:
            layer._histogram.record(duration, attributes)
        log = self.identity.logger
        level = logging.WARNING if failure else logging.DEBUG
        if log.isEnabledFor(level):
            fields = {k.replace(".", "_"): v for k, v in attributes.items()}
            fields.update(dq_duration_s=duration, dq_rows=rows, dq_bytes=size)
            log.log(level, "%s: %s in %.3f ms", self.name, outcome, duration * 1e3, extra=fields)
        span = self.span
        if span is not None:
            if rows is not None:
                span.set_attribute("dq.rows", rows)
            if size is not None:
                span.set_attribute("dq.bytes", size)
            span.set_attribute("dq.outcome", outcome)
            if outcome != "ok":
                status = self.api.status
                span.set_attribute("error.type", outcome)
                span.set_status(status.Status(status.StatusCode.ERROR))
            span.end()


def _wrap(func: Callable[..., Any], name: str, layer: Layer, identity: Identity | None) -> Any:
    op = _Op(func, name, identity)
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
            _patches.append((cls, name, vars(cls).get(name, _MISSING)))
            setattr(cls, name, _wrap(target, name, layer, identity))


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
