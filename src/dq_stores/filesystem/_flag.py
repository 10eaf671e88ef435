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

Beside it, bytes 8..15 hold the scope's *replace generation*: a counter a
history replace (``_replace``) bumps — after raising the flag, before its first
visible change — because a replace, unlike every other write, swaps revision
files that lock-free readers follow. Readers of several files (``history``,
``get_revision``, ``query``, ``iter_documents``) note the generation before they
read and read again if it moved meanwhile (a seqlock), so none of them answers
from a mix of a key's old and new history.

The flag file is ``<scope>/.applying`` (a few zero bytes when idle). It lives in
the page cache: after a power loss it may be stale either way, which is harmless
— the first process to open the scope replays the note and lowers the flag.
"""

from __future__ import annotations

import mmap
import os

__all__ = ["FLAG_FILE", "GENERATION", "ApplyFlag"]

FLAG_FILE = ".applying"
_SIZE = 64
#: Where the replace generation lives in the mapping (8 bytes, little-endian).
GENERATION = slice(8, 16)
_O_FLAG = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class ApplyFlag:
    """The mapped flag of one scope. Create only once the scope directory exists.

    ``view[0]`` is the flag itself (non-zero: applying); readers index it directly.
    ``view[GENERATION]`` is the replace generation (compared as bytes by readers).
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

    def bump(self) -> None:
        """Hold the scope lock, flag raised: revision files are about to be swapped."""
        value = int.from_bytes(self.view[GENERATION], "little") + 1
        self.view[GENERATION] = (value & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")

    @property
    def raised(self) -> bool:
        return self.view[0] != 0

    def close(self) -> None:
        self.view.close()
