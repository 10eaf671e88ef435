"""``dq doctor`` on PostgreSQL with the least-privilege setup of docs/operations.md.

The owner role (non-superuser, owns the database) runs the migrations; an
application role created here gets exactly the documented grants, run verbatim
from the docs. Doctor is then all ok as the application role; one revoked grant
is an error whose fix is the GRANT; a superuser connection is a warning.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dq_registries.domain.runs import JobRunRegistry  # noqa: F401 - the app works as the role below
from dq_registries.operations.doctor import diagnose

psycopg = pytest.importorskip("psycopg")
sql_schema = pytest.importorskip("dq_stores.sql.schema")

DOCS = Path(__file__).parents[2] / "docs" / "operations.md"


def documented_grants(database: str, role: str) -> str:
    text = DOCS.read_text()
    block = re.search(
        r"<!-- least-privilege-grants -->\s*```sql\n(.*?)```\s*<!-- /least-privilege-grants -->",
        text,
        re.S,
    )
    assert block is not None, "docs/operations.md lost its grants block"
    sql = block.group(1).replace("DATABASE dq ", f'DATABASE "{database}" ')
    return re.sub(r"\bdq_app\b", f'"{role}"', sql)


def config(url: str) -> dict[str, Any]:
    return {"default_backend": "postgres", "postgres": {"url": url}}


def statuses(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


@pytest.fixture
def app_url(postgres_database: Any, postgres_url: str) -> Iterator[str]:
    """URL of a fresh application role with the documented grants (schema at head)."""
    db = postgres_database
    sql_schema.upgrade(postgres_url)  # as the owner role
    role = f"dq_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db.server.admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD 'app-pw'")
    owner_dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute(documented_grants(db.name, role))
    yield db.server.sqlalchemy_url(db.name, role, "app-pw")
    with psycopg.connect(db.admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")


def test_documented_grants_pass_every_check(app_url: str) -> None:
    report = diagnose(config(app_url))
    bad = [c for c in report.checks if c.status != "ok"]
    assert bad == [], bad
    assert statuses(report.checks) == {
        "config": "ok",
        "reachable": "ok",
        "schema": "ok",
        "row-level-security": "ok",
        "grants": "ok",
        "row-level-security-policies": "ok",
        "read-write": "ok",
        "results-round-trip": "ok",
    }


def test_a_revoked_grant_is_an_error_with_the_grant_as_fix(
    app_url: str, postgres_url: str, tmp_path: Path
) -> None:
    role = re.search(r"//([^:]+):", app_url).group(1)  # type: ignore[union-attr]
    owner_dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute(f'REVOKE DELETE ON dq_revisions FROM "{role}"')
    report = diagnose(config(app_url))
    assert not report.ok
    (grants,) = [c for c in report.checks if c.name == "grants"]
    assert grants.status == "error"
    assert grants.fix is not None
    assert f'GRANT DELETE ON dq_revisions TO "{role}";' in grants.fix
    # the probe prunes history, which needs DELETE: it fails too, for the same reason
    assert statuses(report.checks)["read-write"] == "error"
    # the CLI: one line per check, exit code 1, the fix on the grants line
    path = tmp_path / "dq.yaml"
    path.write_text(yaml.safe_dump(config(app_url)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", "doctor", "--config", str(path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ": grants:" in ln]
    assert line.startswith("ERROR")
    assert "GRANT DELETE ON dq_revisions" in line
    as_json = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", "doctor", "--config", str(path), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["ok"] is False


def test_missing_schema_usage_is_reported(app_url: str, postgres_url: str) -> None:
    role = re.search(r"//([^:]+):", app_url).group(1)  # type: ignore[union-attr]
    owner_dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        owner.execute(f'REVOKE USAGE ON SCHEMA public FROM "{role}"')
        owner.execute("REVOKE USAGE ON SCHEMA public FROM PUBLIC")
    report = diagnose(config(app_url))
    (grants,) = [c for c in report.checks if c.name == "grants"]
    assert grants.status == "error"
    assert grants.fix is not None
    assert f'GRANT USAGE ON SCHEMA public TO "{role}";' in grants.fix


def test_a_superuser_connection_is_a_warning(postgres_database: Any, postgres_url: str) -> None:
    sql_schema.upgrade(postgres_url)
    info = psycopg.conninfo.conninfo_to_dict(postgres_database.admin_dsn)
    url = postgres_database.server.sqlalchemy_url(
        postgres_database.name, info["user"], info.get("password")
    )
    report = diagnose(config(url))
    (rls,) = [c for c in report.checks if c.name == "row-level-security"]
    assert rls.status == "warning"
    assert "superuser" in rls.message
    assert report.ok  # a warning is not an error


def test_the_owner_role_passes_too(postgres_url: str) -> None:
    # the owner is not a superuser either: it is subject to the forced policies
    report = diagnose(config(postgres_url))
    assert [c for c in report.checks if c.status != "ok"] == []
