"""The derived index: one SQLite database per scope.

It holds, per kind, the live heads ``(key, revision, sort_key)`` ordered by
``(sort_key, key)``, a postings table ``(field, value, sort_key, key)`` whose
primary key is the query order inside one field value, per-value counts (which
answer unfiltered and single-value counts in O(1) and pick the most selective
filter to drive a query). Documents stay in files; this database can always be
rebuilt from them.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dq_stores.documents import FieldFilter, IndexEntry, PageCursor, Query
from dq_stores.search import DRIVING_PROBE, SEARCH_FIELDS, driving_terms, prefix_bounds

__all__ = ["IndexRow", "connect", "ensure_schema"]

#: (sort_key, key, revision) of a live head, in query order.
IndexRow = tuple[str, str, int]

BUSY_TIMEOUT_S = 30.0
MMAP_BYTES = 1 << 30
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heads (
    kind TEXT NOT NULL, key TEXT NOT NULL, revision INTEGER NOT NULL,
    sort_key TEXT NOT NULL, fields TEXT NOT NULL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS heads_in_order ON heads (kind, sort_key, key, revision);
CREATE TABLE IF NOT EXISTS postings (
    kind TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    sort_key TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (kind, field, value, sort_key, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    kind TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (kind, field, value)) WITHOUT ROWID;
"""
_TOTAL = ""  # stats row (kind, "", "") counts the kind's live documents


def connect(path: str, *, durable: bool, fsync: bool = True) -> sqlite3.Connection:
    """Open the index in autocommit mode (transactions are explicit).

    ``durable=False`` (``synchronous=NORMAL``): a commit survives a process crash
    but maybe not a power loss — fine when the backend rebuilds the index from
    the documents after a reboot, which it does whenever it knows the boot id.
    ``fsync=False`` (``synchronous=OFF``, the backend's ``durability="process"``,
    only with a known boot id): no fsync even at checkpoints; a process crash
    still loses nothing, and an OS crash is followed by that rebuild.
    """
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA synchronous=" + ("FULL" if durable else "NORMAL" if fsync else "OFF"))
    # Read index pages straight from the OS page cache, shared by every connection
    # and process, instead of a private per-connection cache that a large index
    # would thrash (this is what keeps `latest` flat from 1k to 100k documents).
    conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taking SQLite's write lock up front."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: every statement inside sees the same committed state."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables (idempotent). Call under the scope lock."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)


def get_meta(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))


# -- writes (inside a transaction the caller opened) ---------------------------
def set_head(
    conn: sqlite3.Connection, kind: str, key: str, revision: int, entry: IndexEntry | None
) -> None:
    """Make the index say ``key``'s live head is ``revision`` (``entry=None``: not live).

    Only postings that change are touched, so rewriting a document with the same
    index entry costs one row update.
    """
    if revision == 1 and entry is not None and _insert_first(conn, kind, key, entry):
        return
    row = conn.execute(
        "SELECT sort_key, fields FROM heads WHERE kind = ? AND key = ?", (kind, key)
    ).fetchone()
    old_sort: str | None = None if row is None else row[0]
    old = set() if row is None else _pairs(json.loads(row[1]))
    new: set[tuple[str, str]] = set()
    delta: list[tuple[str, str, str, int]] = []
    if entry is None:
        if row is None:
            return
        conn.execute("DELETE FROM heads WHERE kind = ? AND key = ?", (kind, key))
        delta.append((kind, _TOTAL, _TOTAL, -1))
    else:
        fields = {name: list(values) for name, values in entry.fields.items()}
        new = _pairs(fields)
        conn.execute(
            "INSERT INTO heads (kind, key, revision, sort_key, fields) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, key) DO UPDATE SET revision = excluded.revision,"
            " sort_key = excluded.sort_key, fields = excluded.fields",
            (kind, key, revision, entry.sort_key, _ENCODE(fields)),
        )
        if row is None:
            delta.append((kind, _TOTAL, _TOTAL, 1))
    moved = entry is None or entry.sort_key != old_sort
    gone, added = (old, new) if moved else (old - new, new - old)
    if gone:
        conn.executemany(
            "DELETE FROM postings WHERE kind = ? AND field = ? AND value = ? AND sort_key = ?"
            " AND key = ?",
            [(kind, f, v, old_sort, key) for f, v in gone],
        )
    if added:
        sort_key = entry.sort_key if entry is not None else ""
        conn.executemany(
            "INSERT INTO postings (kind, field, value, sort_key, key) VALUES (?, ?, ?, ?, ?)",
            [(kind, f, v, sort_key, key) for f, v in added],
        )
    delta += [(kind, f, v, -1) for f, v in old - new]
    delta += [(kind, f, v, 1) for f, v in new - old]
    if delta:
        conn.executemany(
            "INSERT INTO stats (kind, field, value, n) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, field, value) DO UPDATE SET n = n + excluded.n",
            delta,
        )


def _insert_first(conn: sqlite3.Connection, kind: str, key: str, entry: IndexEntry) -> bool:
    """Index the first revision of a new key without looking up its old row first.

    A plain ``INSERT`` fails (changing nothing) if a row exists after all; then the
    caller takes the general path. Same rows and counts as that path with no old row.
    """
    fields = {name: list(values) for name, values in entry.fields.items()}
    try:
        conn.execute(
            "INSERT INTO heads (kind, key, revision, sort_key, fields) VALUES (?, ?, 1, ?, ?)",
            (kind, key, entry.sort_key, _ENCODE(fields)),
        )
    except sqlite3.IntegrityError:
        return False
    added = _pairs(fields)
    if added:
        conn.executemany(
            "INSERT INTO postings (kind, field, value, sort_key, key) VALUES (?, ?, ?, ?, ?)",
            [(kind, f, v, entry.sort_key, key) for f, v in added],
        )
    conn.executemany(
        "INSERT INTO stats (kind, field, value, n) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (kind, field, value) DO UPDATE SET n = n + excluded.n",
        [(kind, _TOTAL, _TOTAL, 1), *((kind, f, v, 1) for f, v in added)],
    )
    return True


def _pairs(fields: dict[str, Any]) -> set[tuple[str, str]]:
    return {(name, value) for name, values in fields.items() for value in values}


def clear(conn: sqlite3.Connection) -> None:
    for table in ("heads", "postings", "stats"):
        conn.execute(f"DELETE FROM {table}")


# -- reads ---------------------------------------------------------------------
def _stat(conn: sqlite3.Connection, kind: str, field: str, values: Sequence[str]) -> int:
    values = sorted(set(values))
    marks = ",".join("?" * len(values))
    row = conn.execute(
        f"SELECT coalesce(sum(n), 0) FROM stats WHERE kind = ? AND field = ?"
        f" AND value IN ({marks})",
        (kind, field, *values),
    ).fetchone()
    return int(row[0])


def _plan(
    conn: sqlite3.Connection, kind: str, filters: Sequence[FieldFilter]
) -> tuple[FieldFilter, list[FieldFilter]] | None:
    """The most selective filter to drive the scan, the rest as point checks.

    ``None`` when some filter matches nothing at all.
    """
    sized = [(_stat(conn, kind, f.field, f.values), i, f) for i, f in enumerate(filters)]
    if any(size == 0 for size, _, _ in sized):
        return None
    sized.sort(key=lambda item: (item[0], item[1]))
    return sized[0][2], [f for _, _, f in sized[1:]]


def _checks(others: Sequence[FieldFilter]) -> tuple[str, list[str]]:
    sql, params = "", []
    for flt in others:
        values = sorted(set(flt.values))
        marks = ",".join("?" * len(values))
        sql += (
            " AND EXISTS (SELECT 1 FROM postings q WHERE q.kind = t.kind AND q.field = ?"
            f" AND q.value IN ({marks}) AND q.sort_key = t.sort_key AND q.key = t.key)"
        )
        params += [flt.field, *values]
    return sql, params


def _range(query: Query, cursor: PageCursor | None) -> tuple[str, list[str], str]:
    sql, params = "", []
    if query.sort_key_min is not None:
        sql += " AND t.sort_key >= ?"
        params.append(query.sort_key_min)
    if query.sort_key_max is not None:
        sql += " AND t.sort_key < ?"
        params.append(query.sort_key_max)
    if cursor is not None:
        sql += " AND (t.sort_key, t.key) " + ("<" if query.descending else ">") + " (?, ?)"
        params += [cursor.sort_key, cursor.key]
    way = "DESC" if query.descending else "ASC"
    return sql, params, f" ORDER BY t.sort_key {way}, t.key {way}"


def query(
    conn: sqlite3.Connection, kind: str, query: Query, cursor: PageCursor | None, fetch: int
) -> list[IndexRow]:
    """Up to ``fetch`` live heads matching ``query`` after ``cursor``, in order.

    Each driving value is one index range scan (``LIMIT fetch``); several values
    are merged, so the cost is O(values * (log n + fetch)) plus one point lookup
    per other filter per candidate.
    """
    bounds, bound_params, order = _range(query, cursor)
    if not query.filters:
        sql = (
            "SELECT t.sort_key, t.key, t.revision FROM heads t WHERE t.kind = ?"
            + bounds
            + order
            + " LIMIT ?"
        )
        return list(conn.execute(sql, (kind, *bound_params, fetch)))
    plan = _plan(conn, kind, query.filters)
    if plan is None:
        return []
    driver, others = plan
    checks, check_params = _checks(others)
    sql = (
        "SELECT t.sort_key, t.key, h.revision FROM postings t"
        " JOIN heads h ON h.kind = t.kind AND h.key = t.key"
        " WHERE t.kind = ? AND t.field = ? AND t.value = ?" + bounds + checks + order + " LIMIT ?"
    )
    streams = [
        list(conn.execute(sql, (kind, driver.field, value, *bound_params, *check_params, fetch)))
        for value in sorted(set(driver.values))
    ]
    if len(streams) == 1:
        return streams[0]
    out: list[IndexRow] = []
    last: str | None = None
    for row in heapq.merge(*streams, key=lambda r: (r[0], r[1]), reverse=query.descending):
        if row[1] != last:  # a document holding several driving values: same (sort, key)
            out.append(row)
            last = row[1]
            if len(out) >= fetch:
                break
    return out


def count(conn: sqlite3.Connection, kind: str, filters: Sequence[FieldFilter]) -> int:
    if not filters:
        return _stat(conn, kind, _TOTAL, (_TOTAL,))
    if len(filters) == 1 and len(set(filters[0].values)) == 1:
        return _stat(conn, kind, filters[0].field, filters[0].values)
    plan = _plan(conn, kind, filters)
    if plan is None:
        return 0
    driver, others = plan
    checks, check_params = _checks(others)
    values = sorted(set(driver.values))
    marks = ",".join("?" * len(values))
    sql = (
        "SELECT count(DISTINCT t.key) FROM postings t WHERE t.kind = ? AND t.field = ?"
        f" AND t.value IN ({marks})" + checks
    )
    return int(conn.execute(sql, (kind, driver.field, *values, *check_params)).fetchone()[0])


_TERM_RANGE = (
    "SELECT {what} FROM postings WHERE kind = ? AND field IN (?, ?) AND value >= ? AND value < ?"
)


def _range_params(kind: str, term: str) -> list[str]:
    return [kind, *SEARCH_FIELDS, *prefix_bounds(term)]


def search(conn: sqlite3.Connection, kind: str, terms: Sequence[str]) -> list[tuple[str, int]]:
    """``(key, revision)`` of the live heads having a search token starting with each of
    the driving terms (``driving_terms``; the port re-checks the others): one range
    of the postings primary key per term, intersected."""
    if len(terms) > 1:
        counts = [
            conn.execute(
                f"SELECT count(*) FROM ({_TERM_RANGE.format(what='1')} LIMIT ?)",
                (*_range_params(kind, term), DRIVING_PROBE),
            ).fetchone()[0]
            for term in terms
        ]
        terms = driving_terms(dict(zip(terms, counts, strict=True)))
    ranges = [_TERM_RANGE.format(what="DISTINCT key") for _ in terms]
    params = [p for term in terms for p in _range_params(kind, term)]
    sql = (
        f"SELECT h.key, h.revision FROM ({' INTERSECT '.join(ranges)}) k"
        " CROSS JOIN heads h ON h.kind = ? AND h.key = k.key"
    )
    return [(key, revision) for key, revision in conn.execute(sql, (*params, kind))]


def heads_after(
    conn: sqlite3.Connection, kind: str | None, mark: tuple[str, str] | None, batch: int
) -> list[tuple[str, str, int]]:
    """Up to ``batch`` heads ``(kind, key, revision)`` after ``mark`` in ``(kind, key)``
    order (one statement: one snapshot)."""
    where, params = ("kind = ?", [kind]) if kind is not None else ("1", [])
    after = "" if mark is None else " AND (kind, key) > (?, ?)"
    return list(
        conn.execute(
            f"SELECT kind, key, revision FROM heads WHERE {where}{after}"
            " ORDER BY kind, key LIMIT ?",
            (*params, *(mark or ()), batch),
        )
    )
