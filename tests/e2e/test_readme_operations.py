"""The README's operations commands exist: each answers ``--help``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def operations_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Operations\n\n```text\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README lost its Operations section"
    commands = []
    for line in block.group(1).splitlines():
        words = line.split()
        assert words[0] == "dq"
        path: list[list[str]] = []
        for word in words[1:]:
            if not re.fullmatch(r"[a-z|]+", word):
                break
            path.append(word.split("|"))
        variants: list[list[str]] = [[]]
        for choices in path:
            variants = [[*v, c] for v in variants for c in choices]
        commands.extend(variants)
    return commands


def test_every_operations_command_exists() -> None:
    commands = operations_commands()
    assert ["doctor"] in commands
    assert ["gc"] in commands
    assert ["runs", "reap"] in commands
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "dq_registries.cli", *command, "--help"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
