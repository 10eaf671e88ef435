"""``dq config show``: the effective configuration, where each value came from, secrets hidden."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dq_registries.cli._common import ConfigOpt, JsonOpt, cli_errors, emit

__all__ = ["app", "describe"]

app = typer.Typer(
    help="Inspect the configuration every command uses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def describe(config: Path | None) -> list[dict[str, object]]:
    """One row per setting: ``key``, ``value`` (secrets as ``***``) and ``source``.

    Raises:
        MisconfiguredError: the configuration is invalid (the same error every
            command would report).
    """
    from dq_registries.wiring.config import load_config_with_sources
    from dq_registries.wiring.config_env import effective_values

    loaded = load_config_with_sources(config)
    values = effective_values(loaded.settings)
    return [
        {"key": key, "value": value, "source": loaded.sources[key]}
        for key, value in sorted(values.items())
    ]


@app.command()
@cli_errors
def show(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    only: Annotated[
        str | None, typer.Option("--key", help="Show only keys starting with this prefix.")
    ] = None,
) -> None:
    """Print the effective configuration with the source of each value (file, environment, default)."""
    rows = [row for row in describe(config) if only is None or str(row["key"]).startswith(only)]
    emit(rows, as_json=as_json, columns=["key", "value", "source"], title="configuration")
