"""SQLite writers SIGKILLed at random points of multi-document commits.

A separate process forks writers of transfer commits (``_sqlite_crash_writer``)
and kills them at random moments, hundreds of times. Meanwhile a long-lived
reader (one backend, pooled connections kept open) and fresh readers (a new
backend each time) check the invariants of every consistent read; afterwards a
fresh and the long-lived reader check everything (``check_quiescent``): a commit
is wholly visible or not at all, whatever moment its writer died at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.integration._commit_workload import (
    check_quiescent,
    check_snapshot,
    seed,
    snapshot,
    sqlite_placeholders,
)

import dq_stores
from dq_stores.sql import SqlBackend

ROOT = Path(__file__).resolve().parents[2]


def _run_writers(db: Path, kills: int, seed_: int, timeout: float) -> dict[str, int]:
    src = str(Path(dq_stores.__file__).resolve().parents[1])
    path = os.pathsep.join([str(ROOT), src, os.environ.get("PYTHONPATH", "")])
    module = "tests.integration._sqlite_crash_writer"
    done = subprocess.run(
        [sys.executable, "-m", module, str(db), str(kills), str(seed_)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def _readers(url: str, stop: threading.Event, seen: list[int], errors: list[BaseException]) -> None:
    """Check every consistent read while writers die: long-lived and fresh backends."""
    try:
        with SqlBackend(url) as long_lived:
            rounds = 0
            while not stop.is_set():
                seen.append(check_snapshot(snapshot(long_lived)))
                rounds += 1
                if rounds % 10 == 0:
                    with SqlBackend(url, auto_create=False) as fresh:
                        seen.append(check_snapshot(snapshot(fresh)))
                stop.wait(0.01)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def _crash_loop(tmp_path: Path, kills: int, seed_: int, timeout: float) -> None:
    db = tmp_path / "crash.sqlite"
    url = f"sqlite:///{db}"
    with SqlBackend(url) as setup:
        seed(setup)
    long_lived = SqlBackend(url)
    try:
        check_snapshot(snapshot(long_lived))  # its pooled connection is open from here on
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []
        watcher = threading.Thread(target=_readers, args=(url, stop, seen, errors))
        watcher.start()
        try:
            counts = _run_writers(db, kills, seed_, timeout)
        finally:
            stop.set()
            watcher.join(60)
        assert not errors, errors[0]
        print(f"{counts}, reads checked: {len(seen)}, transfers: {max(seen, default=0)}")
        assert counts["kills"] == kills, counts
        assert counts["exited_early"] == 0, counts
        assert counts["in_commit"] >= kills // 2, counts  # most kills land inside a transfer
        assert len(seen) >= 10
        with SqlBackend(url, auto_create=False) as fresh:
            tokens = check_quiescent(fresh)
        assert check_quiescent(long_lived) == tokens
        assert len(tokens) > 0
        assert sqlite_placeholders(str(db)) == 0
    finally:
        long_lived.close()


def test_writers_killed_mid_commit_leave_whole_commits_only(tmp_path: Path) -> None:
    _crash_loop(tmp_path, kills=220, seed_=20261130, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("seed_", [1, 2])
def test_writers_killed_mid_commit_many_times(tmp_path: Path, seed_: int) -> None:
    _crash_loop(tmp_path, kills=600, seed_=seed_, timeout=600)
