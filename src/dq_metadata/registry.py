"""Read-only run metadata for consumers (dashboards, lineage, schedulers).

``MetadataRegistry`` reads through :class:`RunReader`, a structural port that
``dq_stores.typed.JobRunStore`` satisfies without either package importing the
other, so this layer stays free of I/O and of ``dq_stores``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol

from dq_metadata.errors import Problem, ValidationError
from dq_metadata.models.job_run import JobRun, RunStatus
from dq_metadata.scope import Scope

__all__ = ["MetadataRegistry", "RunMetadata", "RunPage", "RunReader", "RunRecord"]


class RunRecord(Protocol):
    """One stored run with its revision (``dq_stores.base.Versioned[JobRun]``)."""

    @property
    def item(self) -> JobRun: ...

    @property
    def revision(self) -> int: ...


class RunPage(Protocol):
    """One page of runs (``dq_stores.base.ItemPage[JobRun]``)."""

    @property
    def items(self) -> Sequence[RunRecord]: ...

    @property
    def next_token(self) -> str | None: ...


class RunReader(Protocol):
    """What the metadata registry needs from a run store (``JobRunStore`` fits)."""

    def get(self, scope: Scope, key: str) -> RunRecord:
        """The run ``key`` of ``scope``; raises ``NotFoundError`` if absent."""
        ...

    def list_by_tenant(
        self,
        tenant: str,
        environment: str | None = None,
        *,
        job_id: str | None = None,
        status: RunStatus | Sequence[RunStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        page_token: str | None = None,
    ) -> RunPage:
        """Runs newest first; an empty page when nothing matches."""
        ...


@dataclass(frozen=True, slots=True)
class RunMetadata:
    """What a consumer needs to know about one run, without its payload."""

    run_id: str
    job_id: str
    scope: Scope
    status: RunStatus
    revision: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    triggered_by: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoints_total: int = 0
    failed_checkpoints: tuple[str, ...] = ()
    results: Literal["none", "inline", "object"] = "none"
    #: The result object's name in its results store (a logical name, ADR 0012).
    result_name: str | None = None
    result_size: int | None = None
    result_sha256: str | None = None
    error: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Running time, once both start and finish are known."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (ISO timestamps)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("created_at", "started_at", "finished_at"):
            moment = out[name]
            out[name] = None if moment is None else moment.isoformat()
        del out["scope"]
        out.update(
            tenant=self.scope.tenant,
            environment=self.scope.environment,
            status=self.status.value,
            failed_checkpoints=list(self.failed_checkpoints),
            duration_seconds=self.duration_seconds,
        )
        return out

    @classmethod
    def of(cls, run: JobRun, scope: Scope, revision: int) -> RunMetadata:
        obj = run.result_object
        results: Literal["none", "inline", "object"] = (
            "object" if obj is not None else "inline" if run.results is not None else "none"
        )
        return cls(
            run_id=run.run_id,
            job_id=run.job_id,
            scope=scope,
            status=run.status,
            revision=revision,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            triggered_by=run.triggered_by,
            metrics=dict(run.metrics),
            checkpoints_total=len(run.checkpoint_results),
            failed_checkpoints=tuple(c.name for c in run.checkpoint_results if not c.passed),
            results=results,
            result_name=None if obj is None else obj.name,
            result_size=None if obj is None else obj.size,
            result_sha256=None if obj is None else obj.sha256,
            error=run.error,
        )


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValidationError(f"invalid {name}", [Problem(name, "must be a non-empty string")])
    return value


class MetadataRegistry:
    """Read-only view of the run history of one scope."""

    def __init__(self, reader: RunReader, scope: Scope) -> None:
        if not isinstance(scope, Scope):
            raise ValidationError("scope must be a Scope")
        self.reader = reader
        self.scope = scope

    def run_metadata(self, run_id: str) -> RunMetadata:
        """Metadata of one run. Raises ``NotFoundError`` if it does not exist."""
        record = self.reader.get(self.scope, _check_text(run_id, "run_id"))
        return RunMetadata.of(record.item, self.scope, record.revision)

    def latest_run(
        self, job_id: str, *, status: RunStatus | Sequence[RunStatus] | None = None
    ) -> RunMetadata | None:
        """The newest run of ``job_id`` (optionally in ``status``), or ``None``."""
        runs = self.runs_for_job(job_id, limit=1, status=status)
        return runs[0] if runs else None

    def runs_for_job(
        self,
        job_id: str,
        limit: int = 20,
        *,
        status: RunStatus | Sequence[RunStatus] | None = None,
    ) -> list[RunMetadata]:
        """Up to ``limit`` newest runs of ``job_id``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError("invalid limit", [Problem("limit", "must be an int in 1..1000")])
        page = self.reader.list_by_tenant(
            self.scope.tenant,
            self.scope.environment,
            job_id=_check_text(job_id, "job_id"),
            status=status,
            limit=limit,
        )
        return [RunMetadata.of(r.item, self.scope, r.revision) for r in page.items]
