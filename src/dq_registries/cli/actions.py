"""``dq actions``: save, inspect and delete action profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dq_registries.cli._common import (
    emit,
    emit_page,
    history_rows,
    read_document,
)
from dq_registries.cli._options import Target, command_line_values, scoped
from dq_registries.domain._storeops import check_revision

__all__ = ["app"]

app = typer.Typer(help="Save, inspect and delete action profiles.", no_args_is_help=True)

ProfileId = Annotated[str, typer.Argument(help="Action profile id.", show_default=False)]


def _row(profile: Any) -> dict[str, Any]:
    return {
        "id": profile.id,
        "type": profile.action_type,
        "name": profile.name,
        "description": profile.description,
    }


@app.command("list")
@scoped()
def list_profiles(
    target: Target,
    action_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="send_notification, quarantine, emit_lineage, open_ticket or custom.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Page size.")] = 100,
    page_token: Annotated[str | None, typer.Option(help="Continue a previous listing.")] = None,
) -> None:
    """List action profiles, ordered by id, optionally of one type."""
    with target.open() as dq, command_line_values():
        page = dq.actions.list(action_type, limit=limit, page_token=page_token)
        emit_page(
            page,
            _row,
            as_json=target.as_json,
            columns=["id", "type", "name", "description"],
            title=f"Action profiles in {dq.scope}",
        )


@app.command("show")
@scoped()
def show(
    target: Target,
    profile_id: ProfileId,
) -> None:
    """Show one action profile."""
    with target.open() as dq, command_line_values():
        emit(
            dq.actions.get(profile_id), as_json=target.as_json, title=f"Action profile {profile_id}"
        )


@app.command("save")
@scoped()
def save(
    target: Target,
    file: Annotated[Path, typer.Argument(help="YAML or JSON action profile.", show_default=False)],
    expected_revision: Annotated[
        int | None,
        typer.Option(help="Only save if the current revision is this (0: must not exist)."),
    ] = None,
) -> None:
    """Create or update an action profile from FILE (secrets as references, never values)."""
    with command_line_values():
        check_revision(expected_revision)
    document = read_document(file)
    with target.open() as dq:
        saved = dq.actions.save_versioned(document, expected_revision=expected_revision)
        emit(
            {
                "id": saved.item.id,
                "type": saved.item.action_type,
                "revision": saved.revision,
                "scope": str(dq.scope),
            },
            as_json=target.as_json,
            title="Saved action profile",
        )


@app.command("delete")
@scoped()
def delete(
    target: Target,
    profile_id: ProfileId,
) -> None:
    """Delete an action profile (refused while enabled job definitions use it)."""
    with target.open() as dq, command_line_values():
        revision = dq.actions.delete(profile_id)
        emit({"deleted": profile_id, "revision": revision}, as_json=target.as_json, title="Deleted")


@app.command("history")
@scoped()
def history(
    target: Target,
    profile_id: ProfileId,
) -> None:
    """Every stored revision of an action profile, oldest first."""
    with target.open() as dq, command_line_values():
        revisions = dq.actions.history(profile_id)
        emit(history_rows(revisions), as_json=target.as_json, title=f"History of {profile_id}")
