"""Telemetry of registry calls, switched on at the composition root.

:func:`instrument` records every store operation (:mod:`dq_stores.telemetry`) and
every call of a public registry method — contracts, jobs, actions, runs and reports,
methods added later included — as

* a span (kind ``INTERNAL``) named ``"<registry>.<method>"`` (``"contracts.publish"``),
  parent of the spans of the store operations it makes;
* the histogram ``dq.registry.operation.duration`` (seconds);
* a log record on the logger ``dq_registries.<registry>`` (DEBUG; WARNING when the
  outcome is a failure rather than an answer such as not-found or conflict).

Attributes: ``dq.registry``, ``dq.operation``, ``dq.environment``, ``dq.outcome``
(``ok`` or the exception's class name), ``error.type``; on spans ``dq.rows`` for
lists and pages. Never a tenant, id, argument, document or message (see
``docs/telemetry.md``).

:func:`instrument_if_configured` is what :func:`~dq_registries.wiring.container.build_container`
calls: it instruments when ``opentelemetry-api`` is installed and the application
has set a tracer or meter provider, unless ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
names ``dq-platform-core``.
"""

from __future__ import annotations

import os
from typing import Any

from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_registries.domain.runs import JobRunRegistry
from dq_registries.domain.runs.liveness import RunLiveness
from dq_registries.domain.runs.reports import RunReports
from dq_stores import telemetry as store_telemetry
from dq_stores._instrument import Identity, Layer, logger, patch_class, public_methods

__all__ = [
    "DISABLE_NAME",
    "REGISTRY_METRIC",
    "instrument",
    "instrument_if_configured",
    "instrumented",
    "uninstrument",
]

#: The duration histogram of registry calls.
REGISTRY_METRIC = "dq.registry.operation.duration"
#: The name ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` can list to keep us from switching on.
DISABLE_NAME = "dq-platform-core"

#: Every registry class and the name its calls are recorded under (``DQContext``'s
#: attribute names). A mixin's methods keep the mixin's name (reports on runs).
REGISTRIES: tuple[tuple[type, str], ...] = (
    (ContractRegistry, "contracts"),
    (JobDefinitionRegistry, "jobs"),
    (ActionProfileRegistry, "actions"),
    (JobRunRegistry, "runs"),
    (RunLiveness, "runs"),
    (RunReports, "reports"),
)


def _identity(name: str) -> Identity:
    return Identity({"dq.registry": name}, logger(f"dq_registries.{name}"), name)


def _no_instance_identity(obj: object) -> Identity:  # every registry op has a fixed one
    raise AssertionError(f"no telemetry identity for {type(obj).__name__}")


_LAYER = Layer(
    scope_name="dq_registries",
    operation_attribute="dq.operation",
    metric=REGISTRY_METRIC,
    metric_description="Duration of dq registry calls",
    span_kind="INTERNAL",
    identify=_no_instance_identity,
    span_name=lambda operation, _kind, identity: f"{identity.target}.{operation}",
)


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Record every store operation and registry call from now on (process-wide).

    ``tracer_provider`` / ``meter_provider``: OpenTelemetry providers to use instead of
    the global ones. Works without ``opentelemetry-api`` too: then only log records
    are written.
    """
    store_telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    _LAYER.start(tracer_provider, meter_provider)
    for cls, name in REGISTRIES:
        patch_class(cls, _LAYER, public_methods(cls), _identity(name))


def uninstrument() -> None:
    """Stop recording store operations and registry calls (idempotent)."""
    store_telemetry.uninstrument()
    _LAYER.stop()


def instrumented() -> bool:
    """True while registry calls are being recorded."""
    return hasattr(ContractRegistry.get, "__dq_layer__")


def _disabled_by_environment() -> bool:
    names = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return DISABLE_NAME in {n.strip() for n in names.split(",")}


def instrument_if_configured() -> bool:
    """Instrument when the application has configured OpenTelemetry; return whether
    telemetry is on. Costs one check when it is not (no import without the API)."""
    if instrumented():
        return True
    if _disabled_by_environment() or not store_telemetry.provider_configured():
        return False
    instrument()
    return True
