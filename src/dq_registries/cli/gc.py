"""``dq gc``: retention — prune old revisions, finished runs and orphaned results."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from dq_registries.cli._common import UsageError, emit
from dq_registries.cli._options import Target, command_line_values, scoped
from dq_registries.durations import parse_duration
from dq_registries.operations.retention import RetentionPolicy, collect_garbage

__all__ = ["gc"]

_DURATION = "90s, 15m, 2h, 30d or 1w"


@scoped()
def gc(
    target: Target,
    history_older_than: Annotated[
        str | None,
        typer.Option(help=f"Prune revisions written longer ago than this ({_DURATION})."),
    ] = None,
    keep_revisions: Annotated[
        int | None, typer.Option(help="Keep at most this many revisions per document.")
    ] = None,
    runs_older_than: Annotated[
        str | None,
        typer.Option(help="Remove finished runs (and their reports and results) older than this."),
    ] = None,
    orphaned_results_older_than: Annotated[
        str | None,
        typer.Option(help="Remove results objects no run references, older than this."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be removed.")
    ] = False,
) -> None:
    """Apply retention to one scope; prints one row per removed item (or would-be, --dry-run).

    Never removes a current revision, a contract version or a run that has not finished."""
    with command_line_values():
        policy = RetentionPolicy(
            history_older_than=_duration(history_older_than, "--history-older-than"),
            keep_revisions=keep_revisions,
            runs_older_than=_duration(runs_older_than, "--runs-older-than"),
            orphaned_results_older_than=_duration(
                orphaned_results_older_than, "--orphaned-results-older-than"
            ),
        )
    if policy == RetentionPolicy():
        raise UsageError(
            "nothing to do: give --history-older-than, --keep-revisions, --runs-older-than "
            "or --orphaned-results-older-than"
        )
    with target.open() as dq:
        report = collect_garbage(dq, policy, dry_run=dry_run)
        rows = [
            {"what": i.what, "kind": i.kind, "key": i.key, "detail": i.detail, "count": i.count}
            for i in report.items
        ]
        if target.as_json:
            emit({"dry_run": dry_run, "totals": report.totals(), "items": rows}, as_json=True)
            return
        verb = "Would remove" if dry_run else "Removed"
        totals = ", ".join(f"{n} {what}" for what, n in sorted(report.totals().items()))
        emit(rows, as_json=False, title=f"{verb} in {dq.scope}: {totals or 'nothing'}")


def _duration(text: str | None, option: str) -> timedelta | None:
    return None if text is None else parse_duration(text, option)
