"""The document-backend port: versioned canonical-JSON documents by (scope, kind, key).

Every adapter (memory, filesystem, SQL, Azure Blob) implements the protected
``_`` methods once. The public methods here validate every argument before any
I/O and hold the logic that must be identical everywhere (page tokens, the
tenant-wide merge), so no adapter can forget a check.

Contract, proven for each adapter by ``dq_stores.testing``:

* Revisions are integers starting at 1, +1 per write of a key (deletes write a
  tombstone revision; a re-created key continues the sequence). History is kept.
* A write's ``Expectation`` is checked atomically with the write by the backend
  itself (constraint, conditional request, lock) — a stale one raises
  ``ConflictError`` and writes nothing.
* :meth:`commit` applies several writes and read-guards all-or-nothing: no reader
  ever sees part of a commit, and a failed one writes nothing.
* A scope never sees another scope's documents, counts or pages.
* Queries are answered from an index: cost grows with the page, not the store.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self

from dq_metadata.canonical import content_hash
from dq_metadata.errors import (
    ConflictError,
    InvalidScopeError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.scope import Scope, validate_id
from dq_stores.documents import (
    ANY,
    MAX_COMMIT_OPERATIONS,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    DocumentWrite,
    Expectation,
    ExpectKind,
    FieldFilter,
    IndexEntry,
    Operation,
    Page,
    PageCursor,
    Put,
    Query,
    StoredDocument,
    at_revision,
    search_text_problem,
)
from dq_stores.history import MAX_RESTORE_KEYS, check_histories
from dq_stores.keys import validate_key
from dq_stores.retention import (
    PRUNED_KIND,
    HistoryChanged,
    PrunedPrefix,
    marker_key,
    marker_write,
    parse_marker,
)
from dq_stores.search import (
    MAX_SEARCH_LIMIT,
    SearchCursor,
    SearchHit,
    SearchPage,
    parse_query,
    rank,
)

if TYPE_CHECKING:
    from dq_stores.integrity import IntegrityProblem, VerifyCounts

__all__ = ["MAX_RESTORE_KEYS", "RESERVED_TENANT", "DocumentBackend", "check_history"]

MAX_INDEX_VALUE_BYTES = 512
#: The tenant ``dq doctor`` probes in (scope ``dq-doctor/probe``, see
#: :mod:`dq_stores.health`). A probe cannot remove the tombstone and pruning marker
#: it leaves, so :meth:`DocumentBackend.iter_scopes` — hence whole-store export,
#: migrate and ``dq verify`` — leaves this tenant out. Do not use it for data.
RESERVED_TENANT = "dq-doctor"
_MARKER_ATTEMPTS = 8


def _check_scope(scope: object) -> Scope:
    if not isinstance(scope, Scope):
        raise InvalidScopeError(f"scope must be a Scope, got {type(scope).__name__}")
    return scope


def _value_too_long(value: str) -> bool:
    # ASCII: one byte per character, no need to encode (same answer, same errors).
    size = len(value) if value.isascii() else len(value.encode("utf-8"))
    return size > MAX_INDEX_VALUE_BYTES


def _text_problem(value: object) -> str | None:
    # The common case first (every index value of every write): plain short ASCII.
    if (
        type(value) is str
        and value.isascii()
        and len(value) <= MAX_INDEX_VALUE_BYTES
        and "\x00" not in value
    ):
        return None
    problem = search_text_problem(value)
    if problem is None and _value_too_long(value):  # type: ignore[arg-type]
        return f"is over {MAX_INDEX_VALUE_BYTES} bytes of UTF-8"
    return problem


def _check_index(index: IndexEntry) -> None:
    problems: list[Problem] = []
    problem = _text_problem(index.sort_key)
    if problem is not None:
        problems.append(Problem("index.sort_key", problem))
    for name, values in index.fields.items():
        validate_id(name, "indexed field")
        if not isinstance(values, tuple):
            problems.append(Problem(f"index.{name}", "values must be a tuple of strings"))
            continue
        for i, value in enumerate(values):
            problem = "must not be empty" if value == "" else _text_problem(value)
            if problem is not None:
                problems.append(Problem(f"index.{name}.{i}", problem))
    if problems:
        raise ValidationError("invalid index entry", problems)


def check_history(scope: Scope, kind: str, key: str, revisions: Sequence[StoredDocument]) -> None:
    """Validate one key's history exactly as :meth:`DocumentBackend.restore_many` does
    before any I/O (kind, key, numbering, times, hashes, index entries).

    What it cannot know without a target: whether a history starting at ``k > 1``
    has its pruned-history marker there.

    Raises:
        ValidationError: the history would be refused by ``restore_many``.
    """
    validate_id(kind, "kind")
    check_histories(_check_scope(scope), kind, [(key, revisions)], _check_index)


def _check_query(query: Query | None) -> Query:
    """The query, its sort-key bounds checked (filters and limit check themselves)."""
    if query is None:
        return Query()
    if not isinstance(query, Query):
        raise ValidationError(f"query must be a Query, got {type(query).__name__}")
    for name in ("sort_key_min", "sort_key_max"):
        bound = getattr(query, name)
        problem = None if bound is None else search_text_problem(bound)
        if problem is not None:
            raise ValidationError("invalid query", [Problem(name, problem)])
    return query


def _check_write(write: DocumentWrite) -> DocumentWrite:
    if not isinstance(write, DocumentWrite):
        raise ValidationError(f"expected a DocumentWrite, got {type(write).__name__}")
    validate_key(write.key)
    if not isinstance(write.body, bytes):
        raise ValidationError("invalid document", [Problem("body", "must be canonical JSON bytes")])
    # A write built by ``DocumentWrite.hashing`` (as every typed store does) carries a
    # hash computed from this very body and frozen with it: hashing again proves
    # nothing. Any other write's hash is a claim, checked here before any I/O.
    if not write.hash_is_derived and write.sha256 != content_hash(write.body):
        raise ValidationError("invalid document", [Problem("sha256", "does not match the body")])
    _check_index(write.index)
    return write


def _check_expectation_arg(expect: object, allowed: tuple[ExpectKind, ...], where: str) -> None:
    if not isinstance(expect, Expectation) or expect.kind not in allowed:
        names = " or ".join(
            {"absent": "MUST_NOT_EXIST", "revision": "at_revision(n)", "any": "ANY"}[k.value]
            for k in allowed
        )
        raise ValidationError("invalid commit", [Problem(where, f"expect must be {names}")])


def _check_operations(operations: object) -> tuple[Operation, ...]:
    """Validate a commit's operations before any I/O (see :meth:`DocumentBackend.commit`)."""
    if isinstance(operations, (str, bytes)) or not isinstance(operations, Sequence):
        raise ValidationError("invalid commit", [Problem("operations", "must be a sequence")])
    ops = tuple(operations)
    if not 1 <= len(ops) <= MAX_COMMIT_OPERATIONS:
        raise ValidationError(
            "invalid commit",
            [Problem("operations", f"give between 1 and {MAX_COMMIT_OPERATIONS} operations")],
        )
    seen: set[tuple[str, str]] = set()
    every = (ExpectKind.ABSENT, ExpectKind.REVISION, ExpectKind.ANY)
    for i, op in enumerate(ops):
        where = f"operations[{i}]"
        if isinstance(op, Put):
            _check_write(op.write)
            _check_expectation_arg(op.expect, every, where)
        elif isinstance(op, Delete):
            validate_key(op.key)
            _check_expectation_arg(op.expect, (ExpectKind.ANY, ExpectKind.REVISION), where)
        elif isinstance(op, ConditionCheck):
            validate_key(op.key)
            _check_expectation_arg(op.expect, (ExpectKind.ABSENT, ExpectKind.REVISION), where)
        else:
            raise ValidationError(
                "invalid commit",
                [Problem(where, f"must be Put, Delete or ConditionCheck, got {type(op).__name__}")],
            )
        validate_id(op.kind, "kind")
        if (op.kind, op.key) in seen:
            raise ValidationError(
                "invalid commit",
                [Problem(where, f"{op.kind} {op.key!r} appears twice; one operation per key")],
            )
        seen.add((op.kind, op.key))
    return ops


def check_pruned_start(kind: str, key: str, first: int, pruned_through: int | None) -> None:
    """``ValidationError`` unless a restored history of ``kind``/``key`` starting at
    revision ``first`` finds the marker it needs: ``pruned_through == first - 1``
    (``pruned_through`` ``None``: no marker). Nothing to check for ``first == 1``."""
    if first == 1 or kind == PRUNED_KIND or pruned_through == first - 1:
        return
    recorded = "no marker" if pruned_through is None else f"pruned_through={pruned_through}"
    raise ValidationError(
        "invalid history",
        [
            Problem(
                f"{key!r}.revisions[0]",
                f"starts at revision {first}, but the target's pruned-history marker "
                f"of {kind} {key!r} has {recorded}, not pruned_through={first - 1}; "
                f"restore the {PRUNED_KIND} markers first",
            )
        ],
    )


class DocumentBackend(ABC):
    """Port for versioned JSON documents. Subclasses implement the ``_`` methods."""

    #: Whether ``restore_many(..., replace=True)`` is supported (atomically); adapters
    #: that set it implement the ``replace`` branch of ``_restore_many``.
    replaces_atomically: ClassVar[bool] = False

    # -- reads -------------------------------------------------------------
    def get(self, scope: Scope, kind: str, key: str) -> StoredDocument:
        """Return the current revision.

        Raises:
            NotFoundError: the key never existed or its head is a tombstone.
            IntegrityError: the stored bytes fail their sha256 check.
        """
        return self._get(_check_scope(scope), validate_id(kind, "kind"), validate_key(key))

    def get_revision(self, scope: Scope, kind: str, key: str, revision: int) -> StoredDocument:
        """Return one historical revision (a tombstone comes back with ``deleted=True``).

        Raises:
            NotFoundError: no such key or revision.
        """
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
            raise ValidationError("invalid revision", [Problem("revision", "must be an int ≥ 1")])
        return self._get_revision(
            _check_scope(scope), validate_id(kind, "kind"), validate_key(key), revision
        )

    def history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        """Every revision of ``key``, oldest first, tombstones included.

        Raises:
            NotFoundError: the key never existed.
        """
        return self._history(_check_scope(scope), validate_id(kind, "kind"), validate_key(key))

    def query(self, scope: Scope, kind: str, query: Query | None = None) -> Page:
        """One page of live documents of ``kind`` matching ``query``, via the index.

        Returns an empty page (``next_token=None``) when nothing matches.

        Raises:
            ValidationError: a malformed page token or one issued for another query,
                or a sort-key bound that is not valid Unicode text without NUL.
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        query = _check_query(query)
        cursor = PageCursor.decode(query)
        items = self._query(scope, kind, query, cursor, query.limit + 1)
        return self._page(items, query)

    def query_tenant(self, tenant: str, kind: str, query: Query | None = None) -> Page:
        """Like :meth:`query` across every environment of ``tenant``.

        Ordered by ``(sort_key, environment, key)``; items carry their own scope.
        The default merges per-environment index queries; backends may override.
        """
        validate_id(tenant, "tenant")
        validate_id(kind, "kind")
        query = _check_query(query)
        cursor = PageCursor.decode(query)
        items = self._query_tenant(tenant, kind, query, cursor, query.limit + 1)
        return self._page(items, query)

    def count(self, scope: Scope, kind: str, filters: Sequence[FieldFilter] = ()) -> int:
        """Number of live documents of ``kind`` matching all ``filters``."""
        _check_scope(scope)
        validate_id(kind, "kind")
        filters = tuple(filters)
        if not all(isinstance(f, FieldFilter) for f in filters):
            raise ValidationError("filters must be FieldFilter values")
        return self._count(scope, kind, filters)

    def iter_documents(self, scope: Scope, kind: str | None = None) -> Iterator[StoredDocument]:
        """Stream the live head of every document in ``scope`` (of one ``kind`` if given).

        Memory stays bounded whatever the number of documents.
        """
        _check_scope(scope)
        if kind is not None:
            validate_id(kind, "kind")
        return self._iter_documents(scope, kind)

    def search(
        self,
        scope: Scope,
        kind: str,
        text: str,
        *,
        limit: int = 20,
        page_token: str | None = None,
    ) -> SearchPage:
        """Full-text search over the live documents of ``kind`` in ``scope``.

        ``text`` is split into terms as :func:`dq_stores.search.parse_query` says; a
        document matches when every term is a prefix of one of the tokens its writer
        put into its search fields (:func:`dq_stores.search.search_fields`). Hits come
        ranked by :func:`dq_stores.search.score` (higher first), ties by key; at most
        ``limit`` (1..``MAX_SEARCH_LIMIT``) per page, ``page_token`` being the previous
        page's ``next_token``. Keyset pagination: a document unchanged while a
        client pages through appears exactly once. Cost grows with the number of
        matching documents, not with the size of the store.

        Raises:
            ValidationError: bad text, limit or page token (path ``text``, ``limit``,
                ``page_token``); before any I/O.
            MisconfiguredError: the backend cannot search (a plug-in without it).
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        terms = parse_query(text)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_SEARCH_LIMIT
        ):
            raise ValidationError(
                "invalid search",
                [Problem("limit", f"must be an int between 1 and {MAX_SEARCH_LIMIT}")],
            )
        cursor = SearchCursor.decode(page_token, terms)
        ranked = rank(terms, self._search(scope, kind, terms), cursor)
        page = ranked[:limit]
        hits = [SearchHit(doc, points) for points, doc in page]
        if len(ranked) <= limit:
            return SearchPage(hits)
        last_points, last_doc = page[-1]
        return SearchPage(hits, SearchCursor(last_points, last_doc.key).encode(terms))

    def list_environments(self, tenant: str) -> list[str]:
        """Sorted environments of ``tenant`` that hold (or held) documents."""
        return sorted(self._list_environments(validate_id(tenant, "tenant")))

    def iter_scopes(self) -> Iterator[Scope]:
        """Every scope holding documents (admin export, whole-store ``dq verify``).

        The tenant :data:`RESERVED_TENANT` (``dq doctor``'s scratch scope) is left
        out; :meth:`list_environments` still names its environment when asked.
        """
        return (s for s in self._iter_scopes() if s.tenant != RESERVED_TENANT)

    def iter_index_scopes(self) -> Iterator[Scope]:
        """Scopes where the backend keeps derived index data, whether or not they
        hold a document: index rows left (or added) where no document is still answer
        ``count``, so the verifier walks these scopes too. Default: none kept apart."""
        return iter(())

    # -- writes ------------------------------------------------------------
    def put(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument:
        """Write a new revision of ``write.key`` if ``expect`` holds, atomically.

        Raises:
            ConflictError: ``expect`` is stale; nothing was written.
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        _check_write(write)
        if not isinstance(expect, Expectation):
            raise ValidationError(
                "expect must be an Expectation (MUST_NOT_EXIST, ANY, at_revision)"
            )
        return self._put(scope, kind, write, expect)

    def put_many(self, scope: Scope, kind: str, writes: Iterable[DocumentWrite]) -> int:
        """Unconditionally write many documents (bulk import); returns how many.

        Each document is written atomically; the batch as a whole is not.
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        return self._put_many(scope, kind, (_check_write(w) for w in writes))

    def commit(self, scope: Scope, operations: Sequence[Operation]) -> list[StoredDocument | None]:
        """Apply ``operations`` (``Put``, ``Delete``, ``ConditionCheck``) atomically.

        All of them take effect or none does. Each ``Put``/``Delete`` makes the next
        revision of its key exactly as :meth:`put`/:meth:`delete` would; a
        ``ConditionCheck`` writes nothing and only guards that its key is still
        absent or still at one revision. Concurrent commits and single writes are
        serialised: a reader never sees part of a commit, and an expectation is
        checked against the state the commit is applied to (no lost update).

        Returns, aligned with ``operations``, the stored revision of each
        ``Put``/``Delete`` (tombstones with ``deleted=True``) and ``None`` for each
        ``ConditionCheck``.

        Raises:
            ValidationError: no operations, more than ``MAX_COMMIT_OPERATIONS``, two
                operations on one ``(kind, key)``, or any invalid write, key, kind or
                expectation; raised before any I/O.
            ConflictError: the first operation (in order) whose expectation does not
                hold; nothing was written.
            NotFoundError: a ``Delete`` names a key that does not currently exist
                (and no earlier operation failed); nothing was written.
        """
        _check_scope(scope)
        return self._commit(scope, _check_operations(operations))

    def delete(
        self, scope: Scope, kind: str, key: str, expect: Expectation = ANY
    ) -> StoredDocument:
        """Write a tombstone revision; the key then reads as absent.

        ``expect`` is ``ANY`` or ``at_revision(n)``.

        Raises:
            NotFoundError: the key does not currently exist.
            ConflictError: ``expect`` is stale.
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        validate_key(key)
        if not isinstance(expect, Expectation) or expect.kind is ExpectKind.ABSENT:
            raise ValidationError("delete expects ANY or at_revision(n)")
        return self._delete(scope, kind, key, expect)

    # -- retention ---------------------------------------------------------
    def prune_history(self, scope: Scope, kind: str, key: str, keep_from_revision: int) -> int:
        """Remove the revisions of ``key`` older than ``keep_from_revision``.

        The current revision (live or tombstone) is never removed:
        ``keep_from_revision`` above it is lowered to it. Before anything is
        removed a :class:`~dq_stores.retention.PrunedPrefix` marker records the
        pruned prefix (see :mod:`dq_stores.retention`); afterwards ``history``
        starts at ``keep_from_revision`` and ``get_revision`` of a pruned revision
        raises ``NotFoundError``. Revisions are immutable, so concurrent writers
        (which only append) are unaffected. Pruning again is idempotent.

        Returns:
            How many revisions were removed (0 when nothing was older).

        Raises:
            NotFoundError: the key never existed.
            ValidationError: bad arguments, or ``kind`` is the marker kind.
            MisconfiguredError: the adapter does not implement pruning.
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        validate_key(key)
        if isinstance(keep_from_revision, bool) or not isinstance(keep_from_revision, int):
            raise ValidationError(
                "invalid revision", [Problem("keep_from_revision", "must be an int ≥ 1")]
            )
        if keep_from_revision < 1:
            raise ValidationError(
                "invalid revision", [Problem("keep_from_revision", "must be an int ≥ 1")]
            )
        if kind == PRUNED_KIND:
            raise ValidationError(
                "invalid kind", [Problem("kind", f"{PRUNED_KIND} markers are never pruned")]
            )
        revisions = self._history(scope, kind, key)
        keep_from = min(keep_from_revision, revisions[-1].revision)
        doomed = [doc for doc in revisions if doc.revision < keep_from]
        if not doomed:
            return 0
        anchor = doomed[-1]
        prefix = PrunedPrefix(kind, key, anchor.revision, anchor.sha256, datetime.now(UTC))
        replaced = self._advance_marker(scope, prefix)
        try:
            self._prune_history(
                scope, kind, key, keep_from, {doc.revision: doc.sha256 for doc in doomed}
            )
        except HistoryChanged:
            if replaced is not None:
                self._take_back_marker(scope, prefix, *replaced)
            raise ConflictError(
                f"{kind} {key!r}: its history was replaced while it was being pruned "
                "(a restore with replace); nothing was removed — prune it again"
            ) from None
        return len(doomed)

    def pruned_prefix(self, scope: Scope, kind: str, key: str) -> PrunedPrefix | None:
        """The pruned prefix of ``key``'s history, or ``None`` when nothing was pruned."""
        _check_scope(scope)
        validate_id(kind, "kind")
        validate_key(key)
        return self._pruned_prefix(scope, kind, key)

    def _pruned_prefix(self, scope: Scope, kind: str, key: str) -> PrunedPrefix | None:
        try:
            doc = self._get(scope, PRUNED_KIND, marker_key(kind, key))
        except NotFoundError:
            return None
        return parse_marker(doc)

    def _advance_marker(
        self, scope: Scope, prefix: PrunedPrefix
    ) -> tuple[StoredDocument | None, StoredDocument] | None:
        """Write ``prefix`` unless the marker already covers it (only ever forward).

        Returns ``(the marker it replaced or None, the marker written)``, or ``None``
        when the marker already covered ``prefix`` (nothing written)."""
        for _ in range(_MARKER_ATTEMPTS):
            try:
                doc: StoredDocument | None = self._get(
                    scope, PRUNED_KIND, marker_key(prefix.kind, prefix.key)
                )
            except NotFoundError:
                doc, expect = None, MUST_NOT_EXIST
            else:
                assert doc is not None
                if parse_marker(doc).pruned_through >= prefix.pruned_through:
                    return None
                expect = at_revision(doc.revision)
            try:
                written = self._put(scope, PRUNED_KIND, marker_write(prefix), expect)
                return doc, written
            except ConflictError:
                continue  # another pruner moved it meanwhile: look again
        raise ConflictError(f"pruned-history marker of {prefix.kind} {prefix.key!r} keeps changing")

    def _take_back_marker(
        self,
        scope: Scope,
        prefix: PrunedPrefix,
        before: StoredDocument | None,
        written: StoredDocument,
    ) -> None:
        """Undo a marker write whose prune was refused: put back the marker it replaced
        (or delete it), unless someone changed the marker since (a replace drops or
        sets it as its new history needs, another pruner moves it on: theirs stands).

        "Ours" is the marker head with our revision number *and* our sha256 (its
        ``pruned_at`` makes every marker written unique): a revision number alone
        names another marker after a replace dropped ours and a later prune or import
        wrote one at the same number. The undo is then conditional on that revision;
        the window left — another marker written at our revision number between this
        read and that write — is microseconds, inside a race that already needs a
        replace and a second prune of the key (ADR 0014, item 2)."""
        key = marker_key(prefix.kind, prefix.key)
        try:
            current = self._get(scope, PRUNED_KIND, key)
        except NotFoundError:
            return  # dropped since (by the replace): nothing of ours is left
        if (current.revision, current.sha256) != (written.revision, written.sha256):
            return
        expect = at_revision(written.revision)
        try:
            if before is None:
                self._delete(scope, PRUNED_KIND, key, expect)
            else:
                again = DocumentWrite(key, before.body, before.sha256, before.index)
                self._put(scope, PRUNED_KIND, again, expect)
        except (ConflictError, NotFoundError):
            pass  # changed since: the replace's marker stands

    def _prune_history(
        self, scope: Scope, kind: str, key: str, keep_from: int, seen: Mapping[int, str]
    ) -> None:
        """Remove the stored revisions of ``key`` below ``keep_from`` (which is at most
        the head revision; the marker is already written). Idempotent: revisions
        already gone are skipped. Reads must then treat revisions up to the
        marker's ``pruned_through`` as absent, not missing.

        ``seen`` maps each revision the caller read and means to remove to its
        sha256. A backend that can replace histories (``replaces_atomically``) checks,
        under the same exclusion as its replace, that the history is still the one
        read — the head at ``keep_from`` or later, the marker covering ``max(seen)``,
        and every revision below ``keep_from`` still stored either one of ``seen``
        with its sha256 or covered by the marker — and raises :class:`HistoryChanged`
        otherwise, removing nothing."""
        raise MisconfiguredError(f"{type(self).__name__} cannot prune history")

    # -- history transfer (export / restore, see docs/archive-format.md) -------
    def iter_histories(
        self, scope: Scope, kind: str | None = None
    ) -> Iterator[list[StoredDocument]]:
        """Stream every key of ``scope`` (of one ``kind`` if given) with its whole history.

        Yields one list per key: every revision as stored, oldest first, tombstones
        included — keys whose head is a tombstone too, which ``iter_documents``
        skips. Keys come grouped by kind in ascending kind order; the key order
        within a kind is the backend's own. Memory holds one key's history plus a
        backend batch, whatever the number of documents.
        """
        _check_scope(scope)
        if kind is not None:
            validate_id(kind, "kind")
        return self._iter_histories(scope, kind)

    def restore(
        self,
        scope: Scope,
        kind: str,
        key: str,
        revisions: Sequence[StoredDocument],
        *,
        replace: bool = False,
    ) -> None:
        """Write ``revisions`` of a key exactly as given (see :meth:`restore_many`).

        The history is written with its own revision numbers, ``written_at`` times,
        bodies, index entries and tombstones; afterwards ``get``, ``history``,
        ``get_revision``, ``query`` and ``count`` answer as they did where it came
        from. Atomic: all revisions or none become visible.

        Raises:
            ValidationError: ``revisions`` is not a history of ``key`` (see
                :meth:`restore_many`); before any write.
            ConflictError: without ``replace``, ``key`` already has a history (live
                or deleted); nothing was written.
            MisconfiguredError: ``replace`` on a backend that cannot replace
                atomically (``replaces_atomically`` is False).
        """
        self.restore_many(scope, kind, [(key, revisions)], replace=replace)

    def restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: Sequence[tuple[str, Sequence[StoredDocument]]],
        *,
        replace: bool = False,
    ) -> int:
        """Restore several keys' histories at once (see :meth:`restore`); returns how many.

        ``histories``: up to ``MAX_RESTORE_KEYS`` ``(key, revisions)`` pairs with
        distinct keys. Each ``revisions`` list holds revisions ``k..n`` of that key
        in order, without gaps: a live revision has a body hashing to its
        ``sha256`` and a valid index entry; a tombstone (``deleted=True``) has an
        empty body, hash and index entry; ``written_at`` is timezone-aware. The
        revisions' own ``scope`` is ignored: they are written into ``scope``.

        ``k`` is 1 unless the history was pruned (:meth:`prune_history`): a history
        starting at ``k > 1`` needs the target's pruned-history marker for the key
        (kind :data:`~dq_stores.retention.PRUNED_KIND`, restored first like any
        other key) to record exactly ``pruned_through = k - 1``. Reads then treat
        revisions below ``k`` as pruned, as on the source.

        Without ``replace`` (the default) only keys with no history are written:
        if any key of the batch already has one, the whole batch is refused with
        ``ConflictError`` and nothing is written. History is never overwritten
        unless asked.

        Atomicity: memory, SQL and filesystem restore the whole batch
        all-or-nothing. Azure Blob restores **each key** atomically but not the
        batch: a reader may see some keys restored and others not yet, and a
        restore that fails or dies part-way leaves the keys it finished complete
        and the others absent (never a key with part of its history); restoring
        the rest again completes it (ADR 0013).

        ``replace=True`` asks for exactly this: each key's existing history (every
        revision, live or tombstone, and its index entries) is removed and the
        given one written in its place; keys without a history are simply
        written. The batch is replaced all-or-nothing: a reader sees every key of
        it as before or every key as given, never a mix and never a key half
        replaced; a failure leaves every key as it was. A key whose given
        history starts at revision 1 also loses its pruned-history marker
        (:data:`~dq_stores.retention.PRUNED_KIND`, left by :meth:`prune_history`
        or an earlier restore), in the same all-or-nothing batch: nothing of it is
        pruned any more, and a marker left behind would make ``dq verify`` and
        every later export treat revisions it holds as pruned. A history starting
        at ``k > 1`` keeps the marker it needs. Other keys, kinds and scopes are
        untouched — a marker is otherwise a key of its own kind, replaced only
        when it is itself in a batch.

        Raises:
            ValidationError: a malformed batch (before any I/O), or a history
                starting at ``k > 1`` whose marker in the target does not record
                ``pruned_through = k - 1`` (nothing written).
            ConflictError: without ``replace``, a key of the batch already has a
                history; nothing was written.
            MisconfiguredError: ``replace=True`` on a backend that cannot replace
                a batch atomically (``replaces_atomically`` is False: Azure Blob);
                before any I/O.
        """
        _check_scope(scope)
        validate_id(kind, "kind")
        if not isinstance(replace, bool):
            raise ValidationError("invalid restore", [Problem("replace", "must be a bool")])
        if replace and not self.replaces_atomically:
            raise MisconfiguredError(
                f"{type(self).__name__} cannot replace a history atomically "
                "(restore_many(replace=True), dq import/migrate --replace); restore into "
                "keys without a history instead"
            )
        batch = check_histories(scope, kind, histories, _check_index)
        for key, docs in batch:
            if docs[0].revision > 1:
                self._check_pruned_start(scope, kind, key, docs[0].revision)
        if batch:
            self._restore_many(scope, kind, batch, replace)
        return len(batch)

    def _check_pruned_start(self, scope: Scope, kind: str, key: str, first: int) -> None:
        """A history starting at ``first`` > 1 needs the marker of revisions ``1..first-1``.

        Checked here before any I/O, and again by each backend that can restore over a
        history (``replace``) under its write's exclusion (:func:`check_pruned_start`):
        a prune finishing between the two moves the marker."""
        prefix = None if kind == PRUNED_KIND else self._pruned_prefix(scope, kind, key)
        check_pruned_start(kind, key, first, None if prefix is None else prefix.pruned_through)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, pools and handles. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- shared helpers ----------------------------------------------------
    @staticmethod
    def _page(items: list[StoredDocument], query: Query) -> Page:
        if len(items) <= query.limit:
            return Page(items)
        items = items[: query.limit]
        last = items[-1]
        cursor = PageCursor(last.index.sort_key, last.key, last.scope.environment)
        return Page(items, cursor.encode(query))

    def _query_tenant(
        self, tenant: str, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        streams: list[list[StoredDocument]] = []
        for env in self.list_environments(tenant):
            env_query, env_cursor = _env_bounds(query, cursor, env)
            if env_query is None:
                continue
            streams.append(self._query(Scope(tenant, env), kind, env_query, env_cursor, fetch))

        def order(doc: StoredDocument) -> tuple[str, str, str]:
            return (doc.index.sort_key, doc.scope.environment, doc.key)

        if query.descending:
            merged = heapq.merge(*streams, key=order, reverse=True)
        else:
            merged = heapq.merge(*streams, key=order)
        out: list[StoredDocument] = []
        for doc in merged:
            out.append(doc)
            if len(out) >= fetch:
                break
        return out

    # -- to implement --------------------------------------------------------
    def _search(self, scope: Scope, kind: str, terms: tuple[str, ...]) -> Iterable[StoredDocument]:
        """Live heads of ``kind`` in ``scope`` that may match ``terms`` (see :meth:`search`).

        Must include every live document with, for each term, a value starting with
        that term in its ``search_title`` or ``search_body`` index field; may include
        others and tombstones (the port re-checks each against its own index entry).
        Backends answer from their index of field values (a prefix range per term),
        so the cost grows with the matches.
        """
        raise MisconfiguredError(f"{type(self).__name__} cannot search")

    # -- integrity (optional hooks for the verifier) ---------------------------
    def verify_scope(self, scope: Scope, counts: VerifyCounts) -> Iterator[IntegrityProblem]:
        """Check every document and revision of ``scope``; yield each problem found.

        Streams (bounded memory) and updates ``counts`` as it goes. The default runs
        the checks the port allows (:func:`dq_stores.integrity.verify_through_port`);
        adapters whose storage can be edited from outside override it to check
        their records, history chains and derived indexes as well.
        """
        from dq_stores.integrity import verify_through_port

        return verify_through_port(self, _check_scope(scope), counts)

    def repair_index(self, scope: Scope) -> bool:
        """Rebuild ``scope``'s derived data (indexes) from its documents, never
        touching a document. Returns ``False`` when the backend keeps none."""
        _check_scope(scope)
        return False

    @abstractmethod
    def _get(self, scope: Scope, kind: str, key: str) -> StoredDocument: ...

    @abstractmethod
    def _get_revision(self, scope: Scope, kind: str, key: str, revision: int) -> StoredDocument: ...

    @abstractmethod
    def _history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]: ...

    @abstractmethod
    def _put(
        self, scope: Scope, kind: str, write: DocumentWrite, expect: Expectation
    ) -> StoredDocument: ...

    def _put_many(self, scope: Scope, kind: str, writes: Iterator[DocumentWrite]) -> int:
        count = 0
        for write in writes:
            self._put(scope, kind, write, ANY)
            count += 1
        return count

    @abstractmethod
    def _delete(self, scope: Scope, kind: str, key: str, expect: Expectation) -> StoredDocument: ...

    @abstractmethod
    def _commit(
        self, scope: Scope, operations: tuple[Operation, ...]
    ) -> list[StoredDocument | None]:
        """Apply validated ``operations`` all-or-nothing (see :meth:`commit`).

        Check every operation against the state the commit is applied to, in order
        (``dq_stores.filtering.check_operation`` does it for one operation given the
        live head revision); on the first failure raise its ``ConflictError`` /
        ``NotFoundError`` having written nothing. Use the technology's transaction
        where it has one; otherwise a design in which no reader can observe a partial
        commit, including after the writer dies at any point.
        """

    @abstractmethod
    def _query(
        self, scope: Scope, kind: str, query: Query, cursor: PageCursor | None, fetch: int
    ) -> list[StoredDocument]:
        """Up to ``fetch`` live documents matching ``query.filters`` and its sort-key
        bounds, ordered by ``(sort_key, key)`` (descending if ``query.descending``),
        strictly after ``cursor`` when given. Ignore ``query.page_token``/``limit``."""

    @abstractmethod
    def _count(self, scope: Scope, kind: str, filters: tuple[FieldFilter, ...]) -> int: ...

    @abstractmethod
    def _iter_documents(self, scope: Scope, kind: str | None) -> Iterator[StoredDocument]: ...

    @abstractmethod
    def _list_environments(self, tenant: str) -> Iterable[str]: ...

    @abstractmethod
    def _iter_scopes(self) -> Iterator[Scope]: ...

    def _iter_histories(self, scope: Scope, kind: str | None) -> Iterator[list[StoredDocument]]:
        """Every key's full history (see :meth:`iter_histories`); adapters override."""
        raise MisconfiguredError(
            f"{type(self).__name__} cannot export history; it needs an _iter_histories hook"
        )

    def _restore_many(
        self,
        scope: Scope,
        kind: str,
        histories: list[tuple[str, list[StoredDocument]]],
        replace: bool,
    ) -> None:
        """Write validated histories, all-or-nothing (see :meth:`restore_many`).

        ``replace=False``: check that no key of the batch has a history (a live or
        tombstoned head) atomically with the write — a constraint, conditional
        request or the scope's lock — and raise ``ConflictError`` having written
        nothing otherwise. ``replace=True``: remove each key's history and write the
        given one in the same atomic unit. A history may start at revision ``k > 1``
        (its marker is checked): revisions below ``k`` must then read as pruned.
        """
        raise MisconfiguredError(
            f"{type(self).__name__} cannot restore history; it needs a _restore_many hook"
        )


def _env_bounds(
    query: Query, cursor: PageCursor | None, env: str
) -> tuple[Query | None, PageCursor | None]:
    """Translate a tenant-wide cursor ``(s, e, k)`` into one environment's query.

    In the order ``(sort_key, env, key)``, environments before the cursor's need
    sort keys strictly past ``s``; the cursor's own environment resumes after
    ``(s, k)``; later environments start at ``s`` inclusive.
    """
    if cursor is None:
        return query, None
    if env == cursor.environment:
        return query, PageCursor(cursor.sort_key, cursor.key, env)
    before = env < cursor.environment
    if not query.descending:
        low = cursor.sort_key + "\x00" if before else cursor.sort_key
        if query.sort_key_min is not None and query.sort_key_min > low:
            low = query.sort_key_min
        return replace(query, sort_key_min=low, page_token=None), None
    # descending: order reversed, so environments *after* the cursor's need smaller keys
    # before: the exclusive bound s + NUL still admits sort_key == s
    high = cursor.sort_key + "\x00" if before else cursor.sort_key
    if query.sort_key_max is not None and query.sort_key_max < high:
        high = query.sort_key_max
    return replace(query, sort_key_max=high, page_token=None), None
