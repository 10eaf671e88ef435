"""Filesystem document backend: the embedded default.

Documents are files (one immutable file per revision, a hard-linked ``head`` per
key); a per-scope SQLite database is the index. See ``_layout`` for the tree and
``docs/adr/0002-filesystem-layout-and-index.md`` for the crash-consistency
argument. Writers of one scope serialise on ``flock``; readers lock only when the
scope's applying flag (``_flag``) says a writer is making changes visible or died
doing so — then they wait for it, or finish its work, before they answer.
Readers of several files also compare the scope's replace generation before and
after and read again if a history replace (``_replace``) swapped files meanwhile.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from mmap import mmap
from typing import Any, Literal, TypeVar

from dq_metadata.errors import ConflictError, IntegrityError, MisconfiguredError, NotFoundError
from dq_metadata.scope import ID_PATTERN, Scope
from dq_stores.backend import DocumentBackend, check_pruned_start
from dq_stores.documents import (
    DocumentWrite,
    Expectation,
    FieldFilter,
    IndexEntry,
    Operation,
    PageCursor,
    Query,
    StoredDocument,
)
from dq_stores.filesystem import _accel, _restore
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._checks import _MAX_LINKED, IntegrityMixin
from dq_stores.filesystem._errors import translate, translated
from dq_stores.filesystem._flag import GENERATION, ApplyFlag
from dq_stores.filesystem._integrity import (
    agrees,
    check_chain,
    check_row,
    check_writable,
)
from dq_stores.filesystem._layout import (
    Layout,
    fsync_dir,
    make_dirs,
    name_of,
    read_file,
    read_file_mode,
    read_linked,
)
from dq_stores.filesystem._process import ProcessHandles
from dq_stores.filesystem._records import (
    Header,
    HeaderCache,
    Record,
    decode_header,
    decode_record,
)
from dq_stores.filesystem._recovery import boot_id, open_scope, replay_intent
from dq_stores.filesystem._replace import replace_histories
from dq_stores.filesystem._staging import stage
from dq_stores.filesystem._writes import commit_journal, commit_revisions
from dq_stores.filtering import check_expectation
from dq_stores.retention import PRUNED_KIND, check_unchanged, marker_key, parse_marker

__all__ = ["FilesystemBackend"]

BULK_BATCH = 512
ITER_BATCH = 256
_INDEX_FILE = "index.sqlite3"
_MAX_CACHED_DIRS = 4096
#: A head whose inode last changed within this window (s) after its record was
#: built is the link its writer made: no ``stat`` of its revision file needed.
_FRESH_MIN, _FRESH_MAX = -0.05, 1.0
_access, _F_OK = os.access, os.F_OK
#: A head without it is sealed: a superseded revision file (ADR 0002, "Seals").
_S_IWUSR = 0o200
_IDLE = b"\x00"  # the flag of a scope that does not exist yet: nothing to wait for


Durability = Literal["full", "process"]
DURABILITY_LEVELS: tuple[Durability, ...] = ("full", "process")
_C = TypeVar("_C")
_T = TypeVar("_T")


class _Moved(Exception):
    """An index row's revision is no longer the head: a writer committed since."""


def _age(ctime_ns: int, written_at: datetime) -> float:
    """Seconds from a record's write to its head inode's last change; ``inf`` (never
    fresh) for a naive time that local time cannot place (``datetime(1, 1, 1)``'s
    ``timestamp()`` raises in America/New_York) — a forged record, not ``get``'s error."""
    try:
        return ctime_ns / 1e9 - written_at.timestamp()
    except (ValueError, OverflowError, OSError):
        return float("inf")


def _stable(entry: Callable[[], tuple[_C, bytes | mmap]], read: Callable[[_C], _T]) -> _T:
    """``read`` what ``entry`` opens (waiting out an applying writer), again until
    no history replace swapped revision files meanwhile: the generation is noted
    before and compared after (a seqlock; see ``_flag`` and ``_replace``)."""
    while True:
        context, view = entry()
        generation = view[GENERATION]
        if view[0]:  # raised since: entry() waits for it
            continue
        try:
            result = read(context)
        except _Moved:
            continue  # a writer committed a key past the snapshot's revision: read again
        except (IntegrityError, NotFoundError):
            if view[GENERATION] != generation:
                continue  # files swapped under the read: not an answer
            raise
        if view[GENERATION] == generation:
            return result


def _has_docs(scope_dir: str) -> bool:
    """Whether the scope was ever written (its ``docs`` directory exists). Only a
    missing path means no: anything else in its place (a file, a symbolic link loop,
    a file where a parent directory belongs) raises ``OSError`` for the caller's
    ``translated`` to call damage, so reads never answer "empty" for it."""
    try:
        mode = os.stat(f"{scope_dir}/docs").st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory")
    return True


def _is_environment(path: str) -> bool:
    """An environment directory (one with ``docs``), or a damaged one: ``path`` or its
    ``docs`` is there but not a directory."""
    return os.path.lexists(f"{path}/docs") or not os.path.isdir(path)


def _check_root(root: str) -> None:
    """``MisconfiguredError`` unless ``root`` is a directory or does not exist yet."""
    try:
        is_dir = stat.S_ISDIR(os.stat(root).st_mode)
    except FileNotFoundError:
        return  # made by the first write
    except OSError as exc:
        raise MisconfiguredError(
            f"filesystem root {root!r} cannot be used: {os.strerror(exc.errno or 0)}"
        ) from None
    if not is_dir:
        raise MisconfiguredError(f"filesystem root {root!r} is not a directory")


def _writable(
    conn: sqlite3.Connection, scope: Scope, kind: str, kind_dir: str, key: str, head: Header | None
) -> None:
    """``check_writable`` for a write over ``head`` (``None``: no head yet)."""
    if head is None:
        check_writable(conn, scope, kind, kind_dir, key, 0, "")
    else:
        check_writable(conn, scope, kind, kind_dir, key, head.revision, head.digest)


class FilesystemBackend(IntegrityMixin, DocumentBackend):
    """Versioned documents under one root directory, indexed by SQLite per scope.

    ``restore_many(..., replace=True)`` swaps histories all-or-nothing per batch,
    crash-safe (a journal rolled forward; see ``_replace``).

    ``durability``: ``"full"`` (default) fsyncs every record and directory before a
    write returns — a returned write survives a power loss. ``"process"`` (for
    development and CI) skips the fsyncs: writes stay atomic and all-or-nothing
    against a crash of any process, but the last writes before a power loss or OS
    crash may be lost, like SQLite's ``synchronous=NORMAL``; a file torn by one
    still fails its sha256 check and reads as ``IntegrityError``, never as data.

    Raises:
        MisconfiguredError: ``durability`` is not ``"full"`` or ``"process"``; ``root``
            exists and is not a directory, or cannot be reached (a symbolic link
            loop, a file in its path, no permission). A missing root is created by
            the first write.
    """

    replaces_atomically = True

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability = "full") -> None:
        if durability not in DURABILITY_LEVELS:
            raise MisconfiguredError(
                f"filesystem durability must be 'full' or 'process', got {durability!r}"
            )
        self._durable = durability == "full"
        self._durability: Durability = durability
        self._layout = Layout(root)
        _check_root(self._layout.root)
        self._kind_dirs: dict[tuple[str, str, str], str] = {}
        # (kind dir, the scope's mapped applying flag) per (tenant, environment, kind)
        self._readers: dict[tuple[str, str, str], tuple[str, bytes | mmap]] = {}
        self._flags: dict[str, ApplyFlag] = {}
        self._headers = HeaderCache()
        # the C read of a head (None: pure Python; DQ_FS_NATIVE=0, or not built)
        self._read_head = _accel.read_head
        # heads checked in place: (ino, dev, record hash, ctime ns)
        self._linked: set[tuple[int, int, bytes, int]] = set()
        self._handles = ProcessHandles()
        self._inherited: list[ProcessHandles] = []

    @property
    def root(self) -> str:
        """The absolute root directory."""
        return self._layout.root

    @property
    def durability(self) -> Durability:
        """``"full"`` or ``"process"`` (see the class docstring)."""
        return self._durability

    def __repr__(self) -> str:
        if self._durable:
            return f"FilesystemBackend({self._layout.root!r})"
        return f"FilesystemBackend({self._layout.root!r}, durability={self._durability!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (functools.partial(FilesystemBackend, durability=self._durability),
                (self._layout.root,))  # fmt: skip

    def close(self) -> None:
        with translated("close"):
            self._process().close()
        self._readers.clear()
        flags, self._flags = self._flags, {}
        for flag in flags.values():
            flag.close()

    # -- process, connections, locking -----------------------------------------
    def _process(self) -> ProcessHandles:
        handles = self._handles
        if handles.pid != os.getpid():
            self._inherited.append(handles)  # the parent's: never use, never close here
            handles = self._handles = ProcessHandles()
        return handles

    def _index(self, scope: Scope, scope_dir: str, *, create: bool) -> sqlite3.Connection | None:
        """This thread's connection to the scope's index, opening the scope if needed.

        ``None`` when the scope was never written and ``create`` is False.
        """
        handles = self._process()
        path = f"{scope_dir}/{_INDEX_FILE}"
        conn = handles.connection(path)
        if conn is not None:
            return conn
        if scope_dir not in handles.ready:
            if not create and not _has_docs(scope_dir):
                return None
            make_dirs(scope_dir)
            self._open_scope(handles, scope, scope_dir, path)
        elif scope_dir not in self._flags:  # closed and reopened by another thread
            self._open_scope(handles, scope, scope_dir, path)
        conn = index.connect(path, durable=boot_id() is None, fsync=self._durable)
        handles.keep_connection(path, conn)
        return conn

    def _open_scope(self, handles: ProcessHandles, scope: Scope, scope_dir: str, path: str) -> None:
        """First use of a scope in this process: flag, schema, note replay, boot check."""
        with handles.exclusive(scope_dir) as lock_fd:
            flag = self._flags.get(scope_dir) or ApplyFlag(scope_dir)
            open_scope(path, scope, scope_dir, lock_fd, flag)
            self._flags[scope_dir] = flag
        handles.ready.add(scope_dir)

    def _await_writer(self, scope: Scope, scope_dir: str) -> None:
        """The flag is raised: wait for the writer holding the lock, or — if it died —
        finish its work (replay its note) before reading."""
        conn = self._index(scope, scope_dir, create=False)
        if conn is None:
            return
        flag = self._flags[scope_dir]
        with self._process().exclusive(scope_dir) as lock_fd:
            if flag.raised:
                replay_intent(conn, scope, scope_dir, lock_fd, flag)

    def _read_entry(self, scope: Scope, kind: str) -> tuple[str, bytes | mmap]:
        """``(kind dir, flag view)`` for a reader, after any applying writer is done.

        The first read of a scope in a process opens it (replaying what a dead
        writer left); a scope that does not exist yet is not cached.
        """
        with translated("read"):
            scope_dir = self._layout.scope_dir(scope)
            kind_dir = self._layout.kind_dir(scope_dir, kind)
            if self._index(scope, scope_dir, create=False) is None:
                return kind_dir, _IDLE
            flag = self._flags[scope_dir]
            if flag.raised:
                self._await_writer(scope, scope_dir)
            entry = (kind_dir, flag.view)
            if len(self._readers) >= _MAX_CACHED_DIRS:
                self._readers.clear()
            self._readers[(scope.tenant, scope.environment, kind)] = entry
            return entry

    def _reading(self, scope: Scope, kind: str) -> tuple[str, bytes | mmap]:
        """``(kind dir, flag view)``, once no writer is applying changes in the scope."""
        entry = self._readers.get((scope.tenant, scope.environment, kind))
        if entry is None or entry[1][0]:
            entry = self._read_entry(scope, kind)
        return entry

    def _reading_index(
        self, scope: Scope, scope_dir: str
    ) -> tuple[sqlite3.Connection | None, bytes | mmap]:
        """This thread's index connection (``None``: no such scope) and the flag view,
        once no writer is applying changes."""
        conn = self._index(scope, scope_dir, create=False)
        if conn is None:
            return None, _IDLE
        flag = self._flags[scope_dir]
        if flag.raised:
            self._await_writer(scope, scope_dir)
        return conn, flag.view

    @contextmanager
    def _writing(
        self, scope: Scope, kind: str
    ) -> Iterator[tuple[sqlite3.Connection, str, int, ApplyFlag]]:
        kind_dir = self._kind_dir(scope, kind)
        scope_dir = kind_dir[: -len(kind) - len("/docs/")]  # kind_dir is <scope_dir>/docs/<kind>
        handles = self._process()
        if kind_dir not in handles.known_dirs:
            make_dirs(kind_dir)
            handles.known_dirs.add(kind_dir)
        conn = self._index(scope, scope_dir, create=True)
        assert conn is not None
        with handles.exclusive(scope_dir) as lock_fd:
            flag = self._flags[scope_dir]
            replay_intent(conn, scope, scope_dir, lock_fd, flag)  # a writer died holding it
            yield conn, kind_dir, lock_fd, flag

    def _kind_dir(self, scope: Scope, kind: str) -> str:
        # Keyed by the strings: a tuple of str hashes faster than a dataclass Scope.
        cache_key = (scope.tenant, scope.environment, kind)
        found = self._kind_dirs.get(cache_key)
        if found is None:
            if len(self._kind_dirs) >= _MAX_CACHED_DIRS:
                self._kind_dirs.clear()
            found = self._layout.kind_dir(self._layout.scope_dir(scope), kind)
            self._kind_dirs[cache_key] = found
        return found

    # -- reads ---------------------------------------------------------------
    def _get(self, scope: Scope, kind: str, key: str) -> StoredDocument:
        entry = self._readers.get((scope.tenant, scope.environment, kind))
        if entry is None or entry[1][0]:  # first read here, or a writer is applying
            entry = self._read_entry(scope, kind)
        base = f"{entry[0]}/{name_of(key)}"  # Layout.head / Layout.revision, inlined
        native = self._read_head
        try:
            if native is None:
                data, st = read_linked(base + ".head")
            else:
                got = native(
                    base, scope, kind, key, self._linked, _FRESH_MIN, _FRESH_MAX, _MAX_LINKED
                )
        except FileNotFoundError:
            # history without a head, or a head the index knows: removed, or racing
            if os.path.exists(base + ".r1") or self._known(scope, entry[0], kind, key):
                doc: StoredDocument = self._settled_head(scope, kind, key).doc
                if not doc.deleted:
                    return doc
            raise NotFoundError(f"{kind} {key!r} not found in {scope}") from None
        except OSError as exc:
            raise translate(exc, "get") from exc
        # Fast tamper checks, once per version of a head (then a set lookup): the head
        # is a hard link of its own revision file, made head moments after its record
        # was built, and no later revision file exists. Its inode is checked against its
        # revision file's (one stat); a head whose inode changed long after (copied
        # over in place, replaced, a restore) also against the index; a next revision
        # file (a rollback: ln -f r1 head, an old copy — or a writer in flight, or a
        # power loss's uncommitted file) sends the read to the lock path, which
        # decides against the index. The key holds
        # the inode's ctime: linking or copying an old revision over the head changes
        # it, so a rollback to a version seen before is checked again. A head without
        # the owner-write bit is sealed — a superseded revision put back, or (a race)
        # the old head a writer sealed after moving past it: decided under the lock.
        # A head with other than two names (itself and its revision file) is a copy or
        # a file whose revision file was removed: checked as a head that is not fresh.
        # ``state`` (see _native.c): 0 passed before, 1 passed now (fresh, writable, two
        # names, r<N>'s inode: C skips the next-file probe, ADR 0016), 3 to check.
        if native is not None and len(got) == 5:  # verified and state found in C
            doc, inode, mode, nlink, state = got
        else:
            if native is not None:  # anything unusual: Python decides (and words the error)
                data, ino, dev, ctime_ns, mode, nlink = got
            else:
                ino, dev, ctime_ns = st.st_ino, st.st_dev, st.st_ctime_ns
                mode, nlink = st.st_mode, st.st_nlink
            doc = decode_record(data, scope, kind, key, self._headers)
            inode = (ino, dev, data[:64], ctime_ns)
            state = 0 if mode & _S_IWUSR and inode in self._linked else 3
        if state == 3:  # not checked yet (C says so of a sealed, copied or not fresh head)
            age = _age(inode[3], doc.written_at)
            if not mode & _S_IWUSR:
                doc = self._settled_head(scope, kind, key).doc  # raises if still sealed
            elif not self._is_linked(base, doc.revision, inode) or (
                (nlink != 2 or not _FRESH_MIN <= age <= _FRESH_MAX)
                and not agrees(doc, self._known(scope, entry[0], kind, key))
            ):
                # not its revision file's inode (a copy, or a copy over the head in place
                # with a second name elsewhere), or relinked long after its record was
                # written and not what the index knows: a restore or copy, or a rollback
                # that deleted the newer revision files — only the index and seals know
                doc = self._settled_head(scope, kind, key).doc
            elif _access(f"{base}.r{doc.revision + 1}", _F_OK):
                doc = self._past_head(scope, kind, key, base, doc, inode)
            else:
                self._remember_linked(inode)
        if doc.deleted:
            raise NotFoundError(f"{kind} {key!r} not found in {scope}")
        return doc

    def _head(self, kind_dir: str, kind: str, key: str) -> Header | None:
        try:
            data = read_file(Layout.head(kind_dir, key))
        except FileNotFoundError:
            return None
        return decode_header(data, kind, key)

    def _read_indexed(
        self, scope: Scope, kind: str, kind_dir: str, key: str, revision: int
    ) -> StoredDocument:
        """Revision ``revision`` of ``key`` as an index row names it: it must be the
        head. A next revision file (an edited row, a rollback — or a writer in flight
        or committed since the snapshot, or a power loss's leftover) or a sealed file (a
        superseded revision: a rolled-back head and index, or a writer that moved past
        it since the snapshot) is decided under the lock: ``IntegrityError`` if head and
        index disagree or the head is sealed, a retry (``_Moved``) if the head
        legitimately moved on or a history replace swapped its files. A missing file
        too: ``IntegrityError`` if it is still the head's, a retry if a writer moved
        past it and ``prune_history`` removed it since the snapshot."""
        path = Layout.revision(kind_dir, key, revision)
        try:
            data, mode = read_file_mode(path)
        except FileNotFoundError:
            if self._settled_head(scope, kind, key).doc.revision != revision:
                raise _Moved from None  # moved on, then pruned: read again
            raise IntegrityError(f"{kind} {key!r}: revision {revision} is missing") from None
        doc = self._decoded_revision(data, scope, kind, key, revision)
        if not mode & _S_IWUSR or _access(Layout.revision(kind_dir, key, revision + 1), _F_OK):
            settled = self._settled_head(scope, kind, key)
            if settled.doc != doc:  # moved on, or its history was replaced meanwhile
                raise _Moved
        return doc

    def _read_revision(
        self, scope: Scope, kind: str, kind_dir: str, key: str, revision: int
    ) -> StoredDocument:
        try:
            data = read_file(Layout.revision(kind_dir, key, revision))
        except FileNotFoundError:
            raise IntegrityError(f"{kind} {key!r}: revision {revision} is missing") from None
        return self._decoded_revision(data, scope, kind, key, revision)

    def _decoded_revision(
        self, data: bytes, scope: Scope, kind: str, key: str, revision: int
    ) -> StoredDocument:
        doc = decode_record(data, scope, kind, key, self._headers)
        if doc.revision != revision:
            raise IntegrityError(f"{kind} {key!r}: revision {revision} holds another revision")
        return doc

    def _get_revision(self, scope: Scope, kind: str, key: str, revision: int) -> StoredDocument:
        return _stable(
            lambda: self._reading(scope, kind),
            lambda kind_dir: self._revision_of_head(scope, kind, kind_dir, key, revision),
        )

    def _revision_of_head(
        self, scope: Scope, kind: str, kind_dir: str, key: str, revision: int
    ) -> StoredDocument:
        with translated("get_revision"):
            head = self._checked_head(scope, kind, kind_dir, key).doc
            if revision > head.revision:
                raise NotFoundError(f"{kind} {key!r} has no revision {revision} in {scope}")
            try:
                return self._read_revision(scope, kind, kind_dir, key, revision)
            except IntegrityError:
                if revision < self._first_kept(scope, kind, kind_dir, key):
                    raise NotFoundError(
                        f"{kind} {key!r} revision {revision} was pruned in {scope}"
                    ) from None
                raise

    def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        return _stable(
            lambda: self._reading(scope, kind),
            lambda kind_dir: self._read_history(scope, kind, kind_dir, key),
        )

    def _read_history(
        self, scope: Scope, kind: str, kind_dir: str, key: str
    ) -> list[StoredDocument]:
        with translated("history"):
            head = self._checked_head(scope, kind, kind_dir, key)
            start = self._kept_from(scope, kind, kind_dir, key, head.doc.revision)
            try:
                records = self._records(scope, kind, kind_dir, key, start, head.doc.revision)
            except IntegrityError:
                # a pruner removed revisions meanwhile? then read from where it left off
                again = self._kept_from(scope, kind, kind_dir, key, head.doc.revision)
                if again == start:
                    raise
                start = again
                records = self._records(scope, kind, kind_dir, key, start, head.doc.revision)
            check_chain(kind, key, records, head, start=start)
            return [record.doc for record in records]

    def _records(
        self, scope: Scope, kind: str, kind_dir: str, key: str, start: int, end: int
    ) -> list[Record]:
        return [
            self._read_record(scope, kind, kind_dir, key, revision)
            for revision in range(start, end + 1)
        ]

    def _kept_from(self, scope: Scope, kind: str, kind_dir: str, key: str, head: int) -> int:
        """:meth:`_first_kept` for a history read up to revision ``head``. Pruned past
        ``head`` (which ``prune_history`` never removes): writers moved the head on and
        a pruner followed since it was read — read again (``_Moved``); with the head
        still there under the lock, the marker is wrong: ``IntegrityError``."""
        start = self._first_kept(scope, kind, kind_dir, key)
        if start > head:
            if self._settled_head(scope, kind, key).doc.revision != head:
                raise _Moved
            raise IntegrityError(f"{kind} {key!r}: pruned past its head (revision {head})")
        return start

    def _first_kept(self, scope: Scope, kind: str, kind_dir: str, key: str) -> int:
        """The oldest revision not pruned (1 unless ``prune_history`` removed some)."""
        if os.path.exists(Layout.revision(kind_dir, key, 1)):
            return 1
        prefix = self._pruned_prefix(scope, kind, key)
        return 1 if prefix is None else prefix.pruned_through + 1

    def _prune_history(
        self, scope: Scope, kind: str, key: str, keep_from: int, seen: Mapping[int, str]
    ) -> None:
        # Under the lock: a history replace swaps revision files, and must not race this;
        # what the caller read is checked against the files first (``check_unchanged``).
        with translated("prune_history"), self._writing(scope, kind) as (_, kind_dir, _fd, _f):
            doomed, stored = [], {}
            for revision in range(keep_from - 1, 0, -1):  # earlier prunes removed the rest
                path = Layout.revision(kind_dir, key, revision)
                try:
                    data = read_file(path)
                except FileNotFoundError:
                    break
                stored[revision] = decode_record(data, scope, kind, key).sha256
                doomed.append(path)
            head = self._head(kind_dir, kind, key)
            check_unchanged(
                None if head is None else head.revision,
                self._marker_through(scope, kind, key),
                stored,
                keep_from,
                seen,
            )
            for path in reversed(doomed):  # oldest first: a crash leaves a suffix
                os.unlink(path)
            if doomed:
                fsync_dir(kind_dir)

    def _marker_through(self, scope: Scope, kind: str, key: str) -> int | None:
        """``pruned_through`` of ``key``'s marker as its head file says (``None``: none),
        read directly: the caller holds the scope lock, which the read path may take."""
        name = marker_key(kind, key)
        marker_dir = self._layout.kind_dir(self._layout.scope_dir(scope), PRUNED_KIND)
        try:
            data = read_file(Layout.head(marker_dir, name))
        except FileNotFoundError:
            return None
        doc = decode_record(data, scope, PRUNED_KIND, name)
        return None if doc.deleted else parse_marker(doc).pruned_through

    def _query(
        self, scope: Scope, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        scope_dir = self._layout.scope_dir(scope)
        kind_dir = self._layout.kind_dir(scope_dir, kind)

        def page(conn: sqlite3.Connection | None) -> list[StoredDocument]:
            if conn is None:
                return []
            with index.snapshot(conn):
                rows = index.query(conn, kind, query, cursor, fetch)
            return [
                check_row(
                    self._read_indexed(scope, kind, kind_dir, key, revision),
                    sort_key,
                    query.filters,
                )
                for sort_key, key, revision in rows
            ]

        with translated("query"):
            return _stable(lambda: self._reading_index(scope, scope_dir), page)

    def _count(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int:
        with translated("count"):
            conn, _ = self._reading_index(scope, self._layout.scope_dir(scope))
            if conn is None:
                return 0
            with index.snapshot(conn):
                return index.count(conn, kind, filters)

    def _search(self, scope: Scope, kind: str, terms: tuple[str, ...]) -> list[StoredDocument]:
        scope_dir = self._layout.scope_dir(scope)
        kind_dir = self._layout.kind_dir(scope_dir, kind)

        def found(conn: sqlite3.Connection | None) -> list[StoredDocument]:
            if conn is None:
                return []
            with index.snapshot(conn):
                rows = index.search(conn, kind, terms)
            return [self._read_indexed(scope, kind, kind_dir, k, rev) for k, rev in rows]

        with translated("search"):
            return _stable(lambda: self._reading_index(scope, scope_dir), found)

    def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]:
        scope_dir = self._layout.scope_dir(scope)

        def batch_after(mark: tuple[str, str] | None) -> list[StoredDocument]:
            def read(conn: sqlite3.Connection | None) -> list[StoredDocument]:
                if conn is None:
                    return []
                return [
                    self._read_indexed(
                        scope, row_kind, self._layout.kind_dir(scope_dir, row_kind), key, revision
                    )
                    for row_kind, key, revision in index.heads_after(conn, kind, mark, ITER_BATCH)
                ]

            with translated("iter_documents"):
                return _stable(lambda: self._reading_index(scope, scope_dir), read)

        mark = None
        while True:
            batch = batch_after(mark)  # each batch one snapshot, as a page
            yield from batch
            if len(batch) < ITER_BATCH:
                # The last batch. Asking again would read a later snapshot, where a
                # key after the mark may have come alive (a replace, a write): a
                # store of up to ITER_BATCH documents must come from one snapshot.
                return
            mark = (batch[-1].kind, batch[-1].key)

    def _list_environments(self, tenant: str) -> Iterable[str]:
        with translated("list_environments"):
            return self._children(os.path.join(self._layout.root, tenant), need_docs=True)

    def _iter_scopes(self) -> Iterator[Scope]:
        with translated("iter_scopes"):
            for tenant in sorted(self._children(self._layout.root, need_docs=False)):
                for env in sorted(self._list_environments(tenant)):
                    yield Scope(tenant, env)

    @staticmethod
    def _children(path: str, *, need_docs: bool) -> list[str]:
        """Directory names under ``path`` that are ids; ``need_docs``: environments,
        i.e. those with anything named ``docs``. A ``docs`` that is not a directory
        (replaced, a symbolic link loop) or an environment that is not one (a file, a
        loop) is a damaged scope: listed, so that its reads and ``dq verify`` say so
        instead of the scope vanishing. (Tenants: directories only — the root may be
        shared with other files.)"""
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return []
        return [
            name
            for name in names
            if ID_PATTERN.fullmatch(name)
            and ".." not in name
            and (
                _is_environment(f"{path}/{name}") if need_docs else os.path.isdir(f"{path}/{name}")
            )
        ]

    # -- writes --------------------------------------------------------------
    def _put(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument:
        with translated("put"), self._writing(scope, kind) as (conn, kind_dir, lock_fd, flag):
            head = self._head(kind_dir, kind, write.key)
            live = None if head is None or head.deleted else head.revision
            check_expectation(live, expect, kind, write.key)
            _writable(conn, scope, kind, kind_dir, write.key, head)
            doc = self._revision_of(scope, kind, write, head)
            prevs = ["" if head is None else head.digest]
            commit_revisions(
                conn,
                lock_fd,
                flag,
                kind,
                kind_dir,
                [doc],
                bulk=False,
                prevs=prevs,
                durable=self._durable,
            )
            return doc

    @staticmethod
    def _revision_of(
        scope: Scope, kind: str, write: DocumentWrite, head: Header | None
    ) -> StoredDocument:
        return StoredDocument(
            scope,
            kind,
            write.key,
            1 if head is None else head.revision + 1,
            write.body,
            write.sha256,
            write.index,
            datetime.now(UTC),
        )

    def _put_many(self, scope: Scope, kind: str, writes: Iterator[DocumentWrite]) -> int:
        total = 0
        batch: dict[str, DocumentWrite] = {}
        for write in writes:
            if write.key in batch or len(batch) >= BULK_BATCH:
                total += self._write_batch(scope, kind, list(batch.values()))
                batch = {}
            batch[write.key] = write
        if batch:
            total += self._write_batch(scope, kind, list(batch.values()))
        return total

    def _write_batch(self, scope: Scope, kind: str, writes: Sequence[DocumentWrite]) -> int:
        with translated("put_many"), self._writing(scope, kind) as (conn, kind_dir, lock_fd, flag):
            heads = [self._head(kind_dir, kind, w.key) for w in writes]
            for w, h in zip(writes, heads, strict=True):
                _writable(conn, scope, kind, kind_dir, w.key, h)
            docs = [
                self._revision_of(scope, kind, w, h) for w, h in zip(writes, heads, strict=True)
            ]
            prevs = ["" if h is None else h.digest for h in heads]
            commit_revisions(
                conn,
                lock_fd,
                flag,
                kind,
                kind_dir,
                docs,
                bulk=True,
                prevs=prevs,
                durable=self._durable,
            )
        return len(docs)

    def _delete(self, scope: Scope, kind: str, key: str, expect: Expectation) -> StoredDocument:
        with translated("delete"), self._writing(scope, kind) as (conn, kind_dir, lock_fd, flag):
            head = self._head(kind_dir, kind, key)
            if head is None or head.deleted:
                raise NotFoundError(f"{kind} {key!r} not found in {scope}")
            check_expectation(head.revision, expect, kind, key)
            _writable(conn, scope, kind, kind_dir, key, head)
            doc = StoredDocument(
                scope,
                kind,
                key,
                head.revision + 1,
                b"",
                "",
                IndexEntry(),
                datetime.now(UTC),
                deleted=True,
            )
            prevs = [head.digest]
            commit_revisions(
                conn,
                lock_fd,
                flag,
                kind,
                kind_dir,
                [doc],
                bulk=False,
                prevs=prevs,
                durable=self._durable,
            )
            return doc

    def _commit(
        self, scope: Scope, operations: tuple[Operation, ...]
    ) -> list[StoredDocument | None]:
        scope_dir = self._layout.scope_dir(scope)
        with translated("commit"):
            conn = self._index(scope, scope_dir, create=True)
            assert conn is not None
            handles = self._process()
            with handles.exclusive(scope_dir) as lock_fd:
                flag = self._flags[scope_dir]
                replay_intent(conn, scope, scope_dir, lock_fd, flag)
                staged, out = stage(scope, operations, self._kind_dir)
                for s in staged:
                    check_writable(
                        conn, scope, s.kind, s.kind_dir, s.doc.key, s.doc.revision - 1, s.prev
                    )
                for kind_dir in {s.kind_dir for s in staged} - handles.known_dirs:
                    make_dirs(kind_dir)
                    handles.known_dirs.add(kind_dir)
                if len(staged) == 1:  # one document: its head rename is atomic already
                    (one,) = staged
                    commit_revisions(
                        conn, lock_fd, flag, one.kind, one.kind_dir, [one.doc], bulk=False,
                        prevs=[one.prev], durable=self._durable,
                    )  # fmt: skip
                elif staged:
                    commit_journal(conn, lock_fd, flag, staged, durable=self._durable)
            return out

    # -- history transfer (``_restore``) -----------------------------------------
    def _iter_histories(self, scope: Scope, kind: str | None) -> Iterator[list[StoredDocument]]:
        scope_dir = self._layout.scope_dir(scope)
        with translated("iter_histories"):
            kinds = [kind] if kind is not None else _restore.kinds_of(scope_dir)
        for name in kinds:
            kind_dir, _ = self._reading(scope, name)
            names = _restore.head_names(kind_dir)
            while True:
                with translated("iter_histories"):  # the listing: a damaged kind dir
                    stored = next(names, None)
                if stored is None:
                    break
                history = _stable(
                    functools.partial(self._reading, scope, name),
                    functools.partial(self._stored_history, scope, name, stored),
                )
                if history:
                    yield history

    def _stored_history(
        self, scope: Scope, kind: str, stored: str, kind_dir: str
    ) -> list[StoredDocument]:
        """The history of the key stored as ``stored`` (``[]``: not a key any more)."""
        with translated("iter_histories"):
            try:
                data = read_file(f"{kind_dir}/{stored}.head")
            except FileNotFoundError:
                return []  # a leftover being cleaned up, or a key replaced away
            # no header cache: a full pass reads each record once, and filling the
            # cache would only evict the hot documents' headers
            head = decode_record(data, scope, kind, None)
            if head.revision == 1:  # nothing older, pruned or not: no marker to look for
                return [head]
            first = self._first_kept(scope, kind, kind_dir, head.key)
            older = [
                self._read_revision(scope, kind, kind_dir, head.key, revision)
                for revision in range(first, head.revision)
            ]
        return [*older, head]

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        with translated("restore"), self._writing(scope, kind) as (conn, kind_dir, lock_fd, flag):
            for key, docs in histories:  # again under the lock: a prune may have moved it
                if docs[0].revision > 1 and kind != PRUNED_KIND:
                    through = self._marker_through(scope, kind, key)
                    check_pruned_start(kind, key, docs[0].revision, through)
            if replace:
                scope_dir = kind_dir[: -len(kind) - len("/docs/")]
                replace_histories(
                    conn, lock_fd, flag, scope, kind, scope_dir, histories,
                    durable=self._durable,
                )  # fmt: skip
                return
            for key, _docs in histories:
                if self._head(kind_dir, kind, key) is not None:
                    raise ConflictError(
                        f"{kind} {key!r} already has a history in {scope}; restore writes "
                        "only into keys that were never written (nothing of this batch was "
                        "written)"
                    )
                check_writable(conn, scope, kind, kind_dir, key, 0, "")  # not a removed head
            _restore.write_histories(conn, lock_fd, flag, kind, kind_dir, histories)
