"""``dq jobs``: save, inspect and delete job definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dq_metadata.models import JobDefinition
from dq_registries.cli._common import (
    ConfigOpt,
    EnvOpt,
    JsonOpt,
    TenantOpt,
    cli_errors,
    emit,
    emit_page,
    history_rows,
    open_context,
    read_document,
)

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
@cli_errors
def list_jobs(
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
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
    with open_context(tenant, env, config) as dq:
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
            page, _row, as_json=as_json, columns=_COLUMNS, title=f"Job definitions in {dq.scope}"
        )


@app.command("show")
@cli_errors
def show(
    job_id: JobId,
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one job definition."""
    with open_context(tenant, env, config) as dq:
        emit(dq.jobs.get(job_id), as_json=as_json, title=f"Job definition {job_id}")


@app.command("save")
@cli_errors
def save(
    file: Annotated[Path, typer.Argument(help="YAML or JSON job definition.", show_default=False)],
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    expected_revision: Annotated[
        int | None,
        typer.Option(help="Only save if the current revision is this (0: must not exist)."),
    ] = None,
) -> None:
    """Create or update a job definition from FILE (its contract and action profiles must exist)."""
    document = read_document(file)
    with open_context(tenant, env, config) as dq:
        saved = dq.jobs.save_versioned(document, expected_revision=expected_revision)
        emit(
            {"id": saved.item.id, "revision": saved.revision, "scope": str(dq.scope)},
            as_json=as_json,
            title="Saved job definition",
        )


@app.command("delete")
@cli_errors
def delete(
    job_id: JobId,
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a job definition (its runs are kept)."""
    with open_context(tenant, env, config) as dq:
        revision = dq.jobs.delete(job_id)
        emit({"deleted": job_id, "revision": revision}, as_json=as_json, title="Deleted")


@app.command("history")
@cli_errors
def history(
    job_id: JobId,
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every stored revision of a job definition, oldest first."""
    with open_context(tenant, env, config) as dq:
        revisions = dq.jobs.history(job_id)
        if as_json:
            emit(
                [
                    {**row, "item": r.item}
                    for row, r in zip(history_rows(revisions), revisions, strict=True)
                ],
                as_json=True,
            )
        else:
            emit(history_rows(revisions), as_json=False, title=f"History of job {job_id}")
