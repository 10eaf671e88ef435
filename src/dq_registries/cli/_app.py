"""The ``dq`` Typer application: every sub-app and command, assembled once.

Imported by :func:`dq_registries.cli.main` inside its interrupt guard, so a Ctrl-C
while these (heavy) modules load still ends as ``error: interrupted``.
"""

from __future__ import annotations

import inspect
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


def _reflowed(doc: str) -> str:
    """``doc`` with each paragraph's hard-wrapped lines joined by spaces.

    Typer's rich help keeps a docstring's single line breaks, so a paragraph wrapped
    at 88 columns in the source showed as broken lines in ``--help`` and in the
    command list. Paragraphs (blank-line separated) and lines that start a list item
    (``- ``/``* ``) stay as they are; a paragraph starting with ``\\b`` (click's
    "do not rewrap" marker) is kept whole.
    """
    out: list[str] = []
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        if paragraph.startswith("\b"):
            out.append(paragraph)
            continue
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if lines and not line.lstrip().startswith(("- ", "* ")):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _reflow_help(group: typer.Typer) -> None:
    """Give every command of ``group`` (and its sub-apps) its docstring, reflowed."""
    for info in group.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = _reflowed(info.callback.__doc__)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _reflow_help(sub.typer_instance)


_reflow_help(app)


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
