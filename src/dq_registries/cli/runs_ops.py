"""``dq runs start|cancel|heartbeat|reap|results|reports``: operating job runs.

Registered on the ``dq runs`` sub-app by :mod:`dq_registries.cli.runs`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from dq_metadata.models import JobRun
from dq_registries.cli._common import emit
from dq_registries.cli._options import Target, command_line_values, scoped
from dq_registries.durations import parse_duration

__all__ = ["register"]


def _run_summary(run: JobRun) -> dict[str, object]:
    data = run.model_dump(mode="json")
    keys = ("run_id", "job_id", "status", "created_at", "started_at", "finished_at")
    extra = ("last_heartbeat_at", "error", "cancel_reason")
    return {k: data[k] for k in keys} | {k: data[k] for k in extra if data.get(k)}


def start(
    target: Target,
    job_id: Annotated[str, typer.Argument(help="Job definition id.", show_default=False)],
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="A retry with this key returns the same run."),
    ] = None,
    triggered_by: Annotated[
        str | None, typer.Option("--triggered-by", help="Who or what started it.")
    ] = None,
    running: Annotated[
        bool, typer.Option("--running", help="Mark the run running as well (queued otherwise).")
    ] = False,
) -> None:
    """Start (queue) a run of a job; prints the run."""
    with target.open() as dq:
        with command_line_values():
            run = dq.runs.start(job_id, idempotency_key=idempotency_key, triggered_by=triggered_by)
        if running:
            run = dq.runs.mark_running(run.run_id)
        emit(_run_summary(run), as_json=target.as_json, title=f"Run {run.run_id}")


def cancel(
    target: Target,
    run_id: Annotated[str, typer.Argument(help="Run id.", show_default=False)],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept on the run).")] = None,
) -> None:
    """Cancel a queued or running run."""
    with target.open() as dq, command_line_values():
        run = dq.runs.cancel(run_id, reason)
        emit(_run_summary(run), as_json=target.as_json, title=f"Run {run_id}")


def heartbeat(
    target: Target,
    run_id: Annotated[str, typer.Argument(help="Run id.", show_default=False)],
) -> None:
    """Record that a running run is alive (for jobs driven from shell scripts)."""
    with target.open() as dq, command_line_values():
        run = dq.runs.heartbeat(run_id)
        emit(_run_summary(run), as_json=target.as_json, title=f"Run {run_id}")


def reap(
    target: Target,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Fail running runs with no heartbeat (or start) for this long: 90s, 15m, 2h, 1d.",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Added to each run's error.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the runs that would be reaped.")
    ] = False,
) -> None:
    """Finish as failed every running run whose heartbeat stopped; prints them."""
    with command_line_values():
        duration = parse_duration(older_than, "--older-than")
    with target.open() as dq:
        runs = dq.runs.reap(duration, reason=reason, dry_run=dry_run)
        title = f"{'Would reap' if dry_run else 'Reaped'} {len(runs)} run(s) in {dq.scope}"
        emit(
            [_run_summary(r) for r in runs],
            as_json=target.as_json,
            columns=["run_id", "job_id", "status", "started_at", "last_heartbeat_at", "error"],
            title=title,
        )


def _write_stream(chunks: Iterator[bytes], out: BinaryIO) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)
    out.flush()
    return size, digest.hexdigest()


def results(
    target: Target,
    run_id: Annotated[str, typer.Argument(help="Run id.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (default: stdout).", show_default=False
        ),
    ] = None,
) -> None:
    """Stream a run's results to a file or stdout, verified against their sha256.

    Prints ``<size> bytes sha256 <hex>`` on stderr. A file is written to a temporary
    name and renamed only once the bytes have matched their recorded hash.
    """
    if output is not None:
        _check_output(output)
    with target.open() as dq:
        with command_line_values():
            chunks = dq.runs.open_results(run_id)
        if output is None:
            size, digest = _write_stream(chunks, sys.stdout.buffer)
        else:
            size, digest = _to_file(chunks, output)
        sys.stderr.write(f"{size} bytes sha256 {digest}\n")


def _check_output(output: Path) -> None:
    """Refuse, before any download, an output that is a directory or has no folder."""
    if output.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(output))
    if not output.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(output.parent))


def _to_file(chunks: Iterator[bytes], output: Path) -> tuple[int, str]:
    folder = output.parent if str(output.parent) else Path()
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a plain file honours the umask
        with os.fdopen(fd, "wb") as out:
            written = _write_stream(chunks, out)
            os.fsync(out.fileno())
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def reports(
    target: Target,
    run_id: Annotated[str, typer.Argument(help="Run id.", show_default=False)],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Include summaries and content.")] = False,
) -> None:
    """List the reports attached to a run, newest first."""
    with target.open() as dq, command_line_values():
        dq.runs.get(run_id)  # an unknown run is an error, not an empty list
        items = [
            v.item for v in dq.runs.list_reports(run_id=run_id, dataset=dataset, limit=1000).items
        ]
        if full or target.as_json:
            emit(items, as_json=target.as_json, title=f"Reports of {run_id}")
            return
        emit(
            [
                {
                    "report_id": r.report_id,
                    "dataset": r.dataset,
                    "title": r.title,
                    "format": r.format,
                    "created_at": r.created_at,
                }
                for r in items
            ],
            as_json=False,
            title=f"Reports of {run_id}",
        )


def register(app: typer.Typer) -> None:
    """Add the operations commands to ``dq runs``."""
    for name, func in (
        ("start", start),
        ("cancel", cancel),
        ("heartbeat", heartbeat),
        ("reap", reap),
        ("results", results),
        ("reports", reports),
    ):
        app.command(name)(scoped(json=name != "results")(func))
