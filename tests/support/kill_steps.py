"""Die at the k-th system call of a filesystem write: the step-kill harness.

A test forks a child that opens the scope, calls :func:`sigkill_at_call` and then
writes; the child SIGKILLs itself just before its ``step``-th call of any of
``calls``, for k = 1, 2, ... until a write completes. Shared by the filesystem
step tests (commit, replace, replace markers, lost staged files, rollbacks).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["STEP_CALLS", "sigkill_at_call"]

#: The ``os`` functions a filesystem write's steps go through.
STEP_CALLS = (
    "pwrite",
    "fsync",
    "link",
    "replace",
    "ftruncate",
    "unlink",
    "rename",
    "chmod",
    "fchmod",
)


def sigkill_at_call(
    step: int,
    calls: Sequence[str] = STEP_CALLS,
    *,
    before: Callable[[str], None] | None = None,
) -> None:
    """Patch ``os`` in this process: the ``step``-th call of any of ``calls``
    SIGKILLs the process first. ``before(name)`` runs before every real call (a
    slow disk, say). Call only in a child process that is meant to die."""
    seen = 0

    def counting(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal seen
            seen += 1
            if seen == step:
                os.kill(os.getpid(), signal.SIGKILL)
            if before is not None:
                before(name)
            return real(*args, **kwargs)

        return call

    for name in calls:
        setattr(os, name, counting(name, getattr(os, name)))
