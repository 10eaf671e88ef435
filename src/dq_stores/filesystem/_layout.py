"""Where things live under the root, and the durable file primitives.

::

    <root>/<tenant>/<environment>/
        .lock                      flock: one writer per scope at a time
        index.sqlite3 (+ -wal/-shm) the derived index (see ``_index``)
        docs/<kind>/
            <name>.r<N>            revision N of the key encoded as <name>, immutable
            <name>.head            hard link to the newest revision (tombstones too)
            .<name>.tmp            a write in progress (removed by recovery)
            .<name>.x<N>           revision N of a history replace, staged (``_replace``)

A revision file is created owner-writable and **sealed** (every write bit
cleared, :func:`seal`) once a later revision superseded it: a head whose file
has no owner-write bit is an old revision put back (a rollback; ADR 0002).

``<name>`` is :func:`dq_stores.keys.encode_key` of the key: only ``[a-z0-9_-]``,
never ``.``, so suffixes cannot be confused and no name can leave its directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import stat
from functools import lru_cache

from dq_metadata.errors import InvalidScopeError
from dq_metadata.scope import Scope
from dq_stores.keys import encode_key

__all__ = [
    "Layout",
    "fsync_dir",
    "make_dirs",
    "name_of",
    "read_file",
    "read_linked",
    "seal",
    "sealed",
    "sync_filesystem",
    "write_file",
    "write_new_file",
]

_COMPONENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_READ_CHUNK = 1 << 16
# O_NONBLOCK: opening a FIFO planted as a record must not wait for a writer (it
# changes nothing for a regular file); only regular files are then read at all.
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

_S_IWUSR = stat.S_IWUSR
_WRITE_BITS = 0o222
_S_IMODE, _S_ISREG = stat.S_IMODE, stat.S_ISREG

name_of = lru_cache(maxsize=65536)(encode_key)


def _component(value: str) -> str:
    # Scope and kind ids are validated upstream; this cheap re-check is what keeps
    # every path under the root even if a caller bypassed that validation.
    if not _COMPONENT.fullmatch(value) or ".." in value:
        raise InvalidScopeError(f"unsafe path component {value!r}")
    return value


class Layout:
    """Path arithmetic for one root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))

    def scope_dir(self, scope: Scope) -> str:
        return os.path.join(self.root, _component(scope.tenant), _component(scope.environment))

    def kind_dir(self, scope_dir: str, kind: str) -> str:
        return os.path.join(scope_dir, "docs", _component(kind))

    @staticmethod
    def head(kind_dir: str, key: str) -> str:
        return f"{kind_dir}/{name_of(key)}.head"

    @staticmethod
    def revision(kind_dir: str, key: str, revision: int) -> str:
        return f"{kind_dir}/{name_of(key)}.r{revision}"

    @staticmethod
    def temp(kind_dir: str, key: str) -> str:
        return f"{kind_dir}/.{name_of(key)}.tmp"

    @staticmethod
    def staged(kind_dir: str, key: str, revision: int) -> str:
        return f"{kind_dir}/.{name_of(key)}.x{revision}"


def read_file(path: str) -> bytes:
    """The whole file (``FileNotFoundError`` passes through for the caller to judge).

    Anything but a regular file (a FIFO, device, socket or directory in a record's
    place) reads as empty — never blocks, never streams — and so fails the record's
    checks as damaged."""
    return read_file_mode(path)[0]


def read_file_mode(path: str) -> tuple[bytes, int]:
    """The whole file, as :func:`read_file`, and its ``st_mode`` (one ``fstat``)."""
    fd = os.open(path, _O_READ)
    try:
        mode = os.fstat(fd).st_mode
        if not _S_ISREG(mode):
            return b"", mode
        data = os.read(fd, _READ_CHUNK)
        if len(data) < _READ_CHUNK:
            return data, mode
        parts = [data]
        while chunk := os.read(fd, _READ_CHUNK):
            parts.append(chunk)
        return b"".join(parts), mode
    finally:
        os.close(fd)


def read_linked(path: str) -> tuple[bytes, os.stat_result]:
    """The whole file and its ``fstat`` (``FileNotFoundError`` passes through); not a
    regular file: ``b""`` (as :func:`read_file`)."""
    fd = os.open(path, _O_READ)
    try:
        st = os.fstat(fd)
        if not _S_ISREG(st.st_mode):
            return b"", st
        data = os.read(fd, _READ_CHUNK)
        if len(data) == _READ_CHUNK:
            parts = [data]
            while chunk := os.read(fd, _READ_CHUNK):
                parts.append(chunk)
            data = b"".join(parts)
        return data, os.fstat(fd)
    finally:
        os.close(fd)


def sealed(mode: int) -> bool:
    """Whether a file of ``st_mode`` ``mode`` is sealed: no owner-write bit."""
    return not mode & _S_IWUSR


def seal(path: str) -> bool:
    """Seal the superseded revision file ``path``: clear its write bits (the content
    is untouched). ``True`` if it was unsealed; ``False`` if it is gone, sealed
    already or not a regular file. An ``lstat`` and a ``chmod``: writers call it
    once per superseded revision, after the head moved past it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not _S_ISREG(st.st_mode) or not st.st_mode & _WRITE_BITS:
        return False
    os.chmod(path, _S_IMODE(st.st_mode) & ~_WRITE_BITS)
    return True


def _set_mode(fd: int, *, sealed: bool) -> None:
    """Before the first byte is written (so ctime and mtime stay one clock reading):
    seal the new file, or make sure the owner may write it — a umask that strips
    the owner-write bit (``0o2xx``) would make every new revision read as sealed."""
    mode = os.fstat(fd).st_mode
    if sealed:
        if mode & _WRITE_BITS:
            os.fchmod(fd, _S_IMODE(mode) & ~_WRITE_BITS)
    elif not mode & _S_IWUSR:
        os.fchmod(fd, _S_IMODE(mode) | _S_IWUSR)


def write_file(path: str, data: bytes, *, sync: bool = True) -> None:
    """Create/truncate ``path`` (owner-writable) with ``data``, fsynced unless
    ``sync`` is False."""
    fd = os.open(path, _O_WRITE, 0o644)
    try:
        _set_mode(fd, sealed=False)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: str, data: bytes, *, sync: bool = True, sealed: bool = False) -> None:
    """Like :func:`write_file`, always as a new inode: an existing ``path`` (the
    leftover of a write that died; never a committed file) is unlinked first, so
    no other name that might share its inode is ever modified. ``sealed``: a
    revision that will never be a head (a restored or replaced history's older
    revisions) is created sealed."""
    try:
        fd = os.open(path, _O_CREATE, 0o644)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, _O_CREATE, 0o644)
    try:
        _set_mode(fd, sealed=sealed)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    """Make renames and links inside ``path`` durable."""
    fd = os.open(path, _O_DIR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str) -> None:
    """``mkdir -p path``, fsyncing each parent whose entries changed."""
    missing: list[str] = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            continue
        fsync_dir(os.path.dirname(directory))


@lru_cache(maxsize=1)
def _syncfs() -> object | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None)


def sync_filesystem(path: str) -> None:
    """Flush every dirty page of the filesystem holding ``path`` (bulk writes).

    One ``syncfs`` replaces thousands of per-file fsyncs; falls back to ``sync``.
    """
    func = _syncfs()
    if func is None:
        os.sync()
        return
    fd = os.open(path, _O_DIR)
    try:
        if func(fd) != 0:  # type: ignore[operator]
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)
