"""``dq db``: upgrade, downgrade, current, history and check against real databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dq_metadata.errors import SchemaOutOfDateError
from dq_registries.cli.db import app
from dq_stores.sql import SqlBackend, schema

runner = CliRunner()


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'dq.sqlite'}"


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_upgrade_check_downgrade_round_trip(url: str) -> None:
    head = schema.head_revision()
    assert _run("check", "--url", url) == (
        1,
        f"error: database is at base (empty), head is {head}: run `dq db upgrade`\n",
    )
    assert _run("upgrade", "0001", "--url", url) == (0, "database at revision 0001\n")
    assert _run("current", "--url", url) == (0, f"0001 (behind head {head})\n")
    with pytest.raises(SchemaOutOfDateError):
        SqlBackend(url)
    assert _run("upgrade", "--url", url) == (0, f"database at revision {head}\n")
    assert _run("check", "--url", url) == (0, f"database at head ({head})\n")
    SqlBackend(url, auto_create=False).close()
    assert _run("downgrade", "base", "--url", url) == (0, "database at revision base (empty)\n")
    assert _run("current", "--url", url)[1].startswith("base (empty)")


def test_history_lists_every_migration_oldest_first() -> None:
    code, out = _run("history")
    assert code == 0
    assert out.splitlines()[0].startswith("base -> 0001: ")
    assert f"-> {schema.head_revision()}: " in out.splitlines()[-1]


def test_config_file_names_the_database(tmp_path: Path) -> None:
    db = tmp_path / "dq.sqlite"
    config = tmp_path / "dq.yaml"
    config.write_text(f"default_backend: sqlite\nsqlite:\n  url: sqlite:///{db}\n")
    assert _run("upgrade", "--config", str(config))[0] == 0
    assert _run("check", "--config", str(config))[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check"], "error: no store uses a SQL database: set default_backend"),
        (["check", "--url", "sqlite:///x", "--config", "y"], "error: give either --url"),
        (["upgrade", "--url", "mysql://u:pw@h/db"], "error: unsupported SQL backend 'mysql'"),
        (["upgrade", "nope", "--url", "sqlite:///{tmp}/x.sqlite"], "error: migration failed"),
        (
            ["upgrade", "--url", "postgresql+psycopg://u:hunter2pw@127.0.0.1:1/db"],
            "error: database unavailable",
        ),
    ],
)
def test_errors_are_one_line_without_traceback(
    args: list[str], message: str, tmp_path: Path
) -> None:
    code, out = _run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert code == 1 or (code == 2 and "give" in message)
    assert out.startswith(message)
    assert out.count("\n") == 1
    assert "Traceback" not in out
    assert "hunter2pw" not in out
