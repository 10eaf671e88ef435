"""Bringing the index back in line with the documents.

``replay_intent`` handles a writer that died mid-write (cheap: one head read per
key it named): a plain intent is *settled* (the index follows whichever head is
on disk; uncommitted files are deleted), a complete commit journal is *rolled
forward* (every head it names is moved to its revision first) — or settled like
an intent if one of its revision files is missing or damaged and no head has
moved yet (a power loss with ``durability="process"``); a history replace
is rolled forward from its ``replace`` journal or, if it died staging — or the
journal names a staged file that is missing or damaged and nothing was swapped
yet —, its staged files are deleted (``_replace``). Settling and rolling forward
also seal the revision file each named head superseded (a writer that died
between its head move and its seal). ``rebuild`` derives the whole index from
the head files (sealing each head's predecessor on the way); it runs
for a new or deleted index and after a reboot, when SQLite commits made with
``synchronous=NORMAL`` may not have reached the disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from functools import lru_cache

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import ID_PATTERN, Scope
from dq_stores.documents import StoredDocument
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._flag import ApplyFlag
from dq_stores.filesystem._layout import (
    Layout,
    fsync_dir,
    name_of,
    read_file,
    read_linked,
    sealed,
)
from dq_stores.filesystem._records import decode_record
from dq_stores.filesystem._replace import apply_replacements, check_replacements, discard_staged
from dq_stores.filesystem._writes import (
    Intent,
    Replacement,
    clear_intent,
    link_revision,
    move_head,
    read_note,
    seal_superseded,
)

__all__ = ["boot_id", "open_scope", "rebuild", "replay_intent"]

log = logging.getLogger(__name__)

_HEAD = ".head"


def _read_head(scope: Scope, kind: str, kind_dir: str, key: str) -> StoredDocument | None:
    try:
        return decode_record(read_file(Layout.head(kind_dir, key)), scope, kind, key)
    except FileNotFoundError:
        return None
    except IntegrityError:
        return None  # a damaged head is left out of the index; get() reports it


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@lru_cache(maxsize=1)
def boot_id() -> str | None:
    """The kernel's boot id (Linux), ``None`` where there is none."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def open_scope(path: str, scope: Scope, scope_dir: str, lock_fd: int, flag: ApplyFlag) -> None:
    """First use of a scope in a process: schema, note replay, boot check. Hold the lock.

    Opening replays any note as a writer does — a commit journal left with the flag
    down is rolled forward here — so a backend opened afterwards never reads around
    a decided commit. (Reads of a scope already open never complete one:
    ``replay_intent`` with ``reader=True``.)
    """
    conn = index.connect(path, durable=boot_id() is None)
    try:
        index.ensure_schema(conn)
        # A commit journal first: it moves heads, which a rebuild reads.
        replay_intent(conn, scope, scope_dir, lock_fd, flag)
        boot = boot_id() or "unknown"
        if index.get_meta(conn, "boot_id") != boot:
            # New index, or the machine restarted since the last write: commits
            # not yet on disk may be lost, so derive the index from the files.
            rebuild(conn, scope, scope_dir)
            with index.transaction(conn):
                index.set_meta(conn, "boot_id", boot)
    finally:
        conn.close()


def replay_intent(
    conn: sqlite3.Connection,
    scope: Scope,
    scope_dir: str,
    lock_fd: int,
    flag: ApplyFlag,
    *,
    reader: bool = False,
) -> None:
    """Finish or undo the writes a dead writer announced; lower the flag. Hold the lock.

    ``reader=True`` (a read of a scope this process has open) leaves a complete
    journal — commit or replace — alone while the flag is down: its writer died
    before its first visible change, heads and index agree on the state before it,
    and completing it in the middle of other readers' reads would show them part
    of it with no writer running. The next writer, or the next backend to open the
    scope (each process, each ``FilesystemBackend``, opens it once), rolls it
    forward. A plain intent or a staging note is undone as by a writer: that
    removes only files no reader sees.
    """
    note = read_note(lock_fd)
    if reader and note is not None and note.journal and not flag.raised:
        return
    if note is None:
        rebuild(conn, scope, scope_dir)  # a torn note (power loss): heads are the truth
    elif note.replacements:
        _replay_replace(conn, scope, scope_dir, lock_fd, flag, note.replacements, note.journal)
        return
    elif note.journal:
        # The writer may have died before raising the flag: raise it before moving
        # any head, so that if *this* process dies half-way, readers still notice.
        flag.raise_()
        if not _roll_forward(conn, scope, scope_dir, note.intents):
            log.warning(
                "%s: a committed journal of %d document(s) names a revision file that is "
                "missing or damaged and no head had moved: discarded, as if its writer had "
                "died before its commit point (run `dq verify`)",
                scope,
                len(note.intents),
            )
            _settle_all(conn, scope, scope_dir, note.intents)
    elif note.intents:
        _settle_all(conn, scope, scope_dir, note.intents)
    else:
        if flag.raised:
            flag.lower()  # died after clearing its note, or a stale flag after a reboot
        return
    flag.lower()
    clear_intent(lock_fd)


def _replay_replace(
    conn: sqlite3.Connection,
    scope: Scope,
    scope_dir: str,
    lock_fd: int,
    flag: ApplyFlag,
    replacements: tuple[Replacement, ...],
    journal: bool,
) -> None:
    if journal:
        lost, swapped = check_replacements(scope, scope_dir, replacements)
        if lost and swapped:
            raise IntegrityError(
                f"{lost[0]}, but the replace had already swapped files of its keys: the "
                "scope holds part of the new histories. Restore the scope from a backup, "
                "or put that record back under that name (from the replace's source); "
                "until then the scope cannot be read or written"
            )
        if lost:
            log.warning(
                "%s: a committed history replace of %d key(s) names a staged revision "
                "file that is missing or damaged and no file had been swapped yet: "
                "discarded, as if its writer had died before its commit point (run "
                "`dq verify`)",
                scope,
                len(replacements),
            )
            journal = False  # nothing moved: discard the staged files, as for R1-R2
    if journal:
        flag.raise_()  # as for a commit journal: before any file moves, and readers
        flag.bump()  # that were already reading must read again
        apply_replacements(conn, scope, scope_dir, replacements, {}, durable=True)
    else:
        for kind, key, first, last, *_ in replacements:
            discard_staged(f"{scope_dir}/docs/{kind}", key, first, last)
    flag.lower()
    clear_intent(lock_fd)
    os.fsync(lock_fd)  # a journal must not come back once the keys move on


def _roll_forward(
    conn: sqlite3.Connection, scope: Scope, scope_dir: str, intents: tuple[Intent, ...]
) -> bool:
    """Move every head the journal names to its revision, then index them all.

    Every revision is read before any head moves. ``False`` (nothing changed) when
    one is missing or damaged and no head has reached its revision yet: the commit
    never became visible and cannot be completed — a power loss with
    ``durability="process"`` (nothing fsynced: the journal may reach the disk and a
    revision file not), or damage — so the caller settles it (the commit never
    happened, as for a torn journal). Raises ``IntegrityError`` when some heads
    already moved and another's revision is missing or damaged.
    """
    heads: list[tuple[str, StoredDocument]] = []
    to_move: list[tuple[str, str, int]] = []
    lost: list[str] = []
    for kind, key, revision in intents:
        kind_dir = f"{scope_dir}/docs/{kind}"
        head = _read_head(scope, kind, kind_dir, key)
        if head is None or head.revision < revision:
            try:
                head = decode_record(
                    read_file(Layout.revision(kind_dir, key, revision)), scope, kind, key
                )
            except FileNotFoundError:
                lost.append(
                    f"{kind} {key!r}: revision {revision} of an interrupted commit is missing"
                )
                continue
            except IntegrityError as exc:
                lost.append(
                    f"{kind} {key!r}: revision {revision} of an interrupted commit is damaged "
                    f"({exc})"
                )
                continue
            to_move.append((kind_dir, key, revision))
        heads.append((kind, head))
    if lost:
        if len(to_move) == len(intents) - len(lost):  # no head reached its revision
            return False
        raise IntegrityError(
            f"{lost[0]}, but other heads of that commit already moved: restore that "
            "revision file from a backup; until then the scope cannot be read or written"
        )
    dirs: set[str] = set()
    for kind_dir, key, revision in to_move:
        move_head(kind_dir, key, revision)
        dirs.add(kind_dir)
    for kind, key, _revision in intents:
        _discard(Layout.temp(f"{scope_dir}/docs/{kind}", key))
    for kind_dir in sorted(dirs):
        fsync_dir(kind_dir)
    for kind, key, revision in intents:  # the writer may have died before its seals
        seal_superseded(f"{scope_dir}/docs/{kind}", key, revision)
    with index.transaction(conn):
        for kind, doc in heads:
            index.set_head(conn, kind, doc.key, doc.revision, None if doc.deleted else doc.index)
    return True


def _settle_all(
    conn: sqlite3.Connection, scope: Scope, scope_dir: str, intents: tuple[Intent, ...]
) -> None:
    """Undo a note's writes: the index follows the heads, uncommitted files go."""
    with index.transaction(conn):
        for kind, key, revision in intents:
            _settle(conn, scope, kind, f"{scope_dir}/docs/{kind}", key, revision)


def _settle(
    conn: sqlite3.Connection, scope: Scope, kind: str, kind_dir: str, key: str, revision: int
) -> None:
    head = _read_head(scope, kind, kind_dir, key)
    _discard(Layout.temp(kind_dir, key))
    if head is None and not os.path.exists(Layout.head(kind_dir, key)):
        # No head: the writer saw none and wrote every revision up to ``revision``
        # (a restore writes r1..r<last>, then links the head): none was committed.
        for number in range(revision, 0, -1):
            _discard(Layout.revision(kind_dir, key, number))
    elif head is None or head.revision < revision:
        _discard(Layout.revision(kind_dir, key, revision))  # never committed
    if head is not None:  # committed, the writer dying before its seal: seal it now
        seal_superseded(kind_dir, key, head.revision)
    if head is None or head.deleted:
        index.set_head(conn, kind, key, 0, None)
    else:
        index.set_head(conn, kind, key, head.revision, head.index)


def _discard_unfinished(scope: Scope, kind: str, kind_dir: str, entry: os.DirEntry[str]) -> None:
    """Delete a dot file of an unfinished write. A ``.<name>.tmp`` that a put had
    already linked as ``<name>.r<N>`` past the head (it died before the rename over
    the head, its commit point, and its note was lost) takes that revision file with
    it: unlinking the temp name changes their inode's ctime, and a leftover whose
    inode changed after its write reads as a rolled-back head (``_integrity``)."""
    try:
        linked = entry.name.endswith(".tmp") and entry.stat().st_nlink > 1
    except FileNotFoundError:
        return
    if linked:
        try:
            record = decode_record(read_file(entry.path), scope, kind, None)
            head = decode_record(read_file(Layout.head(kind_dir, record.key)), scope, kind, None)
        except (FileNotFoundError, IntegrityError):
            head = None
        if head is not None and head.revision < record.revision:
            revision = Layout.revision(kind_dir, record.key, record.revision)
            with contextlib.suppress(FileNotFoundError):
                if os.path.samefile(entry.path, revision):
                    os.unlink(revision)
    _discard(entry.path)


def rebuild(conn: sqlite3.Connection, scope: Scope, scope_dir: str) -> None:
    """Recreate the whole index from the head files. Hold the scope lock.

    Damaged heads and sealed ones (a superseded revision put back: a rollback) are
    left out, so a query never serves them; ``get`` reports them."""
    docs_dir = f"{scope_dir}/docs"
    try:
        kinds = sorted(os.listdir(docs_dir))
    except FileNotFoundError:
        kinds = []
    with index.transaction(conn):
        index.clear(conn)
        for kind in kinds:
            if ID_PATTERN.fullmatch(kind) and ".." not in kind:
                _rebuild_kind(conn, scope, kind, f"{docs_dir}/{kind}")


def _rebuild_kind(conn: sqlite3.Connection, scope: Scope, kind: str, kind_dir: str) -> None:
    relinked = False
    with os.scandir(kind_dir) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                _discard_unfinished(scope, kind, kind_dir, entry)
                continue
            if not name.endswith(_HEAD):
                continue
            try:
                data, st = read_linked(entry.path)
                doc = decode_record(data, scope, kind, None)
            except IntegrityError:
                continue  # left out of the index; get() reports it
            if name_of(doc.key) + _HEAD != name:
                continue  # a record copied under another key's name
            if sealed(st.st_mode):
                continue  # a superseded revision put back: left out too; get() reports it
            revision_path = Layout.revision(kind_dir, doc.key, doc.revision)
            if not os.path.exists(revision_path):
                link_revision(entry.path, revision_path)
                relinked = True
            # a power loss (its note lost) may have kept a head move and lost its seal
            seal_superseded(kind_dir, doc.key, doc.revision)
            if not doc.deleted:
                index.set_head(conn, kind, doc.key, doc.revision, doc.index)
    if relinked:
        fsync_dir(kind_dir)
