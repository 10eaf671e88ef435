"""The ``dq`` Typer application: every sub-app and command, assembled once.

Imported by :func:`dq_registries.cli.main` inside its interrupt guard, so a Ctrl-C
while these (heavy) modules load still ends as ``error: interrupted``.
"""

from __future__ import annotations

import typer

from dq_registries.cli import actions, contracts, db, jobs, runs
from dq_registries.cli.quickstart import quickstart

__all__ = ["app"]

app = typer.Typer(
    name="dq",
    help=(
        "Manage data contracts, job definitions, action profiles and job runs of the "
        "dq platform. Backends come from --config / $DQ_CONFIG / DQ_* environment "
        "variables (default: the local filesystem under $DQ_HOME or ./.dq)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(contracts.app, name="contracts")
app.add_typer(jobs.app, name="jobs")
app.add_typer(actions.app, name="actions")
app.add_typer(runs.app, name="runs")
app.add_typer(db.app, name="db")
app.command("quickstart")(quickstart)
