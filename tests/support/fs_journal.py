"""Leave a filesystem scope with a *decided* journal: its writer SIGKILLed at the
fsync of its commit (or replace) journal — the commit point — before it raised the
applying flag. Shared by the decided-commit tests (ADR 0002, "Reads never complete
a commit")."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.filesystem import FilesystemBackend

__all__ = ["flag", "kill_at_journal", "note", "scope_dir"]

Action = Callable[[FilesystemBackend], Any]


def scope_dir(root: Path, scope: Scope) -> Path:
    return root / scope.tenant / scope.environment


def note(root: Path, scope: Scope) -> bytes:
    """The scope's note: the lock file's first line (empty: none)."""
    return (scope_dir(root, scope) / ".lock").read_bytes().split(b"\n")[0]


def flag(root: Path, scope: Scope) -> int:
    """The applying flag's byte (0: down)."""
    return (scope_dir(root, scope) / ".applying").read_bytes()[0]


def _die_at_journal_fsync(root: str, scope: Scope, prefix: bytes, action: Action) -> None:
    backend = FilesystemBackend(root)
    backend.count(scope, "any")  # open the scope first
    real_pwrite, real_fsync, written = os.pwrite, os.fsync, []

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        n = real_pwrite(fd, data, offset)
        if data.startswith(prefix):
            written.append(fd)
        return n

    def fsync(fd: int) -> None:
        if fd in written:
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.pwrite, os.fsync = pwrite, fsync  # type: ignore[assignment]
    action(backend)


def kill_at_journal(root: Path, scope: Scope, action: Action, prefix: bytes = b"commit ") -> None:
    """Run ``action`` in a forked child that SIGKILLs itself at the fsync of a note
    starting with ``prefix`` (``b"commit "`` or ``b"replace "``); assert the scope is
    left decided, flag down."""
    child = multiprocessing.get_context("fork").Process(
        target=_die_at_journal_fsync, args=(str(root), scope, prefix, action)
    )
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    assert note(root, scope).startswith(prefix)
    assert flag(root, scope) == 0
