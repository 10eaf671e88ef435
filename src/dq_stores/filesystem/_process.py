"""Per-process handles: scope locks and per-thread SQLite connections.

File locks (``flock``) belong to an open file description, which a forked child
shares with its parent, and SQLite connections must not cross a ``fork``. So all
handles live in one :class:`ProcessHandles` that the backend replaces when it
notices a new pid; the old one is kept, never closed, by the child (closing it
there could disturb the parent's locks).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ProcessHandles"]

_O_LOCK = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class ProcessHandles:
    """Locks, lock files and connections owned by one process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._lock_fds: dict[str, int] = {}
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self.ready: set[str] = set()  # scope dirs opened (and recovered) by this process
        self.known_dirs: set[str] = set()

    @contextmanager
    def exclusive(self, scope_dir: str) -> Iterator[int]:
        """Hold the scope's write lock against other threads and other processes.

        Yields the lock file's descriptor; the lock file doubles as the intent log.
        """
        with self._guard:
            lock = self._thread_locks.get(scope_dir)
            if lock is None:
                lock = self._thread_locks[scope_dir] = threading.Lock()
        with lock:
            fd = self._lock_fds.get(scope_dir)
            if fd is None:
                fd = self._lock_fds[scope_dir] = os.open(f"{scope_dir}/.lock", _O_LOCK, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def connection(self, path: str) -> sqlite3.Connection | None:
        conns: dict[str, sqlite3.Connection] | None = getattr(self._local, "conns", None)
        return None if conns is None else conns.get(path)

    def keep_connection(self, path: str, conn: sqlite3.Connection) -> None:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conns[path] = conn
        with self._guard:
            self._connections.append(conn)

    def drop_connection(self, path: str) -> None:
        """Close and forget this thread's connection to ``path`` (if any)."""
        conns: dict[str, sqlite3.Connection] | None = getattr(self._local, "conns", None)
        conn = None if conns is None else conns.pop(path, None)
        if conn is not None:
            with self._guard:
                self._connections.remove(conn)
            conn.close()

    def close(self) -> None:
        """Close every connection and lock file (call from the owning process only)."""
        with self._guard:
            connections, self._connections = self._connections, []
            fds, self._lock_fds = self._lock_fds, {}
            self.ready.clear()
        self._local = threading.local()
        for conn in connections:
            conn.close()
        for fd in fds.values():
            os.close(fd)
