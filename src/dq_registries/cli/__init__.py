"""``dq``: the command-line interface of dq-platform core.

Sub-apps: ``contracts``, ``jobs``, ``actions``, ``runs``, ``db``, ``config``, and
the ``quickstart`` command. ``dq --verbose <command>`` prints what it connects to. Every command takes ``--tenant``, ``--env``, ``--config``
and ``--json`` (see :mod:`dq_registries.cli._common`).
"""

from __future__ import annotations

import typer

from dq_registries.cli import actions, config, contracts, db, jobs, runs
from dq_registries.cli._common import set_verbose
from dq_registries.cli.quickstart import quickstart

__all__ = ["app", "main"]

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
app.add_typer(config.app, name="config")


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print one 'using …' line on stderr: what is connected."
    ),
) -> None:
    set_verbose(verbose)


app.command("quickstart")(quickstart)


def main() -> None:
    """Entry point of the ``dq`` console script."""
    app()
