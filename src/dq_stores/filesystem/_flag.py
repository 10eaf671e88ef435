"""The scope's *applying* flag: one byte shared by every process through ``mmap``.

A writer raises it (under the scope lock) just before its first visible change —
renaming a head — and lowers it once the index agrees with the heads again.
Readers look at it before every read (an ``mmap`` index: ~40 ns, no system call):
raised means a writer is making changes visible right now, or died doing so; the
reader then takes the scope lock (waiting for a live writer to finish) and, if the
flag is still raised, finishes the dead writer's work from its note (see
``_recovery``) before it reads. So a reader never answers from a half-applied
commit, and ``get`` and ``query`` never disagree after a writer is killed, even in
a process that had the scope open all along.

The flag file is ``<scope>/.applying`` (a few zero bytes when idle). It lives in
the page cache: after a power loss it may be stale either way, which is harmless
— the first process to open the scope replays the note and lowers the flag.
"""

from __future__ import annotations

import mmap
import os

__all__ = ["FLAG_FILE", "ApplyFlag"]

FLAG_FILE = ".applying"
_SIZE = 64
_O_FLAG = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class ApplyFlag:
    """The mapped flag of one scope. Create only once the scope directory exists.

    ``view[0]`` is the flag itself (non-zero: applying); readers index it directly.
    """

    __slots__ = ("view",)

    def __init__(self, scope_dir: str) -> None:
        fd = os.open(f"{scope_dir}/{FLAG_FILE}", _O_FLAG, 0o644)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)  # only ever grows it: a raised flag survives
            self.view = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def raise_(self) -> None:
        """Hold the scope lock: visible changes follow."""
        self.view[0] = 1

    def lower(self) -> None:
        """Hold the scope lock: heads and index agree again."""
        self.view[0] = 0

    @property
    def raised(self) -> bool:
        return self.view[0] != 0

    def close(self) -> None:
        self.view.close()
