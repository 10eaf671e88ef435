"""History export and restore for the filesystem backend.

Export walks ``docs/<kind>/`` with ``os.scandir`` (streaming, unsorted: bounded
memory however many keys) and reads each head record — the key comes from the
record, so digest-named keys are found too — then its revision files.

Restore writes a batch of histories under the scope lock, like a bulk put: the
intent note names every key's last revision, all revision files are written
(one ``syncfs`` for the batch; all but each key's last created sealed, see ADR
0002 "Seals"), and then each head is linked to its last
revision — the commit point per key, exactly as for a first write. A writer
that dies before a key's head exists leaves only revision files no head points
to; replaying its note deletes all of them (``_recovery._settle``: up to the
revision the note names).

``replace=True`` is ``_replace``: the new revision files are staged under
hidden names, an fsynced ``replace`` journal is the batch's commit point, and
the swap runs with the applying flag raised and the scope's replace generation
bumped, so lock-free readers of several files (``history``, ``get_revision``,
``query``, ``iter_documents``, export) read again instead of answering from a
mix; recovery rolls a dead writer's journal forward.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence

from dq_metadata.scope import ID_PATTERN
from dq_stores.documents import StoredDocument
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._flag import ApplyFlag
from dq_stores.filesystem._layout import Layout, fsync_dir, sync_filesystem, write_new_file
from dq_stores.filesystem._records import encode_record, record_digest
from dq_stores.filesystem._writes import clear_intent, encode_intent, move_head

__all__ = ["head_names", "kinds_of", "write_histories"]

_HEAD = ".head"


def kinds_of(scope_dir: str) -> list[str]:
    """The kinds with a directory under ``scope_dir``, sorted."""
    try:
        names = os.listdir(f"{scope_dir}/docs")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if ID_PATTERN.fullmatch(n) and ".." not in n)


def head_names(kind_dir: str) -> Iterator[str]:
    """Storage names of every key with a head in ``kind_dir`` (streamed, unsorted)."""
    try:
        entries = os.scandir(kind_dir)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            name = entry.name
            if name.endswith(_HEAD) and not name.startswith("."):
                yield name[: -len(_HEAD)]


def write_histories(
    conn: sqlite3.Connection,
    lock_fd: int,
    flag: ApplyFlag,
    kind: str,
    kind_dir: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    encode: Callable[[str, StoredDocument, str], bytes] = encode_record,
) -> None:
    """Durably write ``histories`` (keys without a head) and index their heads.

    Hold the scope lock and check first that none of the keys has a head.
    """
    intents = [(kind, key, docs[-1].revision) for key, docs in histories]
    os.pwrite(lock_fd, encode_intent(intents), 0)
    # Durable before any revision file: a power loss that kept the files but lost the
    # note would leave histories without a head — a removed head to get and verify.
    os.fsync(lock_fd)
    for key, docs in histories:
        prev = ""  # each record links to its predecessor's hash, as single writes do
        last = docs[-1].revision
        for doc in docs:
            record = encode(kind, doc, prev)
            path = Layout.revision(kind_dir, key, doc.revision)
            # every revision but the last is superseded from the start: created sealed
            write_new_file(path, record, sync=False, sealed=doc.revision != last)
            prev = record_digest(record)
    sync_filesystem(kind_dir)
    flag.raise_()
    for key, docs in histories:
        move_head(kind_dir, key, docs[-1].revision)
    fsync_dir(kind_dir)
    with index.transaction(conn):
        for key, docs in histories:
            head = docs[-1]
            index.set_head(conn, kind, key, head.revision, None if head.deleted else head.index)
    flag.lower()
    clear_intent(lock_fd)
