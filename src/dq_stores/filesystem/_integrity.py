"""Read-side integrity checks: head vs index, the history chain, index rows vs records.

The record hash binds a record to its scope, kind, key and revision (``_records``);
these checks bind it to its *place*: the head must be the newest revision the
index knows (a rolled-back or removed head raises), every revision must name its
predecessor's record hash (a reordered or spliced history raises), and a row the
index returns must describe the record it points at (an edited row raises).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import FieldFilter, StoredDocument
from dq_stores.filesystem._layout import Layout, read_file, sealed
from dq_stores.filesystem._records import Record, decode_full

__all__ = [
    "agrees",
    "beyond_head",
    "check_chain",
    "check_link",
    "check_row",
    "check_writable",
    "disagreement",
    "headless_first",
    "indexed_revision",
    "linked_after_write",
    "sealed_head",
]

_SELECT = "SELECT revision FROM heads WHERE kind = ? AND key = ?"
#: How much later than its last write a never-linked file's inode may have changed.
#: Creating and writing a file set its ctime and mtime from one clock reading, and
#: fsync and reads change neither; ``link``, ``unlink`` of another name and
#: ``rename`` move only the ctime. The slack is for filesystems that stamp the two
#: separately; a rollback within it of the revision's write goes unnoticed.
_LINK_SLACK_NS = 10_000_000


def indexed_revision(conn: sqlite3.Connection | None, kind: str, key: str) -> int:
    """The live revision the index knows for ``key`` (0: none, or no index yet)."""
    if conn is None:
        return 0
    row = conn.execute(_SELECT, (kind, key)).fetchone()
    return 0 if row is None else int(row[0])


def agrees(doc: StoredDocument | None, known: int) -> bool:
    """Whether a head (``None``: no head file) and the index's revision agree."""
    if doc is None or doc.deleted:
        return known == 0
    return doc.revision == known


def disagreement(scope: Scope, kind: str, key: str, doc: StoredDocument | None, known: int) -> str:
    """The message for a head the index does not agree with (checked under the lock)."""
    head = "no head" if doc is None else f"head revision {doc.revision}"
    if doc is not None and doc.deleted:
        head += " (deleted)"
    return (
        f"{kind} {key!r} in {scope}: {head} but the index knows revision {known} — a "
        "rolled-back or removed head file, or an edited index; run `dq verify` to see "
        "which (`dq verify --repair-index` rebuilds the index if the files are intact)"
    )


def sealed_head(scope: Scope, kind: str, key: str, revision: int, what: str = "head") -> str:
    """The message for a head that is a sealed (superseded) revision file — ``what``
    names the file found sealed (the head, or the revision file it must be a link of).
    Writers seal a revision file only after the head moved past it (ADR 0002,
    "Seals"), so a sealed inode as the head is an old revision put back."""
    return (
        f"{kind} {key!r} in {scope}: the head (revision {revision}) is a superseded "
        f"revision — {what} is sealed (no write permission), as every revision file is "
        "once a later revision replaced it: a rolled-back head (an older revision "
        "linked, moved or copied over the head); run `dq verify`. If the store's files "
        "were made read-only on purpose, give the owner write permission on the "
        "head files back (`chmod u+w`)"
    )


def check_link(kind: str, key: str, number: int, record: Record, before: str) -> str:
    """Check that ``record`` is revision ``number`` following the record hashed
    ``before`` ("" before revision 1); return its own hash for the next link.

    Format-1 records (``prev is None``) carry no link and are accepted as they are.
    """
    if record.doc.revision != number:
        raise IntegrityError(f"{kind} {key!r}: revision {number} holds another revision")
    if record.prev is not None and record.prev != before:
        raise IntegrityError(
            f"{kind} {key!r}: revision {number} does not follow revision {number - 1} "
            "(history was edited, reordered or spliced)"
        )
    return record.digest


def check_chain(
    kind: str, key: str, records: Sequence[Record], head: Record, *, start: int = 1
) -> None:
    """Every revision names its predecessor's hash; the head is the newest revision.

    ``start`` > 1: revisions before it were pruned (``prune_history`` recorded the
    pruned prefix in its marker first), so the oldest kept revision's link is
    taken as it is and the chain is checked from there.
    """
    before = records[0].prev or "" if start > 1 and records else ""
    for number, record in enumerate(records, start=start):
        before = check_link(kind, key, number, record, before)
    if records and head.digest != before:
        raise IntegrityError(f"{kind} {key!r}: the head is not its newest revision file")


def check_row(
    doc: StoredDocument, sort_key: str | None, filters: Sequence[FieldFilter]
) -> StoredDocument:
    """``doc`` as returned for an index row: the row's sort key and filters must hold."""
    fields = doc.index.fields
    if (sort_key is not None and doc.index.sort_key != sort_key) or any(
        not set(f.values) & set(fields.get(f.field, ())) for f in filters
    ):
        raise IntegrityError(
            f"{doc.kind} {doc.key!r} in {doc.scope}: the index describes it otherwise than "
            "its record does; run `dq verify --repair-index`"
        )
    return doc


def linked_after_write(path: str) -> float | None:
    """Seconds between ``path``'s last write and a later change of its inode — a
    name added or removed (``link``, ``unlink``, ``rename``) —, ``None`` if there
    was none (beyond a small slack) or the file is gone.

    A revision file a write left uncommitted was never linked anywhere: the write
    that created it is the last thing that changed its inode. A committed one was
    linked as the head, and a head that went back unlinked it again, so its ctime
    is the time of the rollback. One ``stat``: call it only where the next revision
    file was already found.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    changed = st.st_ctime_ns - st.st_mtime_ns
    return changed / 1e9 if changed > _LINK_SLACK_NS else None


def _was_linked(kind_dir: str, key: str, revision: int) -> str | None:
    seconds = linked_after_write(Layout.revision(kind_dir, key, revision))
    if seconds is None:
        return None
    return (
        f"revision {revision}'s file was linked or unlinked {seconds:.2f} s after it was "
        "written, which only happens to a revision that was the head once — or to every "
        "file of a store copied or backed up with its hard links, or chmod-ed, since a "
        "power loss left the file"
    )


def beyond_head(
    scope: Scope, kind: str, kind_dir: str, key: str, head: Record, known: int
) -> str | None:
    """Why ``<name>.r<N+1>`` next to head revision N means a rolled-back head, or
    ``None`` when it is the leftover of an interrupted write. Hold the scope lock,
    with any note replayed.

    A write makes ``r<N+1>`` (fsynced) before its commit point — the head's rename
    or link, or a multi-document commit's fsynced journal; a replayed note deletes
    or commits it, so one survives only a power loss that lost the note. Such a
    leftover is exactly one revision past the head, links the head's record hash,
    and the head is still the hard link of ``r<N>`` the index knows. Anything
    else — ``r<N+2>``, an index that knows a later revision, a successor that
    does not follow the head, a head that is a copy rather than the link, or an
    ``r<N+1>`` whose inode changed after its write (:func:`linked_after_write`: it
    was linked as the head, and unlinked when the head went back — ``ln -f r<N>
    head`` with the index rebuilt from the heads, which nothing else tells) — means
    ``r<N+1>`` was committed and the head went back.
    """
    return _beyond(scope, kind, kind_dir, key, head.doc.revision, head.digest, known)


def _beyond(
    scope: Scope, kind: str, kind_dir: str, key: str, revision: int, digest: str, known: int
) -> str | None:
    if os.path.exists(Layout.revision(kind_dir, key, revision + 2)):
        return f"revision {revision + 2} exists"
    if known > revision:
        return f"the index knows revision {known}"
    try:
        data = read_file(Layout.revision(kind_dir, key, revision + 1))
        following = decode_full(data, scope, kind, key)
    except FileNotFoundError:
        return None
    except IntegrityError as exc:
        return f"revision {revision + 1} is damaged ({exc})"
    if following.doc.revision != revision + 1 or following.prev not in (None, digest):
        return f"revision {revision + 1} does not follow the head"
    try:
        linked = os.path.samefile(
            Layout.head(kind_dir, key), Layout.revision(kind_dir, key, revision)
        )
    except FileNotFoundError:
        linked = False
    if not linked:
        return f"the head is a copy, not the link of revision {revision}"
    try:  # a put linked its temp as r<N+1> and died before the rename over the head
        if os.path.samefile(
            Layout.temp(kind_dir, key), Layout.revision(kind_dir, key, revision + 1)
        ):
            return None  # the rebuild after a reboot removes both; without a boot id, none runs
    except FileNotFoundError:
        pass
    return _was_linked(kind_dir, key, revision + 1)


def headless_first(scope: Scope, kind: str, kind_dir: str, key: str, known: int) -> str | None:
    """Why ``<name>.r1`` without a head means a removed head, or ``None`` when it is
    the leftover of a new key's interrupted write (its head link was never made:
    no other revision exists, the index never knew the key, and the file was never
    linked — :func:`linked_after_write`). Hold the lock."""
    if known:
        return f"the index knows revision {known}"
    if os.path.exists(Layout.revision(kind_dir, key, 2)):
        return "revision 2 exists"
    return _was_linked(kind_dir, key, 1)


def _mode(*paths: str) -> int:
    """``st_mode`` of the first of ``paths`` that exists (-1: none does)."""
    for path in paths:
        try:
            return os.stat(path).st_mode
        except FileNotFoundError:
            continue
    return -1


def check_writable(
    conn: sqlite3.Connection,
    scope: Scope,
    kind: str,
    kind_dir: str,
    key: str,
    head: int,
    digest: str,
) -> None:
    """Before a write of revision ``head + 1`` of ``key`` (``head``: the current head's
    revision, 0 for none; ``digest``: its record hash). Hold the lock, notes replayed.

    A revision file already there is replaced by the write — right for an interrupted
    write's leftover, but a committed one means the head was rolled back, and writing
    over it would destroy that revision and every trace of the rollback. So would a
    write over a head whose revision file ``<name>.r<head>`` (or, moved away, the head
    itself) is sealed — a superseded revision linked, moved or copied back —, whatever
    else is gone. Raises ``IntegrityError`` then (nothing written). One ``stat`` and
    one ``access`` when all is well.
    """
    if head and sealed(_mode(Layout.revision(kind_dir, key, head), Layout.head(kind_dir, key))):
        raise IntegrityError(
            f"{kind} {key!r} in {scope}: not written — the head's revision {head} is a "
            "sealed, superseded revision file: a rolled-back or removed head; run "
            "`dq verify`"
        )
    if not os.path.exists(Layout.revision(kind_dir, key, head + 1)):
        return
    known = indexed_revision(conn, kind, key)
    if head:
        why = _beyond(scope, kind, kind_dir, key, head, digest, known)
    else:
        why = headless_first(scope, kind, kind_dir, key, known)
    if why is not None:
        raise IntegrityError(
            f"{kind} {key!r} in {scope}: not written — the head is revision {head} but "
            f"revision {head + 1} was committed ({why}): a rolled-back or removed head; "
            "run `dq verify`"
        )
