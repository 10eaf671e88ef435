"""Every ``--help`` of ``dq`` reads as prose: no paragraph broken where the source wrapped it.

Typer's rich help keeps a docstring's single line breaks; ``_app._reflowed`` joins
them. Checked on the rendered help of every command, at a width where no line needs
wrapping, so a hard break in the source shows up as a line ending mid-sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from dq_registries.cli import app
from dq_registries.cli._app import _reflowed


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app), ()))


def _prose(text: str) -> list[str]:
    """The rendered help's description: the text lines before the first panel."""
    lines = [line.strip() for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Usage:")) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "dq")
def test_no_help_paragraph_is_broken_mid_sentence(path: tuple[str, ...]) -> None:
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    prose = _prose(result.output)
    for line, following in pairwise(prose):
        # within a paragraph, a line is followed by a blank line or a list item
        assert not (line and following and following[0].islower()), (line, following)


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS if p], ids=" ".join)
def test_the_command_list_shows_each_summary_on_one_line(path: tuple[str, ...]) -> None:
    *parent, name = path
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [*parent, "--help"])
    row = next(line for line in result.output.splitlines() if f"│ {name} " in line)
    summary = row.split(f"│ {name} ", 1)[1].strip(" │")
    command = dict(COMMANDS)[tuple(path)]
    first = (command.short_help or command.help or "").split("\n\n")[0]
    assert "\n" not in first
    assert summary.startswith(first[:60]), (summary, first)


def test_reflowing_joins_wrapped_lines_and_keeps_paragraphs_and_list_items() -> None:
    doc = """First line
    goes on.

    Second paragraph
    also wrapped.
    - an item
      continued
    - another

    \b
    kept  as
    it is"""
    assert _reflowed(doc) == (
        "First line goes on.\n\nSecond paragraph also wrapped.\n- an item continued\n"
        "- another\n\n\b\nkept  as\nit is"
    )
