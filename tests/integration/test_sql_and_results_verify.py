"""``dq verify`` beyond files and blobs: what SQL cannot check itself (hash vs body,
history numbering, head vs newest revision), and results objects' size and sha256."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml
from typer.testing import CliRunner

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_registries.cli._app import app
from dq_stores.documents import ANY, DocumentWrite, IndexEntry
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem.results import FilesystemResultsStore
from dq_stores.sql import SqlBackend
from dq_stores.verify import VerifyCounts, verify

SCOPE = Scope("acme", "prod")


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({}, f"{n:03d}"))


def test_sql_body_edited_in_the_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "dq.sqlite"
    with SqlBackend(f"sqlite:///{path}") as backend:
        for n in (1, 2):
            backend.put(SCOPE, "contract", _write("orders", n), ANY)
        assert list(verify(backend)) == []
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE dq_revisions SET body = ? WHERE revision = 1", (b'{"n":9}',))
    conn.close()
    counts = VerifyCounts()
    with SqlBackend(f"sqlite:///{path}") as backend:
        problems = list(verify(backend, counts=counts))
    assert [(p.code, p.key) for p in problems] == [("record", "orders")]
    assert "revision 1" in problems[0].message
    assert counts.revisions == 2


def test_results_objects_are_checked_through_the_results_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    # a results object uploaded and referenced the way a run does, then damaged
    store = FilesystemResultsStore(root)
    with FilesystemBackend(root) as backend:
        ref = store.upload(SCOPE, "run-1", "results.json", [b'{"rows": 1}'])
        body = canonical_json(
            {
                "run_id": "run-1",
                "result_object": ref.to_object().model_dump(mode="json"),
            }
        )
        backend.put(
            SCOPE, "job_run", DocumentWrite("run-1", body, content_hash(body), IndexEntry()), ANY
        )
        assert list(verify(backend, results=store)) == []
    obj = next(p for p in (root / "acme" / "prod" / "results").rglob("*") if p.is_file())
    obj.write_bytes(b'{"rows": 2}')
    counts = VerifyCounts()
    with FilesystemBackend(root) as backend:
        problems = list(verify(backend, results=store, counts=counts))
    assert [(p.code, p.kind, p.key) for p in problems] == [("results", "job_run", "run-1")]
    assert counts.results == 1
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    result = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert result.exit_code == 1
    assert "[results]" in result.stdout
