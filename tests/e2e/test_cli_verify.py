"""``dq verify`` through the real CLI: what it walks and how it exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_registries.operations.doctor import diagnose
from dq_stores.documents import ANY, DocumentWrite, IndexEntry
from dq_stores.filesystem import FilesystemBackend


def _dq(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    return done


def _store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    body = canonical_json({"n": 1})
    with FilesystemBackend(root) as backend:
        for env in ("dev", "prod"):
            write = DocumentWrite("orders", body, content_hash(body), IndexEntry())
            backend.put(Scope("acme", env), "contract", write, ANY)
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    return config


def test_a_scope_or_tenant_that_does_not_exist_fails(tmp_path: Path) -> None:
    config = str(_store(tmp_path))
    ok = _dq(tmp_path, "verify", "--config", config, "-t", "acme", "-e", "prod")
    assert ok.returncode == 0, ok.stderr
    assert "checked 1 scope(s), 1 document(s)" in ok.stdout
    for args in (["-t", "acme", "-e", "prdo"], ["-t", "acme", "-e", "prdo", "--json"]):
        typo = _dq(tmp_path, "verify", "--config", config, *args)
        assert typo.returncode == 1
        assert typo.stdout == ""  # nothing checked, no summary that looks clean
        assert "error: scope acme/prdo does not exist" in typo.stderr
        assert "dev, prod" in typo.stderr
    tenant = _dq(tmp_path, "verify", "--config", config, "--tenant", "acmee")
    assert tenant.returncode == 1
    assert "error: tenant 'acmee' does not exist" in tenant.stderr


def test_the_doctor_leaves_nothing_for_verify_or_export(tmp_path: Path) -> None:
    config = _store(tmp_path)
    assert diagnose(config).ok
    done = _dq(tmp_path, "verify", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    assert (summary["scopes"], summary["documents"]) == (2, 2)  # not dq-doctor/probe
    archive = tmp_path / "all.dqa"
    exported = _dq(tmp_path, "export", "--config", str(config), "--out", str(archive), "--json")
    assert exported.returncode == 0, exported.stderr
    assert "dq-doctor" not in exported.stdout
