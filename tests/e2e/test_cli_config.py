"""Through the CLI: configuration that would fall back silently fails closed, and
`dq config show` / `--verbose` say what a command is connected to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PG_URL = "postgresql+psycopg://dq:s3cr3t-pw@db.invalid:5432/dq"


def dq(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DQ_")}
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_postgres_url_without_a_store_using_postgres_is_refused(tmp_path: Path) -> None:
    result = dq(tmp_path, "runs", "list", "-t", "acme", "-e", "prod", DQ_POSTGRES__URL=PG_URL)
    line = one_error_line(result)
    assert "postgres.url: is set but no store uses postgres" in line
    assert "default_backend: postgres (DQ_DEFAULT_BACKEND)" in line
    assert "s3cr3t" not in line
    assert list(tmp_path.iterdir()) == []  # no ./.dq was created


@pytest.mark.parametrize(
    ("variable", "meant"),
    [("DQ_DEFAULT_BACKEN", "DQ_DEFAULT_BACKEND"), ("DQ_POSTGRES__UR", "DQ_POSTGRES__URL")],
)
def test_a_misspelt_variable_is_an_error_naming_the_valid_one(
    tmp_path: Path, variable: str, meant: str
) -> None:
    line = one_error_line(dq(tmp_path, "runs", "list", **{variable: "postgres"}))
    assert f"unknown environment variable {variable} (did you mean {meant}?)" in line
    assert list(tmp_path.iterdir()) == []


def test_split_document_stores_are_refused_through_the_cli(tmp_path: Path) -> None:
    line = one_error_line(
        dq(
            tmp_path,
            "contracts",
            "list",
            DQ_DEFAULT_BACKEND="memory",
            DQ_STORES__CONTRACTS="filesystem",
            DQ_FILESYSTEM__ROOT=str(tmp_path / "s"),
        )
    )
    assert "stores.contracts/job_definitions/action_profiles: must use one backend" in line


def test_filesystem_results_beside_sql_documents_need_an_explicit_root(tmp_path: Path) -> None:
    line = one_error_line(
        dq(
            tmp_path,
            "runs",
            "list",
            DQ_DEFAULT_BACKEND="postgres",
            DQ_POSTGRES__URL=PG_URL,
            DQ_STORES__RESULTS="filesystem",
        )
    )
    assert "filesystem.root: required because stores.results uses filesystem" in line


def test_config_show_lists_values_with_sources_and_redacts_secrets(tmp_path: Path) -> None:
    (tmp_path / "dq.yaml").write_text("tenant: acme\n")
    result = dq(
        tmp_path,
        "config",
        "show",
        "--json",
        DQ_CONFIG=str(tmp_path / "dq.yaml"),
        DQ_DEFAULT_BACKEND="postgres",
        DQ_POSTGRES__URL=PG_URL,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["tenant"] == {
        "key": "tenant",
        "value": "acme",
        "source": f"file {tmp_path / 'dq.yaml'}",
    }
    assert rows["default_backend"]["source"] == "environment DQ_DEFAULT_BACKEND"
    assert rows["stores.results"] == {
        "key": "stores.results",
        "value": "postgres",
        "source": "default (default_backend)",
    }
    assert rows["postgres.url"]["value"] == "postgresql+psycopg://dq:***@db.invalid:5432/dq"
    assert rows["filesystem.root"]["source"] == "default"
    assert "s3cr3t" not in result.stdout


def test_verbose_says_what_a_command_is_connected_to(tmp_path: Path) -> None:
    root = tmp_path / "store"
    result = dq(
        tmp_path,
        "--verbose",
        "runs",
        "list",
        "-t",
        "acme",
        "-e",
        "prod",
        DQ_FILESYSTEM__ROOT=str(root),
    )
    assert result.returncode == 0, result.stderr
    using = [line for line in result.stderr.splitlines() if line.startswith("using ")]
    assert len(using) == 1
    assert using[0].startswith(
        "using acme/prod: contracts, job_definitions, action_profiles: filesystem"
    )
    assert f"filesystem.root={root}" in using[0]
    quiet = dq(tmp_path, "runs", "list", DQ_FILESYSTEM__ROOT=str(root))
    assert "using " not in quiet.stderr


def test_dq_db_reads_dq_config_like_every_command(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    db = tmp_path / "dq.sqlite3"
    (tmp_path / "dq.yaml").write_text(f"default_backend: sqlite\nsqlite:\n  url: sqlite:///{db}\n")
    upgraded = dq(tmp_path, "db", "upgrade", DQ_CONFIG=str(tmp_path / "dq.yaml"))
    assert upgraded.returncode == 0, upgraded.stderr
    checked = dq(tmp_path, "db", "check", DQ_CONFIG=str(tmp_path / "dq.yaml"))
    assert checked.returncode == 0, checked.stderr
    assert "database at head" in checked.stdout
    # An explicit --url wins over a config that only comes from $DQ_CONFIG.
    other = tmp_path / "other.sqlite3"
    current = dq(
        tmp_path,
        "db",
        "current",
        "--url",
        f"sqlite:///{other}",
        DQ_CONFIG=str(tmp_path / "dq.yaml"),
    )
    assert current.returncode == 0, current.stderr
    assert current.stdout.startswith("base (empty)")


def test_verbose_db_says_which_database_without_its_secrets(tmp_path: Path) -> None:
    # `dq --verbose db …` printed nothing about where it was connecting.
    db = tmp_path / "dq.sqlite3"
    upgraded = dq(tmp_path, "--verbose", "db", "upgrade", "--url", f"sqlite:///{db}")
    assert upgraded.returncode == 0, upgraded.stderr
    using = [line for line in upgraded.stderr.splitlines() if line.startswith("using ")]
    assert using == [f"using database sqlite:///{db} [--url]"]
    secret = "postgresql+psycopg://dq:s3cr3t-pw@127.0.0.1:1/dq?sslpassword=kiwi-pw"
    refused = dq(tmp_path, "--verbose", "db", "check", DQ_DB_URL=secret)
    assert refused.returncode != 0
    assert "using database postgresql+psycopg://dq:***@127.0.0.1:1/dq" in refused.stderr
    assert "s3cr3t" not in refused.stderr
    assert "kiwi" not in refused.stderr
    quiet = dq(tmp_path, "db", "check", "--url", f"sqlite:///{db}")
    assert "using " not in quiet.stderr
