"""Bad input ends as one ``error: ...`` line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOOD_JOB = {
    "id": "orders-check",
    "name": "Orders check",
    "job_type": "validation",
    "contract": {"id": "no-such-contract", "version": "1.0.0"},
    "dataset": "orders",
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "dq.yaml").write_text(
        yaml.safe_dump(
            {"default_backend": "filesystem", "filesystem": {"root": str(tmp_path / "s")}}
        )
    )
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n  name: x\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(GOOD_JOB))
    (tmp_path / "bad-job.yaml").write_text(yaml.safe_dump({**GOOD_JOB, "job_type": "magic"}))
    (tmp_path / "bad-config.yaml").write_text(yaml.safe_dump({"stores": {"results": "postgres"}}))
    return tmp_path


def dq(workspace: Path, *args: str, config: str = "dq.yaml") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args, "--config", str(workspace / config)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["jobs", "save", "missing.yaml"], "dq.yaml", "error: file not found: missing.yaml"),
        (["actions", "save", "broken.yaml"], "dq.yaml", "is not valid YAML 1.2: line 2"),
        (
            ["jobs", "save", "list.yaml"],
            "dq.yaml",
            "error: list.yaml: the top level must be a mapping",
        ),
        (["jobs", "save", "job.yaml"], "dq.yaml", "no-such-contract"),
        (["jobs", "save", "bad-job.yaml"], "dq.yaml", "job_type"),
        (["jobs", "show", "ghost"], "dq.yaml", "error: "),
        (["contracts", "show", "no-such-contract"], "dq.yaml", "no-such-contract"),
        (["contracts", "latest", "no-such-dataset"], "dq.yaml", "no-such-dataset"),
        (["runs", "show", "run-ghost"], "dq.yaml", "error: "),
        (
            ["jobs", "list"],
            "bad-config.yaml",
            "error: invalid configuration: postgres.url: required because stores.results",
        ),
        (["jobs", "list"], "absent.yaml", "error: config file not found"),
    ],
)
def test_bad_input_fails_with_one_line_and_exit_code_1(
    workspace: Path, args: list[str], config: str, message: str
) -> None:
    done = dq(workspace, *args, config=config)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert done.stdout == ""


def test_unknown_contract_reference_names_it(workspace: Path) -> None:
    done = dq(workspace, "jobs", "save", "job.yaml")
    assert "no-such-contract" in done.stderr
    listed = dq(workspace, "jobs", "list", "--json")
    assert '"items": []' in listed.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--since", "yesterday"],
        ["jobs", "list", "--tenant", "Bad Tenant!"],
        ["runs", "list", "--env", "../prod"],
        ["actions", "list", "--type", "fax"],
        ["jobs", "list", "--no-such-option"],
        ["jobs", "show"],
    ],
)
def test_usage_errors_exit_with_2(workspace: Path, args: list[str]) -> None:
    done = dq(workspace, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_a_failed_save_writes_nothing(workspace: Path) -> None:
    dq(workspace, "jobs", "save", "bad-job.yaml")
    listed = dq(workspace, "jobs", "list", "--json")
    assert listed.returncode == 0
    assert '"items": []' in listed.stdout
