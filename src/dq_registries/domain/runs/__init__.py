"""Job runs: lifecycle, checkpoint results, metrics, large results and reports."""

from dq_registries.domain.runs.lifecycle import check_transition
from dq_registries.domain.runs.registry import DEFAULT_INLINE_RESULT_LIMIT, JobRunRegistry

__all__ = ["DEFAULT_INLINE_RESULT_LIMIT", "JobRunRegistry", "check_transition"]
