"""SQL text shared by the PostgreSQL and SQLite executors, and row decoding.

Statements are plain parameterised SQL (``%s`` for psycopg, ``?`` for sqlite3):
building them costs a few string joins, and executing them on the pooled DBAPI
connection skips SQLAlchemy's per-statement machinery (see ADR 0003).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.documents import FieldFilter, IndexEntry, PageCursor, Query, StoredDocument
from dq_stores.search import SEARCH_FIELDS, prefix_bounds

_quote: Any = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring

__all__ = [
    "DOC_COLUMNS",
    "LIVE",
    "count_search",
    "decode_document",
    "decode_documents",
    "encode_fields",
    "postings",
    "select_documents",
    "select_search",
]

#: Column list of every statement that returns documents (see ``decode_document``).
DOC_COLUMNS = (
    "{a}environment, {a}kind, {a}key, {a}revision, {a}body, {a}sha256, {a}fields, "
    "{a}sort_key, {a}written_at, {a}deleted"
)
Row = Sequence[Any]

#: The posting every live document has: ``(field, value) = ("", "")`` (field names are
#: ids, never empty). Unfiltered pages and counts are ranges of it, so every page
#: is driven by the postings primary key and ``dq_heads`` needs no index but its
#: own primary key (ADR 0003, "Plans without statistics").
LIVE = ("", "")


def encode_fields(fields: Mapping[str, tuple[str, ...]]) -> str:
    """``fields`` as the ``fields`` column's JSON: names sorted, no spaces, UTF-8 text
    as is — what ``json.dumps(..., separators=(",", ":"), ensure_ascii=False,
    sort_keys=True)`` writes, joined here from json's own C string quoting (about
    three times faster: it runs for every document written or restored).

    ``fields`` maps names to tuples of ``str`` (a validated index entry).
    """
    return (
        "{"
        + ",".join(
            f"{_quote(name)}:[{','.join(map(_quote, fields[name]))}]" for name in sorted(fields)
        )
        + "}"
    )


def postings(fields: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """Distinct ``(field, value)`` pairs a live document is found by, ``LIVE`` first."""
    return [LIVE, *sorted({(name, value) for name, values in fields.items() for value in values})]


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


class IndexFields(Mapping[str, tuple[str, ...]]):
    """A stored ``fields`` column (``encode_fields`` JSON), parsed on first use.

    Most reads return documents whose index entry nobody looks at; parsing the
    JSON of every row of a page cost about 2 µs per document. This mapping is
    read-only, compares equal to the equivalent ``dict``, and pickles/copies as one.
    """

    __slots__ = ("_parsed", "_raw")

    def __init__(self, raw: str) -> None:
        self._raw = raw
        self._parsed: dict[str, tuple[str, ...]] | None = None

    def _fields(self) -> dict[str, tuple[str, ...]]:
        parsed = self._parsed
        if parsed is None:
            loaded: dict[str, list[str]] = json.loads(self._raw)
            parsed = self._parsed = {name: tuple(values) for name, values in loaded.items()}
        return parsed

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._fields()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def __contains__(self, name: object) -> bool:
        return name in self._fields()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IndexFields):
            other = other._fields()
        if isinstance(other, Mapping):
            return self._fields() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like dict

    def __repr__(self) -> str:
        return repr(self._fields())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._fields(),))


def decode_documents(scope: Scope, rows: Iterable[Row]) -> list[StoredDocument]:
    """Documents of ``scope``'s tenant; ``scope`` is reused for rows of its environment."""
    scopes = {scope.environment: scope}
    out: list[StoredDocument] = []
    append = out.append
    for environment, kind, key, revision, body, sha256, fields, sort_key, at, deleted in rows:
        row_scope = scopes.get(environment)
        if row_scope is None:
            row_scope = scopes[environment] = Scope(scope.tenant, environment)
        append(
            StoredDocument(
                row_scope,
                kind,
                key,
                revision,
                bytes(body),
                sha256,
                IndexEntry(IndexFields(fields), sort_key),
                at.astimezone(UTC) if type(at) is datetime else _as_datetime(at),
                bool(deleted),
            )
        )
    return out


def decode_document(scope: Scope, row: Row) -> StoredDocument:
    """A document of ``scope``'s tenant; ``scope`` is reused when the environment matches."""
    return decode_documents(scope, (row,))[0]


class _Builder:
    def __init__(self, placeholder: str, fence: str) -> None:
        self.ph = placeholder
        self.fence = fence
        self.params: list[Any] = []
        self.where: list[str] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return self.ph

    def bind_all(self, values: Sequence[Any]) -> str:
        return ", ".join(self.bind(v) for v in values)


def _driving(filters: tuple[FieldFilter, ...]) -> tuple[FieldFilter, list[FieldFilter]]:
    first = min(range(len(filters)), key=lambda i: len(set(filters[i].values)))
    return filters[first], [f for i, f in enumerate(filters) if i != first]


def _filter_clauses(b: _Builder, filters: tuple[FieldFilter, ...]) -> None:
    """WHERE terms over postings alias ``p`` (one row per matching document)."""
    drive, others = _driving(filters)
    values = sorted(set(drive.values))
    b.where.append(f"p.field = {b.bind(drive.field)}")
    if len(values) == 1:
        b.where.append(f"p.value = {b.bind(values[0])}")
    else:
        b.where.append(f"p.value IN ({b.bind_all(values)})")
        # a document holding several of the values: keep only its smallest one's row
        b.where.append(
            "p.value = (SELECT min(d.value) FROM dq_postings d WHERE d.tenant = p.tenant"
            " AND d.environment = p.environment AND d.kind = p.kind AND d.field = p.field"
            f" AND d.value IN ({b.bind_all(values)}) AND d.sort_key = p.sort_key"
            " AND d.key = p.key)"
        )
    for flt in others:
        vals = sorted(set(flt.values))
        b.where.append(
            "EXISTS (SELECT 1 FROM dq_postings q WHERE q.tenant = p.tenant"
            " AND q.environment = p.environment AND q.kind = p.kind"
            f" AND q.field = {b.bind(flt.field)} AND q.value IN ({b.bind_all(vals)})"
            f" AND q.sort_key = p.sort_key AND q.key = p.key{b.fence})"
        )


def select_documents(
    dialect: tuple[str, str],
    tenant: str,
    environment: str | None,
    kind: str,
    query: Query,
    cursor: PageCursor | None,
    fetch: int | None,
) -> tuple[str, list[Any]]:
    """SELECT of live documents matching ``query`` (``fetch=None``: a count).

    One shape for every page: a posting range in ``(sort_key, key)`` order (the
    first filter's, or ``LIVE`` without filters; the other filters are
    primary-key probes) picks the page, then each of its rows fetches its head by
    primary key. On PostgreSQL that fetch is a fenced ``LATERAL`` subquery, so it
    cannot be planned as a scan of the heads repeated per row whatever the
    statistics say. ``environment=None`` spans the tenant. ``dialect`` is
    ``(placeholder, subquery fence)`` of the executor.
    """
    b = _Builder(*dialect)
    if query.filters:
        _filter_clauses(b, query.filters)
    else:
        b.where += [f"p.field = {b.bind(LIVE[0])}", f"p.value = {b.bind(LIVE[1])}"]
    b.where[:0] = [f"p.tenant = {b.ph}", f"p.kind = {b.ph}"]
    scope_params: list[Any] = [tenant, kind]
    if environment is not None:
        b.where.insert(1, f"p.environment = {b.ph}")
        scope_params.insert(1, environment)
    b.params[:0] = scope_params
    if query.sort_key_min is not None:
        b.where.append(f"p.sort_key >= {b.bind(query.sort_key_min)}")
    if query.sort_key_max is not None:
        b.where.append(f"p.sort_key < {b.bind(query.sort_key_max)}")
    order_cols = ["sort_key", "key"]
    mark: list[str] = [] if cursor is None else [cursor.sort_key, cursor.key]
    if environment is None:
        order_cols.insert(1, "environment")
        if cursor is not None:
            mark.insert(1, cursor.environment)
    if mark:
        op = "<" if query.descending else ">"
        cols = ", ".join(f"p.{c}" for c in order_cols)
        b.where.append(f"({cols}) {op} ({b.bind_all(mark)})")
    where = " AND ".join(b.where)
    if fetch is None:
        return f"SELECT count(*) FROM dq_postings p WHERE {where}", b.params
    direction = " DESC" if query.descending else ""

    def order(alias: str) -> str:
        return ", ".join(f"{alias}.{c}{direction}" for c in order_cols)

    page = (
        "SELECT p.tenant, p.environment, p.kind, p.sort_key, p.key FROM dq_postings p"
        f" WHERE {where} ORDER BY {order('p')} LIMIT {b.bind(fetch)}"
    )
    match = (
        "h.tenant = p.tenant AND h.environment = p.environment AND h.kind = p.kind"
        " AND h.key = p.key"
    )
    columns = DOC_COLUMNS.format(a="h.")
    if b.fence:  # PostgreSQL: one primary-key probe per row of the page, by construction
        join = f"CROSS JOIN LATERAL (SELECT {columns} FROM dq_heads h WHERE {match}{b.fence}) h"
    else:  # SQLite: CROSS JOIN keeps the page as the outer loop of its nested loops
        join = f"CROSS JOIN dq_heads h ON {match}"
    return f"SELECT {columns} FROM ({page}) p {join} ORDER BY {order('p')}", b.params


def _term_ranges(
    b: _Builder, tenant: str, environment: str, kind: str, term: str, what: str
) -> str:
    # One range per search field: with ``field IN (...)`` PostgreSQL's generic plan
    # bounds the scan by the kind only and filters the values (a scan of the kind).
    low, high = prefix_bounds(term)
    return " UNION ALL ".join(
        f"SELECT {what} FROM dq_postings p WHERE p.tenant = {b.bind(tenant)}"
        f" AND p.environment = {b.bind(environment)} AND p.kind = {b.bind(kind)}"
        f" AND p.field = {b.bind(field)}"
        f" AND p.value >= {b.bind(low)} AND p.value < {b.bind(high)}"
        for field in SEARCH_FIELDS
    )


def count_search(
    dialect: tuple[str, str],
    tenant: str,
    environment: str,
    kind: str,
    terms: tuple[str, ...],
    cap: int,
) -> tuple[str, list[Any]]:
    """One row: per term, its postings under the prefix counted up to ``cap`` (each
    count reads at most ``cap`` index entries), to pick the terms that drive."""
    b = _Builder(*dialect)
    counts = [
        f"(SELECT count(*) FROM ({_term_ranges(b, tenant, environment, kind, term, '1')}"
        f" LIMIT {b.bind(cap)}) c{n})"
        for n, term in enumerate(terms)
    ]
    return f"SELECT {', '.join(counts)}", b.params


def select_search(
    dialect: tuple[str, str], tenant: str, environment: str, kind: str, terms: tuple[str, ...]
) -> tuple[str, list[Any]]:
    """SELECT of the live heads having, for every term, a search token starting with it.

    Each term is two ranges of the postings primary key, ``(tenant, environment,
    kind, field, value)`` with ``field`` each of the two search fields and ``value``
    in ``[term, term + U+10FFFF)`` (``COLLATE "C"`` / ``BINARY``: code point order);
    the ranges' keys are intersected, and each key left fetches its head by primary
    key. The cost is the postings under the terms' prefixes, not the kind's size.
    """
    b = _Builder(*dialect)
    ranges = [
        f"SELECT t{n}.key FROM ({_term_ranges(b, tenant, environment, kind, term, 'p.key')}) t{n}"
        for n, term in enumerate(terms)
    ]
    keys = " INTERSECT ".join(ranges)
    if len(ranges) == 1:
        keys = keys.replace("SELECT t0.key", "SELECT DISTINCT t0.key", 1)
    match = (
        f"h.tenant = {b.bind(tenant)} AND h.environment = {b.bind(environment)}"
        f" AND h.kind = {b.bind(kind)} AND h.key = k.key"
    )
    columns = DOC_COLUMNS.format(a="h.")
    if b.fence:  # PostgreSQL: one primary-key probe per key, by construction
        join = f"CROSS JOIN LATERAL (SELECT {columns} FROM dq_heads h WHERE {match}{b.fence}) h"
    else:
        join = f"CROSS JOIN dq_heads h ON {match}"
    return f"SELECT {columns} FROM ({keys}) k {join}", b.params
