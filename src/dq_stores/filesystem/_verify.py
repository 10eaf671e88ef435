"""The filesystem verifier: every record, every history chain, the index vs the files.

Runs under the scope lock (writers of the scope wait; readers do not), so what it
sees is a settled state in which the index must agree with the heads exactly.
The index the files imply is derived into a scratch SQLite database in a
temporary directory (bounded memory whatever the scope's size) and compared with
the live one table by table; ``repair`` derives it into the live index instead.
Nothing here writes a document file. Seals (ADR 0002): a sealed head, or a head
whose own revision file is sealed, is a rolled-back head (``head``); a superseded
revision file that is not sealed (written before seals, or a writer stopped
between its head move and its seal, its note lost) is counted in
``counts.unsealed``, not reported — and sealed when deriving with ``seal=True``
(``--repair-index``: a ``chmod``, the content untouched).
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import ID_PATTERN, Scope
from dq_stores.filesystem import _index as index
from dq_stores.filesystem._integrity import (
    beyond_head,
    check_link,
    headless_first,
    sealed_head,
)
from dq_stores.filesystem._layout import Layout, name_of, read_file, read_linked, seal, sealed
from dq_stores.filesystem._records import decode_full
from dq_stores.integrity import IntegrityProblem, VerifyCounts
from dq_stores.retention import PRUNED_KIND, marker_key, parse_marker

__all__ = ["compare_index", "derive_index", "file_problems"]

_HEAD = ".head"
#: ``(kind, key) -> the revision the live index knows`` (0: none)
Known = Callable[[str, str], int]
_REVISION = re.compile(r"(?P<name>[a-z0-9_-]+)\.r(?P<n>[1-9][0-9]*)")


def _kinds(scope_dir: str) -> list[str]:
    try:
        names = sorted(os.listdir(f"{scope_dir}/docs"))
    except FileNotFoundError:
        return []
    return [name for name in names if ID_PATTERN.fullmatch(name) and ".." not in name]


def _nothing_known(_kind: str, _key: str) -> int:
    return 0


def derive_index(
    conn: sqlite3.Connection,
    scope: Scope,
    scope_dir: str,
    counts: VerifyCounts,
    known: Known = _nothing_known,
    *,
    seal_superseded: bool = False,
) -> Iterator[IntegrityProblem]:
    """Index every valid head into ``conn`` (an empty index, in a transaction the
    caller holds) and yield every problem found in records and histories.
    ``seal_superseded``: also seal the superseded revision files found unsealed.

    ``known`` (the live index, when there is one) tells a rolled-back or removed
    head from an interrupted write's uncommitted file (``_integrity.beyond_head``);
    those leftovers are counted in ``counts.interrupted``, not reported.
    """
    for kind in _kinds(scope_dir):
        kind_dir = f"{scope_dir}/docs/{kind}"
        with os.scandir(kind_dir) as entries:
            for entry in entries:
                yield from _check_file(
                    conn, scope, kind, kind_dir, entry.name, counts, known, seal_superseded
                )


def _check_file(
    conn: sqlite3.Connection,
    scope: Scope,
    kind: str,
    kind_dir: str,
    name: str,
    counts: VerifyCounts,
    known: Known,
    seal_superseded: bool,
) -> Iterator[IntegrityProblem]:
    if name.startswith("."):
        return  # an unfinished write (the next writer or recovery removes it)
    if name.endswith(_HEAD):
        yield from _check_document(
            conn, scope, kind, kind_dir, name, counts, known, seal_superseded
        )
        return
    match = _REVISION.fullmatch(name)
    if match is None:
        yield IntegrityProblem(scope, "record", f"unexpected file {name!r}", kind)
    elif not os.path.exists(f"{kind_dir}/{match['name']}{_HEAD}"):
        yield from _headless(scope, kind, kind_dir, name, match["n"] == "1", counts, known)
    elif match["n"] != "1" and not os.path.exists(
        f"{kind_dir}/{match['name']}.r{int(match['n']) - 1}"
    ):
        yield from _stray(scope, kind, kind_dir, match["name"], int(match["n"]))


def _stray(
    scope: Scope, kind: str, kind_dir: str, name: str, number: int
) -> Iterator[IntegrityProblem]:
    """``<name>.r<number>`` without its predecessor: the oldest revision
    ``prune_history`` kept, or (past the head's next revision, which
    ``_check_document`` judges) a file no write made — a later write of the key
    would find it beside its head and read as a rolled-back head."""
    try:
        head = decode_full(read_file(f"{kind_dir}/{name}{_HEAD}"), scope, kind, None)
    except (FileNotFoundError, IntegrityError):
        return  # reported with the head
    if number > head.doc.revision + 1:
        yield IntegrityProblem(
            scope,
            "head",
            f"revision file {name}.r{number} is past the head (revision {head.doc.revision})"
            " and follows no revision: a stray or a rolled-back head's leftover",
            kind,
            head.doc.key,
        )


def _headless(
    scope: Scope,
    kind: str,
    kind_dir: str,
    name: str,
    first: bool,
    counts: VerifyCounts,
    known: Known,
) -> Iterator[IntegrityProblem]:
    """A revision file without a head: a removed head, or (``<name>.r1`` alone, a key
    the index never knew) a new key whose write was interrupted before its head."""
    why: str | None = "a later revision than 1"
    key = None
    if first:
        try:
            key = decode_full(read_file(f"{kind_dir}/{name}"), scope, kind, None).doc.key
        except IntegrityError as exc:
            yield IntegrityProblem(scope, "record", f"revision file {name!r}: {exc}", kind)
            return
        why = headless_first(scope, kind, kind_dir, key, known(kind, key))
    if why is None:
        counts.interrupted += 1
        return
    yield IntegrityProblem(
        scope,
        "head",
        f"revision file {name!r} has no head (the head was removed: {why})",
        kind,
        key,
    )


def _check_document(
    conn: sqlite3.Connection,
    scope: Scope,
    kind: str,
    kind_dir: str,
    name: str,
    counts: VerifyCounts,
    known: Known,
    seal_superseded: bool,
) -> Iterator[IntegrityProblem]:
    try:
        data, head_st = read_linked(f"{kind_dir}/{name}")
        head = decode_full(data, scope, kind, None)
    except IntegrityError as exc:
        yield IntegrityProblem(scope, "record", f"head file {name!r}: {exc}", kind)
        return
    key, doc = head.doc.key, head.doc
    if name_of(key) + _HEAD != name:
        yield IntegrityProblem(scope, "record", f"head file {name!r} holds another key", kind, key)
        return
    counts.documents += 0 if doc.deleted else 1
    head_sealed = sealed(head_st.st_mode)  # left out of the index, as ``rebuild`` does
    if head_sealed:
        yield IntegrityProblem(
            scope, "head", sealed_head(scope, kind, key, doc.revision), kind, key
        )
    before = ""
    try:
        start = _first_kept(scope, kind_dir, kind, key)
        for revision in range(start, doc.revision + 1):
            path = Layout.revision(kind_dir, key, revision)
            try:
                data, st = read_linked(path)
            except FileNotFoundError:
                raise IntegrityError(f"revision {revision} is missing") from None
            if st.st_ino == head_st.st_ino and st.st_dev == head_st.st_dev:
                pass  # the head's own file (or a wrong one, which the chain reports)
            elif revision < doc.revision and not sealed(st.st_mode):
                counts.unsealed += 1
                if seal_superseded:
                    seal(path)
            elif revision == doc.revision and sealed(st.st_mode):
                what = f"its revision file {name_of(key)}.r{revision} (the head is a copy)"
                yield IntegrityProblem(
                    scope, "head", sealed_head(scope, kind, key, revision, what), kind, key
                )
            record = decode_full(data, scope, kind, key)
            if revision == start > 1:
                before = record.prev or ""  # its predecessor was pruned (marker recorded)
            before = check_link(kind, key, revision, record, before)
            counts.revisions += 1
            counts.legacy_records += record.prev is None
        if head.digest != before:
            raise IntegrityError("the head is not its newest revision file")
    except IntegrityError as exc:
        yield IntegrityProblem(scope, "history", str(exc), kind, key)
    if os.path.exists(Layout.revision(kind_dir, key, doc.revision + 1)):
        why = beyond_head(scope, kind, kind_dir, key, head, known(kind, key))
        if why is None:
            counts.interrupted += 1  # an uncommitted leftover; the next write replaces it
        else:
            yield IntegrityProblem(
                scope,
                "head",
                f"the head is revision {doc.revision} but revision {doc.revision + 1} was "
                f"committed ({why}): a rolled-back head",
                kind,
                key,
            )
    if not head_sealed:
        index.set_head(conn, kind, key, doc.revision, None if doc.deleted else doc.index)


def _first_kept(scope: Scope, kind_dir: str, kind: str, key: str) -> int:
    """The oldest revision ``prune_history`` left of ``key`` (1 when nothing was
    pruned), from its pruned-history marker beside the kind's directory."""
    if kind == PRUNED_KIND:
        return 1
    mkey = marker_key(kind, key)
    marker_dir = f"{kind_dir[: -len(kind)]}{PRUNED_KIND}"
    try:
        data = read_file(Layout.head(marker_dir, mkey))
    except FileNotFoundError:
        return 1
    return parse_marker(decode_full(data, scope, PRUNED_KIND, mkey).doc).pruned_through + 1


_KNOWN = "SELECT revision FROM live.heads WHERE kind = ? AND key = ?"
_TABLES = (
    ("heads", "kind, key, revision, sort_key, fields", "", "kind, key"),
    ("postings", "kind, field, value, sort_key, key", "", "kind, key"),
    ("stats", "kind, field, value, n", " WHERE n != 0", "kind, NULL"),
)


def compare_index(
    live_path: str, scope: Scope, scope_dir: str, counts: VerifyCounts
) -> Iterator[IntegrityProblem]:
    """Derive the index from the files into a scratch database and yield every
    problem in the files, then every row on which it and the live index differ."""
    with tempfile.TemporaryDirectory(prefix="dq-verify-") as scratch:
        fresh = index.connect(f"{scratch}/derived.sqlite3", durable=False)
        try:
            index.ensure_schema(fresh)
            fresh.execute("ATTACH DATABASE ? AS live", (live_path,))

            def known(kind: str, key: str) -> int:
                row = fresh.execute(_KNOWN, (kind, key)).fetchone()
                return 0 if row is None else int(row[0])

            with index.transaction(fresh):
                yield from derive_index(fresh, scope, scope_dir, counts, known)
            for table, columns, where, ident in _TABLES:
                for side, first, second in (("the index has", "live.", "main."),
                                            ("the index lacks", "main.", "live.")):  # fmt: skip
                    sql = (
                        f"SELECT {ident}, {columns} FROM {first}{table}{where} EXCEPT"
                        f" SELECT {ident}, {columns} FROM {second}{table}{where}"
                    )
                    for row in fresh.execute(sql):
                        kind, key, *values = row
                        yield IntegrityProblem(
                            scope,
                            "index",
                            f"{side} a {table} row the documents do not imply: {values!r}"
                            if side == "the index has"
                            else f"{side} a {table} row the documents imply: {values!r}",
                            str(kind),
                            None if key is None else str(key),
                        )
        finally:
            fresh.close()


def file_problems(scope: Scope, scope_dir: str, counts: VerifyCounts) -> Iterator[IntegrityProblem]:
    """Every problem in the files of a scope whose live index cannot be read at all:
    the files are still walked (into a scratch index, compared with nothing), so a
    damaged record is reported beside the damaged index — and ``--repair-index``,
    which would leave that record out of the rebuilt index, knows to stop."""
    with tempfile.TemporaryDirectory(prefix="dq-verify-") as scratch:
        fresh = index.connect(f"{scratch}/derived.sqlite3", durable=False)
        try:
            index.ensure_schema(fresh)
            with index.transaction(fresh):
                yield from derive_index(fresh, scope, scope_dir, counts)
        finally:
            fresh.close()
