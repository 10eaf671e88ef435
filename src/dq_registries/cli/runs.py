"""``dq runs``: inspect job runs and their reports."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dq_metadata.models import JobRun
from dq_registries.cli import runs_ops
from dq_registries.cli._common import (
    emit,
    emit_page,
    parse_when,
)
from dq_registries.cli._options import Target, command_line_values, scoped

__all__ = ["app"]

app = typer.Typer(help="Inspect and operate job runs.", no_args_is_help=True)


def _duration(run: JobRun) -> str:
    if run.started_at is None or run.finished_at is None:
        return ""
    return f"{(run.finished_at - run.started_at).total_seconds():.2f}s"


def _row(run: JobRun) -> dict[str, Any]:
    passed = sum(r.passed for r in run.checkpoint_results)
    return {
        "run_id": run.run_id,
        "job_id": run.job_id,
        "status": run.status.value,
        "created_at": run.created_at,
        "duration": _duration(run),
        "checks": f"{passed}/{len(run.checkpoint_results)} passed"
        if run.checkpoint_results
        else "",
    }


@app.command("list")
@scoped()
def list_runs(
    target: Target,
    job: Annotated[str | None, typer.Option("--job", help="Only runs of this job id.")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", help="queued, running, succeeded, failed or cancelled (repeatable)."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after (ISO date/time; naive = UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO date/time).")] = None,
    all_envs: Annotated[
        bool, typer.Option("--all-envs", help="Every environment of the tenant.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Page size.")] = 50,
    page_token: Annotated[str | None, typer.Option(help="Continue a previous listing.")] = None,
) -> None:
    """List job runs, newest first."""
    since_at, until_at = parse_when(since, "--since"), parse_when(until, "--until")
    with target.open() as dq, command_line_values():
        page = dq.runs.list(
            job_id=job,
            status=status or None,
            since=since_at,
            until=until_at,
            all_environments=all_envs,
            limit=limit,
            page_token=page_token,
        )
        where = f"tenant {dq.scope.tenant}" if all_envs else str(dq.scope)
        emit_page(
            page,
            _row,
            as_json=target.as_json,
            columns=["run_id", "job_id", "status", "created_at", "duration", "checks"],
            title=f"Job runs in {where}",
        )


@app.command("show")
@scoped()
def show(
    target: Target,
    run_id: Annotated[str, typer.Argument(help="Run id.", show_default=False)],
) -> None:
    """Show one run: status, checkpoint results, metrics and reports."""
    with target.open() as dq, command_line_values():
        run = dq.runs.get(run_id)
        reports = dq.runs.list_reports(run_id=run_id).items
        if target.as_json:
            emit({"run": run, "reports": [r.item for r in reports]}, as_json=True)
            return
        summary = _row(run) | {
            "triggered_by": run.triggered_by,
            "error": run.error,
            "results": "in results store"
            if run.result_object
            else ("inline" if run.results else ""),
        }
        emit(summary, as_json=False, title=f"Run {run_id}")
        if run.checkpoint_results:
            emit(
                [
                    {
                        "check": r.name,
                        "passed": r.passed,
                        "severity": r.severity,
                        "message": r.message,
                    }
                    for r in run.checkpoint_results
                ],
                as_json=False,
                title="Checkpoints",
            )
        if run.metrics:
            emit(
                [{"metric": k, "value": v} for k, v in sorted(run.metrics.items())],
                as_json=False,
                title="Metrics",
            )
        if reports:
            emit(
                [
                    {
                        "report_id": r.item.report_id,
                        "dataset": r.item.dataset,
                        "title": r.item.title,
                    }
                    for r in reports
                ],
                as_json=False,
                title="Reports",
            )


runs_ops.register(app)
