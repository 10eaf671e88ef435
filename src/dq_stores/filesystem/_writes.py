"""The write protocol: intent, durable files, then the index.

Under the scope lock:

1. Record the intent ``[[kind, key, revision], ...]`` in the lock file.
2. Write each record to ``.<name>.tmp`` and fsync it (bulk: one ``syncfs``).
3. Link it as ``<name>.r<N>`` (immutable history), rename it over ``<name>.head``
   (the commit point of the document), fsync the directory.
   A new key (revision 1, no head) writes ``<name>.r1`` itself in step 2 and
   links it as ``<name>.head`` in step 3: creating the head is its commit point.
4. In one SQLite transaction, move the index rows to the new heads.
5. Clear the intent.

A process killed after 1 leaves its intent behind; the next holder of the lock
(and every process opening the scope) replays it (``_recovery``): the index is
made to agree with whichever head file is on disk, so the old and the new
revision are both valid outcomes. The intent lives in the page cache only — a
power loss is covered by the rebuild after reboot instead.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence

from dq_stores.documents import StoredDocument
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._layout import (
    Layout,
    fsync_dir,
    sync_filesystem,
    write_file,
    write_new_file,
)
from dq_stores.filesystem._records import encode_record

__all__ = [
    "Intent",
    "clear_intent",
    "commit_revisions",
    "encode_intent",
    "link_revision",
    "read_intent",
]

#: ``(kind, key, revision)`` of a write that may be in flight.
Intent = tuple[str, str, int]
_MAX_INTENT = 1 << 22
_FIRST_READ = 1 << 12
_string = json.encoder.encode_basestring  # a JSON string literal, as _ENCODE writes it
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def read_intent(lock_fd: int) -> list[Intent] | None:
    """The intent a dead writer left, ``[]`` if none, ``None`` if it is unreadable."""
    data = os.pread(lock_fd, _FIRST_READ, 0)  # almost always empty: no 4 MiB buffer
    if len(data) == _FIRST_READ:
        data = os.pread(lock_fd, _MAX_INTENT, 0)
    if not data:
        return []
    try:
        if not data.endswith(b"\n"):
            raise ValueError("incomplete")
        return [(str(k), str(key), int(r)) for k, key, r in json.loads(data)]
    except (ValueError, TypeError):
        return None


def encode_intent(intents: Sequence[Intent]) -> bytes:
    """``[[kind, key, revision], ...]`` as one line of compact JSON."""
    if len(intents) == 1:  # a put or a delete: same bytes as _ENCODE, ~3x faster
        ((kind, key, revision),) = intents
        return f"[[{_string(kind)},{_string(key)},{int(revision)}]]\n".encode()
    return (_ENCODE([list(i) for i in intents]) + "\n").encode("utf-8")


def clear_intent(lock_fd: int) -> None:
    os.ftruncate(lock_fd, 0)


def link_revision(source: str, target: str) -> None:
    """Hard-link ``source`` as revision file ``target``.

    An existing ``target`` can only be the leftover of a write that died before
    its head was renamed (the caller holds the lock and read the head), so it is
    replaced: it was never a committed revision.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        os.unlink(target)
        os.link(source, target)


def commit_revisions(
    conn: sqlite3.Connection,
    lock_fd: int,
    kind: str,
    kind_dir: str,
    docs: Sequence[StoredDocument],
    *,
    bulk: bool,
) -> None:
    """Durably write ``docs`` (distinct keys, new revisions) and index them. Hold the lock."""
    os.pwrite(lock_fd, encode_intent([(kind, doc.key, doc.revision) for doc in docs]), 0)
    for doc in docs:
        record = encode_record(kind, doc)
        if doc.revision == 1:  # no head yet: write the revision file itself
            write_new_file(Layout.revision(kind_dir, doc.key, 1), record, sync=not bulk)
        else:
            write_file(Layout.temp(kind_dir, doc.key), record, sync=not bulk)
    if bulk:
        sync_filesystem(kind_dir)
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
    fsync_dir(kind_dir)
    with index.transaction(conn):
        for doc in docs:
            index.set_head(conn, kind, doc.key, doc.revision, None if doc.deleted else doc.index)
    clear_intent(lock_fd)
