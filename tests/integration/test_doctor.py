"""``dq doctor`` on the filesystem, SQLite, Azurite and memory, and with a broken config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dq_registries.operations.doctor import diagnose
from dq_stores.health import PROBE_SCOPE


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def run_cli(config: dict[str, Any], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "dq.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", "doctor", "--config", str(path), *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_filesystem_all_ok_and_the_probe_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    config = {"default_backend": "filesystem", "filesystem": {"root": str(tmp_path / "store")}}
    for _ in range(3):
        report = diagnose(config)
        assert report.ok
        assert [c for c in report.checks if c.status != "ok"] == []
    names = set(by_name(report.checks))
    assert {"filesystem-writable", "filesystem-rename", "filesystem-hard-links"} <= names
    assert {"filesystem-locks", "read-write", "results-round-trip"} <= names
    from dq_stores.filesystem import FilesystemBackend

    with FilesystemBackend(tmp_path / "store") as backend:
        (tombstone,) = backend.history(PROBE_SCOPE, "doctor_probe", "probe")  # pruned each time
        assert tombstone.deleted
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".dq-doctor")]
    done = run_cli(config, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(report.checks)
    assert all(line.startswith("ok") for line in lines)


def test_a_missing_filesystem_root_is_reported_not_created(tmp_path: Path) -> None:
    root = tmp_path / "missing" / "store"
    config = {"default_backend": "filesystem", "filesystem": {"root": str(root)}}
    report = diagnose(config)
    assert not report.ok
    check = by_name(report.checks)["filesystem-root"]
    assert check.status == "error"
    assert "does not exist" in check.message
    assert "mkdir -p" in (check.fix or "")
    assert "read-write" not in by_name(report.checks)  # no probe wrote anything
    assert not (tmp_path / "missing").exists()
    done = run_cli(config, tmp_path)
    assert done.returncode == 1
    assert not (tmp_path / "missing").exists()


def test_an_azure_container_name_azure_refuses_fails_the_config_check() -> None:
    from dq_metadata.errors import MisconfiguredError
    from dq_registries.wiring.config import settings_from_mapping
    from dq_stores.azure_names import validate_container_name

    for name in ("dq", "a" * 64, "Upper", "a--b", "-ab", "ab-"):
        section = {"container": name, "connection_string": "UseDevelopmentStorage=true"}
        config = {"default_backend": "azure_blob", "azure_blob": section}
        report = diagnose(config)
        assert [c.name for c in report.checks] == ["config"], name
        assert "azure_blob.container" in report.checks[0].message
        with pytest.raises(MisconfiguredError, match=r"azure_blob\.container"):
            settings_from_mapping(config)
        with pytest.raises(MisconfiguredError, match=r"azure_blob\.container"):
            validate_container_name(name)  # the rule the adapters apply
    for name in ("dqx", "a" * 63, "dq-results-1"):
        assert validate_container_name(name) == name


def test_filesystem_root_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "not-a-dir"
    root.write_text("x")
    config = {"default_backend": "filesystem", "filesystem": {"root": str(root)}}
    report = diagnose(config)
    assert not report.ok
    # refused with the configuration (fail closed), before any probe
    check = by_name(report.checks)["config"]
    assert check.status == "error"
    assert "filesystem.root" in check.message
    assert "not a directory" in check.message
    done = run_cli(config, tmp_path, "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["ok"] is False
    assert {"name", "store", "status", "message", "fix"} <= set(data["checks"][-1])


def test_sqlite_schema_grants_do_not_apply(tmp_path: Path) -> None:
    pytest.importorskip("dq_stores.sql")
    config = {"default_backend": "sqlite", "sqlite": {"url": f"sqlite:///{tmp_path / 'dq.db'}"}}
    report = diagnose(config)
    assert [c for c in report.checks if c.status != "ok"] == []
    assert {"reachable", "schema", "read-write", "results-round-trip"} <= set(
        by_name(report.checks)
    )
    assert "grants" not in by_name(report.checks)


def test_sqlite_behind_the_head_is_an_error(tmp_path: Path) -> None:
    schema = pytest.importorskip("dq_stores.sql.schema")
    url = f"sqlite:///{tmp_path / 'dq.db'}"
    schema.upgrade(url, "0003")
    config = {"default_backend": "sqlite", "sqlite": {"url": url}}
    checks = by_name(diagnose(config).checks)
    assert checks["open"].status == "error"
    assert checks["schema"].status == "error"
    assert "dq db upgrade" in (checks["schema"].fix or "")


def test_azure_container_ok_and_missing(azure_connection_string: str, azure_container: str) -> None:
    section = {"connection_string": azure_connection_string, "container": azure_container}
    report = diagnose({"default_backend": "azure_blob", "azure_blob": section})
    assert [c for c in report.checks if c.status != "ok"] == []
    assert {"azure-container", "read-write", "results-round-trip"} <= set(by_name(report.checks))
    missing = {**section, "container": azure_container + "missing"}
    report = diagnose({"default_backend": "azure_blob", "azure_blob": missing})
    check = by_name(report.checks)["azure-container"]
    assert check.status == "error"
    assert "create_container" in (check.fix or "")
    assert "read-write" not in by_name(report.checks)


def test_memory_is_a_warning_and_a_bad_config_an_error(tmp_path: Path) -> None:
    report = diagnose({"default_backend": "memory"})
    assert report.ok
    assert by_name(report.checks)["durability"].status == "warning"
    bad = diagnose({"default_backend": "no-such-backend"})
    assert not bad.ok
    assert [c.name for c in bad.checks] == ["config"]
    done = run_cli({"default_backend": "no-such-backend"}, tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("ERROR")
    assert "Traceback" not in done.stderr
