"""``dq db``: manage the SQL backend's schema (PostgreSQL or SQLite) with its migrations.

Each command takes the database as ``--url`` (or ``$DQ_DB_URL``) or from the
configuration like every other command (``--config``, ``$DQ_CONFIG``, ``DQ_…``
variables: the postgres / sqlite backend the stores use). An explicit ``--url``
wins over a config file that only comes from ``$DQ_CONFIG``. Errors end as one
``error: ...`` line, exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from dq_registries.cli._common import UsageError, cli_errors, fail, verbose_requested

__all__ = ["app"]

app = typer.Typer(
    help="Manage the SQL database schema (postgres / sqlite): upgrade, downgrade, check.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db or sqlite:///dq.sqlite.",
        show_default=False,
        envvar="DQ_DB_URL",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="dq config file naming a postgres/sqlite backend (default: $DQ_CONFIG).",
        envvar="DQ_CONFIG",
        show_default=False,
    ),
]


def _from_environment(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "ENVIRONMENT"


def _url(ctx: typer.Context, url: str | None, config: Path | None) -> str:
    """The database URL; with ``dq --verbose``, one ``using …`` line says which (redacted)."""
    url_env, config_env = _from_environment(ctx, "url"), _from_environment(ctx, "config")
    if url and config and not (url_env or config_env):
        raise UsageError("give either --url or --config, not both")
    if url and not (config and url_env and not config_env):
        chosen, source = url, "$DQ_DB_URL" if url_env else "--url"
    else:
        from dq_registries.wiring.config import load_config

        chosen = load_config(config).sql_url()
        source = f"config {config}" if config is not None else "no config file"
    if verbose_requested():
        from dq_registries.wiring.config_env import redact_url

        sys.stderr.write(f"using database {redact_url(chosen)} [{source}]\n")
    return chosen


def _schema() -> ModuleType:
    from dq_registries.wiring.plugins import sql_schema

    try:
        return sql_schema()
    except ImportError as exc:
        raise UsageError(
            "the SQL backend is not installed: pip install 'dq-platform-core[postgres]'"
        ) from exc


@app.command()
@cli_errors
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    reached = _schema().upgrade(_url(ctx, url, config), revision)
    typer.echo(f"database at revision {reached or 'base (empty)'}")


@app.command()
@cli_errors
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops all tables).")],
    url: UrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revert migrations down to REVISION."""
    reached = _schema().downgrade(_url(ctx, url, config), revision)
    typer.echo(f"database at revision {reached or 'base (empty)'}")


@app.command()
@cli_errors
def current(ctx: typer.Context, url: UrlOpt = None, config: ConfigOpt = None) -> None:
    """Print the revision the database is at."""
    schema = _schema()
    revision = schema.database_revision(_url(ctx, url, config))
    head = schema.head_revision()
    state = "head" if revision == head else f"behind head {head}"
    typer.echo(f"{revision or 'base (empty)'} ({state})")


@app.command()
@cli_errors
def history() -> None:
    """List the migrations this version ships, oldest first."""
    for info in _schema().history():
        typer.echo(f"{info.down_revision or 'base'} -> {info.revision}: {info.message}")


@app.command()
@cli_errors
def check(ctx: typer.Context, url: UrlOpt = None, config: ConfigOpt = None) -> None:
    """Exit non-zero unless the database is at head."""
    schema = _schema()
    revision = schema.database_revision(_url(ctx, url, config))
    head = schema.head_revision()
    if revision != head:
        raise fail(
            f"database is at {revision or 'base (empty)'}, head is {head}: run `dq db upgrade`"
        )
    typer.echo(f"database at head ({head})")
