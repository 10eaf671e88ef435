"""Conformance: indexed filters, sort order, keyset pagination, streaming, bulk."""

from __future__ import annotations

import base64
import threading

import pytest

from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import semver_sort_key
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, MUST_NOT_EXIST, FieldFilter, Query, at_revision
from dq_stores.testing._helpers import KIND, SCOPE, doc, value_of

VERSIONS = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
            "1.0.0-rc.1", "1.0.0", "1.2.0", "1.9.0", "1.10.0", "2.0.0"]  # fmt: skip


def _keys(backend: DocumentBackend, query: Query, scope: Scope = SCOPE) -> list[str]:
    return [d.key for d in backend.query(scope, KIND, query).items]


def _all_pages(backend: DocumentBackend, query: Query, scope: Scope | None = SCOPE) -> list[str]:
    keys: list[str] = []
    token = None
    while True:
        q = Query(query.filters, query.descending, query.limit, token,
                  query.sort_key_min, query.sort_key_max)  # fmt: skip
        page = (
            backend.query(scope, KIND, q) if scope is not None
            else backend.query_tenant("acme", KIND, q)
        )  # fmt: skip
        keys.extend(
            d.key if scope is not None else f"{d.scope.environment}:{d.key}" for d in page.items
        )
        if page.next_token is None:
            return keys
        token = page.next_token


class QueryConformance:
    """Queries answered from the index with the store's order and opaque tokens."""

    def test_semver_sort_order_with_prereleases(self, backend: DocumentBackend) -> None:
        for v in reversed(VERSIONS):
            backend.put(
                SCOPE, KIND, doc(f"c@{v}", v, sort_key=semver_sort_key(v), ds="orders"), ANY
            )
        assert _keys(backend, Query(limit=100)) == [f"c@{v}" for v in VERSIONS]
        assert _keys(backend, Query(descending=True, limit=100)) == [
            f"c@{v}" for v in reversed(VERSIONS)
        ]
        latest = backend.query(SCOPE, KIND, Query((FieldFilter("ds", ("orders",)),), True, 1))
        assert [d.key for d in latest.items] == ["c@2.0.0"]
        assert latest.next_token is not None

    def test_filters_and_across_fields_or_within_values(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, KIND, doc("a", 1, sort_key="1", tag=("x", "y"), status="active"), ANY)
        backend.put(SCOPE, KIND, doc("b", 1, sort_key="2", tag=("y",), status="draft"), ANY)
        backend.put(SCOPE, KIND, doc("c", 1, sort_key="3", tag=("z",), status="active"), ANY)
        backend.put(SCOPE, KIND, doc("d", 1, sort_key="4"), ANY)
        f = FieldFilter
        assert _keys(backend, Query((f("tag", ("y",)),))) == ["a", "b"]
        assert _keys(backend, Query((f("tag", ("x", "z")),))) == ["a", "c"]
        assert _keys(backend, Query((f("tag", ("x", "y")),))) == ["a", "b"]  # no duplicate "a"
        assert _keys(backend, Query((f("tag", ("y",)), f("status", ("active",))))) == ["a"]
        assert _keys(backend, Query((f("tag", ("x",)), f("tag", ("y",))))) == ["a"]
        assert _keys(backend, Query((f("tag", ("nope",)),))) == []
        assert _keys(backend, Query((f("other", ("x",)),))) == []
        assert backend.count(SCOPE, KIND, [f("tag", ("y", "z"))]) == 3
        assert backend.count(SCOPE, KIND, [f("tag", ("y",)), f("status", ("active", "draft"))]) == 2
        assert backend.count(SCOPE, KIND) == 4

    def test_updates_and_deletes_move_index_entries(self, backend: DocumentBackend) -> None:
        backend.put(SCOPE, KIND, doc("a", 1, sort_key="1", status="draft"), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, doc("a", 2, sort_key="9", status="active"), at_revision(1))
        active = Query((FieldFilter("status", ("active",)),))
        assert _keys(backend, Query((FieldFilter("status", ("draft",)),))) == []
        items = backend.query(SCOPE, KIND, active).items
        assert [(d.key, d.revision, value_of(d.body), d.index.sort_key) for d in items] == [
            ("a", 2, 2, "9")
        ]
        assert items[0].index.fields["status"] == ("active",)
        backend.delete(SCOPE, KIND, "a")
        assert _keys(backend, active) == []

    def test_sort_key_bounds_are_min_inclusive_max_exclusive(
        self, backend: DocumentBackend
    ) -> None:
        for i in range(10):
            backend.put(SCOPE, KIND, doc(f"k{i}", i, sort_key=f"2026-01-0{i}"), ANY)
        q = Query(sort_key_min="2026-01-03", sort_key_max="2026-01-06")
        assert _keys(backend, q) == ["k3", "k4", "k5"]
        q = Query(descending=True, sort_key_min="2026-01-07")
        assert _keys(backend, q) == ["k9", "k8", "k7"]

    def test_ties_on_sort_key_break_by_key(self, backend: DocumentBackend) -> None:
        for key in ["b", "a", "c"]:
            backend.put(SCOPE, KIND, doc(key, 0, sort_key="same"), ANY)
        assert _all_pages(backend, Query(limit=1)) == ["a", "b", "c"]
        assert _all_pages(backend, Query(descending=True, limit=2)) == ["c", "b", "a"]

    @pytest.mark.parametrize("descending", [False, True])
    def test_pagination_visits_every_document_once(
        self, backend: DocumentBackend, descending: bool
    ) -> None:
        for i in range(23):
            backend.put(SCOPE, KIND, doc(f"k{i:02d}", i, sort_key=f"{i % 5}", grp=str(i % 2)), ANY)
        expected = sorted((f"{i % 5}", f"k{i:02d}") for i in range(23) if i % 2 == 0)
        expected_keys = [k for _, k in (reversed(expected) if descending else expected)]
        query = Query((FieldFilter("grp", ("0",)),), descending, 4)
        assert _all_pages(backend, query) == expected_keys

    def test_page_tokens_are_opaque_and_bound_to_their_query(
        self, backend: DocumentBackend
    ) -> None:
        for i in range(3):
            backend.put(SCOPE, KIND, doc(f"k{i}", i, tag="t"), ANY)
        page = backend.query(SCOPE, KIND, Query((FieldFilter("tag", ("t",)),), limit=1))
        assert page.next_token is not None
        assert "k0" not in page.next_token
        with pytest.raises(ValidationError):
            backend.query(SCOPE, KIND, Query(limit=1, page_token=page.next_token))
        nested = base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode()
        for garbage in ("garbage!", "", "eyJ4IjoxfQ", nested):  # nested: no RecursionError
            with pytest.raises(ValidationError):
                backend.query(SCOPE, KIND, Query(page_token=garbage))
        for limit in (0, -1, 10_001):
            with pytest.raises(ValidationError):
                Query(limit=limit)

    def test_empty_scope_gives_empty_page(self, backend: DocumentBackend) -> None:
        page = backend.query(SCOPE, KIND, Query())
        assert (page.items, page.next_token) == ([], None)
        assert backend.count(SCOPE, KIND) == 0
        assert list(backend.iter_documents(SCOPE)) == []

    def test_pagination_under_concurrent_inserts(self, backend: DocumentBackend) -> None:
        for i in range(40):
            backend.put(SCOPE, KIND, doc(f"old{i:03d}", i, sort_key=f"{i:05d}", t="x"), ANY)
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            n = 0
            try:
                while not stop.is_set() and n < 200:
                    backend.put(
                        SCOPE, KIND, doc(f"new{n:03d}", n, sort_key=f"{n * 7 % 97:05d}", t="x"), ANY
                    )
                    n += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            seen = _all_pages(backend, Query((FieldFilter("t", ("x",)),), limit=3))
        finally:
            stop.set()
            thread.join()
        assert not errors
        assert len(seen) == len(set(seen)), "a document was returned twice"
        assert {f"old{i:03d}" for i in range(40)} <= set(seen), "a stable document was skipped"

    def test_query_tenant_spans_environments_in_order(self, backend: DocumentBackend) -> None:
        for env, keys in {"prod": ["a", "c"], "dev": ["b", "c"], "test": ["a"]}.items():
            for key in keys:
                backend.put(Scope("acme", env), KIND, doc(key, env, sort_key=key, t="r"), ANY)
        backend.put(Scope("globex", "prod"), KIND, doc("a", "other", sort_key="a", t="r"), ANY)
        expected = ["prod:a", "test:a", "dev:b", "dev:c", "prod:c"]
        q = Query((FieldFilter("t", ("r",)),), limit=2)
        assert _all_pages(backend, q, scope=None) == expected
        q = Query((FieldFilter("t", ("r",)),), descending=True, limit=2)
        assert _all_pages(backend, q, scope=None) == list(reversed(expected))
        assert _all_pages(backend, Query(limit=1, sort_key_min="b"), scope=None) == expected[2:]

    def test_iter_documents_streams_live_heads_only(self, backend: DocumentBackend) -> None:
        for i in range(25):
            backend.put(SCOPE, KIND, doc(f"k{i}", i), ANY)
        backend.put(SCOPE, KIND, doc("k0", "v2"), ANY)
        backend.delete(SCOPE, KIND, "k1")
        backend.put(SCOPE, "other", doc("o", 0), ANY)
        docs = list(backend.iter_documents(SCOPE, KIND))
        assert sorted(d.key for d in docs) == sorted(f"k{i}" for i in range(25) if i != 1)
        assert next(value_of(d.body) for d in docs if d.key == "k0") == "v2"
        assert len(list(backend.iter_documents(SCOPE))) == 25

    def test_put_many_writes_everything_and_indexes_it(self, backend: DocumentBackend) -> None:
        writes = (doc(f"b{i:04d}", i, sort_key=f"{i:04d}", par=str(i % 3)) for i in range(300))
        assert backend.put_many(SCOPE, KIND, writes) == 300
        assert backend.count(SCOPE, KIND) == 300
        assert backend.count(SCOPE, KIND, [FieldFilter("par", ("1",))]) == 100
        assert value_of(backend.get(SCOPE, KIND, "b0299").body) == 299
        assert backend.put_many(SCOPE, KIND, [doc("b0000", "again")]) == 1
        assert backend.get(SCOPE, KIND, "b0000").revision == 2
