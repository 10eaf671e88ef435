"""``JobDefinitionRegistry.save_many``'s writes: checked jobs packed into atomic commits.

Each commit holds whole jobs — the job's ``Put``, and once per commit the guards
on the contract versions and action profiles its jobs were checked against and
their usage stamps — up to ``MAX_COMMIT_OPERATIONS`` operations, so 10,000 jobs
referencing one contract cost about a hundred commits instead of 10,000.

A commit whose guard or job expectation no longer holds (a reference or a job
moved since the check) writes nothing; its jobs are then saved one by one as
:meth:`JobDefinitionRegistry.save_versioned` does (re-checked, retried), so the
outcome per job is the one of ``save()``, and a job whose reference became invalid
raises with the earlier jobs saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dq_metadata.errors import ConflictError, NotFoundError, Problem, ValidationError
from dq_metadata.models import JobDefinition, UsageStamp, utcnow
from dq_stores.base import Store, Versioned
from dq_stores.documents import (
    MAX_COMMIT_OPERATIONS,
    MUST_NOT_EXIST,
    DocumentWrite,
    Operation,
    Put,
    at_revision,
)

if TYPE_CHECKING:
    from dq_registries.domain.jobs import JobDefinitionRegistry, _Prepared

__all__ = ["Checked", "reference_operations", "save_in_commits"]

#: A reference a job was checked against: (target kind, target id, store key, revision).
_Ref = tuple[str, str, str, int]


@dataclass(frozen=True, slots=True)
class Checked:
    """One job of a batch: its position, its check, its encoded document."""

    index: int
    prepared: _Prepared
    write: DocumentWrite


def _refs(prepared: _Prepared) -> list[_Ref]:
    contract = prepared.contract
    refs: list[_Ref] = [("contract", contract.item.id, contract.key, contract.revision)]
    refs.extend(("action_profile", pid, pid, rev) for pid, rev in prepared.profiles.items())
    return refs


def reference_operations(registry: JobDefinitionRegistry, refs: Sequence[_Ref]) -> list[Operation]:
    """A guard that each reference is still at its checked revision, and its usage stamp."""
    now = utcnow()
    stores: dict[str, Store[Any]] = {
        "contract": registry.contracts,
        "action_profile": registry.action_profiles,
    }
    operations: list[Operation] = []
    for target_kind, target_id, key, revision in refs:
        operations.append(stores[target_kind].check_operation(key, revision))
        stamp = UsageStamp(target_kind=target_kind, target_id=target_id, referenced_at=now)
        operations.append(registry._usage.put_operation(stamp))
    return operations


@dataclass
class _Commit:
    jobs: list[tuple[Checked, Put]] = field(default_factory=list)
    refs: dict[tuple[str, str], _Ref] = field(default_factory=dict)

    def size_with(self, refs: Sequence[_Ref]) -> int | None:
        """Operations after adding a job with ``refs``; ``None`` if a ref's revision differs."""
        new = 0
        for ref in refs:
            held = self.refs.get(ref[:2])
            if held is None:
                new += 1
            elif held != ref:
                return None
        return len(self.jobs) + 2 * len(self.refs) + 1 + 2 * new


def save_in_commits(
    registry: JobDefinitionRegistry, checked: Sequence[Checked]
) -> list[Versioned[JobDefinition]]:
    """Save every checked job (no new revision when unchanged), in order."""
    store = registry.store
    out: dict[int, Versioned[JobDefinition]] = {}
    pending = _Commit()
    for job in checked:
        current = store.find_document(registry.scope, job.write.key)
        if current is not None and current.sha256 == job.write.sha256:
            out[job.index] = store.written(job.prepared.item, current)
            continue
        expect = MUST_NOT_EXIST if current is None else at_revision(current.revision)
        refs = _refs(job.prepared)
        size = pending.size_with(refs)
        if size is None or size > MAX_COMMIT_OPERATIONS:
            _flush(registry, pending, out, checked)
            pending = _Commit()
        pending.jobs.append((job, Put(store.kind, job.write, expect)))
        pending.refs.update((ref[:2], ref) for ref in refs)
    _flush(registry, pending, out, checked)
    return [out[job.index] for job in checked]


def _flush(
    registry: JobDefinitionRegistry,
    pending: _Commit,
    out: dict[int, Versioned[JobDefinition]],
    checked: Sequence[Checked],
) -> None:
    if not pending.jobs:
        return
    puts: list[Operation] = [put for _, put in pending.jobs]
    operations = puts + reference_operations(registry, list(pending.refs.values()))
    try:
        stored = registry.store.backend.commit(registry.scope, operations)
    except ConflictError:
        for job, _ in pending.jobs:  # something moved: each job as save() does it
            out[job.index] = _one(registry, job, out, checked)
        return
    for (job, _), doc in zip(pending.jobs, stored, strict=False):
        assert doc is not None
        out[job.index] = registry.store.written(job.prepared.item, doc)


def _one(
    registry: JobDefinitionRegistry,
    job: Checked,
    out: dict[int, Versioned[JobDefinition]],
    checked: Sequence[Checked],
) -> Versioned[JobDefinition]:
    try:
        return registry.save_versioned(job.prepared.item)
    except (ConflictError, NotFoundError, ValidationError) as exc:
        raise _after_saves(exc, job.index, len(out), len(checked)) from exc


def _after_saves(exc: Exception, index: int, saved: int, total: int) -> Exception:
    """``exc`` of ``items[index]`` with what the batch has saved so far."""
    saved_note = (
        f"{saved} of the {total} items are saved; fix the cause and save the batch again "
        "(unchanged jobs add no revision)"
    )
    if isinstance(exc, ValidationError):
        problems = [Problem(f"items[{index}].{p.loc}".rstrip("."), p.message) for p in exc.problems]
        return ValidationError(f"invalid job definition items[{index}] — {saved_note}", problems)
    kind: Callable[[str], Exception] = type(exc)
    return kind(f"items[{index}]: {exc} — {saved_note}")
