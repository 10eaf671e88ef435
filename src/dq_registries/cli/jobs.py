"""``dq jobs``: save, inspect and delete job definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dq_metadata.models import JobDefinition
from dq_registries.cli._common import (
    emit,
    emit_page,
    history_rows,
    read_document,
)
from dq_registries.cli._options import Target, command_line_values, scoped
from dq_registries.domain._storeops import check_revision

__all__ = ["app"]

app = typer.Typer(help="Save, inspect and delete job definitions.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="Job definition id.", show_default=False)]


def _row(job: JobDefinition) -> dict[str, Any]:
    ref = job.contract
    return {
        "id": job.id,
        "name": job.name,
        "type": job.job_type.value,
        "contract": f"{ref.id}@{ref.version or ref.version_range}",
        "dataset": job.dataset,
        "trigger": job.trigger.type,
        "tags": ", ".join(job.tags),
        "enabled": job.enabled,
    }


_COLUMNS = ["id", "name", "type", "contract", "dataset", "trigger", "tags", "enabled"]


@app.command("list")
@scoped()
def list_jobs(
    target: Target,
    job_type: Annotated[
        str | None, typer.Option("--type", help="validation, cleansing or profiling.")
    ] = None,
    contract: Annotated[str | None, typer.Option(help="Only jobs of this contract id.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only jobs over this dataset.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only jobs with this tag (repeatable).")
    ] = None,
    any_tag: Annotated[
        bool, typer.Option("--any-tag", help="With several --tag: match any instead of all.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Page size.")] = 100,
    page_token: Annotated[str | None, typer.Option(help="Continue a previous listing.")] = None,
) -> None:
    """List job definitions, ordered by id."""
    with target.open() as dq, command_line_values():
        if (tag and len(tag) > 1) or (tag and any_tag):
            page = dq.jobs.list_by_tags(
                tag, match="any" if any_tag else "all", limit=limit, page_token=page_token
            )
        else:
            page = dq.jobs.list(
                job_type=job_type,
                contract_id=contract,
                dataset=dataset,
                tag=tag[0] if tag else None,
                limit=limit,
                page_token=page_token,
            )
        emit_page(
            page,
            _row,
            as_json=target.as_json,
            columns=_COLUMNS,
            title=f"Job definitions in {dq.scope}",
        )


@app.command("show")
@scoped()
def show(
    target: Target,
    job_id: JobId,
) -> None:
    """Show one job definition."""
    with target.open() as dq, command_line_values():
        emit(dq.jobs.get(job_id), as_json=target.as_json, title=f"Job definition {job_id}")


@app.command("save")
@scoped()
def save(
    target: Target,
    file: Annotated[Path, typer.Argument(help="YAML or JSON job definition.", show_default=False)],
    expected_revision: Annotated[
        int | None,
        typer.Option(help="Only save if the current revision is this (0: must not exist)."),
    ] = None,
) -> None:
    """Create or update a job definition from FILE (its contract and action profiles must exist)."""
    with command_line_values():
        check_revision(expected_revision)
    document = read_document(file)
    with target.open() as dq:
        saved = dq.jobs.save_versioned(document, expected_revision=expected_revision)
        emit(
            {"id": saved.item.id, "revision": saved.revision, "scope": str(dq.scope)},
            as_json=target.as_json,
            title="Saved job definition",
        )


@app.command("delete")
@scoped()
def delete(
    target: Target,
    job_id: JobId,
) -> None:
    """Delete a job definition (its runs are kept)."""
    with target.open() as dq, command_line_values():
        revision = dq.jobs.delete(job_id)
        emit({"deleted": job_id, "revision": revision}, as_json=target.as_json, title="Deleted")


@app.command("history")
@scoped()
def history(
    target: Target,
    job_id: JobId,
) -> None:
    """Every stored revision of a job definition, oldest first."""
    with target.open() as dq, command_line_values():
        revisions = dq.jobs.history(job_id)
        if target.as_json:
            emit(
                [
                    {**row, "item": r.item}
                    for row, r in zip(history_rows(revisions), revisions, strict=True)
                ],
                as_json=True,
            )
        else:
            emit(history_rows(revisions), as_json=False, title=f"History of job {job_id}")
