"""Kill ``dq migrate`` with SIGKILL at random points, run it again: it finishes the job.

The target ends verified against the source (counts and digests per scope: a
duplicate or missing revision would change both), exactly as an uninterrupted
migration leaves it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration._transfer_world import SCOPES, populate

from dq_registries.operations.transfer import open_endpoint, tally_endpoint
from dq_stores.documents import DocumentWrite
from dq_stores.testing._helpers import doc

BULK = 400  # raw documents per scope: enough for a migration to be caught mid-way


def _config(path: Path, kind: str) -> Path:
    if kind == "filesystem":
        body: dict[str, Any] = {"default_backend": "filesystem", "filesystem": {"root": str(path)}}
    else:
        body = {"default_backend": "sqlite", "sqlite": {"url": f"sqlite:///{path}.sqlite3"}}
    body["results"] = {"inline_limit_bytes": 64}
    config = path.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(body))
    return config


def _dq(*args: str, quiet: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-m", "dq_registries.cli", *args],
        env=env,
        stdout=out,
        stderr=out,
        text=True,
    )


def _migrate(source: Path, target: Path, *extra: str, quiet: bool = False) -> subprocess.Popen[str]:
    args = ["migrate", "--from", str(source), "--to", str(target), "--json", *extra]
    return _dq(*args, quiet=quiet)


def _timed(proc: subprocess.Popen[str]) -> float:
    started = time.monotonic()
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return time.monotonic() - started


def _writes(scope_index: int) -> list[DocumentWrite]:
    return [doc(f"bulk-{scope_index}-{i}", i, sort_key=f"{i:06d}", tag="bulk") for i in range(BULK)]


# Runs each killed somewhere within a full migration's time: the test lasts about
# kills x (a migration), which a loaded machine stretches past the default timeout.
# Six kills by default (the suite runs on 2 cores); twenty with the long variants.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    "kills",
    [pytest.param(6, id="6-kills"), pytest.param(20, id="20-kills", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize(
    ("source_kind", "target_kind"), [("filesystem", "sqlite"), ("sqlite", "filesystem")]
)
def test_migration_killed_many_times_then_resumed_ends_verified(
    tmp_path: Path, source_kind: str, target_kind: str, kills: int
) -> None:
    source, target = _config(tmp_path / "src", source_kind), _config(tmp_path / "dst", target_kind)
    with open_endpoint(source) as src:
        populate(src)
        for i, scope in enumerate(SCOPES):
            src.backend.put_many(scope, "bulk", _writes(i))
            src.backend.put_many(scope, "bulk", _writes(i)[::3])  # second revisions
    startup = _timed(_dq("--version"))
    full = _timed(_migrate(source, _config(tmp_path / "reference", target_kind)))
    print(f"start-up {startup:.2f}s, full migration {full:.2f}s")

    # Kills land anywhere from the end of start-up to the end of a full run; a run
    # that resumes skips what is there and gets further, so later kills hit later
    # points too. A run that finishes before its kill is fine: the next one skips all.
    rng = random.Random(1313)
    for _ in range(kills):
        proc = _migrate(source, target, quiet=True)
        time.sleep(rng.uniform(startup * 0.8, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    final = _migrate(source, target, "--verify")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    report = json.loads(out)
    assert report["ok"]
    assert report["verified"] is True
    assert report["conflicts"] == []
    assert report["keys_skipped"] + report["keys_written"] == report["keys"]

    problems: list[str] = []
    with (
        open_endpoint(_config(tmp_path / "reference", target_kind)) as ref,
        open_endpoint(target) as dst,
    ):
        assert tally_endpoint(dst, SCOPES, problems) == tally_endpoint(ref, SCOPES, problems)
    assert problems == []
