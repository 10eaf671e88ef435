"""Fork writers of transfer commits into one SQLite database and SIGKILL them at random.

    python _sqlite_crash_writer.py DB_PATH KILLS SEED

Runs as its own process (a "zygote" with no threads, so forking is safe): it
imports the backend once, then keeps ``WRITERS`` forked children committing
transfers and kills one of them after a random delay, ``KILLS`` times. Each
child writes ``r`` to its pipe once its backend is open (the zygote waits for
it), then ``b`` before each transfer (read + commit) and ``c`` after it, so a kill
with more ``b`` than ``c`` read landed inside a transfer. Prints one JSON line of
counts. Every loop is bounded by ``KILLS``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sys
import time

from tests.integration._commit_workload import transfer

from dq_metadata.errors import ConflictError, NotFoundError
from dq_stores.sql import SqlBackend

WRITERS = 2


def _child(url: str, seed: int, pipe: int) -> None:
    rng = random.Random(seed)
    backend = SqlBackend(url, auto_create=False, connect_timeout=30)
    os.write(pipe, b"r")
    while True:
        os.write(pipe, b"b")
        with contextlib.suppress(ConflictError, NotFoundError):
            transfer(backend, rng)
        os.write(pipe, b"c")


def _spawn(url: str, seed: int) -> tuple[int, int]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read)
        try:
            _child(url, seed, write)
        finally:
            os._exit(3)
    os.close(write)
    # kill only writers that are running: wait until it opened its backend
    ready, _, _ = select.select([read], [], [], 60)
    if not ready or os.read(read, 1) != b"r":
        raise RuntimeError("a writer did not start")
    os.set_blocking(read, False)
    return pid, read


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def main(path: str, kills: int, seed: int) -> None:
    url = f"sqlite:///{path}"
    rng = random.Random(seed)
    SqlBackend(url, auto_create=False).close()  # import everything once, before forking
    children = [_spawn(url, seed * 1000 + i) for i in range(WRITERS)]
    counts = {"kills": 0, "in_commit": 0, "commits_done": 0, "exited_early": 0}
    for n in range(kills):
        time.sleep(rng.uniform(0.0, 0.03))
        slot = rng.randrange(WRITERS)
        pid, fd = children[slot]
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            counts["exited_early"] += 1
        progress = _drain(fd)
        os.close(fd)
        counts["kills"] += 1
        counts["commits_done"] += progress.count(b"c")
        if progress.count(b"b") > progress.count(b"c"):
            counts["in_commit"] += 1
        children[slot] = _spawn(url, seed * 1000 + WRITERS + n)
    for pid, fd in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
