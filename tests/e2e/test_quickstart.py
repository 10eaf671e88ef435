"""``dq quickstart`` in a subprocess: what it stores, and that a re-run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dq_metadata.models import RunStatus
from dq_registries import DQContext
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem.results import FilesystemResultsStore


def run_dq(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def quickstart(tmp_path: Path, *extra: str) -> dict[str, Any]:
    done = run_dq("quickstart", "--dir", str(tmp_path / "qs"), "--json", *extra, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def outcomes(result: dict[str, Any]) -> dict[str, str]:
    return {s["step"]: s["outcome"] for s in result["steps"]}


def test_quickstart_stores_contracts_definitions_runs_and_reports(tmp_path: Path) -> None:
    result = quickstart(tmp_path)
    assert result["scope"] == "demo/dev"
    steps = outcomes(result)
    assert steps["publish orders 1.1.0 without 'gift_wrap' (breaking)"] == "refused"
    assert steps["publish orders 2.0.0 (major bump)"] == "published"
    assert steps["validate orders-clean.csv"] == "succeeded"
    assert steps["validate orders-broken.csv"] == "failed"

    root = tmp_path / "qs" / ".dq"
    backend = FilesystemBackend(root)
    with DQContext.create(
        "demo", "dev", backend=backend, results=FilesystemResultsStore(root)
    ) as dq:
        assert dq.contracts.get("orders", "1.0.0").status == "deprecated"
        latest = dq.contracts.get_latest_for_dataset("orders")
        assert latest.version == "2.0.0"
        assert [p["name"] for p in latest.contract.to_odcs()["schema"][0]["properties"]][
            -1
        ] == "status"
        assert dq.actions.get("notify-data-team").action_type == "send_notification"
        job = dq.jobs.get("orders-daily-validation")
        assert job.on_failure == ["notify-data-team"]
        runs = {r.item.status: r.item for r in dq.runs.list(job_id=job.id).items}
        assert set(runs) == {RunStatus.SUCCEEDED, RunStatus.FAILED}
        failed = runs[RunStatus.FAILED]
        assert {c.name: c.passed for c in failed.checkpoint_results} == {
            "has rows": True,
            "all columns present": True,
            "required values": False,
            "types": False,
            "unique order ids": False,
        }
        assert failed.metrics["rows"] == 4
        assert len(dq.runs.list_reports(dataset="orders").items) == 2
    backend.close()
    assert (tmp_path / "qs" / "data" / "orders-clean.csv").is_file()
    assert (tmp_path / "qs" / "dq.yaml").is_file()


def test_running_quickstart_again_changes_nothing(tmp_path: Path) -> None:
    first = quickstart(tmp_path)
    second = quickstart(tmp_path)
    steps = outcomes(second)
    assert steps["publish orders 1.0.0"] == "already published"
    assert steps["publish orders 2.0.0 (major bump)"] == "already published"
    assert steps["deprecate orders 1.0.0"] == "already deprecated"
    assert steps["publish orders 2.1.0 without 'status' (breaking)"] == "refused"
    assert steps["save job definition"] == "unchanged"
    assert steps["validate orders-clean.csv"] == "already recorded: succeeded"
    assert second["stored"] == first["stored"]


def test_quickstart_prints_tables_and_its_config_drives_the_cli(tmp_path: Path) -> None:
    done = run_dq("quickstart", "--dir", str(tmp_path / "qs"), "--tenant", "shop", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Contract versions" in done.stdout
    assert "Job runs" in done.stdout
    assert "[error]" in done.stdout  # change severities are data, never rich markup
    config = str(tmp_path / "qs" / "dq.yaml")
    listed = run_dq("runs", "list", "--config", config, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["items"]) == 2
    other_tenant = run_dq(
        "runs", "list", "--config", config, "--tenant", "demo", "--json", cwd=tmp_path
    )
    assert json.loads(other_tenant.stdout)["items"] == []
