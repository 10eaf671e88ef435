"""Retention (``dq gc``): prune old revisions, finished runs and orphaned results.

What may go, per :class:`RetentionPolicy`:

* **history** — revisions of a key written before ``history_older_than`` ago, or
  beyond the newest ``keep_revisions``; never the current revision (live or
  tombstone). Each key keeps a recorded pruned prefix
  (:meth:`DocumentBackend.prune_history`). Contract versions (kind ``contract``)
  are never pruned: their revisions are the publication and its lifecycle
  (publish, deprecate, retire), and history can only lose a prefix, which for a
  contract version starts with its publication.
* **runs** — terminal runs (succeeded, failed, cancelled) that finished before
  ``runs_older_than`` ago, with their reports and their results object; the run
  and its reports become tombstones (one commit when they share a backend,
  conditional on the run's revision) whose earlier revisions are then pruned.
  Queued and running runs are never touched.
* **orphaned results** — objects in the results store that no run references,
  written before ``orphaned_results_older_than`` ago (the age protects uploads
  whose run is being written right now).

Everything is decided on fresh reads and written conditionally, so gc is safe
against concurrent writers: a key written meanwhile keeps its new revisions, a
run changed meanwhile is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from dq_metadata.errors import ConflictError, NotFoundError, Problem, ValidationError
from dq_metadata.models import TERMINAL_STATUSES, JobRun, Report, ResultObject, utcnow
from dq_registries.durations import check_duration
from dq_stores.backend import DocumentBackend
from dq_stores.base import Versioned
from dq_stores.documents import MAX_COMMIT_OPERATIONS, Operation, StoredDocument
from dq_stores.keys import encode_key
from dq_stores.results import ResultRef, StoredObject

if TYPE_CHECKING:
    from dq_registries.wiring.context import DQContext

__all__ = ["GcItem", "GcReport", "RetentionPolicy", "collect_garbage"]

#: Kinds whose history gc never prunes (see the module docstring).
PROTECTED_KINDS = frozenset({"contract"})
_PAGE = 200

What = Literal["history", "run", "report", "result_object", "orphaned_result"]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What ``dq gc`` removes; ``None`` disables a rule. Durations are ages from now."""

    history_older_than: timedelta | None = None
    keep_revisions: int | None = None
    runs_older_than: timedelta | None = None
    orphaned_results_older_than: timedelta | None = None

    def __post_init__(self) -> None:
        for name in ("history_older_than", "runs_older_than", "orphaned_results_older_than"):
            value = getattr(self, name)
            if value is not None:
                check_duration(value, name)
        keep = self.keep_revisions
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValidationError(
                "invalid retention policy", [Problem("keep_revisions", "must be an int ≥ 1")]
            )


@dataclass(frozen=True, slots=True)
class GcItem:
    """One thing gc removed (or, in a dry run, would remove)."""

    what: What
    kind: str
    key: str
    detail: str = ""
    count: int = 1


@dataclass(slots=True)
class GcReport:
    dry_run: bool
    items: list[GcItem] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Removed (or removable) things per ``what``."""
        out: dict[str, int] = {}
        for item in self.items:
            out[item.what] = out.get(item.what, 0) + item.count
        return out


def collect_garbage(
    ctx: DQContext,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    clock: Callable[[], datetime] = utcnow,
) -> GcReport:
    """Apply ``policy`` to the scope of ``ctx``; with ``dry_run`` only report.

    Runs first (so their histories need no separate pass), then history, then
    orphaned results.

    Raises:
        ValidationError: ``policy`` is not a ``RetentionPolicy``.
        MisconfiguredError: a backend or results store that cannot prune or list.
    """
    if not isinstance(policy, RetentionPolicy):
        raise ValidationError("policy must be a RetentionPolicy")
    report = GcReport(dry_run)
    now = clock()
    if policy.runs_older_than is not None:
        _RunSweep(ctx, report).run(now - policy.runs_older_than)
    if policy.history_older_than is not None or policy.keep_revisions is not None:
        cutoff = None if policy.history_older_than is None else now - policy.history_older_than
        for backend, kind in _history_targets(ctx):
            _prune_kind(ctx, backend, kind, cutoff, policy.keep_revisions, report)
    if policy.orphaned_results_older_than is not None:
        _sweep_orphans(ctx, now - policy.orphaned_results_older_than, report)
    return report


# -- history -------------------------------------------------------------------------
def _history_targets(ctx: DQContext) -> list[tuple[DocumentBackend, str]]:
    contracts = ctx.jobs.contracts.backend
    targets = [
        (contracts, "contract_head"),
        (ctx.jobs.store.backend, "job_definition"),
        (ctx.actions.store.backend, "action_profile"),
        (ctx.runs.store.backend, "job_run"),
        (ctx.runs.reports.backend, "report"),
    ]
    stamps = {id(b): b for b in (contracts, ctx.jobs.store.backend, ctx.actions.store.backend)}
    targets.extend((b, "usage_stamp") for b in stamps.values())
    return [(b, k) for b, k in targets if k not in PROTECTED_KINDS]


def keep_from(
    history: list[StoredDocument], cutoff: datetime | None, keep_revisions: int | None
) -> int:
    """The oldest revision to keep: the union of both rules, never past the head."""
    head = history[-1].revision
    keep = history[0].revision
    if keep_revisions is not None:
        keep = max(keep, head - keep_revisions + 1)
    if cutoff is not None:
        newer = [d.revision for d in history if d.written_at >= cutoff]
        keep = max(keep, newer[0] if newer else head)
    return min(keep, head)


def _prune_kind(
    ctx: DQContext,
    backend: DocumentBackend,
    kind: str,
    cutoff: datetime | None,
    keep_revisions: int | None,
    report: GcReport,
) -> None:
    for head in backend.iter_documents(ctx.scope, kind):
        try:
            history = backend.history(ctx.scope, kind, head.key)
        except NotFoundError:
            continue  # removed meanwhile
        keep = keep_from(history, cutoff, keep_revisions)
        doomed = [d.revision for d in history if d.revision < keep]
        if not doomed:
            continue
        if not report.dry_run:
            count = backend.prune_history(ctx.scope, kind, head.key, keep)
            if not count:
                continue
        report.items.append(
            GcItem("history", kind, head.key, f"revisions {doomed[0]}..{doomed[-1]}", len(doomed))
        )


# -- runs ----------------------------------------------------------------------------
@dataclass
class _RunSweep:
    ctx: DQContext
    report: GcReport

    def run(self, cutoff: datetime) -> None:
        for run_id in [r.run_id for r in self._finished_before(cutoff)]:
            self._remove(run_id, cutoff)

    def _finished_before(self, cutoff: datetime) -> Iterator[JobRun]:
        runs = self.ctx.runs
        ids: list[JobRun] = []
        token: str | None = None
        while True:  # list first, remove after: removing shifts the pages
            page = runs.store.list_by_tenant(
                self.ctx.scope.tenant,
                self.ctx.scope.environment,
                status=sorted(TERMINAL_STATUSES),
                until=cutoff,  # finished before the cutoff ⇒ created before it
                limit=_PAGE,
                page_token=token,
            )
            ids.extend(
                v.item
                for v in page.items
                if v.item.finished_at is not None and v.item.finished_at < cutoff
            )
            token = page.next_token
            if token is None:
                return iter(ids)

    def _remove(self, run_id: str, cutoff: datetime) -> None:
        runs, scope = self.ctx.runs, self.ctx.scope
        current = runs.store.find(scope, run_id)
        run = None if current is None else current.item
        if current is None or run is None or run.status not in TERMINAL_STATUSES:
            return  # gone, or not finished: never touched
        if run.finished_at is None or run.finished_at >= cutoff:
            return
        reports = [v.item.report_id for v in _all_reports(self.ctx, run_id)]
        ref = run.result_object
        if not self.report.dry_run:
            try:
                self._delete(run_id, current.revision, reports)
            except (ConflictError, NotFoundError):
                return  # changed meanwhile: leave it to the next gc
            if ref is not None and runs.results is not None:
                runs.results.delete(scope, ResultRef.of(ref))
            self._prune_to_tombstone(runs.store.backend, "job_run", run_id)
            for report_id in reports:
                self._prune_to_tombstone(runs.reports.backend, "report", report_id)
        self.report.items.append(GcItem("run", "job_run", run_id, run.status.value))
        self.report.items.extend(GcItem("report", "report", r, run_id) for r in reports)
        if ref is not None:
            self.report.items.append(
                GcItem("result_object", "result", ResultRef.of(ref).describe(), run_id)
            )

    def _delete(self, run_id: str, revision: int, reports: list[str]) -> None:
        runs, scope = self.ctx.runs, self.ctx.scope
        run_delete = runs.store.delete_operation(run_id, revision)
        report_deletes: list[Operation] = [runs.reports.delete_operation(r) for r in reports]
        if runs.reports.backend is runs.store.backend:
            # reports in chunks, the run last with the chunk that commits it
            while len(report_deletes) >= MAX_COMMIT_OPERATIONS:
                chunk = report_deletes[: MAX_COMMIT_OPERATIONS - 1]
                check = runs.store.check_operation(run_id, revision)
                runs.store.backend.commit(scope, [check, *chunk])
                report_deletes = report_deletes[MAX_COMMIT_OPERATIONS - 1 :]
            runs.store.backend.commit(scope, [*report_deletes, run_delete])
            return
        runs.store.delete(scope, run_id, revision)
        for report_id in reports:
            runs.reports.delete(scope, report_id)

    def _prune_to_tombstone(self, backend: DocumentBackend, kind: str, key: str) -> None:
        try:
            head = backend.history(self.ctx.scope, kind, key)[-1].revision
            backend.prune_history(self.ctx.scope, kind, key, head)
        except NotFoundError:
            pass


def _all_reports(ctx: DQContext, run_id: str) -> Iterator[Versioned[Report]]:
    token: str | None = None
    while True:
        page = ctx.runs.list_reports(run_id=run_id, limit=1000, page_token=token)
        yield from page.items
        token = page.next_token
        if token is None:
            return


# -- orphaned results --------------------------------------------------------------------
def _sweep_orphans(ctx: DQContext, cutoff: datetime, report: GcReport) -> None:
    results = ctx.runs.results
    if results is None:
        return
    referenced: set[tuple[str, str]] = set()
    for run in ctx.runs.store.iter_all(ctx.scope):
        if run.item.result_object is not None:
            referenced.update(_identities(run.item.result_object))
    for obj in results.iter_objects(ctx.scope):
        if _identity(obj) in referenced or obj.written_at >= cutoff:
            continue
        # a run may have been finished with this object since the scan: look again
        if _references(ctx, obj):
            continue
        if not report.dry_run:
            results.delete_object(
                ctx.scope,
                obj.run_id,
                obj.name,
                digest_name=obj.digest_name,
                digest_run_id=obj.digest_run_id,
            )
        report.items.append(GcItem("orphaned_result", "result", obj.describe(), obj.run_id))


# Objects and references are compared by their storage names (encode_key): a long
# name and the digest an old reference or an unrecorded object holds are one object.
def _identity(obj: StoredObject) -> tuple[str, str]:
    run = obj.run_id if obj.digest_run_id else encode_key(obj.run_id)
    return run, obj.name if obj.digest_name else encode_key(obj.name)


def _identities(ref: ResultObject) -> set[tuple[str, str]]:
    run = encode_key(ref.run_id)
    if not ref.digest_name:
        return {(run, encode_key(ref.name))}
    # a digest reference also resolves to a copy named by the digest itself
    return {(run, ref.name), (run, encode_key(ref.name))}


def _references(ctx: DQContext, obj: StoredObject) -> bool:
    if obj.digest_run_id:
        return False  # no run id to look up: the scan above saw every run
    try:
        run = ctx.runs.get(obj.run_id)
    except (NotFoundError, ValidationError):
        return False
    found = run.result_object
    return found is not None and _identity(obj) in _identities(found)
