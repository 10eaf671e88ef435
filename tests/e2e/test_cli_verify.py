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


def test_sql_verify_reports_an_edited_old_revision_and_notes_unchained_rows(
    tmp_path: Path,
) -> None:
    import sqlite3

    from dq_stores.sql import SqlBackend

    path = tmp_path / "dq.sqlite"
    url = f"sqlite:///{path}"
    with SqlBackend(url) as backend:
        for n in range(3):
            body = canonical_json({"n": n})
            write = DocumentWrite("orders", body, content_hash(body), IndexEntry())
            backend.put(Scope("acme", "prod"), "contract", write, ANY)
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"default_backend": "sqlite", "sqlite": {"url": url}}))
    clean = _dq(tmp_path, "verify", "--config", str(config))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 problem(s)" in clean.stdout
    assert "unchained" not in clean.stdout
    assert "before record hashes" not in clean.stdout
    # revision 1's body and sha256 changed together: consistent, but off its chain
    forged = canonical_json({"n": "forged"})
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE dq_revisions SET body = ?, sha256 = ? WHERE revision = 1",
            (forged, content_hash(forged)),
        )
    found = _dq(tmp_path, "verify", "--config", str(config), "--json")
    assert found.returncode == 1
    report = json.loads(found.stdout)
    assert [(p["code"], p["key"]) for p in report["problems"]] == [("record", "orders")]
    # rows from before the chain (migration 0005): a note, exit 0, never hashed by repair
    with sqlite3.connect(path) as conn:
        for table in ("dq_heads", "dq_revisions"):
            conn.execute(f"UPDATE {table} SET record_hash = NULL, prev_hash = NULL")
    noted = _dq(tmp_path, "verify", "--config", str(config), "--repair-index")
    assert noted.returncode == 0, noted.stdout + noted.stderr
    assert "note: 3 SQL revision(s) written before record hashes" in noted.stdout
    with sqlite3.connect(path) as conn:
        assert conn.execute(
            "SELECT count(*) FROM dq_revisions WHERE record_hash IS NULL"
        ).fetchone() == (3,)
