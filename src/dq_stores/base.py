"""The generic typed ``Store`` over any ``DocumentBackend``.

A typed store knows one kind of artifact: how to key it, which fields are
indexed and how its documents sort. It turns models into canonical JSON and
back; the backend below it only ever sees bytes, index entries and scopes.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

import pydantic

from dq_metadata.canonical import canonical_json
from dq_metadata.errors import (
    ConflictError,
    IntegrityError,
    InvalidScopeError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.models.base import parse_model
from dq_metadata.scope import Scope
from dq_stores._bulk import create_in_commits, encode_batch, trusted_batch
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

    Subclasses set ``kind``, ``model_types``, ``indexed_fields`` and implement
    :meth:`key_of` and :meth:`index_of`.

    Writes validate once and hash once. An instance whose type is exactly one of
    ``model_types`` is trusted as it is: pydantic validated it when it was built
    (and on every attribute assignment), so validating it again would only repeat
    that work. Anything else (dicts, JSON, other models) is validated by
    :meth:`validate`. What the trust does not cover: in-place edits of nested
    containers (``run.metrics["x"] = ...``) and ``model_construct`` skip pydantic;
    pass such data as a dict, or through :meth:`validate`, to have it checked.
    """

    kind: ClassVar[str]
    #: Exact classes of the model (a union lists each member) that writes trust.
    model_types: ClassVar[tuple[type, ...]] = ()
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
        """Validate a dict/JSON/model into this store's model, or raise ``ValidationError``.

        Always validates, even an instance of the model (use it to re-check one).
        """
        if isinstance(data, pydantic.BaseModel):
            data = data.model_dump(mode="json", by_alias=True)
        return parse_model(self._adapter, data, self.kind.replace("_", " "))

    def trusted(self, data: object) -> M:
        """``data`` itself if it is an instance of the model, else :meth:`validate` of it."""
        if type(data) in self.model_types:
            return data  # type: ignore[return-value]
        return self.validate(data)

    def encode(self, item: M) -> DocumentWrite:
        """Canonical JSON of ``item``, hashed once, with its key and index entry.

        Raises:
            ValidationError: ``item`` is not a valid model instance / mapping.
        """
        return self._encode(self.trusted(item))

    def _encode(self, item: M) -> DocumentWrite:
        data = self._adapter.dump_python(item, mode="json", by_alias=True)
        self.check_document(data)
        return DocumentWrite.hashing(self.key_of(item), canonical_json(data), self.index_of(item))

    def check_document(self, data: Any) -> None:
        """Refuse the JSON of an item about to be written (every write path calls it,
        trusted instances included); the default accepts everything.

        Raises:
            ValidationError: a rule of this kind of document fails (paths are JSON paths).
        """

    def decode(self, doc: StoredDocument) -> Versioned[M]:
        return Versioned(
            self._load(doc), doc.key, doc.revision, doc.sha256, doc.written_at, doc.scope
        )

    def written(self, item: M, doc: StoredDocument) -> Versioned[M]:
        """``item`` as just written in ``doc`` (e.g. one result of a commit of
        :meth:`put_operation`), without decoding the bytes back."""
        return self._written(item, doc)

    @staticmethod
    def _written(item: M, doc: StoredDocument) -> Versioned[M]:
        # ``doc`` holds the bytes just encoded from ``item`` (or bytes with the same
        # sha256): decoding them would only rebuild an equal item.
        return Versioned(item, doc.key, doc.revision, doc.sha256, doc.written_at, doc.scope)

    def _load(self, doc: StoredDocument) -> M:
        try:
            return self._adapter.validate_json(doc.body)
        except pydantic.ValidationError as exc:
            # field names only: a value (or a dict key below a field) may be a secret
            fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
            where = f" in {', '.join(fields)}" if fields else ""
            raise IntegrityError(
                f"stored {self.kind} {doc.key!r} rev {doc.revision} in {doc.scope} no longer "
                f"validates: {exc.error_count()} problem(s){where}. It was changed outside "
                "this library or written by a version this one cannot read; reads that meet "
                "it (listings included) stop here rather than hide it: read it with the "
                "version that wrote it, or repair or delete it (its history keeps the "
                "earlier revisions)"
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
        """Write ``item`` as a new revision if ``expect`` holds (``ConflictError`` otherwise).

        The returned ``Versioned.item`` is ``item`` itself when it was a trusted
        model instance, else the model validated from it.
        """
        item = self.trusted(item)
        return self._written(item, self.backend.put(scope, self.kind, self._encode(item), expect))

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
        item, write, written = self._try_create(scope, item)
        if written is not None:
            return self._written(item, written), True
        current = self.backend.get(scope, self.kind, write.key)
        if current.sha256 != write.sha256:
            raise ConflictError(f"{self.kind} {write.key!r} exists with different content")
        return self._written(item, current), False

    def put_if_changed(self, scope: Scope, item: M) -> tuple[Versioned[M], bool]:
        """Unconditional write that adds no revision when the content is unchanged.

        Returns ``(stored, written)``; encodes and hashes ``item`` once whichever
        path is taken.
        """
        item, write, written = self._try_create(scope, item)
        if written is not None:
            return self._written(item, written), True
        try:
            current = self.backend.get(scope, self.kind, write.key)
        except NotFoundError:  # deleted meanwhile: the unconditional write below recreates it
            current = None
        if current is not None and current.sha256 == write.sha256:
            return self._written(item, current), False
        return self._written(item, self.backend.put(scope, self.kind, write, ANY)), True

    # -- bulk writes (see docs/usage.md "Bulk loading") --------------------------
    def put_many(self, scope: Scope, items: Iterable[M]) -> int:
        """Write every item unconditionally (``ANY``) as its key's next revision.

        Every item is validated and encoded before the first write, so an invalid
        item (or two items with one key) raises ``ValidationError`` and writes
        nothing. Each document is then written atomically, with the backend's bulk
        path (bounded concurrency on Azure, one transaction per chunk on SQL); the
        batch as a whole is not atomic: after an I/O error some items may be written
        (writing the batch again is safe). Memory grows with the batch: split
        imports of millions of items into batches. Returns how many were written.
        """
        _check_scope_arg(scope)
        writes = encode_batch(self, items)
        return self.backend.put_many(scope, self.kind, writes) if writes else 0

    def create_many(self, scope: Scope, items: Iterable[M]) -> builtins.list[Versioned[M]]:
        """Create every item; each key must not exist (``MUST_NOT_EXIST``).

        Validated like :meth:`put_many` before any write. The items are written in
        atomic commits of up to ``MAX_COMMIT_OPERATIONS`` (100) documents: a batch of
        at most 100 is all-or-nothing; a larger one is split in that order, and a
        conflict leaves the earlier commits written (the error says how many).

        Returns the stored items, in order.

        Raises:
            ValidationError: an invalid item or a key given twice; nothing written.
            ConflictError: a key already exists; nothing of its commit was written.
        """
        _check_scope_arg(scope)
        trusted = trusted_batch(self, items)
        writes = encode_batch(self, trusted)
        stored = create_in_commits(self.backend, scope, self.kind, writes)
        return [self._written(item, doc) for item, doc in zip(trusted, stored, strict=True)]

    def _try_create(
        self, scope: Scope, item: object
    ) -> tuple[M, DocumentWrite, StoredDocument | None]:
        """Encode once and write create-only; the stored document is ``None`` if the key
        is live (the caller decides what that means)."""
        trusted = self.trusted(item)
        write = self._encode(trusted)
        try:
            return trusted, write, self.backend.put(scope, self.kind, write, MUST_NOT_EXIST)
        except ConflictError:
            return trusted, write, None

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

    def find_document(self, scope: Scope, key: str) -> StoredDocument | None:
        """The current stored revision, undecoded; ``None`` when absent or deleted."""
        try:
            return self.backend.get(scope, self.kind, key)
        except NotFoundError:
            return None

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


def _check_scope_arg(scope: object) -> None:
    if not isinstance(scope, Scope):
        raise InvalidScopeError(f"scope must be a Scope, got {type(scope).__name__}")
