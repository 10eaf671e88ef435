"""Value types of the document-backend port: writes, stored documents, queries, pages."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from dq_metadata.canonical import content_hash, text_problem
from dq_metadata.errors import Problem, ValidationError
from dq_metadata.scope import Scope, validate_id

__all__ = [
    "ANY",
    "MAX_COMMIT_OPERATIONS",
    "MUST_NOT_EXIST",
    "ConditionCheck",
    "Delete",
    "DocumentWrite",
    "ExpectKind",
    "Expectation",
    "FieldFilter",
    "IndexEntry",
    "Operation",
    "Page",
    "PageCursor",
    "Put",
    "Query",
    "StoredDocument",
    "at_revision",
    "search_text_problem",
]

MAX_PAGE_SIZE = 1000

#: The most operations one :meth:`DocumentBackend.commit` may hold (as DynamoDB's
#: ``TransactWriteItems``): enough for every registry operation, small enough for a
#: commit record on backends without transactions.
MAX_COMMIT_OPERATIONS = 100

# Built once: ``json.dumps`` with keyword arguments constructs an encoder per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_string = json.encoder.encode_basestring  # a JSON string literal, as _COMPACT writes it


class ExpectKind(Enum):
    ABSENT = "absent"  # the key must not currently exist (deleted counts as absent)
    REVISION = "revision"  # the current head must be exactly this revision
    ANY = "any"  # explicit unconditional write


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a write expects of the current state. Stale → ``ConflictError``, nothing written."""

    kind: ExpectKind
    revision: int | None = None

    def __post_init__(self) -> None:
        if (self.kind is ExpectKind.REVISION) != (self.revision is not None):
            raise ValidationError("a revision expectation needs exactly one revision number")
        if self.revision is not None and (
            isinstance(self.revision, bool)
            or not isinstance(self.revision, int)
            or self.revision < 1
        ):
            raise ValidationError(
                "invalid expectation", [Problem("revision", "must be an int ≥ 1")]
            )


MUST_NOT_EXIST = Expectation(ExpectKind.ABSENT)
ANY = Expectation(ExpectKind.ANY)


def at_revision(revision: int) -> Expectation:
    """Expect the current head to be ``revision``."""
    return Expectation(ExpectKind.REVISION, revision)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What a document is found by: multi-valued indexed fields and one sort key.

    ``fields`` maps an indexed field name (an id, see ``validate_id``) to the
    document's values for it (a tuple: tags and datasets are multi-valued).
    ``sort_key`` is compared as a plain string (see ``dq_metadata.sortkeys``).
    """

    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sort_key: str = ""


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """One document to write: canonical JSON bytes, their sha256, and index entry.

    Built with the plain constructor, ``sha256`` is a claim the port checks by
    re-hashing ``body`` before any I/O. Built with :meth:`hashing`, the hash is
    computed here from the body itself, so the port skips that second hash (see
    ``hash_is_derived``).
    """

    key: str
    body: bytes
    sha256: str
    index: IndexEntry = field(default_factory=IndexEntry)
    # Why this flag cannot lie by accident: it is not a constructor argument
    # (``init=False``), so neither ``DocumentWrite(...)`` nor ``dataclasses.replace``
    # can set it — ``replace(w, body=other)`` yields a write with the flag off, which
    # the port re-hashes. Only :meth:`hashing` turns it on, right after computing
    # ``sha256`` from ``body``; the instance is frozen and ``body`` is immutable
    # ``bytes``, so the pair cannot drift apart afterwards short of
    # ``object.__setattr__``, which is deliberate tampering, not an accident.
    _derived: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def hashing(cls, key: str, body: bytes, index: IndexEntry | None = None) -> DocumentWrite:
        """A write whose ``sha256`` is computed from ``body`` here (one hash, trusted).

        Raises:
            ValidationError: ``body`` is not bytes.
        """
        if not isinstance(body, bytes):
            raise ValidationError(
                "invalid document", [Problem("body", "must be canonical JSON bytes")]
            )
        write = cls(key, body, content_hash(body), IndexEntry() if index is None else index)
        object.__setattr__(write, "_derived", True)
        return write

    @property
    def hash_is_derived(self) -> bool:
        """Whether :meth:`hashing` computed ``sha256`` from ``body`` (no re-hash needed)."""
        return self._derived


@dataclass(frozen=True, slots=True)
class Put:
    """Commit operation: write ``write`` as a new revision of its key in ``kind``
    if ``expect`` holds."""

    kind: str
    write: DocumentWrite
    expect: Expectation = field(default_factory=lambda: ANY)

    @property
    def key(self) -> str:
        return self.write.key


@dataclass(frozen=True, slots=True)
class Delete:
    """Commit operation: write a tombstone revision of ``key`` (which must exist)
    if ``expect`` (``ANY`` or ``at_revision(n)``) holds."""

    kind: str
    key: str
    expect: Expectation = field(default_factory=lambda: ANY)


@dataclass(frozen=True, slots=True)
class ConditionCheck:
    """Commit operation that writes nothing: a read-guard that ``key`` is still absent
    (``MUST_NOT_EXIST``) or still at one revision (``at_revision(n)``)."""

    kind: str
    key: str
    expect: Expectation


#: One step of an atomic :meth:`DocumentBackend.commit`.
Operation = Put | Delete | ConditionCheck


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One revision of a document as a backend returns it.

    ``deleted`` is True only for tombstone revisions, which appear in ``history``.
    """

    scope: Scope
    kind: str
    key: str
    revision: int
    body: bytes
    sha256: str
    index: IndexEntry
    written_at: datetime
    deleted: bool = False


def search_text_problem(value: object) -> str | None:
    """Why ``value`` cannot be a sort key, index value, filter value or bound, or ``None``.

    Such text must be a ``str`` of valid Unicode without NUL: every backend then
    compares it the same way (code point order = UTF-8 byte order).
    """
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if "\x00" in value:
        return "must not contain NUL"
    return text_problem(value)


@dataclass(frozen=True, slots=True)
class FieldFilter:
    """Matches documents whose ``field`` holds at least one of ``values``."""

    field: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        validate_id(self.field, "indexed field")
        if not isinstance(self.values, tuple) or not self.values:
            raise ValidationError(
                "invalid filter", [Problem(self.field, "needs a tuple of one or more strings")]
            )
        for i, value in enumerate(self.values):
            problem = search_text_problem(value)
            if problem is not None:
                raise ValidationError("invalid filter", [Problem(f"{self.field}.{i}", problem)])


@dataclass(frozen=True, slots=True)
class Query:
    """A filtered, ordered, paginated query over one kind.

    All ``filters`` must match (AND); within one filter any value matches (OR).
    Results are ordered by ``(sort_key, key)``, descending when ``descending``;
    ``sort_key_min`` (inclusive) and ``sort_key_max`` (exclusive) bound the range.
    ``page_token`` is the opaque ``Page.next_token`` of the previous page.
    """

    filters: tuple[FieldFilter, ...] = ()
    descending: bool = False
    limit: int = 100
    page_token: str | None = None
    sort_key_min: str | None = None
    sort_key_max: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int):
            raise ValidationError("invalid query", [Problem("limit", "must be an int")])
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise ValidationError(
                "invalid query", [Problem("limit", f"must be between 1 and {MAX_PAGE_SIZE}")]
            )

    def fingerprint(self) -> str:
        """Identifies the query's shape, so a token cannot be replayed on another query."""
        parts: list[Any] = [
            sorted((f.field, sorted(f.values)) for f in self.filters),
            self.descending,
            self.sort_key_min,
            self.sort_key_max,
        ]
        return _COMPACT.encode(parts)


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Position after the last item of a page: ``(sort_key, environment, key)``."""

    sort_key: str
    key: str
    environment: str = ""

    def encode(self, query: Query) -> str:
        # the compact JSON of {"s": sort_key, "k": key, "e": environment, "q": fingerprint}
        text = (
            f'{{"s":{_string(self.sort_key)},"k":{_string(self.key)},'
            f'"e":{_string(self.environment)},"q":{_string(query.fingerprint())}}}'
        )
        return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, query: Query) -> PageCursor | None:
        """Decode ``query.page_token``; ``None`` for the first page.

        Raises:
            ValidationError: the token is malformed or belongs to a different query.
        """
        token = query.page_token
        if token is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = json.loads(raw)
            cursor = cls(str(payload["s"]), str(payload["k"]), str(payload.get("e", "")))
            fingerprint = payload["q"]
        except (binascii.Error, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ValidationError(
                "invalid page token", [Problem("page_token", "malformed")]
            ) from exc
        if fingerprint != query.fingerprint():
            raise ValidationError(
                "invalid page token", [Problem("page_token", "belongs to a different query")]
            )
        parts = (cursor.sort_key, cursor.key, cursor.environment)
        if any(search_text_problem(part) is not None for part in parts):
            raise ValidationError("invalid page token", [Problem("page_token", "malformed")])
        return cursor


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results and the token for the next (``None`` when this is the last)."""

    items: list[StoredDocument]
    next_token: str | None = None
