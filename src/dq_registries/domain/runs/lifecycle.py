"""The run state machine: ``queued → running → succeeded | failed | cancelled``.

``queued → failed`` is allowed (the run could not be launched) and so is
``queued → cancelled``; ``queued → succeeded`` is not: only a run that ran can
succeed. Terminal states never change again.
"""

from __future__ import annotations

from dq_metadata.errors import IllegalTransitionError, Problem, ValidationError
from dq_metadata.models import JobRun, RunStatus
from dq_metadata.models.job_run import TRANSITIONS

__all__ = ["check_transition", "parse_status"]


def parse_status(value: object, field: str = "status") -> RunStatus:
    """``value`` as a ``RunStatus`` or a ``ValidationError`` naming the allowed ones."""
    if isinstance(value, str) and value in RunStatus._value2member_map_:
        return RunStatus(value)
    raise ValidationError(
        "invalid run status",
        [Problem(field, f"{value!r} is not one of {[s.value for s in RunStatus]}")],
    )


def check_transition(run: JobRun, to: RunStatus) -> None:
    """Raise ``IllegalTransitionError`` unless ``run`` may move to ``to``."""
    if to not in TRANSITIONS[run.status]:
        allowed = sorted(s.value for s in TRANSITIONS[run.status]) or ["nothing (terminal)"]
        raise IllegalTransitionError(
            f"run {run.run_id!r} is {run.status.value}; cannot become {to.value} "
            f"(allowed: {', '.join(allowed)})"
        )
