"""CSV validation against an ODCS contract, and a runner recording it as a job run.

:func:`validate_csv` streams a CSV file once and checks it against one dataset
(schema object) of a contract, using each property's ``logicalType``
(integer / number / string / date / timestamp / boolean), ``required``, and
``unique`` / ``primaryKey``. Checks, usable as a job's checkpoint ``check``:

* ``row_count`` — params ``min`` / ``max`` (default ``min: 1``);
* ``columns`` — every contract property is a CSV column;
* ``required`` — required properties are never empty;
* ``types`` — non-empty values parse as their logical type;
* ``unique`` — unique / primary-key properties hold no duplicates.

:func:`run_validation_job` runs a saved job definition over a file through the
public registry API: start → running → one checkpoint result per check →
finish with metrics, row-level failures as results, and a report.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dq_metadata.errors import NotFoundError, Problem, ValidationError
from dq_metadata.models import (
    Checkpoint,
    CheckpointResult,
    DataContract,
    JobRun,
    RunStatus,
    SchemaProperty,
)

if TYPE_CHECKING:
    from dq_registries.wiring.context import DQContext

__all__ = [
    "CHECKS",
    "ValidationOutcome",
    "default_checkpoints",
    "run_validation_job",
    "validate_csv",
]

CHECKS = ("row_count", "columns", "required", "types", "unique")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def _is_integer(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_PARSERS: dict[str, Callable[[str], bool]] = {
    "integer": _is_integer,
    "number": _is_number,
    "date": _is_date,
    "timestamp": _is_timestamp,
    "boolean": lambda v: v.strip().lower() in _TRUE | _FALSE,
    "string": lambda v: True,
}


@dataclass
class ValidationOutcome:
    """What :func:`validate_csv` found: per-check results, metrics and row failures."""

    dataset: str
    rows: int
    checkpoint_results: list[CheckpointResult]
    metrics: dict[str, float]
    failures: list[dict[str, Any]] = field(default_factory=list)
    failures_truncated: bool = False

    def failed(self, threshold: str = "error") -> list[CheckpointResult]:
        """Failed checks at or above ``threshold`` severity."""
        floor = _SEVERITY_RANK[threshold]
        return [
            r
            for r in self.checkpoint_results
            if not r.passed and _SEVERITY_RANK[r.severity] >= floor
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "checks": {r.name: "passed" if r.passed else "failed" for r in self.checkpoint_results},
            "failures": len(self.failures),
            "failures_truncated": self.failures_truncated,
        }


def default_checkpoints() -> list[Checkpoint]:
    """One checkpoint per check, in the order they are reported."""
    return [Checkpoint(name=name, check=name) for name in CHECKS]


def _dataset_properties(contract: DataContract, dataset: str) -> list[SchemaProperty]:
    for obj in contract.schema_ or []:
        if obj.name == dataset:
            props = [p for p in obj.properties or [] if p.name]
            if not props:
                raise ValidationError(
                    f"dataset {dataset!r} of contract {contract.id!r} declares no properties"
                )
            return props
    raise NotFoundError(
        f"contract {contract.id!r} version {contract.version} has no dataset {dataset!r}; "
        f"it governs: {', '.join(contract.dataset_names()) or 'none'}"
    )


def _check_checkpoints(checkpoints: Sequence[Checkpoint]) -> None:
    problems: list[Problem] = []
    for i, cp in enumerate(checkpoints):
        if cp.check not in CHECKS:
            problems.append(
                Problem(
                    f"checkpoints[{i}].check",
                    f"unknown check {cp.check!r}; use one of {', '.join(CHECKS)}",
                )
            )
        elif cp.check == "row_count":
            for key in ("min", "max"):
                value = cp.params.get(key)
                if value is not None and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 0
                ):
                    problems.append(
                        Problem(f"checkpoints[{i}].params.{key}", "must be a non-negative integer")
                    )
    if problems:
        raise ValidationError("invalid checkpoints", problems)


class _Scan:
    """Accumulates per-check observations while the CSV streams past once."""

    def __init__(self, props: Sequence[SchemaProperty], max_failures: int) -> None:
        self.props = props
        self.max_failures = max_failures
        self.rows = 0
        self.missing_columns: list[str] = []
        self.empty: dict[str, int] = {}
        self.bad_type: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {
            p.name: set() for p in props if p.name and (p.unique or p.primaryKey)
        }
        self.failures: list[dict[str, Any]] = []
        self.truncated = False

    def _fail(self, row: int, column: str, check: str, message: str) -> None:
        if len(self.failures) < self.max_failures:
            self.failures.append({"row": row, "column": column, "check": check, "message": message})
        else:
            self.truncated = True

    def header(self, columns: Sequence[str]) -> None:
        present = set(columns)
        self.missing_columns = [p.name for p in self.props if p.name and p.name not in present]

    def row(self, line: int, record: Mapping[str, str | None]) -> None:
        self.rows += 1
        for prop in self.props:
            name = prop.name or ""
            if name in self.missing_columns:
                continue
            value = (record.get(name) or "").strip()
            if not value:
                if prop.required or prop.primaryKey:
                    self.empty[name] = self.empty.get(name, 0) + 1
                    self._fail(line, name, "required", "empty value in a required column")
                continue
            parse = _PARSERS.get((prop.logicalType or "string").lower())
            if parse is not None and not parse(value):
                self.bad_type[name] = self.bad_type.get(name, 0) + 1
                self._fail(line, name, "types", f"{value[:40]!r} is not a valid {prop.logicalType}")
            seen = self._seen.get(name)
            if seen is not None:
                if value in seen:
                    self.duplicates[name] = self.duplicates.get(name, 0) + 1
                    self._fail(line, name, "unique", f"duplicate value {value[:40]!r}")
                else:
                    seen.add(value)


def _result(cp: Checkpoint, scan: _Scan) -> CheckpointResult:
    severity = cp.severity.value
    if cp.check == "row_count":
        low, high = cp.params.get("min", 1), cp.params.get("max")
        ok = scan.rows >= low and (high is None or scan.rows <= high)
        bounds = f">= {low}" + (f" and <= {high}" if high is not None else "")
        return CheckpointResult(
            name=cp.name,
            passed=ok,
            severity=severity,
            observed={"rows": scan.rows},
            message=None if ok else f"{scan.rows} rows, expected {bounds}",
        )
    counts = {
        "columns": dict.fromkeys(scan.missing_columns, 1),
        "required": scan.empty,
        "types": scan.bad_type,
        "unique": scan.duplicates,
    }[cp.check]
    wanted = cp.params.get("columns")
    if isinstance(wanted, list):
        counts = {k: v for k, v in counts.items() if k in wanted}
    ok = not counts
    what = {
        "columns": "missing columns",
        "required": "empty required values",
        "types": "values of the wrong type",
        "unique": "duplicate values",
    }[cp.check]
    return CheckpointResult(
        name=cp.name,
        passed=ok,
        severity=severity,
        observed=dict(counts),
        message=None if ok else f"{sum(counts.values())} {what}: {', '.join(sorted(counts))}",
    )


def _rows(lines: Iterable[str], scan: _Scan) -> None:
    reader = csv.DictReader(lines)
    scan.header(reader.fieldnames or [])
    for record in reader:
        scan.row(reader.line_num, record)


def validate_csv(
    source: str | Path | Iterable[str],
    contract: DataContract,
    dataset: str,
    *,
    checkpoints: Sequence[Checkpoint] | None = None,
    max_failures: int = 1000,
) -> ValidationOutcome:
    """Check a CSV (path or lines, with a header row) against ``dataset`` of ``contract``.

    Raises:
        NotFoundError: the contract has no such dataset, or the file does not exist.
        ValidationError: unknown checks or bad check parameters (before reading).
    """
    props = _dataset_properties(contract, dataset)
    cps = list(checkpoints) if checkpoints else default_checkpoints()
    _check_checkpoints(cps)
    scan = _Scan(props, max_failures)
    if isinstance(source, (str, Path)):
        try:
            with Path(source).open(newline="", encoding="utf-8") as handle:
                _rows(handle, scan)
        except FileNotFoundError:
            raise NotFoundError(f"no such file: {source}") from None
    else:
        _rows(source, scan)
    results = [_result(cp, scan) for cp in cps]
    metrics = {
        "rows": float(scan.rows),
        "checks_passed": float(sum(r.passed for r in results)),
        "checks_failed": float(sum(not r.passed for r in results)),
        "failed_values": float(
            sum(scan.empty.values()) + sum(scan.bad_type.values()) + sum(scan.duplicates.values())
        ),
    }
    return ValidationOutcome(dataset, scan.rows, results, metrics, scan.failures, scan.truncated)


def run_validation_job(
    ctx: DQContext,
    job_id: str,
    source: str | Path,
    *,
    idempotency_key: str | None = None,
    triggered_by: str | None = None,
) -> tuple[JobRun, ValidationOutcome | None]:
    """Run a saved validation job over a CSV file and record everything on a job run.

    With an ``idempotency_key`` already used, the existing run is returned untouched
    (and no outcome). Otherwise the run ends ``succeeded`` when no check at or above
    the job's ``severity_threshold`` failed, else ``failed``; row failures are stored
    as the run's results and a report is attached for the dataset.

    Raises:
        NotFoundError: unknown job, unresolvable contract reference, missing file.
        ValidationError: the job's checkpoints use unknown checks.
    """
    job = ctx.jobs.get(job_id)
    contract = ctx.contracts.resolve(
        job.contract.id, version=job.contract.version, version_range=job.contract.version_range
    ).contract
    path = Path(source)
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    _dataset_properties(contract, job.dataset)
    _check_checkpoints(job.checkpoints or default_checkpoints())
    run = ctx.runs.start(job_id, idempotency_key=idempotency_key, triggered_by=triggered_by)
    if run.status is not RunStatus.QUEUED:
        return run, None
    ctx.runs.mark_running(run.run_id)
    try:
        outcome = validate_csv(path, contract, job.dataset, checkpoints=job.checkpoints or None)
    except Exception as exc:
        ctx.runs.finish(run.run_id, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    for result in outcome.checkpoint_results:
        ctx.runs.record_checkpoint(run.run_id, result)
    status = (
        RunStatus.FAILED if outcome.failed(job.severity_threshold.value) else RunStatus.SUCCEEDED
    )
    finished = ctx.runs.finish(
        run.run_id,
        status,
        metrics=outcome.metrics,
        results={"failures": outcome.failures, "truncated": outcome.failures_truncated},
        content_type="application/json",
    )
    ctx.runs.attach_report(
        run.run_id,
        dataset=job.dataset,
        title=f"{job.name}: {status.value}",
        summary=outcome.summary(),
    )
    return finished, outcome
