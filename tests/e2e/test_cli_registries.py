"""``dq jobs|actions|runs``: save, list, show, history and delete through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dq_registries import DQContext

CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}
PROFILE = {
    "id": "page-oncall",
    "action_type": "open_ticket",
    "name": "Page on-call",
    "system": "jira",
    "project": "DQ",
}
JOB = {
    "id": "orders-check",
    "name": "Orders check",
    "job_type": "validation",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
    "tags": ["orders", "nightly"],
    "on_failure": ["page-oncall"],
}


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
            }
        )
    )
    with DQContext.from_config("acme", "prod", config) as dq:
        dq.contracts.publish(CONTRACT, actor="test")
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(PROFILE))
    (tmp_path / "job.json").write_text(json.dumps(JOB))
    return tmp_path


def dq(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args, "--config", str(workspace / "dq.yaml")],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


def ok_json(workspace: Path, *args: str) -> Any:
    done = dq(workspace, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_actions_save_list_show_and_filter_by_type(workspace: Path) -> None:
    saved = ok_json(workspace, "actions", "save", str(workspace / "profile.yaml"))
    assert saved == {
        "id": "page-oncall",
        "type": "open_ticket",
        "revision": 1,
        "scope": "acme/prod",
    }
    listed = ok_json(workspace, "actions", "list", "--type", "open_ticket")
    assert [p["id"] for p in listed["items"]] == ["page-oncall"]
    assert ok_json(workspace, "actions", "list", "--type", "quarantine")["items"] == []
    shown = ok_json(workspace, "actions", "show", "page-oncall")
    assert shown["system"] == "jira"
    table = dq(workspace, "actions", "list")
    assert "page-oncall" in table.stdout
    assert "open_ticket" in table.stdout


def test_jobs_save_list_show_history_and_delete(workspace: Path) -> None:
    ok_json(workspace, "actions", "save", str(workspace / "profile.yaml"))
    assert ok_json(workspace, "jobs", "save", str(workspace / "job.json"))["revision"] == 1
    changed = {**JOB, "description": "now documented"}
    (workspace / "job.json").write_text(json.dumps(changed))
    assert ok_json(workspace, "jobs", "save", str(workspace / "job.json"))["revision"] == 2
    assert [j["id"] for j in ok_json(workspace, "jobs", "list", "--tag", "nightly")["items"]] == [
        "orders-check"
    ]
    assert ok_json(workspace, "jobs", "list", "--tag", "nightly", "--tag", "weekly")["items"] == []
    any_tag = ok_json(workspace, "jobs", "list", "--tag", "nightly", "--tag", "weekly", "--any-tag")
    assert [j["id"] for j in any_tag["items"]] == ["orders-check"]
    assert ok_json(workspace, "jobs", "show", "orders-check")["description"] == "now documented"
    history = ok_json(workspace, "jobs", "history", "orders-check")
    assert [h["revision"] for h in history] == [1, 2]
    assert "orders-check" in dq(workspace, "jobs", "list").stdout

    refused = dq(workspace, "actions", "delete", "page-oncall")
    assert refused.returncode == 1
    assert "orders-check" in refused.stderr

    assert ok_json(workspace, "jobs", "delete", "orders-check")["deleted"] == "orders-check"
    assert ok_json(workspace, "jobs", "list")["items"] == []
    assert ok_json(workspace, "actions", "delete", "page-oncall")["deleted"] == "page-oncall"


def test_runs_list_filters_and_show(workspace: Path) -> None:
    with DQContext.from_config("acme", "prod", workspace / "dq.yaml") as ctx:
        ctx.actions.save(PROFILE)
        ctx.jobs.save(JOB)
        good = ctx.runs.start("orders-check")
        ctx.runs.mark_running(good.run_id)
        ctx.runs.record_checkpoint(good.run_id, {"name": "rows", "passed": True})
        ctx.runs.finish(good.run_id, "succeeded", metrics={"rows": 3})
        ctx.runs.attach_report(good.run_id, dataset="orders", title="all good")
        queued = ctx.runs.start("orders-check")
    with DQContext.from_config("acme", "dev", workspace / "dq.yaml") as ctx:
        ctx.contracts.publish(CONTRACT, actor="test")
        ctx.jobs.save({**JOB, "on_failure": []})
        ctx.runs.start("orders-check")

    assert len(ok_json(workspace, "runs", "list")["items"]) == 2
    assert len(ok_json(workspace, "runs", "list", "--all-envs")["items"]) == 3
    succeeded = ok_json(workspace, "runs", "list", "--status", "succeeded")["items"]
    assert [r["run_id"] for r in succeeded] == [good.run_id]
    assert ok_json(workspace, "runs", "list", "--since", "2999-01-01")["items"] == []
    assert (
        len(
            ok_json(workspace, "runs", "list", "--job", "orders-check", "--until", "2999-01-01")[
                "items"
            ]
        )
        == 2
    )

    shown = ok_json(workspace, "runs", "show", good.run_id)
    assert shown["run"]["metrics"] == {"rows": 3.0}
    assert shown["reports"][0]["title"] == "all good"
    table = dq(workspace, "runs", "show", good.run_id)
    assert "Checkpoints" in table.stdout
    assert "all good" in table.stdout
    assert ok_json(workspace, "runs", "show", queued.run_id)["run"]["status"] == "queued"


def test_pages_continue_with_the_token(workspace: Path) -> None:
    with DQContext.from_config("acme", "prod", workspace / "dq.yaml") as ctx:
        for i in range(3):
            ctx.actions.save({**PROFILE, "id": f"p{i}"})
    first = ok_json(workspace, "actions", "list", "--limit", "2")
    assert len(first["items"]) == 2
    rest = ok_json(
        workspace, "actions", "list", "--limit", "2", "--page-token", first["next_token"]
    )
    assert [p["id"] for p in rest["items"]] == ["p2"]
    assert rest["next_token"] is None
    assert "--page-token" in dq(workspace, "actions", "list", "--limit", "2").stdout


@pytest.mark.parametrize(
    "command", [[], ["jobs"], ["actions"], ["runs"], ["quickstart"], ["jobs", "save"]]
)
def test_every_command_explains_itself(workspace: Path, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *command, "--help"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    if command[-1:] in (["save"], ["quickstart"]):
        for option in ("--tenant", "--env", "--config", "--json"):
            assert option in done.stdout
