"""``JobRunRegistry``: the run history of one scope."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import pydantic

from dq_metadata.canonical import canonical_json
from dq_metadata.errors import (
    ConflictError,
    IllegalTransitionError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.models import (
    CheckpointResult,
    JobDefinition,
    JobRun,
    RunStatus,
    utcnow,
)
from dq_metadata.models.base import problems_from
from dq_metadata.scope import Scope
from dq_registries.domain._storeops import check_id, check_limit
from dq_registries.domain.runs.lifecycle import check_transition, parse_status
from dq_registries.domain.runs.liveness import RunLiveness
from dq_registries.domain.runs.payload import ResultsInput, classify_results
from dq_registries.domain.runs.reports import RunReports
from dq_stores.base import ItemPage, Revision, Versioned
from dq_stores.documents import MUST_NOT_EXIST, Operation
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore

__all__ = ["DEFAULT_INLINE_RESULT_LIMIT", "JobRunRegistry"]

DEFAULT_INLINE_RESULT_LIMIT = 256 * 1024
_CHECKPOINT_RETRIES = 8
_CHANGES = pydantic.TypeAdapter(dict[str, Any])
_START_ATTEMPTS = 5


def _run_id_for_key(effective_key: str) -> str:
    # Deterministic: concurrent starts with one key race on a create-only write of
    # the same document, so exactly one run can exist per key.
    return "run-" + hashlib.sha256(effective_key.encode("utf-8")).hexdigest()[:40]


def _effective_key(job: JobDefinition, key: str, triggered_by: str | None, now: datetime) -> str:
    """Widen the caller's key by the job's ``idempotency_scope``."""
    if job.idempotency_scope == "day":
        return f"{key}@{now:%Y-%m-%d}"
    if job.idempotency_scope == "trigger":
        return f"{key}@{triggered_by or ''}"
    return key


def _aware(value: datetime | None, field: str) -> None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise ValidationError("invalid time window", [Problem(field, "must be timezone-aware")])


class JobRunRegistry(RunReports, RunLiveness):
    """Runs, their results and reports, for one scope.

    Every store is given (the container builds them). With ``results=None``,
    results above ``inline_result_limit`` bytes are refused with
    ``MisconfiguredError``.
    """

    def __init__(
        self,
        scope: Scope,
        store: JobRunStore,
        *,
        reports: ReportStore,
        job_definitions: JobDefinitionStore,
        results: ResultsStore | None = None,
        inline_result_limit: int = DEFAULT_INLINE_RESULT_LIMIT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not isinstance(scope, Scope):
            raise ValidationError("scope must be a Scope")
        if isinstance(inline_result_limit, bool) or not isinstance(inline_result_limit, int):
            raise ValidationError("inline_result_limit must be an int")
        if inline_result_limit < 0:
            raise ValidationError("inline_result_limit must be ≥ 0")
        self.scope = scope
        self.store = store
        self.reports = reports
        self.job_definitions = job_definitions
        self.results = results
        self.inline_result_limit = inline_result_limit
        self._clock = clock

    # -- lifecycle -------------------------------------------------------------
    def start(
        self,
        job_id: str,
        *,
        idempotency_key: str | None = None,
        triggered_by: str | None = None,
    ) -> JobRun:
        """Queue a run of ``job_id``; with ``idempotency_key``, a retry returns the same run.

        The run id is derived from the key (widened by the job's ``idempotency_scope``:
        ``day`` adds the UTC date, ``trigger`` adds ``triggered_by``), and the run is
        written create-only, so concurrent starts with one key yield one run.

        Raises:
            NotFoundError: the job definition does not exist in this scope.
            ConflictError: the job is disabled (a retry whose key already started a run
                gets that run), or the key belongs to another job's run.
        """
        check_id(job_id, "job_id")
        if idempotency_key is not None:
            check_id(idempotency_key, "idempotency_key")
        if triggered_by is not None and not isinstance(triggered_by, str):
            raise ValidationError("invalid triggered_by", [Problem("triggered_by", "not a str")])
        for _ in range(_START_ATTEMPTS):
            job = self.job_definitions.get(self.scope, job_id)
            now = self._clock()
            if not job.item.enabled:
                retried = self._retried(job.item, idempotency_key, triggered_by, now)
                if retried is not None:
                    return retried
                raise ConflictError(f"job definition {job_id!r} is disabled")
            if idempotency_key is None:
                run = self._new_run(f"run-{uuid.uuid4().hex}", job_id, None, triggered_by, now)
            else:
                key = _effective_key(job.item, idempotency_key, triggered_by, now)
                run = self._new_run(_run_id_for_key(key), job_id, key, triggered_by, now)
            try:
                return self._create_guarded(run, job)
            except ConflictError:
                if idempotency_key is None:
                    continue  # the job changed meanwhile: check it again
                existing = self.store.find(self.scope, run.run_id)
                if existing is None:
                    continue
            if existing.item.job_id != job_id or existing.item.idempotency_key != key:
                raise ConflictError(
                    f"idempotency key {idempotency_key!r} already started run "
                    f"{existing.item.run_id!r} of job {existing.item.job_id!r}"
                )
            return existing.item
        raise ConflictError(f"job definition {job_id!r} keeps changing; retry the start")

    def _retried(
        self,
        job: JobDefinition,
        idempotency_key: str | None,
        triggered_by: str | None,
        now: datetime,
    ) -> JobRun | None:
        """The run a start with this key already created (a retry of a start that
        succeeded before the job was disabled: that run exists and is queued)."""
        if idempotency_key is None:
            return None
        key = _effective_key(job, idempotency_key, triggered_by, now)
        existing = self.store.find(self.scope, _run_id_for_key(key))
        if existing is None or (existing.item.job_id, existing.item.idempotency_key) != (
            job.id,
            key,
        ):
            return None
        return existing.item

    def _create_guarded(self, run: JobRun, job: Versioned[JobDefinition]) -> JobRun:
        """Create ``run`` together with a guard that ``job`` is unchanged (not disabled
        or deleted meanwhile) when both live on one backend; else a plain create."""
        if self.job_definitions.backend is not self.store.backend:
            return self.store.create(self.scope, run).item
        operations: list[Operation] = [
            self.store.put_operation(run, MUST_NOT_EXIST),
            self.job_definitions.check_operation(job.key, job.revision),
        ]
        stored = self.store.backend.commit(self.scope, operations)[0]
        assert stored is not None
        return run

    def _new_run(
        self,
        run_id: str,
        job_id: str,
        key: str | None,
        triggered_by: str | None,
        now: datetime,
    ) -> JobRun:
        return self.store.validate(
            {
                "run_id": run_id,
                "job_id": job_id,
                "idempotency_key": key,
                "triggered_by": triggered_by,
                "created_at": now.isoformat(),
            }
        )

    def mark_running(self, run_id: str) -> JobRun:
        """``queued → running``. Raises ``IllegalTransitionError`` from any other state."""
        current = self._versioned(run_id)
        check_transition(current.item, RunStatus.RUNNING)
        changes = {"status": RunStatus.RUNNING, "started_at": self._clock()}
        return self._write(current, self._changed(current.item, changes))

    def cancel(self, run_id: str, reason: str | None = None) -> JobRun:
        """``queued | running → cancelled``. Raises ``IllegalTransitionError`` once terminal."""
        if reason is not None and not isinstance(reason, str):
            raise ValidationError("invalid reason", [Problem("reason", "must be a string")])
        current = self._versioned(run_id)
        check_transition(current.item, RunStatus.CANCELLED)
        changes = {
            "status": RunStatus.CANCELLED,
            "finished_at": self._clock(),
            "cancel_reason": reason,
        }
        return self._write(current, self._changed(current.item, changes))

    def record_checkpoint(
        self, run_id: str, result: CheckpointResult | Mapping[str, Any]
    ) -> JobRun:
        """Append one checkpoint result to a running run.

        Concurrent recorders are merged (re-read and retried on a stale revision).
        Re-recording an identical result is a no-op.

        Raises:
            IllegalTransitionError: the run is not running.
            ConflictError: a different result with the same checkpoint name exists.
        """
        checkpoint = self._checkpoint(result)
        for _ in range(_CHECKPOINT_RETRIES):
            current = self._versioned(run_id)
            if current.item.status is not RunStatus.RUNNING:
                raise _not_running(current.item, "record checkpoint results")
            same = [c for c in current.item.checkpoint_results if c.name == checkpoint.name]
            if same:
                if same[0] == checkpoint:
                    return current.item
                raise ConflictError(
                    f"run {run_id!r} already has a different result for "
                    f"checkpoint {checkpoint.name!r}"
                )
            # The stored run and the checkpoint are both validated already.
            results = [*current.item.checkpoint_results, checkpoint]
            try:
                return self._write(
                    current, current.item.model_copy(update={"checkpoint_results": results})
                )
            except ConflictError:
                continue
        raise ConflictError(f"run {run_id!r} is changing too fast; checkpoint not recorded")

    @staticmethod
    def _checkpoint(result: CheckpointResult | Mapping[str, Any]) -> CheckpointResult:
        if type(result) is CheckpointResult:
            return result  # validated when built, like the stores' trusted instances
        try:
            return CheckpointResult.model_validate(result)
        except pydantic.ValidationError as exc:
            raise ValidationError("invalid checkpoint result", problems_from(exc)) from exc

    def finish(
        self,
        run_id: str,
        status: RunStatus | Literal["succeeded", "failed"],
        *,
        metrics: Mapping[str, float] | None = None,
        results: ResultsInput | None = None,
        content_type: str | None = None,
        error: str | None = None,
    ) -> JobRun:
        """Finish a run as ``succeeded`` (from running) or ``failed`` (from queued/running).

        Mapping results whose canonical JSON exceeds ``inline_result_limit``, and any
        bytes/stream, are streamed to the results store first under a name unique to
        this call; the run keeps its logical reference (ADR 0012). The state change is one write
        conditional on the revision read, so of concurrent finishers exactly one wins;
        the losers get ``ConflictError`` and their uploads are removed.

        Raises:
            ValidationError: bad status, metrics, error or results; nothing written.
            IllegalTransitionError / ConflictError: the run is terminal or changed meanwhile.
        """
        target = parse_status(status)
        if target not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            raise ValidationError(
                "invalid status",
                [Problem("status", "finish with succeeded or failed; use cancel() to cancel")],
            )
        if error is not None and not isinstance(error, str):
            raise ValidationError("invalid error", [Problem("error", "must be a string")])
        current = self._versioned(run_id)
        check_transition(current.item, target)
        changes: dict[str, Any] = {
            "status": target,
            "finished_at": self._clock(),
            "metrics": dict(metrics or {}),
            "error": error,
        }
        spooled = None
        if results is not None:
            spooled = classify_results(results, self.inline_result_limit, content_type)
            if spooled.inline is not None:
                changes["results"] = spooled.inline
        run = self._changed(current.item, changes)  # bad metrics fail before any upload
        if spooled is None or spooled.source is None:
            return self._write(current, run)
        ref = self._upload(run_id, spooled.source, spooled.content_type)
        try:
            obj = ref.to_object()
            return self._write(current, run.model_copy(update={"result_object": obj}))
        except BaseException:
            if self.results is not None:
                self.results.delete(self.scope, ref)
            raise

    def _upload(self, run_id: str, source: Any, content_type: str) -> ResultRef:
        if self.results is None:
            raise MisconfiguredError(
                f"results above {self.inline_result_limit} bytes need a results store; "
                "configure one (stores.results)"
            )
        suffix = ".json" if content_type == "application/json" else ".bin"
        name = f"results-{uuid.uuid4().hex}{suffix}"
        return self.results.upload(self.scope, run_id, name, source, content_type)

    # -- reads -------------------------------------------------------------------
    def get(self, run_id: str) -> JobRun:
        """The run. Raises ``NotFoundError``."""
        return self._versioned(run_id).item

    def get_versioned(self, run_id: str) -> Versioned[JobRun]:
        return self._versioned(run_id)

    def history(self, run_id: str) -> list[Revision[JobRun]]:
        """Every revision of the run (each state change), oldest first."""
        return self.store.history(self.scope, check_id(run_id, "run_id"))

    def find_by_idempotency_key(self, idempotency_key: str) -> JobRun | None:
        """The run started with this (effective) idempotency key, if any."""
        found = self.store.find_by_idempotency_key(
            self.scope, check_id(idempotency_key, "idempotency_key")
        )
        return None if found is None else found.item

    def list(
        self,
        job_id: str | None = None,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        all_environments: bool = False,
        limit: int = 50,
        page_token: str | None = None,
    ) -> ItemPage[JobRun]:
        """Runs newest first, created in ``[since, until)``, optionally of one job/status.

        ``all_environments=True`` lists every environment of this scope's tenant.
        """
        if job_id is not None:
            check_id(job_id, "job_id")
        statuses = None
        if status is not None:
            raw = [status] if isinstance(status, str) else list(status)
            statuses = [parse_status(s) for s in raw]
        _aware(since, "since")
        _aware(until, "until")
        if since is not None and until is not None and since >= until:
            raise ValidationError("invalid time window", [Problem("since", "must be < until")])
        return self.store.list_by_tenant(
            self.scope.tenant,
            None if all_environments else self.scope.environment,
            job_id=job_id,
            status=statuses,
            since=since,
            until=until,
            limit=check_limit(limit),
            page_token=page_token,
        )

    def open_results(self, run_id: str) -> Iterator[bytes]:
        """Stream the run's results: the stored object, or inline results as JSON bytes.

        Raises (before streaming starts):
            NotFoundError: no such run, or the run has no results.
        """
        run = self.get(run_id)
        if run.result_object is not None:
            if self.results is None:
                raise MisconfiguredError("this registry has no results store to read from")
            return self.results.open(self.scope, ResultRef.of(run.result_object))
        if run.results is not None:
            return iter([canonical_json(run.results)])
        raise NotFoundError(f"run {run_id!r} has no results")

    # -- helpers --------------------------------------------------------------------
    def _versioned(self, run_id: str) -> Versioned[JobRun]:
        return self.store.get(self.scope, check_id(run_id, "run_id"))

    def _changed(self, run: JobRun, changes: Mapping[str, Any]) -> JobRun:
        """``run`` with ``changes`` applied: the operation's one validation of the run."""
        data = run.model_dump(mode="json")
        data.update(_CHANGES.dump_python(dict(changes), mode="json"))
        return self.store.validate(data)

    def _write(self, current: Versioned[JobRun], run: JobRun) -> JobRun:
        """Store ``run`` (already valid) iff the run is still at ``current.revision``."""
        return self.store.update(self.scope, run, current.revision).item


def _not_running(run: JobRun, what: str) -> ConflictError:
    return IllegalTransitionError(f"run {run.run_id!r} is {run.status.value}; cannot {what}")
