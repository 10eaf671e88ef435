"""``dq runs start|cancel|heartbeat|reap|results|reports`` and the crashed-batch scenario."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dq_registries import DQContext

JOB = {
    "id": "orders-check",
    "name": "Orders check",
    "job_type": "validation",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
}
CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}

#: A batch process: starts two runs, marks them running, says so, then hangs.
CRASHING_BATCH = """
import sys, time
from dq_registries import DQContext
with DQContext.from_config("acme", "prod", sys.argv[1]) as dq:
    ids = []
    for n in range(2):
        run = dq.runs.start("orders-check", idempotency_key=f"batch-{n}")
        ids.append(dq.runs.mark_running(run.run_id).run_id)
    print(" ".join(ids), flush=True)
    time.sleep(600)
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    config = tmp_path / "dq.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tenant": "acme",
                "environment": "prod",
                "default_backend": "filesystem",
                "filesystem": {"root": str(tmp_path / "store")},
                "results": {"inline_limit_bytes": 64},
            }
        )
    )
    with DQContext.from_config("acme", "prod", config) as dq:
        dq.contracts.publish(CONTRACT, actor="test")
        dq.jobs.save(JOB)
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env["COLUMNS"] = "200"
    return env


def dq(workspace: Path, *args: str, text: bool = True) -> subprocess.CompletedProcess[Any]:
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args, "--config", str(workspace / "dq.yaml")],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=text,
        timeout=120,
        check=False,
    )
    stderr = done.stderr if text else done.stderr.decode()
    assert "Traceback" not in stderr
    return done


def ok_json(workspace: Path, *args: str) -> Any:
    done = dq(workspace, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_start_heartbeat_cancel(workspace: Path) -> None:
    run = ok_json(workspace, "runs", "start", "orders-check", "--idempotency-key", "k1")
    assert run["status"] == "queued"
    again = ok_json(workspace, "runs", "start", "orders-check", "--idempotency-key", "k1")
    assert again["run_id"] == run["run_id"]
    refused = dq(workspace, "runs", "heartbeat", run["run_id"])
    assert refused.returncode == 1
    assert "queued" in refused.stderr
    running = ok_json(workspace, "runs", "start", "orders-check", "--running")
    assert running["status"] == "running"
    beat = ok_json(workspace, "runs", "heartbeat", running["run_id"])
    assert beat["last_heartbeat_at"]
    cancelled = ok_json(workspace, "runs", "cancel", running["run_id"], "--reason", "wrong day")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancel_reason"] == "wrong day"
    again_cancel = dq(workspace, "runs", "cancel", running["run_id"])
    assert again_cancel.returncode == 1
    assert "terminal" in again_cancel.stderr
    missing = dq(workspace, "runs", "start", "no-such-job")
    assert missing.returncode == 1


def test_results_stream_to_file_and_stdout_verified(workspace: Path) -> None:
    payload = os.urandom(300_000)
    with DQContext.from_config("acme", "prod", workspace / "dq.yaml") as ctx:
        with ctx.runs.running("orders-check") as run:
            ctx.runs.finish(run.run_id, "succeeded", results=payload)
            ctx.runs.attach_report(run.run_id, dataset="orders", title="nightly", summary={"n": 3})
        small = ctx.runs.start("orders-check")
        ctx.runs.finish(small.run_id, "failed", results={"bad": 1})
        empty = ctx.runs.start("orders-check").run_id
    out = workspace / "out" / "results.bin"
    out.parent.mkdir()
    done = dq(workspace, "runs", "results", run.run_id, "--output", str(out))
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(payload).hexdigest()
    assert out.read_bytes() == payload
    assert done.stderr.strip() == f"{len(payload)} bytes sha256 {digest}"
    piped = dq(workspace, "runs", "results", run.run_id, text=False)
    assert piped.stdout == payload
    inline = dq(workspace, "runs", "results", small.run_id, text=False)
    assert json.loads(inline.stdout) == {"bad": 1}
    none = dq(workspace, "runs", "results", empty, "--output", str(workspace / "none.bin"))
    assert none.returncode != 0
    assert "no results" in none.stderr
    assert not (workspace / "none.bin").exists()
    reports = ok_json(workspace, "runs", "reports", run.run_id)
    assert [(r["dataset"], r["summary"]) for r in reports] == [("orders", {"n": 3})]
    table = dq(workspace, "runs", "reports", run.run_id)
    assert "nightly" in table.stdout
    assert dq(workspace, "runs", "reports", "run-unknown").returncode == 1


def test_results_refuse_bytes_that_do_not_match_their_hash(workspace: Path) -> None:
    with DQContext.from_config("acme", "prod", workspace / "dq.yaml") as ctx:
        run = ctx.runs.start("orders-check")
        ctx.runs.mark_running(run.run_id)
        ctx.runs.finish(run.run_id, "succeeded", results=b"x" * 1000)
    (stored,) = [p for p in (workspace / "store").rglob("results-*") if p.is_file()]
    stored.write_bytes(b"y" * 1000)
    out = workspace / "results.bin"
    done = dq(workspace, "runs", "results", run.run_id, "--output", str(out))
    assert done.returncode == 1
    assert "sha256" in done.stderr or "integrity" in done.stderr.lower()
    assert not out.exists()  # nothing written on failure
    assert list(workspace.glob(".results.bin.*")) == []


def test_crashed_batch_is_reaped_and_visible(workspace: Path) -> None:
    batch = subprocess.Popen(
        [sys.executable, "-c", CRASHING_BATCH, str(workspace / "dq.yaml")],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert batch.stdout is not None
        run_ids = batch.stdout.readline().split()
        assert len(run_ids) == 2
    finally:
        batch.send_signal(signal.SIGKILL)
        batch.wait()
        if batch.stdout is not None:
            batch.stdout.close()
    running = ok_json(workspace, "runs", "list", "--status", "running")
    assert sorted(r["run_id"] for r in running["items"]) == sorted(run_ids)
    assert ok_json(workspace, "runs", "reap", "--older-than", "1h") == []
    time.sleep(2.1)
    dry = ok_json(workspace, "runs", "reap", "--older-than", "2s", "--dry-run")
    assert sorted(r["run_id"] for r in dry) == sorted(run_ids)
    reaped = ok_json(workspace, "runs", "reap", "--older-than", "2s", "--reason", "batch killed")
    assert sorted(r["run_id"] for r in reaped) == sorted(run_ids)
    assert ok_json(workspace, "runs", "list", "--status", "running")["items"] == []
    failed = ok_json(workspace, "runs", "list", "--status", "failed")["items"]
    assert sorted(r["run_id"] for r in failed) == sorted(run_ids)
    shown = ok_json(workspace, "runs", "show", run_ids[0])["run"]
    assert shown["error"].startswith("reaped: no heartbeat since")
    assert "batch killed" in shown["error"]
    table = dq(workspace, "runs", "reap", "--older-than", "2s")
    assert "Reaped 0 run(s)" in table.stdout
    bad = dq(workspace, "runs", "reap", "--older-than", "soon")
    assert bad.returncode == 2


def test_results_to_a_directory_or_missing_folder_name_the_given_path(workspace: Path) -> None:
    with DQContext.from_config("acme", "prod", workspace / "dq.yaml") as ctx:
        run = ctx.runs.start("orders-check")
        ctx.runs.finish(run.run_id, "failed", results=b"x" * 1000)
    folder = workspace / "outdir"
    folder.mkdir()
    into_dir = dq(workspace, "runs", "results", run.run_id, "--output", str(folder))
    assert into_dir.returncode == 1
    assert f"is a directory, not a file: {folder}" in into_dir.stderr
    assert list(workspace.glob(".outdir.*")) == []
    missing = workspace / "nowhere" / "r.bin"
    nowhere = dq(workspace, "runs", "results", run.run_id, "--output", str(missing))
    assert nowhere.returncode == 1
    assert str(missing.parent) in nowhere.stderr
    assert ".r.bin." not in nowhere.stderr
    out = workspace / "r.bin"
    assert dq(workspace, "runs", "results", run.run_id, "--output", str(out)).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
