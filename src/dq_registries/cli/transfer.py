"""``dq export`` / ``dq import`` / ``dq migrate`` / ``dq verify-archive``.

Move a whole store — every revision, tombstones and offloaded run results
included — to an archive file, from one, or straight between two configured
stores; ``--verify`` compares counts and digests scope by scope on both sides.
A progress bar (counts, rate, ETA) goes to stderr on a terminal; ``--json``
prints only the final report. Any conflict or difference exits with code 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dq_metadata.scope import validate_id
from dq_registries.cli._common import (
    ConfigOpt,
    EnvOpt,
    JsonOpt,
    TenantOpt,
    UsageError,
    cli_errors,
    emit,
    fail,
    make_console,
)
from dq_registries.cli._options import command_line_values

if TYPE_CHECKING:
    from dq_registries.operations.transfer import TransferReport

__all__ = ["export", "import_", "migrate", "verify_archive"]

VerifyOpt = Annotated[
    bool,
    typer.Option("--verify", help="Afterwards compare counts and digests per scope on both sides."),
]
ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Overwrite: each key the source holds gets exactly the source's history; the "
        "history the target had for it is replaced, atomically per batch of 500 keys. "
        "Keys only the target holds stay. Not on an Azure Blob target.",
    ),
]
ArchiveArg = Annotated[Path, typer.Argument(help="Archive file (.tar, .tar.gz, .tar.xz).")]


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- docs/s" if speed is None else f"{speed:,.0f} docs/s")


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A ``progress(done, total)`` drawing a bar on a terminal's stderr; ``None`` if quiet."""
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            if total is not None and total < done:
                total = None  # the estimate counted live documents only
            bar.update(task, completed=done, total=total)

        yield update


def _check_scope_options(tenant: str | None, env: str | None) -> None:
    """``--tenant`` / ``--env`` are ids; anything else is a usage error (exit 2)."""
    if env is not None and tenant is None:
        raise UsageError("--env needs --tenant")
    with command_line_values():
        if tenant is not None:
            validate_id(tenant, "tenant")
        if env is not None:
            validate_id(env, "environment")


def _summary(report: TransferReport, as_json: bool) -> None:
    data = report.as_dict()
    if as_json:
        emit(data, as_json=True)
    else:
        console = make_console()
        head = {k: v for k, v in data.items() if k not in ("scopes", "conflicts", "differences")}
        emit(head, as_json=False, title=f"dq {report.operation}", console=console)
        rows = [_scope_row(name, tally) for name, tally in sorted(report.scopes.items())]
        if rows:
            emit(rows, as_json=False, title="scopes", console=console)
        for line in report.conflicts:
            console.print(Text(f"conflict: {line}"))
        for line in report.differences:
            console.print(Text(f"difference: {line}"))
    if not report.ok:
        what = f"{len(report.conflicts)} conflict(s), {len(report.differences)} difference(s)"
        raise fail(f"dq {report.operation} found {what}; see the report above")


def _scope_row(name: str, tally: dict[str, Any]) -> dict[str, Any]:
    return {
        "scope": name,
        "keys": tally.get("keys"),
        "revisions": tally.get("revisions"),
        "deleted keys": tally.get("deleted_keys"),
        "results": tally.get("results"),
        "digest": str(tally.get("digest", ""))[:16],
    }


@cli_errors
def export(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Archive to write (.tar.gz compresses).")
    ],
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    config: ConfigOpt = None,
    verify: VerifyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write every document revision and results object of the store to an archive."""
    from dq_registries.operations.transfer import export_archive, open_endpoint

    _check_scope_options(tenant, env)
    with open_endpoint(config) as source, _progress("export", as_json) as progress:
        report = export_archive(
            source, out, tenant=tenant, environment=env, verify=verify, progress=progress
        )
    _summary(report, as_json)


@cli_errors
def import_(
    archive: ArchiveArg,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Import into non-empty scopes: identical histories are skipped, differing "
            "ones reported as conflicts; nothing is overwritten.",
        ),
    ] = False,
    replace: ReplaceOpt = False,
    config: ConfigOpt = None,
    verify: VerifyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore an archive into the configured store, history included."""
    from dq_registries.operations.transfer import import_archive, open_endpoint

    if merge and replace:
        raise UsageError("--merge and --replace exclude each other")
    with open_endpoint(config) as target, _progress("import", as_json) as progress:
        report = import_archive(
            target, archive, merge=merge, replace=replace, verify=verify, progress=progress
        )
    _summary(report, as_json)


@cli_errors
def migrate(
    target: Annotated[Path, typer.Option("--to", help="Config file of the target store.")],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Config file of the source store (default: the configured store — "
            "$DQ_CONFIG, DQ_* variables, else the filesystem default).",
            envvar="DQ_CONFIG",
            show_default=False,
        ),
    ] = None,
    tenant: TenantOpt = None,
    env: EnvOpt = None,
    replace: ReplaceOpt = False,
    verify: VerifyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy every history and results object from one store to another, streamed.

    Resumable: if interrupted, run the same command again; it skips what is
    already there and finishes the job. A key the target holds differently is
    reported as a conflict and left alone, unless --replace.
    """
    from dq_registries.operations.transfer import migrate as run_migrate
    from dq_registries.operations.transfer import open_endpoint

    _check_scope_options(tenant, env)
    with (
        open_endpoint(source) as src,
        open_endpoint(target) as dst,
        _progress("migrate", as_json) as progress,
    ):
        report = run_migrate(
            src,
            dst,
            tenant=tenant,
            environment=env,
            replace=replace,
            verify=verify,
            progress=progress,
        )
    _summary(report, as_json)


@cli_errors
def verify_archive(archive: ArchiveArg, as_json: JsonOpt = False) -> None:
    """Check an archive against its manifest: counts, digests, results objects."""
    from dq_registries.operations.transfer import verify_archive as run_verify

    with _progress("verify", as_json) as progress:
        report = run_verify(archive, progress=progress)
    _summary(report, as_json)
