"""``dq contracts``: publish, inspect, compare, export and evolve ODCS data contracts."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer

from dq_metadata.errors import ValidationError
from dq_metadata.models import ContractVersion, LifecycleEvent
from dq_registries.cli._common import (
    UsageError,
    emit,
    emit_page,
    make_console,
)
from dq_registries.cli._options import Target, command_line_values, scoped
from dq_registries.domain.contracts import Change, ContractRegistry, breaking, diff

__all__ = ["app"]

app = typer.Typer(help="Publish, inspect and evolve ODCS data contracts.", no_args_is_help=True)

ContractId = Annotated[str, typer.Argument(help="Contract id (ODCS 'id').", show_default=False)]
Version = Annotated[str, typer.Argument(help="Semantic version, e.g. 1.2.0.", show_default=False)]
ActorOpt = Annotated[
    str | None,
    typer.Option(help="Who does this (default: the current OS user).", show_default=False),
]
ReasonOpt = Annotated[str | None, typer.Option(help="Why; recorded with the change.")]

_COLUMNS = ["id", "version", "status", "datasets", "published_by", "published_at", "forced"]
_CHANGE_COLUMNS = ["severity", "kind", "path", "message"]
_EVENT_COLUMNS = ["at", "from_status", "to_status", "actor", "reason"]
_HIT_COLUMNS = ["id", "version", "name", "score", "summary"]


def _actor(value: str | None) -> str:
    if value is not None:
        return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _row(cv: ContractVersion) -> dict[str, Any]:
    return {
        "id": cv.id,
        "version": cv.version,
        "status": cv.status,
        "name": cv.contract.name,
        "datasets": ", ".join(cv.contract.dataset_names()),
        "published_by": cv.published_by,
        "published_at": cv.published_at.isoformat(),
        "forced": f"by {cv.forced.actor}: {cv.forced.reason}" if cv.forced else "",
    }


def _emit_changes(changes: list[Change], *, as_json: bool, title: str) -> None:
    emit([c.to_dict() for c in changes], as_json=as_json, columns=_CHANGE_COLUMNS, title=title)


def _read_contract(registry: ContractRegistry, path: Path) -> Any:
    return registry.import_odcs(Path(path).read_bytes())


@app.command("publish")
@scoped()
def publish(
    target: Target,
    file: Annotated[Path, typer.Argument(help="ODCS v3 YAML or JSON file.", show_default=False)],
    actor: ActorOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Publish a breaking change without a major bump.")
    ] = False,
    reason: ReasonOpt = None,
) -> None:
    """Publish FILE as a new contract version (a no-op if that exact version exists)."""
    if force and not reason:
        raise UsageError("--force needs --reason: say why the breaking change is acceptable")
    for option, value in (("--actor", actor), ("--reason", reason)):
        if value is not None and not value.strip():
            raise UsageError(f"{option} must not be empty")
    with target.open() as dq:
        contract = _read_contract(dq.contracts, file)
        result = dq.contracts.publish(contract, actor=_actor(actor), force=force, reason=reason)
    if target.as_json:
        emit(result, as_json=True)
        return
    outcome = "published" if result.created else "already published (no change)"
    emit(_row(result.version), as_json=False, title=f"{result.version.id} {outcome}")
    if result.changes:
        _emit_changes(result.changes, as_json=False, title="Changes since the previous version")


@app.command("list")
@scoped()
def list_contracts(
    target: Target,
    contract: Annotated[str | None, typer.Option(help="Only versions of this id.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only contracts governing it.")] = None,
    status: Annotated[str | None, typer.Option(help="Only versions with this status.")] = None,
    limit: Annotated[int, typer.Option(help="Page size.")] = 100,
    page_token: Annotated[str | None, typer.Option(help="Continue a previous listing.")] = None,
) -> None:
    """List contract versions in semver order."""
    with target.open() as dq, command_line_values():
        page = dq.contracts.list(
            contract_id=contract, dataset=dataset, status=status, limit=limit, page_token=page_token
        )
        emit_page(
            page, _row, as_json=target.as_json, columns=_COLUMNS, title=f"Contracts in {dq.scope}"
        )


@app.command("search")
@scoped()
def search(
    target: Target,
    text: Annotated[
        str, typer.Argument(help="Words to find (every one must match).", show_default=False)
    ],
    limit: Annotated[int, typer.Option(help="Page size (1-100).")] = 20,
    page_token: Annotated[str | None, typer.Option(help="Continue a previous search.")] = None,
) -> None:
    """Find contracts by words; best match first, one row per contract (its highest version).

    Words are looked for in names, ids, tags, domain, dataset and property names and
    descriptions; each word may be the start of a word ("cust" finds "customer")."""
    with target.open() as dq, command_line_values():
        page = dq.contracts.search(text, limit=limit, page_token=page_token)
    rows = [
        {"id": h.contract_id, "version": h.version, "name": h.name, "score": h.score,
         "summary": h.summary}
        for h in page.hits
    ]  # fmt: skip
    if target.as_json:
        emit({"hits": rows, "next_token": page.next_token}, as_json=True)
        return
    console = make_console()
    title = f"Contracts matching {text!r} in {dq.scope}"
    emit(rows, as_json=False, columns=_HIT_COLUMNS, title=title, console=console)
    if page.next_token:
        console.print(f"more: --page-token {page.next_token}", markup=False, soft_wrap=True)


@app.command("reindex")
@scoped()
def reindex(target: Target) -> None:
    """Make contracts published before search existed findable (safe to run again).

    Rewrites only the per-contract head documents that lack search words; no
    contract version changes."""
    with target.open() as dq, command_line_values():
        result = dq.contracts.reindex_search()
    emit(
        {"contracts": result.contracts, "updated": result.updated},
        as_json=target.as_json,
        title=f"Search index of contracts in {dq.scope}",
    )


@app.command("show")
@scoped()
def show(
    target: Target,
    contract_id: ContractId,
    version: Annotated[str | None, typer.Option(help="Default: the highest version.")] = None,
) -> None:
    """Show one contract version (JSON: the full record with its ODCS document)."""
    with target.open() as dq, command_line_values():
        found = dq.contracts.get(contract_id, version)
    emit(
        found if target.as_json else _row(found),
        as_json=target.as_json,
        title=f"Contract {contract_id}",
    )


@app.command("latest")
@scoped()
def latest(
    target: Target,
    dataset: Annotated[str, typer.Argument(help="Dataset (ODCS schema object name).")],
) -> None:
    """Show the newest active contract version governing DATASET."""
    with target.open() as dq, command_line_values():
        found = dq.contracts.get_latest_for_dataset(dataset)
    emit(
        found if target.as_json else _row(found),
        as_json=target.as_json,
        title=f"Latest for {dataset}",
    )


@app.command("diff")
@scoped()
def diff_command(
    target: Target,
    first: Annotated[str, typer.Argument(help="Contract id, or the old ODCS file.")],
    second: Annotated[str, typer.Argument(help="Old version, or the new ODCS file.")],
    third: Annotated[str | None, typer.Argument(help="New version (with a contract id).")] = None,
    fail_on_breaking: Annotated[
        bool, typer.Option(help="Exit with 1 when there is a breaking change.")
    ] = False,
) -> None:
    """Classify the changes between two versions: `diff ID V1 V2` or `diff OLD.yaml NEW.yaml`."""
    with target.open() as dq:
        if third is not None:
            with command_line_values():
                changes = dq.contracts.diff_versions(first, second, third)
        else:
            changes = diff(_read_contract(dq.contracts, Path(first)),
                           _read_contract(dq.contracts, Path(second)))  # fmt: skip
    _emit_changes(changes, as_json=target.as_json, title="Changes")
    if fail_on_breaking and breaking(changes):
        raise ValidationError(f"{len(breaking(changes))} breaking change(s)")


@app.command("history")
@scoped()
def history(
    target: Target,
    contract_id: ContractId,
    version: Version,
) -> None:
    """Show the lifecycle of one version: who changed its status, when and why."""
    with target.open() as dq, command_line_values():
        events: list[LifecycleEvent] = dq.contracts.history(contract_id, version)
    emit(events, as_json=target.as_json, columns=_EVENT_COLUMNS, title=f"{contract_id} {version}")


def _transition(
    target: Target,
    to_status: str,
    contract_id: str,
    version: str,
    actor: str | None,
    reason: str | None,
) -> None:
    with target.open() as dq, command_line_values():
        updated = dq.contracts.transition(
            contract_id, version, to_status, actor=_actor(actor), reason=reason
        )
    emit(
        updated if target.as_json else _row(updated),
        as_json=target.as_json,
        title=f"{contract_id} {to_status}",
    )


@app.command("activate")
@scoped()
def activate(
    target: Target,
    contract_id: ContractId,
    version: Version,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Mark a version active."""
    _transition(target, "active", contract_id, version, actor, reason)


@app.command("deprecate")
@scoped()
def deprecate(
    target: Target,
    contract_id: ContractId,
    version: Version,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Mark a version deprecated."""
    _transition(target, "deprecated", contract_id, version, actor, reason)


@app.command("retire")
@scoped()
def retire(
    target: Target,
    contract_id: ContractId,
    version: Version,
    actor: ActorOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Retire a deprecated version (refused while enabled jobs reference it)."""
    _transition(target, "retired", contract_id, version, actor, reason)


@app.command("export")
@scoped(json=False)
def export(
    target: Target,
    contract_id: ContractId,
    version: Version,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print a published version as an ODCS v3 document."""
    if fmt not in ("yaml", "json"):
        raise UsageError(f"--format must be yaml or json, not {fmt!r}")
    with target.open() as dq, command_line_values():
        text = dq.contracts.export_odcs(contract_id, version, "json" if fmt == "json" else "yaml")
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
