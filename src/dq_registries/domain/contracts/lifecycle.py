"""The contract lifecycle: which status changes are legal.

ODCS statuses ``proposed → draft → active → deprecated → retired``. A version
can go back from ``deprecated`` to ``active`` (a deprecation withdrawn), but an
``active`` version is deprecated before it is retired, so consumers get notice,
and ``retired`` is final. Statuses outside the lifecycle (``production``,
``in development`` …) are kept exactly as published and may move into any
lifecycle status.
"""

from __future__ import annotations

from dq_metadata.errors import ConflictError, Problem, ValidationError

__all__ = ["LIFECYCLE_STATUSES", "check_transition"]

LIFECYCLE_STATUSES = ("proposed", "draft", "active", "deprecated", "retired")

_NEXT: dict[str, frozenset[str]] = {
    "proposed": frozenset({"draft", "active", "retired"}),
    "draft": frozenset({"active", "retired"}),
    "active": frozenset({"deprecated"}),
    "deprecated": frozenset({"active", "retired"}),
    "retired": frozenset(),
}


def check_transition(current: str, target: str) -> None:
    """Raise unless ``current → target`` is a legal lifecycle move.

    Raises:
        ValidationError: ``target`` is not a lifecycle status.
        ConflictError: the move is not allowed from ``current``.
    """
    if target not in _NEXT:
        raise ValidationError(
            "invalid status",
            [Problem("to_status", f"{target!r} is not one of {list(LIFECYCLE_STATUSES)}")],
        )
    allowed = _NEXT.get(current)
    if allowed is None:
        return
    if target not in allowed:
        options = sorted(allowed) or "none, it is final"
        raise ConflictError(
            f"illegal status transition {current!r} → {target!r} (allowed: {options})"
        )
