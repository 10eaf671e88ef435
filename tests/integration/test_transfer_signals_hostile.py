"""Hostile tests of ``dq migrate`` under signals, with its background writer.

SIGINT, SIGTERM and SIGKILL at random points of a migration into SQLite and
PostgreSQL: the process exits promptly (130 and ``error: interrupted`` for
Ctrl-C, no traceback), and running it again ends verified, without duplicates.
Ctrl-C while the PostgreSQL write waits on a lock held by someone else: inline
writes exit at once (psycopg cancels the statement); the background writer's
statement cannot be cancelled from the reading thread, so the transfer waits for it
at most ``_sink.INTERRUPT_GRACE`` seconds and then exits (the batch ends whole or
absent; running again resumes).
"""

from __future__ import annotations

import contextlib
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
from tests.integration.test_transfer_writer_hostile import _fill, _keys
from tests.support.postgres import wait_for_lock_wait

from dq_registries.operations.transfer import open_endpoint


def _cli_config(path: Path, kind: str, url: str | None = None) -> Path:
    if kind == "postgres":
        body: dict[str, Any] = {"default_backend": "postgres", "postgres": {"url": url}}
    elif kind == "filesystem":
        body = {"default_backend": "filesystem", "filesystem": {"root": str(path)}}
    else:
        body = {"default_backend": "sqlite", "sqlite": {"url": f"sqlite:///{path}.sqlite3"}}
    body["results"] = {"inline_limit_bytes": 64}
    config = path.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(body))
    return config


def _cli_migrate(source: Any, target: Any, *extra: str, inline: bool = False) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    code = (
        "import sys\nfrom dq_registries.operations.transfer import _sink\n"
        f"_sink.BACKGROUND_WRITES = {not inline}\n"
        "from dq_registries.cli import main\n"
        "sys.stderr.write('started\\n')\nsys.stderr.flush()\n"
        "sys.argv[0] = 'dq'\nmain()\n"
    )
    args = ["migrate", "--from", str(source), "--to", str(target), "--json", *extra]
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _bulk_source(tmp_path: Path, keys: int) -> Any:
    source = _cli_config(tmp_path / "src", "filesystem")
    with open_endpoint(source) as src:
        populate(src)
        for scope in SCOPES[:2]:
            _fill(src.backend, scope, _keys(keys))
    return source


def _ended_verified(source: Any, target: Any) -> None:
    final = _cli_migrate(source, target, "--verify")
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    report = json.loads(out)
    assert report["ok"]
    assert report["verified"] is True
    assert report["conflicts"] == []
    assert report["keys_skipped"] + report["keys_written"] == report["keys"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "rounds",
    [pytest.param(1, id="1-round"), pytest.param(3, id="3-rounds", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize(
    "target_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigint_sigterm_sigkill_mid_migration_exit_promptly_and_resume(
    tmp_path: Path, target_kind: str, rounds: int, request: pytest.FixtureRequest
) -> None:
    """Each round sends SIGINT, SIGTERM and SIGKILL to three runs, each at a random
    point of a full migration's time; one round by default, three with ``-m slow``."""
    url = request.getfixturevalue("postgres_url") if target_kind == "postgres" else None
    source = _bulk_source(tmp_path, 1500)
    target = _cli_config(tmp_path / "dst", target_kind, url)
    started = time.monotonic()
    _ended_verified(source, _cli_config(tmp_path / "reference", "sqlite"))
    full = time.monotonic() - started
    rng = random.Random(13)
    for sig in [signal.SIGINT, signal.SIGTERM, signal.SIGKILL] * rounds:
        proc = _cli_migrate(source, target)
        # a signal during the interpreter's start-up is Python's own to report
        assert proc.stderr.readline() == "started\n"
        time.sleep(rng.uniform(0, full))
        sent = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        if proc.returncode == 0:
            continue  # it had finished
        assert took < 5, f"{sig!r}: the process took {took:.1f}s to exit"
        if sig == signal.SIGINT:
            assert proc.returncode in (130, -signal.SIGINT), err
            assert "error: interrupted" in err, (proc.returncode, took, err)
            assert "Traceback" not in err, err
        else:
            assert proc.returncode == -sig, err
    _ended_verified(source, target)


@pytest.mark.postgres
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "inline",
    [
        pytest.param(True, id="inline"),
        pytest.param(False, id="background"),
    ],
)
def test_ctrl_c_while_the_postgres_write_waits_on_a_lock_exits_promptly(
    tmp_path: Path, postgres_url: str, postgres_admin_url: str, inline: bool
) -> None:
    import psycopg

    from dq_stores.sql import SqlBackend

    source = _bulk_source(tmp_path, 300)
    target = _cli_config(tmp_path / "dst", "postgres", postgres_url)
    SqlBackend(postgres_url).close()  # the schema, created
    with psycopg.connect(postgres_admin_url) as locker:
        locker.execute("LOCK TABLE dq_heads IN ACCESS EXCLUSIVE MODE")  # held until rollback
        proc = _cli_migrate(source, target, inline=inline)

        def running() -> None:
            assert proc.poll() is None, proc.communicate()

        wait_for_lock_wait(
            postgres_admin_url, "query LIKE 'WITH s AS MATERIALIZED%%'", still=running, timeout=75
        )
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):  # still waiting on the lock
            proc.wait(timeout=15)
        took = time.monotonic() - sent
        locker.rollback()
    _out, err = proc.communicate(timeout=60)
    assert took < 10, f"Ctrl-C: dq migrate was still running {took:.0f}s later"
    assert proc.returncode in (130, -signal.SIGINT), err
    _ended_verified(source, target)
