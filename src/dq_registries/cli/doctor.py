"""``dq doctor``: check the configured stores; one line per check."""

from __future__ import annotations

import json
import sys

import typer

from dq_registries.cli._common import ConfigOpt, JsonOpt, cli_errors
from dq_registries.operations.doctor import diagnose

__all__ = ["doctor"]

_MARK = {"ok": "ok     ", "warning": "WARNING", "error": "ERROR  "}


@cli_errors
def doctor(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check every configured store; exit 1 on an error.

    Checks: reachable, schema at head, grants, row-level security, container,
    filesystem features, a write probe and a results round trip.

    Prints one line per check (ok / WARNING / ERROR with the fix); exits 1 if any
    check is an error. A missing filesystem root is reported, never created. Probes
    write only in the scratch scope dq-doctor/probe (a reserved tenant that whole-store
    export, migrate and verify leave out).
    """
    report = diagnose(config)
    if as_json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2, sort_keys=True) + "\n")
    else:
        for check in report.checks:
            line = f"{_MARK[check.status]} {check.store}: {check.name}: {check.message}"
            if check.fix and check.status != "ok":
                line += f" — fix: {check.fix}"
            typer.echo(" ".join(line.split()))
    if not report.ok:
        raise typer.Exit(1)
