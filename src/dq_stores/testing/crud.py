"""Conformance: revisions, expectations, validation, isolation and key encoding."""

from __future__ import annotations

import pytest

from dq_metadata.canonical import content_hash
from dq_metadata.errors import ConflictError, InvalidScopeError, NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Query,
    at_revision,
)
from dq_stores.testing._helpers import (
    HOSTILE_IDS,
    HOSTILE_KEYS,
    KIND,
    OTHER_SCOPES,
    SCOPE,
    doc,
    value_of,
)


class CrudConformance:
    """Create / get / update / delete / history and write expectations."""

    def test_create_then_get_returns_same_bytes_and_revision_1(
        self, backend: DocumentBackend
    ) -> None:
        write = doc("k1", {"n": 1, "s": "é"})
        stored = backend.put(SCOPE, KIND, write, MUST_NOT_EXIST)
        assert stored.revision == 1
        got = backend.get(SCOPE, KIND, "k1")
        assert (got.revision, got.body, got.sha256) == (1, write.body, write.sha256)
        assert got.sha256 == content_hash(got.body)
        assert (got.scope, got.kind, got.key, got.deleted) == (SCOPE, KIND, "k1", False)

    def test_get_missing_key_raises_not_found(self, backend: DocumentBackend) -> None:
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "missing")

    def test_updates_make_monotonic_revisions_and_keep_history(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("k", 1), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, doc("k", 2), at_revision(1))
        third = backend.put(SCOPE, KIND, doc("k", 3), ANY)
        assert third.revision == 3
        history = backend.history(SCOPE, KIND, "k")
        assert [h.revision for h in history] == [1, 2, 3]
        assert [value_of(h.body) for h in history] == [1, 2, 3]
        assert value_of(backend.get_revision(SCOPE, KIND, "k", 2).body) == 2
        with pytest.raises(NotFoundError):
            backend.get_revision(SCOPE, KIND, "k", 4)

    def test_history_of_unknown_key_raises_not_found(self, backend: DocumentBackend) -> None:
        with pytest.raises(NotFoundError):
            backend.history(SCOPE, KIND, "never")

    def test_must_not_exist_conflicts_and_writes_nothing(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, KIND, doc("k", "first"), MUST_NOT_EXIST)
        with pytest.raises(ConflictError):
            backend.put(SCOPE, KIND, doc("k", "second"), MUST_NOT_EXIST)
        assert value_of(backend.get(SCOPE, KIND, "k").body) == "first"
        assert len(backend.history(SCOPE, KIND, "k")) == 1

    def test_stale_revision_conflicts_and_writes_nothing(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, KIND, doc("k", 1), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, doc("k", 2), at_revision(1))
        with pytest.raises(ConflictError):
            backend.put(SCOPE, KIND, doc("k", "stale"), at_revision(1))
        with pytest.raises(ConflictError):
            backend.put(SCOPE, KIND, doc("k", "future"), at_revision(9))
        assert [value_of(h.body) for h in backend.history(SCOPE, KIND, "k")] == [1, 2]

    def test_expected_revision_on_missing_key_conflicts(self, backend: DocumentBackend) -> None:
        with pytest.raises(ConflictError):
            backend.put(SCOPE, KIND, doc("nope", 1), at_revision(1))
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "nope")

    def test_unconditional_write_creates_or_overwrites(self, backend: DocumentBackend) -> None:
        assert backend.put(SCOPE, KIND, doc("k", 1), ANY).revision == 1
        assert backend.put(SCOPE, KIND, doc("k", 2), ANY).revision == 2

    def test_delete_writes_tombstone_and_recreate_continues_sequence(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("k", 1, tag="t"), MUST_NOT_EXIST)
        tomb = backend.delete(SCOPE, KIND, "k", at_revision(1))
        assert (tomb.revision, tomb.deleted) == (2, True)
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "k")
        assert backend.count(SCOPE, KIND) == 0
        assert backend.query(SCOPE, KIND, Query((FieldFilter("tag", ("t",)),))).items == []
        with pytest.raises(ConflictError):
            backend.put(SCOPE, KIND, doc("k", "x"), at_revision(2))
        again = backend.put(SCOPE, KIND, doc("k", 3), MUST_NOT_EXIST)
        assert again.revision == 3
        history = backend.history(SCOPE, KIND, "k")
        assert [(h.revision, h.deleted) for h in history] == [(1, False), (2, True), (3, False)]
        assert backend.get_revision(SCOPE, KIND, "k", 2).deleted

    def test_delete_missing_or_stale_raises(self, backend: DocumentBackend) -> None:
        with pytest.raises(NotFoundError):
            backend.delete(SCOPE, KIND, "missing")
        backend.put(SCOPE, KIND, doc("k", 1), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, doc("k", 2), ANY)
        with pytest.raises(ConflictError):
            backend.delete(SCOPE, KIND, "k", at_revision(1))
        assert value_of(backend.get(SCOPE, KIND, "k").body) == 2
        backend.delete(SCOPE, KIND, "k")
        with pytest.raises(NotFoundError):
            backend.delete(SCOPE, KIND, "k")

    def test_identical_content_has_identical_hash(self, backend: DocumentBackend) -> None:
        a = backend.put(SCOPE, KIND, doc("a", {"x": [1, 2], "y": "z"}), ANY)
        b = backend.put(SCOPE, KIND, doc("a", {"y": "z", "x": [1, 2]}), ANY)
        assert a.sha256 == b.sha256 == backend.get(SCOPE, KIND, "a").sha256
        assert b.revision == 2

    def test_bad_writes_are_rejected_before_any_io(self, backend: DocumentBackend) -> None:
        good = doc("k", 1)
        bad = [
            DocumentWrite("k", good.body, "0" * 64, good.index),
            DocumentWrite("k", "text", good.sha256, good.index),  # type: ignore[arg-type]
            DocumentWrite("k", good.body, good.sha256, IndexEntry({"Bad Field": ("x",)})),
            DocumentWrite("k", good.body, good.sha256, IndexEntry({"f": ("",)})),
            DocumentWrite("k", good.body, good.sha256, IndexEntry({"f": ("a\x00",)})),
            DocumentWrite("k", good.body, good.sha256, IndexEntry({}, "s\x00")),
        ]
        for write in bad:
            with pytest.raises(ValidationError):
                backend.put(SCOPE, KIND, write, ANY)
        with pytest.raises(ValidationError):
            backend.put(SCOPE, KIND, good, "any")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            backend.delete(SCOPE, KIND, "k", MUST_NOT_EXIST)
        with pytest.raises(ValidationError):
            backend.get_revision(SCOPE, KIND, "k", 0)
        assert list(backend.iter_scopes()) == []


class IsolationConformance:
    """Scopes never see each other; hostile ids are refused; hostile keys are safe."""

    def test_scopes_are_isolated(self, backend: DocumentBackend) -> None:
        scopes = (SCOPE, *OTHER_SCOPES)
        for i, scope in enumerate(scopes):
            for n in range(i + 1):
                backend.put(scope, KIND, doc(f"k{n}", f"{scope}", tag="shared"), ANY)
        for i, scope in enumerate(scopes):
            assert backend.count(scope, KIND) == i + 1
            assert backend.count(scope, KIND, [FieldFilter("tag", ("shared",))]) == i + 1
            page = backend.query(scope, KIND, Query(limit=1000))
            assert {d.key for d in page.items} == {f"k{n}" for n in range(i + 1)}
            assert all(value_of(d.body) == str(scope) for d in page.items)
            assert all(d.scope == scope for d in page.items)
            assert value_of(backend.get(scope, KIND, "k0").body) == str(scope)
            assert len(backend.history(scope, KIND, "k0")) == 1
            assert {d.key for d in backend.iter_documents(scope)} == {f"k{n}" for n in range(i + 1)}
        with pytest.raises(NotFoundError):
            backend.get(Scope("acme", "prod"), KIND, "k3")
        assert backend.list_environments("acme") == ["dev", "prod"]
        assert set(backend.iter_scopes()) == set(scopes)
        assert backend.count(Scope("initech", "prod"), KIND) == 0

    def test_writes_in_one_scope_do_not_conflict_with_another(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("same", 1), MUST_NOT_EXIST)
        for scope in OTHER_SCOPES:
            assert backend.put(scope, KIND, doc("same", 2), MUST_NOT_EXIST).revision == 1
        backend.delete(OTHER_SCOPES[0], KIND, "same")
        assert backend.get(SCOPE, KIND, "same").revision == 1

    def test_kinds_are_separate_namespaces(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, "contract", doc("x", "c"), MUST_NOT_EXIST)
        backend.put(SCOPE, "report", doc("x", "r"), MUST_NOT_EXIST)
        assert value_of(backend.get(SCOPE, "contract", "x").body) == "c"
        assert backend.count(SCOPE, "contract") == 1
        assert {d.kind for d in backend.iter_documents(SCOPE)} == {"contract", "report"}
        assert [d.kind for d in backend.iter_documents(SCOPE, "report")] == ["report"]

    @pytest.mark.parametrize("bad", HOSTILE_IDS)
    def test_hostile_scope_ids_are_refused_before_io(
        self, backend: DocumentBackend, bad: str
    ) -> None:
        with pytest.raises(InvalidScopeError):
            Scope(bad, "prod")
        with pytest.raises(InvalidScopeError):
            Scope("acme", bad)
        with pytest.raises(InvalidScopeError):
            backend.put(SCOPE, bad, doc("k", 1), ANY)
        with pytest.raises(InvalidScopeError):
            backend.get(SCOPE, bad, "k")
        with pytest.raises(InvalidScopeError):
            backend.query_tenant(bad, KIND)
        with pytest.raises(InvalidScopeError):
            backend.list_environments(bad)
        assert list(backend.iter_scopes()) == []

    def test_non_scope_objects_are_refused(self, backend: DocumentBackend) -> None:
        for fake in (("acme", "prod"), "acme/prod", None):
            with pytest.raises(InvalidScopeError):
                backend.put(fake, KIND, doc("k", 1), ANY)  # type: ignore[arg-type]
            with pytest.raises(InvalidScopeError):
                backend.get(fake, KIND, "k")  # type: ignore[arg-type]
        assert list(backend.iter_scopes()) == []

    def test_hostile_keys_round_trip_without_collisions(self, backend: DocumentBackend) -> None:
        for key in HOSTILE_KEYS:
            backend.put(SCOPE, KIND, doc(key, key, tag="h"), MUST_NOT_EXIST)
        for key in HOSTILE_KEYS:
            got = backend.get(SCOPE, KIND, key)
            assert (got.key, value_of(got.body)) == (key, key)
            assert [h.key for h in backend.history(SCOPE, KIND, key)] == [key]
        assert backend.count(SCOPE, KIND) == len(HOSTILE_KEYS)
        page = backend.query(SCOPE, KIND, Query((FieldFilter("tag", ("h",)),), limit=1000))
        assert sorted(d.key for d in page.items) == sorted(HOSTILE_KEYS)
        assert sorted(d.key for d in backend.iter_documents(SCOPE, KIND)) == sorted(HOSTILE_KEYS)
        for scope in OTHER_SCOPES:
            assert backend.count(scope, KIND) == 0
            with pytest.raises(NotFoundError):
                backend.get(scope, KIND, "../x")
        assert set(backend.iter_scopes()) == {SCOPE}

    @pytest.mark.parametrize("bad", ["", "a\x00b", "k" * 1025, "é" * 513])
    def test_only_empty_nul_and_oversized_keys_are_rejected(
        self, backend: DocumentBackend, bad: str
    ) -> None:
        with pytest.raises(ValidationError):
            backend.put(SCOPE, KIND, doc(bad, 1), ANY)
        with pytest.raises(ValidationError):
            backend.get(SCOPE, KIND, bad)
        with pytest.raises(ValidationError):
            backend.delete(SCOPE, KIND, bad)
        assert list(backend.iter_scopes()) == []
