"""Contract-specific refinements of ``ConflictError`` that carry structured detail."""

from __future__ import annotations

from collections.abc import Sequence

from dq_metadata.errors import ConflictError
from dq_registries.domain.contracts.change import Change

__all__ = ["BreakingChangeError", "ContractInUseError"]


class BreakingChangeError(ConflictError):
    """A publish has breaking changes without a major version bump (and was not forced)."""

    def __init__(self, message: str, changes: Sequence[Change]) -> None:
        self.changes: tuple[Change, ...] = tuple(changes)
        shown = "; ".join(str(c) for c in self.changes[:10])
        more = len(self.changes) - 10
        if more > 0:
            shown += f"; ... and {more} more"
        super().__init__(f"{message}: {shown}")


class ContractInUseError(ConflictError):
    """A contract version cannot be retired while enabled job definitions use it."""

    def __init__(self, message: str, job_ids: Sequence[str]) -> None:
        self.job_ids: tuple[str, ...] = tuple(job_ids)
        super().__init__(f"{message}: {', '.join(self.job_ids)}")
