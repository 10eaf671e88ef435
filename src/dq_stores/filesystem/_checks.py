"""Integrity reads of :class:`~dq_stores.filesystem.backend.FilesystemBackend`.

The slow path of ``get`` (a head that is not the fresh hard link of its revision
file is re-read under the scope lock and must agree with the index), the head
check of ``history`` / ``get_revision``, and the verifier hooks (``verify_scope``,
``repair_index``). See ADR 0002, "Record format".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dq_metadata.errors import IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import StoredDocument
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._errors import damage, translated
from dq_stores.filesystem._flag import ApplyFlag
from dq_stores.filesystem._integrity import (
    agrees,
    beyond_head,
    disagreement,
    headless_first,
    indexed_revision,
    sealed_head,
)
from dq_stores.filesystem._layout import Layout, read_file, read_linked, sealed
from dq_stores.filesystem._process import ProcessHandles
from dq_stores.filesystem._records import Record, decode_full
from dq_stores.filesystem._recovery import replay_intent
from dq_stores.filesystem._verify import compare_index, derive_index, file_problems
from dq_stores.integrity import IntegrityProblem, VerifyCounts

__all__ = ["IntegrityMixin"]

Inode = tuple[int, int, bytes, int]  # (st_ino, st_dev, record hash, st_ctime_ns) of a head
_INDEX_FILE = "index.sqlite3"
_MAX_LINKED = 16384  # ~4 MB; past it the set starts again (each head is re-checked once)
_DAMAGED = (
    "the index database is damaged (SQLite cannot read it); `dq verify --repair-index` "
    "rebuilds it from the documents (stop other processes using the store first)"
)


class IntegrityMixin:
    """Needs the backend's layout, per-process handles, flags and linked-inode set."""

    _linked: set[Inode]
    _flags: dict[str, ApplyFlag]

    if TYPE_CHECKING:  # provided by FilesystemBackend
        from dq_stores.filesystem._layout import Layout as _LayoutT

        _layout: _LayoutT

        def _process(self) -> ProcessHandles: ...
        def _index(
            self, scope: Scope, scope_dir: str, *, create: bool
        ) -> sqlite3.Connection | None: ...

    def _is_linked(self, base: str, revision: int, inode: Inode) -> bool:
        try:
            st = os.stat(f"{base}.r{revision}")
        except FileNotFoundError:
            return False
        return st.st_ino == inode[0] and st.st_dev == inode[1]

    def _remember_linked(self, inode: Inode) -> None:
        """``inode`` passed the head checks: skip them until the head changes."""
        if len(self._linked) >= _MAX_LINKED:
            self._linked.clear()
        self._linked.add(inode)

    def _known(self, scope: Scope, kind_dir: str, kind: str, key: str) -> int:
        """The live revision this scope's index knows for ``key`` (0 if none)."""
        scope_dir = kind_dir[: -len(kind) - 6]  # kind_dir is <scope_dir>/docs/<kind>
        conn = self._process().connection(f"{scope_dir}/{_INDEX_FILE}")
        if conn is None:
            with translated("get"):
                conn = self._index(scope, scope_dir, create=False)
        return indexed_revision(conn, kind, key)

    def _settled_head(self, scope: Scope, kind: str, key: str) -> Record:
        """The head, read under the scope lock with no writer in flight, which must
        then agree with the index exactly, be neither a sealed (superseded) revision
        file nor a copy of one (its revision file sealed). Raises ``IntegrityError``
        otherwise, and ``NotFoundError`` for a key that has neither.

        A dead writer's note is replayed first as a reader does it
        (``replay_intent(reader=True)``): a journal is rolled forward only if the
        applying flag is raised (it died moving heads). With the flag down, heads
        and index agree — every head move happens under a raised flag — so a
        journal is left to the next writer or opener: a read never completes a
        commit, which would change what other readers saw a moment earlier with no
        writer running (ADR 0002, "Reads never complete a commit").
        """
        scope_dir = self._layout.scope_dir(scope)
        kind_dir = self._layout.kind_dir(scope_dir, kind)
        with translated("read"):
            conn = self._index(scope, scope_dir, create=False)
            if conn is None:
                raise NotFoundError(f"{kind} {key!r} not found in {scope}")
            with self._process().exclusive(scope_dir) as lock_fd:
                flag = self._flags[scope_dir]
                replay_intent(conn, scope, scope_dir, lock_fd, flag, reader=True)
                known = indexed_revision(conn, kind, key)
                try:
                    data, st = read_linked(Layout.head(kind_dir, key))
                    head = decode_full(data, scope, kind, key)
                except FileNotFoundError:
                    if known:
                        raise IntegrityError(disagreement(scope, kind, key, None, known)) from None
                    if os.path.exists(Layout.revision(kind_dir, key, 1)):
                        why = headless_first(scope, kind, kind_dir, key, known)
                        if why is not None:  # else a new key's interrupted write: absent
                            raise IntegrityError(
                                f"{kind} {key!r} in {scope}: its head was removed ({why})"
                            ) from None
                    raise NotFoundError(f"{kind} {key!r} not found in {scope}") from None
                revision = head.doc.revision
                if sealed(st.st_mode):  # still sealed under the lock: not a writer's race
                    raise IntegrityError(sealed_head(scope, kind, key, revision))
                if not agrees(head.doc, known):
                    raise IntegrityError(disagreement(scope, kind, key, head.doc, known))
                newest, newest_mode = self._read_sealed(scope, kind, kind_dir, key, revision)
                if sealed(newest_mode):  # the head is a writable copy of a superseded one
                    what = f"its revision file {Layout.revision(kind_dir, key, revision)!r}"
                    raise IntegrityError(sealed_head(scope, kind, key, revision, what))
                if newest.digest != head.digest:
                    raise IntegrityError(f"{kind} {key!r}: the head is not its newest revision")
                if os.path.exists(Layout.revision(kind_dir, key, revision + 1)):
                    why = beyond_head(scope, kind, kind_dir, key, head, known)
                    if why is not None:  # else an interrupted write's leftover: not committed
                        raise IntegrityError(
                            f"{kind} {key!r} in {scope}: the head is revision {revision} but "
                            f"revision {revision + 1} was committed ({why}) — a rolled-back head"
                        )
                return head

    def _past_head(
        self, scope: Scope, kind: str, key: str, base: str, doc: StoredDocument, inode: Inode
    ) -> StoredDocument:
        """``get`` found ``<name>.r<N+1>`` beside head revision N: a writer in flight,
        a dead writer's commit not yet rolled forward, a power loss's uncommitted
        leftover, or a rolled-back head. Decided under the lock (``_settled_head``).
        A head judged in place is remembered like any other: the next write moves the
        head, and a rollback to it changes its ctime."""
        settled = self._settled_head(scope, kind, key)
        if settled.doc.revision == doc.revision and settled.digest == inode[2].decode():
            self._remember_linked(inode)
        return settled.doc

    def _checked_head(self, scope: Scope, kind: str, kind_dir: str, key: str) -> Record:
        """The head, fully verified and agreeing with the index (``_settled_head`` if not)."""
        known = self._known(scope, kind_dir, kind, key)
        try:
            data, st = read_linked(Layout.head(kind_dir, key))
        except FileNotFoundError:
            return self._settled_head(scope, kind, key)
        head = decode_full(data, scope, kind, key)
        if agrees(head.doc, known) and not sealed(st.st_mode):
            return head
        return self._settled_head(scope, kind, key)  # a sealed head: raises unless it moved

    def _read_sealed(
        self, scope: Scope, kind: str, kind_dir: str, key: str, revision: int
    ) -> tuple[Record, int]:
        """Revision ``revision``'s record and its file's ``st_mode``."""
        try:
            data, st = read_linked(Layout.revision(kind_dir, key, revision))
        except FileNotFoundError:
            raise IntegrityError(f"{kind} {key!r}: revision {revision} is missing") from None
        return decode_full(data, scope, kind, key), st.st_mode

    def _read_record(
        self, scope: Scope, kind: str, kind_dir: str, key: str, revision: int
    ) -> Record:
        try:
            data = read_file(Layout.revision(kind_dir, key, revision))
        except FileNotFoundError:
            raise IntegrityError(f"{kind} {key!r}: revision {revision} is missing") from None
        return decode_full(data, scope, kind, key)

    # -- integrity -----------------------------------------------------------
    def verify_scope(self, scope: Scope, counts: VerifyCounts) -> Iterator[IntegrityProblem]:
        """Every record, history chain and index row of ``scope`` (see ``_verify``).

        Holds the scope's write lock while it runs: writers of the scope wait. A scope
        whose dead writer left a journal that cannot be completed (a lost revision or
        staged file after some files moved: every read and write raises) is one
        ``history`` problem with that message, so the walk goes on to other scopes.
        """
        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")
        scope_dir = self._layout.scope_dir(scope)
        live, walked = f"{scope_dir}/{_INDEX_FILE}", False
        with translated("verify"):
            try:
                try:
                    conn = self._index(scope, scope_dir, create=False)
                except IntegrityError as exc:  # a dead writer's journal it cannot complete
                    yield IntegrityProblem(scope, "history", str(exc))
                    return
                if conn is None:
                    return
                with self._process().exclusive(scope_dir) as lock_fd:
                    flag = self._flags[scope_dir]
                    try:
                        replay_intent(conn, scope, scope_dir, lock_fd, flag, reader=True)
                    except IntegrityError as exc:
                        yield IntegrityProblem(scope, "history", str(exc))
                        return
                    for problem in compare_index(live, scope, scope_dir, counts):
                        walked = True
                        yield problem
            except sqlite3.DatabaseError as exc:
                if type(exc) is not sqlite3.DatabaseError:  # locked, I/O: not damage
                    raise
            except OSError as exc:  # a directory replaced or looped: the walk stops here
                if (found := damage(exc)) is None:
                    raise
                yield IntegrityProblem(scope, "unreadable", f"the check stopped: {found}")
                return
            else:
                return
        yield IntegrityProblem(scope, "index", _DAMAGED)
        if not walked:  # the files' own problems, which a rebuild would leave out
            with translated("verify"), self._process().exclusive(scope_dir):
                try:
                    yield from file_problems(scope, scope_dir, counts)
                except OSError as exc:
                    if (found := damage(exc)) is None:
                        raise
                    yield IntegrityProblem(scope, "unreadable", f"the check stopped: {found}")

    def repair_index(self, scope: Scope) -> bool:
        """Rebuild ``scope``'s index from its valid head files (one transaction);
        damaged records stay out of it. No document file is written; superseded
        revision files that are not sealed are sealed (a ``chmod``: ADR 0002, "Seals")."""
        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a Scope, got {type(scope).__name__}")
        scope_dir = self._layout.scope_dir(scope)
        with translated("repair_index"):
            try:
                conn = self._index(scope, scope_dir, create=False)
            except sqlite3.DatabaseError as exc:
                if type(exc) is not sqlite3.DatabaseError:
                    raise
                conn = self._replace_damaged_index(scope, scope_dir)
            if conn is None:
                return True
            with self._process().exclusive(scope_dir) as lock_fd:
                replay_intent(conn, scope, scope_dir, lock_fd, self._flags[scope_dir])
                with index.transaction(conn):
                    index.clear(conn)
                    derived = derive_index(
                        conn, scope, scope_dir, VerifyCounts(), seal_superseded=True
                    )
                    for _problem in derived:
                        pass
        return True

    def _replace_damaged_index(self, scope: Scope, scope_dir: str) -> sqlite3.Connection | None:
        """Delete an index SQLite cannot read and open the scope again, which derives
        a new index from the head files. Only index files are removed."""
        handles = self._process()
        path = f"{scope_dir}/{_INDEX_FILE}"
        with handles.exclusive(scope_dir):
            handles.drop_connection(path)
            handles.ready.discard(scope_dir)
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
        return self._index(scope, scope_dir, create=False)
