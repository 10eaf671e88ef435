"""Usage and location mistakes end as one ``error: ...`` line saying what to do.

A missing argument, an unknown option or command and a value that does not convert
exit with 2 and name the ``--help`` to run (no usage box); ``DQ_HOME`` naming a file
and a SQLite URL naming a directory fail closed (exit 1) naming the key and the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def dq(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=cwd,
        env={**clean, "DQ_HOME": str(cwd / "home"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert "╭" not in result.stderr  # no usage box
    return lines[0]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["contracts", "show"], "missing argument CONTRACT_ID"),
        (["jobs", "save"], "missing argument FILE"),
        (["actions", "delete"], "missing argument PROFILE_ID"),
        (["contracts", "list", "--bogus"], "--bogus"),
        (["contracts", "list", "--limit", "abc"], "--limit"),
        (["contracts", "nosuch"], "nosuch"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_name_the_help(
    tmp_path: Path, args: list[str], names: str
) -> None:
    result = dq(tmp_path, *args)
    assert result.returncode == 2
    line = _one_error_line(result)
    assert names in line
    command = " ".join(a for a in args if not a.startswith("-") and a != "abc")
    assert f"{command} --help`" in line or f"{args[0]} --help`" in line
    assert result.stdout == ""


def test_a_group_without_a_command_still_prints_its_help(tmp_path: Path) -> None:
    result = dq(tmp_path, "contracts")
    assert result.returncode == 2
    assert "publish" in result.stdout + result.stderr


def test_dq_home_naming_a_file_fails_closed(tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("x")
    result = dq(tmp_path, "contracts", "list", DQ_HOME=str(home))
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "DQ_HOME" in line
    assert str(home) in line
    assert "not a directory" in line
    assert "(none)" not in result.stdout


def test_sqlite_url_naming_a_directory_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    result = dq(
        tmp_path,
        "contracts",
        "list",
        DQ_DEFAULT_BACKEND="sqlite",
        DQ_SQLITE__URL=f"sqlite:///{folder}",
    )
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "sqlite.url" in line
    assert str(folder) in line
    assert "is a directory" in line
    assert list(folder.iterdir()) == []
