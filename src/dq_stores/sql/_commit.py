"""What an atomic multi-document commit looks like to the SQL executors.

The backend turns validated commit operations into :class:`Step` s (a revision to
write, or ``None`` for a read-guard); an executor applies them in one database
transaction and answers with the new revision of each step, or with
:class:`Refused` naming the first step whose expectation did not hold (having
rolled everything back). See ADR 0003, "Atomic commits".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dq_metadata.errors import ConflictError, DQError
from dq_metadata.scope import Scope
from dq_stores.documents import ConditionCheck, Delete, Expectation, ExpectKind, Operation
from dq_stores.filtering import check_operation
from dq_stores.sql._executor import Revision

__all__ = ["Refused", "Step", "guard_holds", "refusal", "steps_of"]


@dataclass(frozen=True, slots=True)
class Step:
    """One commit operation: ``rev`` to append to ``(kind, key)``, or ``None`` for a guard."""

    kind: str
    key: str
    rev: Revision | None
    expect: Expectation


@dataclass(frozen=True, slots=True)
class Refused:
    """Step ``index`` (0-based) did not hold; ``live`` is its key's live head revision
    as the transaction saw it (``None``: absent or deleted). Nothing was written."""

    index: int
    live: int | None


def steps_of(operations: Sequence[Operation]) -> list[Step]:
    """One :class:`Step` per validated operation, in order."""
    steps: list[Step] = []
    for op in operations:
        if isinstance(op, ConditionCheck):
            steps.append(Step(op.kind, op.key, None, op.expect))
        elif isinstance(op, Delete):
            steps.append(Step(op.kind, op.key, Revision.tombstone(op.key), op.expect))
        else:
            steps.append(Step(op.kind, op.key, Revision.of(op.write), op.expect))
    return steps


def guard_holds(expect: Expectation, live: int | None) -> bool:
    """Whether a read-guard's expectation holds for the live head revision ``live``."""
    if expect.kind is ExpectKind.ABSENT:
        return live is None
    return live == expect.revision


def refusal(operation: Operation, live: int | None, scope: Scope) -> DQError:
    """The ``ConflictError`` / ``NotFoundError`` to raise for a refused operation."""
    try:
        check_operation(operation, live)
    except DQError as error:
        return error
    # The database refused the step, yet the state it reported satisfies it: only a
    # concurrent change between the check and the report can do that.
    return ConflictError(
        f"{operation.kind} {operation.key!r} changed while the commit was applied in {scope};"
        " nothing was written: re-read and retry"
    )
