"""The ``dq`` Typer application: every sub-app and command, assembled once.

Imported by :func:`dq_registries.cli.main` inside its interrupt guard, so a Ctrl-C
while these (heavy) modules load still ends as ``error: interrupted``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from dq_registries.cli import actions, config, contracts, db, jobs, runs, transfer, verify
from dq_registries.cli._common import EXIT_CODES_HELP, set_verbose
from dq_registries.cli.doctor import doctor
from dq_registries.cli.gc import gc
from dq_registries.cli.quickstart import quickstart

__all__ = ["DISTRIBUTION", "app"]

DISTRIBUTION = "dq-platform-core"

app = typer.Typer(
    name="dq",
    help=(
        "Manage data contracts, job definitions, action profiles and job runs of the "
        "dq platform. Backends come from --config / $DQ_CONFIG / DQ_* environment "
        "variables (default: the local filesystem under $DQ_HOME or ./.dq)."
    ),
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
app.add_typer(contracts.app, name="contracts")
app.add_typer(jobs.app, name="jobs")
app.add_typer(actions.app, name="actions")
app.add_typer(runs.app, name="runs")
app.add_typer(db.app, name="db")
app.add_typer(config.app, name="config")


app.command("quickstart")(quickstart)
app.command("gc")(gc)
app.command("doctor")(doctor)
app.command("export")(transfer.export)
app.command("import")(transfer.import_)
app.command("migrate")(transfer.migrate)
app.command("verify-archive")(transfer.verify_archive)
app.command("verify")(verify.verify_command)


def _installed_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"dq {_installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Print one 'using …' line on stderr: what is connected."
        ),
    ] = False,
) -> None:
    # The options of ``dq`` itself; each command's own help comes from its docstring.
    set_verbose(verbose)
