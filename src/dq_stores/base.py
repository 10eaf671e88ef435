"""The generic typed ``Store`` over any ``DocumentBackend``.

A typed store knows one kind of artifact: how to key it, which fields are
indexed and how its documents sort. It turns models into canonical JSON and
back; the backend below it only ever sees bytes, index entries and scopes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Generic, TypeVar

import pydantic

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.models.base import parse_model
from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    DocumentWrite,
    Expectation,
    FieldFilter,
    IndexEntry,
    Put,
    Query,
    StoredDocument,
    at_revision,
)

__all__ = ["ItemPage", "Revision", "Store", "Versioned"]

M = TypeVar("M")
FilterValue = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class Versioned(Generic[M]):
    """A live item with the revision it was read or written at."""

    item: M
    key: str
    revision: int
    sha256: str
    written_at: datetime
    scope: Scope


@dataclass(frozen=True, slots=True)
class Revision(Generic[M]):
    """One entry of a key's history; ``item`` is ``None`` for a deletion."""

    key: str
    revision: int
    written_at: datetime
    sha256: str
    item: M | None

    @property
    def deleted(self) -> bool:
        return self.item is None


@dataclass(frozen=True, slots=True)
class ItemPage(Generic[M]):
    items: list[Versioned[M]]
    next_token: str | None


class Store(ABC, Generic[M]):
    """Typed persistence for one artifact kind, implemented once over any backend.

    Subclasses set ``kind``, ``indexed_fields`` and implement :meth:`key_of` and
    :meth:`index_of`.
    """

    kind: ClassVar[str]
    indexed_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, backend: DocumentBackend, adapter: pydantic.TypeAdapter[M]) -> None:
        if not isinstance(backend, DocumentBackend):
            raise TypeError(f"backend must be a DocumentBackend, got {type(backend).__name__}")
        self.backend = backend
        self._adapter = adapter

    # -- what subclasses define -------------------------------------------
    @abstractmethod
    def key_of(self, item: M) -> str:
        """The document key of ``item`` within its scope."""

    @abstractmethod
    def index_of(self, item: M) -> IndexEntry:
        """Indexed field values and sort key of ``item``."""

    # -- encoding ------------------------------------------------------------
    def validate(self, data: object) -> M:
        """Validate a dict/JSON/model into this store's model, or raise ``ValidationError``."""
        if isinstance(data, pydantic.BaseModel):
            data = data.model_dump(mode="json", by_alias=True)
        return parse_model(self._adapter, data, self.kind.replace("_", " "))

    def encode(self, item: M) -> DocumentWrite:
        item = self.validate(item)
        body = canonical_json(self._adapter.dump_python(item, mode="json", by_alias=True))
        return DocumentWrite(self.key_of(item), body, content_hash(body), self.index_of(item))

    def decode(self, doc: StoredDocument) -> Versioned[M]:
        return Versioned(
            self._load(doc), doc.key, doc.revision, doc.sha256, doc.written_at, doc.scope
        )

    def _load(self, doc: StoredDocument) -> M:
        try:
            return self._adapter.validate_json(doc.body)
        except pydantic.ValidationError as exc:
            raise IntegrityError(
                f"stored {self.kind} {doc.key!r} rev {doc.revision} in {doc.scope} no longer "
                f"validates: {exc.error_count()} problem(s)"
            ) from exc

    # -- reads -----------------------------------------------------------------
    def get(self, scope: Scope, key: str) -> Versioned[M]:
        """The current revision. Raises ``NotFoundError`` if absent or deleted."""
        return self.decode(self.backend.get(scope, self.kind, key))

    def get_revision(self, scope: Scope, key: str, revision: int) -> Revision[M]:
        return self._revision(self.backend.get_revision(scope, self.kind, key, revision))

    def history(self, scope: Scope, key: str) -> list[Revision[M]]:
        """All revisions, oldest first (deletions included). ``NotFoundError`` if never written."""
        return [self._revision(d) for d in self.backend.history(scope, self.kind, key)]

    def _revision(self, doc: StoredDocument) -> Revision[M]:
        item = None if doc.deleted else self._load(doc)
        return Revision(doc.key, doc.revision, doc.written_at, doc.sha256, item)

    def list(
        self,
        scope: Scope,
        *,
        filters: Mapping[str, FilterValue] | None = None,
        limit: int = 100,
        page_token: str | None = None,
        descending: bool = False,
        sort_key_min: str | None = None,
        sort_key_max: str | None = None,
    ) -> ItemPage[M]:
        """One page, filtered on indexed fields (a sequence value matches any of its items)."""
        query = self._query(filters, limit, page_token, descending, sort_key_min, sort_key_max)
        page = self.backend.query(scope, self.kind, query)
        return ItemPage([self.decode(d) for d in page.items], page.next_token)

    def list_tenant(
        self,
        tenant: str,
        *,
        filters: Mapping[str, FilterValue] | None = None,
        limit: int = 100,
        page_token: str | None = None,
        descending: bool = False,
        sort_key_min: str | None = None,
        sort_key_max: str | None = None,
    ) -> ItemPage[M]:
        """Like :meth:`list` across every environment of ``tenant``."""
        query = self._query(filters, limit, page_token, descending, sort_key_min, sort_key_max)
        page = self.backend.query_tenant(tenant, self.kind, query)
        return ItemPage([self.decode(d) for d in page.items], page.next_token)

    def count(self, scope: Scope, filters: Mapping[str, FilterValue] | None = None) -> int:
        return self.backend.count(scope, self.kind, self._filters(filters))

    def iter_all(self, scope: Scope) -> Iterator[Versioned[M]]:
        """Stream every live item of the scope with bounded memory."""
        for doc in self.backend.iter_documents(scope, self.kind):
            yield self.decode(doc)

    def _filters(self, filters: Mapping[str, FilterValue] | None) -> tuple[FieldFilter, ...]:
        out = []
        for name, value in (filters or {}).items():
            if name not in self.indexed_fields:
                raise ValidationError(
                    f"cannot filter {self.kind} by {name!r}",
                    [Problem(name, f"indexed fields are {sorted(self.indexed_fields)}")],
                )
            values = (value,) if isinstance(value, str) else tuple(value)
            out.append(FieldFilter(name, values))
        return tuple(out)

    def _query(
        self,
        filters: Mapping[str, FilterValue] | None,
        limit: int,
        page_token: str | None,
        descending: bool,
        sort_key_min: str | None,
        sort_key_max: str | None,
    ) -> Query:
        return Query(
            self._filters(filters), descending, limit, page_token, sort_key_min, sort_key_max
        )

    # -- writes ----------------------------------------------------------------
    def put(self, scope: Scope, item: M, expect: Expectation = ANY) -> Versioned[M]:
        """Write ``item`` as a new revision if ``expect`` holds (``ConflictError`` otherwise)."""
        write = self.encode(item)
        return self.decode(self.backend.put(scope, self.kind, write, expect))

    def create(self, scope: Scope, item: M) -> Versioned[M]:
        """Write ``item`` only if its key does not exist (``ConflictError`` otherwise)."""
        return self.put(scope, item, MUST_NOT_EXIST)

    def update(self, scope: Scope, item: M, expected_revision: int) -> Versioned[M]:
        """Write ``item`` only if the current revision is ``expected_revision``."""
        return self.put(scope, item, at_revision(expected_revision))

    def create_or_same(self, scope: Scope, item: M) -> tuple[Versioned[M], bool]:
        """Idempotent create: ``(stored, True)`` if written, ``(existing, False)`` if the
        key already holds identical content (same canonical sha256).

        Raises:
            ConflictError: the key exists with different content.
        """
        write = self.encode(item)
        try:
            doc = self.backend.put(scope, self.kind, write, MUST_NOT_EXIST)
        except ConflictError:
            current = self.backend.get(scope, self.kind, write.key)
            if current.sha256 == write.sha256:
                return self.decode(current), False
            raise
        return self.decode(doc), True

    # -- operations of an atomic multi-document commit (``DocumentBackend.commit``) ----
    def put_operation(self, item: M, expect: Expectation = ANY) -> Put:
        """A ``Put`` of ``item`` for a commit (encoded and validated now, before any I/O)."""
        return Put(self.kind, self.encode(item), expect)

    def delete_operation(self, key: str, expected_revision: int | None = None) -> Delete:
        """A ``Delete`` of ``key`` for a commit (``None``: whatever its revision)."""
        expect = ANY if expected_revision is None else at_revision(expected_revision)
        return Delete(self.kind, key, expect)

    def check_operation(self, key: str, revision: int | None) -> ConditionCheck:
        """A guard that ``key`` is still at ``revision`` (``None``: still absent)."""
        expect = MUST_NOT_EXIST if revision is None else at_revision(revision)
        return ConditionCheck(self.kind, key, expect)

    def find(self, scope: Scope, key: str) -> Versioned[M] | None:
        """The current revision, or ``None`` when ``key`` is absent or deleted."""
        try:
            return self.get(scope, key)
        except NotFoundError:
            return None

    def delete(self, scope: Scope, key: str, expected_revision: int | None = None) -> int:
        """Delete ``key`` (a tombstone revision); returns that revision number."""
        expect = ANY if expected_revision is None else at_revision(expected_revision)
        return self.backend.delete(scope, self.kind, key, expect).revision
