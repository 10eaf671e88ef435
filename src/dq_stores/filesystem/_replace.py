"""History replace for the filesystem backend: ``restore_many(..., replace=True)``.

Every other write only adds revision files; a replace swaps them, so it cannot
rely on "every file a head names is immutable" the way lock-free readers do.
Under the scope lock, for a batch of keys of one kind:

R1. Read each key's head: the old history's range ``old_first..old_last`` and
    the head's record hash. Write the note ``staging [[kind, key, first, last,
    old_first, old_last, old_digest, new_digest], ...]`` into the lock file —
    with a removal ``[dq_pruned_history, <marker key>, 1, 0, ..., ""]`` (an
    empty new range, no new head) for the pruned-history marker of each key
    whose new history starts at revision 1.
R2. Write every new revision as ``.<name>.x<N>`` (hidden: no reader, verifier or
    export looks at dot files) — all but the new head created sealed (ADR 0002,
    "Seals"): the rename keeps the inode, so nothing is left to seal after the
    swap —, then one ``syncfs`` (``durability="full"``).
R3. Overwrite the note with the journal ``replace <sha256> <line>`` and fsync the
    lock file — **the commit point** of the whole batch.
R4. Raise the applying flag and bump the scope's replace generation (``_flag``).
    Per key: rename each staged file over ``<name>.r<N>``, delete the old
    revision files outside the new range (and a leftover one past the old
    head), move the head to the new last
    revision (a removal: delete the head). fsync the directories.
R5. One SQLite transaction for every key's index row; lower the flag; clear the
    note and fsync the lock file (so no power loss can bring the journal back
    after later writes moved the keys on).

A writer killed in R1-R2 leaves a ``staging`` note: the next lock holder
deletes the staged files — nothing visible had changed. Killed in R3-R5 (the
journal is complete): the next lock holder — a writer, a process opening the
scope, or a reader that finds the flag raised — rolls it forward with
:func:`apply_replacements`, which is idempotent: a staged file already renamed
is skipped, deleting a deleted file is a no-op, moving the head again links the
same file. It raises the flag and bumps the generation before it touches
anything, like the writer. A key whose head is neither the old nor the new one
(a journal brought back after the key moved on) is left alone.

First, :func:`check_replacements` checks that the journal can be completed:
every new record (staged, or renamed already) follows the journal's hash chain
from the new head's hash down. If one is missing or damaged (a power loss with
``durability="process"``, or damage) and no file was swapped yet, the journal is
discarded like a ``staging`` note (``_recovery`` logs a WARNING); if files were
swapped, the replay raises ``IntegrityError`` and touches nothing.

Readers: the flag makes every read that *starts* during R4-R5 wait for the
lock (and roll a dead writer's journal forward). A read already under way when
R4 began — ``history``, ``get_revision``, ``query``, ``iter_documents``,
``iter_histories`` read several files — notes the generation before and compares
after, and reads again if it moved, so it never returns a mix of old and new
revisions of a key, nor, within one answer (a ``query`` page, one batch of
``ITER_BATCH`` documents of ``iter_documents``, one key's history), some keys
replaced and others not. An iteration longer than one batch may see a replace
that lands between two batches, as it may see any commit. ``get`` reads one file
(the head, renamed atomically) and ``count`` one SQLite snapshot.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import StoredDocument
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._flag import ApplyFlag
from dq_stores.filesystem._layout import (
    Layout,
    fsync_dir,
    read_file,
    sync_filesystem,
    write_new_file,
)
from dq_stores.filesystem._records import (
    Record,
    decode_full,
    decode_header,
    decode_record,
    encode_record,
    record_digest,
)
from dq_stores.filesystem._writes import (
    Replacement,
    clear_intent,
    encode_replacements,
    move_head,
)
from dq_stores.retention import PRUNED_KIND, marker_key

__all__ = ["apply_replacements", "check_replacements", "discard_staged", "replace_histories"]


def _discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _old_range(kind: str, kind_dir: str, key: str) -> tuple[int, int, str]:
    """``(first, last, head digest)`` of ``key``'s history, ``(0, 0, "")`` if none.

    Raises ``IntegrityError`` for a damaged head (never replaced silently).
    """
    try:
        data = read_file(Layout.head(kind_dir, key))
    except FileNotFoundError:
        return 0, 0, ""
    head = decode_header(data, kind, key)
    first = head.revision
    while first > 1 and os.path.exists(Layout.revision(kind_dir, key, first - 1)):
        first -= 1  # pruning removes oldest first: what is kept is a suffix
    return first, head.revision, head.digest


def replace_histories(
    conn: sqlite3.Connection,
    lock_fd: int,
    flag: ApplyFlag,
    scope: Scope,
    kind: str,
    scope_dir: str,
    histories: Sequence[tuple[str, list[StoredDocument]]],
    *,
    durable: bool,
    encode: Callable[[str, StoredDocument, str], bytes] = encode_record,
) -> None:
    """Replace each key's history by the given one, all-or-nothing (R1-R5 above).

    Hold the scope lock, with any earlier note replayed. ``histories``: validated
    ``(key, revisions)`` pairs of distinct keys of ``kind``. Raises
    ``IntegrityError`` (nothing written) when a key's current head is damaged.
    """
    kind_dir = f"{scope_dir}/docs/{kind}"
    replacements: list[Replacement] = []
    records: list[list[bytes]] = []
    for key, docs in histories:
        old_first, old_last, old_digest = _old_range(kind, kind_dir, key)
        prev = ""  # each record links to its predecessor's hash, as single writes do
        encoded = []
        for doc in docs:
            record = encode(kind, doc, prev)
            encoded.append(record)
            prev = record_digest(record)
        first, last = docs[0].revision, docs[-1].revision
        replacements.append((kind, key, first, last, old_first, old_last, old_digest, prev))
        records.append(encoded)
    replacements += _marker_removals(kind, scope_dir, histories)
    os.pwrite(lock_fd, encode_replacements(replacements, journal=False), 0)
    for (_, key, first, *_rest), encoded in zip(replacements, records, strict=False):
        last = first + len(encoded) - 1
        for revision, record in enumerate(encoded, first):
            path = Layout.staged(kind_dir, key, revision)
            # all but the new head are superseded from the start: created sealed
            write_new_file(path, record, sync=False, sealed=revision != last)
    if durable:
        sync_filesystem(kind_dir)
    os.pwrite(lock_fd, encode_replacements(replacements, journal=True), 0)
    if durable:
        os.fsync(lock_fd)  # the commit point: from here on the batch is rolled forward
    flag.raise_()
    flag.bump()
    heads = {key: docs[-1] for key, docs in histories}
    apply_replacements(conn, scope, scope_dir, replacements, heads, durable=durable)
    flag.lower()
    clear_intent(lock_fd)
    if durable:
        os.fsync(lock_fd)


def _marker_removals(
    kind: str, scope_dir: str, histories: Sequence[tuple[str, list[StoredDocument]]]
) -> list[Replacement]:
    """Removals of the pruned-history markers of the keys whose new history starts
    at revision 1 (nothing of them is pruned any more): entries with an empty new
    range (``first = 1``, ``last = 0``) and no new head (``new_digest = ""``)."""
    if kind == PRUNED_KIND:
        return []
    marker_dir = f"{scope_dir}/docs/{PRUNED_KIND}"
    out: list[Replacement] = []
    for key, docs in histories:
        if docs[0].revision == 1:
            mkey = marker_key(kind, key)
            old_first, old_last, old_digest = _old_range(PRUNED_KIND, marker_dir, mkey)
            if old_digest:
                out.append((PRUNED_KIND, mkey, 1, 0, old_first, old_last, old_digest, ""))
    return out


def _head_digest(kind: str, kind_dir: str, key: str) -> str | None:
    """The head's record hash, ``""`` without a head, ``None`` if it is damaged."""
    try:
        return decode_header(read_file(Layout.head(kind_dir, key)), kind, key).digest
    except FileNotFoundError:
        return ""
    except IntegrityError:
        return None


def apply_replacements(
    conn: sqlite3.Connection,
    scope: Scope,
    scope_dir: str,
    replacements: Sequence[Replacement],
    heads: Mapping[str, StoredDocument],
    *,
    durable: bool,
) -> None:
    """Swap in every staged history of a complete journal, then index the new heads
    (R4-R5 without the flag and note). Idempotent. Hold the lock, flag raised and
    generation bumped. ``heads``: the new head per key, when the caller has it."""
    applied: list[tuple[str, str, str]] = []
    removed: list[tuple[str, str]] = []
    for kind, key, first, last, old_first, old_last, old_digest, new_digest in replacements:
        kind_dir = f"{scope_dir}/docs/{kind}"
        if _head_digest(kind, kind_dir, key) not in (old_digest, new_digest):
            discard_staged(kind_dir, key, first, last)  # the key moved on: a stale journal
            continue
        for revision in range(first, last + 1):
            with contextlib.suppress(FileNotFoundError):  # renamed before a crash
                os.replace(
                    Layout.staged(kind_dir, key, revision),
                    Layout.revision(kind_dir, key, revision),
                )
        # old_last + 1: an interrupted write's leftover past the old head (a power
        # loss lost its note) would sit past the new head and read as a rollback
        for revision in range(old_first, old_last + 2):
            if not first <= revision <= last:
                _discard(Layout.revision(kind_dir, key, revision))
        if last < first:  # a removal: no history at all any more
            _discard(Layout.head(kind_dir, key))
            removed.append((kind, key))
            continue
        move_head(kind_dir, key, last)
        # a head already linked to that file (a replayed journal): rename() of one
        # hard link over another of the same inode does nothing, leaving the temp
        _discard(Layout.temp(kind_dir, key))
        applied.append((kind, kind_dir, key))
    if durable:
        dirs = {kind_dir for _, kind_dir, _ in applied}
        dirs |= {f"{scope_dir}/docs/{kind}" for kind, _ in removed}
        for kind_dir in sorted(dirs):
            fsync_dir(kind_dir)
    with index.transaction(conn):
        for kind, key in removed:
            index.set_head(conn, kind, key, 0, None)
        for kind, kind_dir, key in applied:
            doc = heads.get(key)
            if doc is None:
                doc = decode_record(read_file(Layout.head(kind_dir, key)), scope, kind, key)
            index.set_head(conn, kind, key, doc.revision, None if doc.deleted else doc.index)


def discard_staged(kind_dir: str, key: str, first: int, last: int) -> None:
    """Delete the staged files of one key (a replace that did not reach its journal)."""
    for revision in range(first, last + 1):
        _discard(Layout.staged(kind_dir, key, revision))


def check_replacements(
    scope: Scope, scope_dir: str, replacements: Sequence[Replacement]
) -> tuple[list[str], bool]:
    """Before a replayed journal touches a file: ``(lost, swapped)``.

    ``lost``: one message per key not yet swapped whose new history cannot be
    assembled — walking the journal's hash chain down from ``new_digest``, each
    revision's record must be its staged file or (renamed already) its revision
    file. ``swapped`` (judged only when something is lost; else ``False`` unless a
    head already moved): whether any file of the batch already changed — a head
    moved to its new history, an old history that no longer verifies from its
    head down, or a new revision file renamed into place. Reads only; a key whose
    head is neither the old nor the new one (a stale journal) is skipped, as
    :func:`apply_replacements` skips it.
    """
    lost: list[str] = []
    swapped = False
    pending: list[Replacement] = []  # not swapped yet: judged only if something is lost
    for replacement in replacements:
        kind, key, first, last, _, _, old_digest, new_digest = replacement
        kind_dir = f"{scope_dir}/docs/{kind}"
        head = _head_digest(kind, kind_dir, key)
        if head not in (old_digest, new_digest):
            continue
        if head == new_digest != old_digest:
            swapped = True
            continue
        why = _broken_chain(scope, kind, kind_dir, key, first, last, new_digest)
        if why is not None:
            lost.append(why)
        pending.append(replacement)
    if lost and not swapped:
        swapped = any(
            _touched(scope, kind, f"{scope_dir}/docs/{kind}", key, (a, b), (c, d, old))
            for kind, key, a, b, c, d, old, _ in pending
        )
    return lost, swapped


def _new_record(
    scope: Scope, kind: str, kind_dir: str, key: str, revision: int
) -> tuple[str, Record | None]:
    """Revision ``revision`` of a replace's new history — its staged file, or once
    renamed, its revision file — as ``(file name, record or None if damaged/missing)``."""
    staged = Layout.staged(kind_dir, key, revision)
    for path in (staged, Layout.revision(kind_dir, key, revision)):
        try:
            data = read_file(path)
        except FileNotFoundError:
            continue
        try:
            return os.path.basename(path), decode_full(data, scope, kind, key)
        except IntegrityError:
            return os.path.basename(path), None
    return os.path.basename(staged), None


def _broken_chain(
    scope: Scope, kind: str, kind_dir: str, key: str, first: int, last: int, new_digest: str
) -> str | None:
    """Why the new history ``first..last`` cannot be assembled, ``None`` if it can."""
    expected: str | None = new_digest
    for revision in range(last, first - 1, -1):
        name, record = _new_record(scope, kind, kind_dir, key, revision)
        if (
            record is None
            or record.doc.revision != revision
            or (expected is not None and record.digest != expected)
        ):
            return (
                f"{kind} {key!r}: revision {revision} of an interrupted history replace "
                f"(file {name}) is missing or damaged"
            )
        expected = record.prev  # None: a format-1 record carries no link to follow
    return None


def _touched(
    scope: Scope,
    kind: str,
    kind_dir: str,
    key: str,
    new: tuple[int, int],
    old: tuple[int, int, str],
) -> bool:
    """Whether a replace already changed ``key``'s files while its head is still the
    old one: the old history (``old_digest`` down to ``old_first``) no longer
    verifies, or a new revision outside the old range was renamed into place."""
    old_first, old_last, old_digest = old
    expected: str | None = old_digest
    for revision in range(old_last, old_first - 1, -1) if old_last else ():
        try:
            data = read_file(Layout.revision(kind_dir, key, revision))
            record = decode_full(data, scope, kind, key)
        except (FileNotFoundError, IntegrityError):
            return True
        if expected is not None and record.digest != expected:
            return True
        expected = record.prev
    return any(
        not old_first <= revision <= old_last
        and not os.path.exists(Layout.staged(kind_dir, key, revision))
        and os.path.exists(Layout.revision(kind_dir, key, revision))
        for revision in range(new[0], new[1] + 1)
    )
