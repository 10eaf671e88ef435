"""The write protocol: a note in the lock file, durable files, then the index.

Single puts, deletes and bulk batches (``commit_revisions``), under the scope lock:

1. Record the intent ``[[kind, key, revision], ...]`` in the lock file.
2. Write each record to ``.<name>.tmp`` and fsync it (bulk: one ``syncfs``).
3. Raise the scope's applying flag; link each record as ``<name>.r<N>``
   (immutable history), rename it over ``<name>.head`` (the commit point of the
   document), fsync the directory.
   A new key (revision 1, no head) writes ``<name>.r1`` itself in step 2 and
   links it as ``<name>.head`` in step 3: creating the head is its commit point.
   Then **seal** each superseded revision file ``<name>.r<N-1>`` (clear its write
   bits): a sealed inode must never be a head again, so a reader that finds one
   as a head knows it was rolled back (ADR 0002, "Seals").
4. In one SQLite transaction, move the index rows to the new heads; lower the flag.
5. Clear the intent.

Multi-document commits (``commit_journal``) make every head move together:

1. Record the intent (as above).
2. Write every record as ``<name>.r<N>`` (invisible: no head names it yet), fsync
   each, fsync their directories.
3. Overwrite the intent with the **journal** ``commit <sha256> <intent line>`` and
   fsync the lock file — the commit point of the whole commit.
4. Raise the flag; move every head (link / rename); fsync the directories; seal
   every superseded revision file.
5. One SQLite transaction for every index row; lower the flag; clear the journal.

History replaces (``restore_many(replace=True)``) write two more kinds of note,
``staging <line>`` and ``replace <sha256> <line>`` (see ``_replace``).

A process killed after 1 leaves its note behind; the next holder of the lock —
every writer, every process opening the scope, and every reader that finds the
flag raised — replays it (``_recovery``): an intent is settled (the index is made
to agree with whichever head is on disk), a journal is rolled forward (every head
it names is moved to its revision). A plain intent lives in the page cache only
(a power loss is covered by the rebuild after reboot); the journal is fsynced,
because after it the heads may move one by one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from dq_stores.documents import StoredDocument
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._flag import ApplyFlag
from dq_stores.filesystem._layout import (
    Layout,
    fsync_dir,
    seal,
    sync_filesystem,
    write_file,
    write_new_file,
)
from dq_stores.filesystem._records import encode_record

__all__ = [
    "Intent",
    "Note",
    "Replacement",
    "Staged",
    "clear_intent",
    "commit_journal",
    "commit_revisions",
    "encode_intent",
    "encode_journal",
    "encode_replacements",
    "link_revision",
    "move_head",
    "read_note",
    "seal_superseded",
]

#: ``(kind, key, revision)`` of a write that may be in flight.
Intent = tuple[str, str, int]
#: One key of a history replace: ``(kind, key, first, last, old_first, old_last,
#: old_digest, new_digest)`` — the new history's revision range, the old one's
#: (``0, 0`` for a key without history) and the record hashes of the old and the
#: new head (``""`` for none). See ``_replace``.
Replacement = tuple[str, str, int, int, int, int, str, str]
_MAX_INTENT = 1 << 22
_FIRST_READ = 1 << 12
_JOURNAL = b"commit "
_STAGING = b"staging "
_REPLACE = b"replace "
_DIGEST = 64
_string = json.encoder.encode_basestring  # a JSON string literal, as _ENCODE writes it
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Note:
    """What the lock file says: writes that may be in flight, and whether they are
    a complete commit journal (roll forward) or a plain intent (settle)."""

    intents: tuple[Intent, ...]
    journal: bool = False
    #: a history replace: staged only (discard) or, with ``journal``, committed
    replacements: tuple[Replacement, ...] = ()


@dataclass(frozen=True, slots=True)
class Staged:
    """One write of a multi-document commit: the new revision and its directory."""

    kind: str
    kind_dir: str
    doc: StoredDocument
    prev: str = ""  # the record hash of the revision before (empty for revision 1)


_EMPTY = Note(())


def _parse_replacements(line: bytes) -> tuple[Replacement, ...]:
    if not line.endswith(b"\n"):
        raise ValueError("incomplete")
    return tuple(
        (str(k), str(key), int(a), int(b), int(c), int(d), str(e), str(f))
        for k, key, a, b, c, d, e, f in json.loads(line)
    )


def _checked(data: bytes, prefix: bytes) -> bytes:
    """The line after ``<prefix><sha256> ``, if the hash matches (else ``ValueError``)."""
    start = len(prefix) + _DIGEST + 1
    digest, line = data[len(prefix) : start - 1], data[start:]
    if hashlib.sha256(line).hexdigest().encode() != digest:
        raise ValueError("torn journal")
    return line


def _parse_intents(line: bytes) -> tuple[Intent, ...]:
    if not line.endswith(b"\n"):
        raise ValueError("incomplete")
    return tuple((str(k), str(key), int(r)) for k, key, r in json.loads(line))


def read_note(lock_fd: int) -> Note | None:
    """The note a dead writer left (empty if none), ``None`` if it is unreadable.

    The note is the lock file's first line: a cleared note is an empty line
    (:func:`clear_intent`), and bytes after the first newline are leftovers of
    longer notes that the current one overwrote.
    """
    data = os.pread(lock_fd, _FIRST_READ, 0)  # almost always tiny: no 4 MiB buffer
    if len(data) == _FIRST_READ and b"\n" not in data:
        data = os.pread(lock_fd, _MAX_INTENT, 0)
    end = data.find(b"\n")
    if not data or end == 0:
        return _EMPTY
    data = data if end < 0 else data[: end + 1]
    try:
        if data.startswith(_JOURNAL):
            return Note(_parse_intents(_checked(data, _JOURNAL)), journal=True)
        if data.startswith(_REPLACE):
            return Note((), True, _parse_replacements(_checked(data, _REPLACE)))
        if data.startswith(_STAGING):
            return Note((), False, _parse_replacements(data[len(_STAGING) :]))
        return Note(_parse_intents(data))
    except (ValueError, TypeError):
        return None


def encode_intent(intents: Sequence[Intent]) -> bytes:
    """``[[kind, key, revision], ...]`` as one line of compact JSON."""
    if len(intents) == 1:  # a put or a delete: same bytes as _ENCODE, ~3x faster
        ((kind, key, revision),) = intents
        return f"[[{_string(kind)},{_string(key)},{int(revision)}]]\n".encode()
    return (_ENCODE([list(i) for i in intents]) + "\n").encode("utf-8")


def encode_journal(intents: Sequence[Intent]) -> bytes:
    """``commit <sha256 of the intent line> <intent line>``: longer than the intent it
    overwrites, and a torn write (power loss) fails the hash."""
    line = encode_intent(intents)
    return _JOURNAL + hashlib.sha256(line).hexdigest().encode() + b" " + line


def encode_replacements(replacements: Sequence[Replacement], *, journal: bool) -> bytes:
    """``staging <line>`` (files being staged: discard them) or, ``journal=True``,
    ``replace <sha256 of the line> <line>`` (committed: roll forward)."""
    line = (_ENCODE([list(r) for r in replacements]) + "\n").encode("utf-8")
    if not journal:
        return _STAGING + line
    return _REPLACE + hashlib.sha256(line).hexdigest().encode() + b" " + line


def clear_intent(lock_fd: int, written: int | None = None) -> None:
    """Clear the note. A short note (``written`` bytes, under one page) is cleared by
    overwriting its first byte with a newline — no change of the lock file's size,
    so no inode update for the next fsync to journal; otherwise it is truncated."""
    if written is not None and written < _FIRST_READ:
        os.pwrite(lock_fd, b"\n", 0)
    else:
        os.ftruncate(lock_fd, 0)


def link_revision(source: str, target: str) -> None:
    """Hard-link ``source`` as ``target``, replacing a leftover ``target``.

    An existing ``target`` can only be the leftover of a write that died before
    its head was renamed (the caller holds the lock and read the head), so it is
    replaced: it was never a committed revision.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        os.unlink(target)
        os.link(source, target)


def seal_superseded(kind_dir: str, key: str, revision: int) -> None:
    """Seal the revision file that ``key``'s head at ``revision`` superseded.

    Called only once the head has moved to ``revision`` (and, ``durable``, the
    directory is fsynced: the seal never reaches the disk without the head move,
    which would make the still-current head read as a rollback). A crash before
    it leaves the note, and whoever replays it seals (``_recovery``)."""
    if revision > 1:
        seal(Layout.revision(kind_dir, key, revision - 1))


def commit_revisions(
    conn: sqlite3.Connection,
    lock_fd: int,
    flag: ApplyFlag,
    kind: str,
    kind_dir: str,
    docs: Sequence[StoredDocument],
    *,
    bulk: bool,
    prevs: Sequence[str],
    durable: bool = True,
) -> None:
    """Write ``docs`` (distinct keys, new revisions) and index them. Hold the lock.

    ``prevs[i]`` is the record hash of ``docs[i]``'s previous revision ("" for 1).
    ``durable=False`` (``durability="process"``) skips every fsync: the write is
    still atomic against a process crash (the head is renamed/linked only once
    the record is complete in the page cache), not against a power loss.
    """
    written = os.pwrite(lock_fd, encode_intent([(kind, doc.key, doc.revision) for doc in docs]), 0)
    sync_each = durable and not bulk
    for doc, prev in zip(docs, prevs, strict=True):
        record = encode_record(kind, doc, prev)
        if doc.revision == 1:  # no head yet: write the revision file itself
            write_new_file(Layout.revision(kind_dir, doc.key, 1), record, sync=sync_each)
        else:
            write_file(Layout.temp(kind_dir, doc.key), record, sync=sync_each)
    if bulk and durable:
        sync_filesystem(kind_dir)
    flag.raise_()
    for doc in docs:
        head = Layout.head(kind_dir, doc.key)
        revision = Layout.revision(kind_dir, doc.key, doc.revision)
        if doc.revision == 1:
            # Creating the head is the commit point: link() makes the complete, fsynced
            # file appear under the head's name atomically, as rename() would — one
            # directory operation fewer than temp + link + rename.
            os.link(revision, head)
        else:
            temp = Layout.temp(kind_dir, doc.key)
            link_revision(temp, revision)
            os.replace(temp, head)
    if durable:
        fsync_dir(kind_dir)
    for doc in docs:
        seal_superseded(kind_dir, doc.key, doc.revision)
    with index.transaction(conn):
        for doc in docs:
            index.set_head(conn, kind, doc.key, doc.revision, None if doc.deleted else doc.index)
    flag.lower()
    clear_intent(lock_fd, written)


def move_head(kind_dir: str, key: str, revision: int) -> None:
    """Point ``key``'s head at its (complete, durable) revision file ``revision``."""
    source = Layout.revision(kind_dir, key, revision)
    if revision == 1:
        try:
            os.link(source, Layout.head(kind_dir, key))
            return
        except FileExistsError:
            pass  # a damaged or foreign head: replace it like any other
    temp = Layout.temp(kind_dir, key)
    link_revision(source, temp)
    os.replace(temp, Layout.head(kind_dir, key))


def commit_journal(
    conn: sqlite3.Connection,
    lock_fd: int,
    flag: ApplyFlag,
    staged: Sequence[Staged],
    *,
    durable: bool = True,
) -> None:
    """Write ``staged`` (distinct keys, new revisions) all-or-nothing. Hold the lock.

    ``durable=False`` skips the fsyncs (see :func:`commit_revisions`); the journal
    still makes the commit all-or-nothing against a process crash.
    """
    intents = [(s.kind, s.doc.key, s.doc.revision) for s in staged]
    os.pwrite(lock_fd, encode_intent(intents), 0)
    dirs: dict[str, None] = {}
    for s in staged:
        path = Layout.revision(s.kind_dir, s.doc.key, s.doc.revision)
        write_new_file(path, encode_record(s.kind, s.doc, s.prev), sync=durable)
        dirs[s.kind_dir] = None
    for kind_dir in dirs if durable else ():
        fsync_dir(kind_dir)
    os.pwrite(lock_fd, encode_journal(intents), 0)
    if durable:
        os.fsync(lock_fd)  # the commit point: from here on the commit is rolled forward
    flag.raise_()
    for s in staged:
        move_head(s.kind_dir, s.doc.key, s.doc.revision)
    for kind_dir in dirs if durable else ():
        fsync_dir(kind_dir)
    for s in staged:
        seal_superseded(s.kind_dir, s.doc.key, s.doc.revision)
    with index.transaction(conn):
        for s in staged:
            doc = s.doc
            index.set_head(conn, s.kind, doc.key, doc.revision, None if doc.deleted else doc.index)
    flag.lower()
    clear_intent(lock_fd)
