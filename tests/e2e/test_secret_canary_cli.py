"""Canary, CLI half: with a known PostgreSQL password, Azure account key and SAS in
the configuration file, no ``dq`` output (stdout, stderr, exit messages, ``--verbose``
lines, ``--json`` documents) shows one of them. The in-process half is
``tests/integration/test_secret_canary.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from tests.integration.test_secret_canary import canary_config, exercise_registries
from tests.support.canary import CanaryAzure, CanaryPostgres, Recorder, variants

pytestmark = [pytest.mark.postgres, pytest.mark.azure]


def dq(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DQ_")}
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_output_never_shows_the_canaries(
    canary_postgres: CanaryPostgres, canary_azure: CanaryAzure, tmp_path: Path
) -> None:
    wrong_password = "Wr0ng-cli-canary-4242"
    secrets = [canary_postgres.password, canary_azure.account_key, canary_azure.signature]
    config = canary_config(canary_postgres, canary_azure)
    recorder = Recorder(secrets)
    with recorder.active():
        run_id = exercise_registries(config, recorder)
    recorder.assert_clean()
    path = tmp_path / "dq.yaml"
    path.write_text(yaml.safe_dump(config))
    wrong_url = canary_postgres.url.replace(
        quote(canary_postgres.password, safe=""), wrong_password
    )
    wrong = dict(config, postgres={"url": wrong_url})
    wrong_path = tmp_path / "other.yaml"
    wrong_path.write_text(yaml.safe_dump(wrong))
    commands = [
        ("--verbose", "runs", "list", "--config", str(path)),
        ("runs", "show", run_id, "--json", "--config", str(path)),
        ("runs", "show", run_id, "--config", str(path)),
        ("runs", "show", "no-such-run", "--config", str(path)),
        ("config", "show", "--config", str(path)),
        ("db", "current", "--url", canary_postgres.url),
        ("--verbose", "jobs", "list", "--config", str(wrong_path)),
    ]
    outputs = []
    for command in commands:
        result = dq(tmp_path, *command)
        outputs.append((command, result.returncode, result.stdout + result.stderr))
    shown = json.loads(dq(tmp_path, "runs", "show", run_id, "--json", "--config", str(path)).stdout)
    obj = shown["run"]["result_object"]
    assert (obj["tenant"], obj["environment"], obj["run_id"]) == ("acme", "prod", run_id)
    assert "uri" not in obj
    assert [code for _, code, _ in outputs[:3]] == [0, 0, 0], outputs
    assert outputs[3][1] != 0
    if canary_postgres.enforced:
        assert outputs[6][1] != 0, outputs[6]  # the login was refused …
    forms = [form for secret in [*secrets, wrong_password] for form in variants(secret)]
    leaks = [(command, form) for command, _, text in outputs for form in forms if form in text]
    assert not leaks, leaks
    assert "***" in outputs[4][2]  # config show printed the URL, redacted
