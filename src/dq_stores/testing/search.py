"""Conformance: full-text search (``DocumentBackend.search``) answers like the reference.

Every backend must find exactly the live documents of the scope and kind whose
search tokens (``search_fields``) start with every term, rank them by
:func:`dq_stores.search.score` with ties by key, page them by keyset so that a
document unchanged throughout appears exactly once even while other documents
change, and refuse bad input with a ``ValidationError`` naming the argument.

Not part of :class:`~dq_stores.testing.DocumentBackendConformance` (a backend
may lack search); a backend that searches adds :class:`SearchConformance` to the
bases of its conformance class. The corpus builders (:func:`search_write`,
:data:`SEARCH_CORPUS`, :func:`search_keys`) are public for backend-specific tests.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, DocumentWrite, IndexEntry
from dq_stores.search import MAX_SEARCH_LIMIT, parse_query, score, search_fields
from dq_stores.testing._helpers import KIND, OTHER_SCOPES, SCOPE

__all__ = ["SEARCH_CORPUS", "SearchConformance", "search_keys", "search_write"]


def _fullwidth(text: str) -> str:
    return "".join(c if c == " " else chr(ord(c) + 0xFEE0) for c in text)


#: key → (title texts, body texts): names and ids rank above descriptions.
SEARCH_CORPUS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "orders": (("Customer orders", "orders"), ("Every order a customer placed, with email.",)),
    "customers": (("Customers", "customerEmail"), ("One row per customer.",)),
    "emails": (("email_events",), ("Bounces and opens of marketing emails.",)),
    "custody": (("Custody accounts",), ("Assets held for clients.",)),
    "payments": (("Core Payment Metrics",), ("Payments by customer and day.",)),
    "zurich": (("Zürich STRASSE",), ("Straßen der Stadt Zürich",)),
    "fullwidth": ((_fullwidth("Fullwidth ORDERS"),), ("\ufb01le ligature",)),  # ﬁ ligature
    "arabic": (("مرحبا بالعالم",), ("بيانات العملاء 😀 emoji",)),
    "japanese": (("日本語 データ",), ("顧客 テーブル",)),
    "empty": ((), ()),
}

_VOCABULARY = ("customer", "custody", "email", "emails", "order", "orders",
               "ordinal", "zürich", "straße", "data", "x1", "日本")  # fmt: skip
_PREFIXES = ("c", "cu", "cust", "em", "ord", "zü", "stras", "da", "x", "日")

_EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def search_write(key: str, title: Sequence[str] = (), body: Sequence[str] = ()) -> DocumentWrite:
    """A write findable by ``title`` and ``body``; its body records both texts."""
    payload = canonical_json({"key": key, "title": list(title), "body": list(body)})
    index = IndexEntry(search_fields(title, body), key)
    return DocumentWrite(key, payload, content_hash(payload), index)


def load_corpus(
    backend: DocumentBackend,
    scope: Scope = SCOPE,
    kind: str = KIND,
    corpus: Mapping[str, tuple[Sequence[str], Sequence[str]]] = SEARCH_CORPUS,
) -> None:
    """Put every document of ``corpus`` into ``scope``/``kind``."""
    for key, (title, body) in corpus.items():
        backend.put(scope, kind, search_write(key, title, body), ANY)


def search_keys(
    backend: DocumentBackend, text: str, *, scope: Scope = SCOPE, kind: str = KIND, limit: int = 7
) -> list[tuple[str, int]]:
    """``(key, score)`` of every hit, all pages concatenated."""
    out: list[tuple[str, int]] = []
    token: str | None = None
    while True:
        page = backend.search(scope, kind, text, limit=limit, page_token=token)
        assert len(page.hits) <= limit
        out += [(hit.document.key, hit.score) for hit in page.hits]
        if page.next_token is None:
            return out
        token = page.next_token


def reference(
    text: str, corpus: Mapping[str, tuple[Sequence[str], Sequence[str]]]
) -> list[tuple[str, int]]:
    """The expected hits: scored from the texts alone, ``(score desc, key)`` order."""
    terms = parse_query(text)
    scored = [(key, score(terms, search_fields(t, b))) for key, (t, b) in corpus.items()]
    return sorted(((k, s) for k, s in scored if s > 0), key=lambda pair: (-pair[1], pair[0]))


_WORDS = st.lists(st.sampled_from(_VOCABULARY), max_size=4).map(" ".join)
_DOC = st.tuples(st.lists(_WORDS, max_size=2), st.lists(_WORDS, max_size=2))
_OPS = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.none() | _DOC), min_size=1, max_size=12)
_QUERY = st.lists(st.sampled_from(_VOCABULARY + _PREFIXES), min_size=1, max_size=3).map(" ".join)


class SearchConformance:
    """``DocumentBackend.search``: matching, ranking, scoping, pagination, bad input."""

    def test_ranking_equals_reference(self, backend: DocumentBackend) -> None:
        load_corpus(backend)
        for text in ("customer", "cust", "email", "orders", "customer email", "ORDERS!",
                     "order customer", "zurich", "ZÜRICH", "strasse", "ORDERS fullwidth"):  # fmt: skip
            assert search_keys(backend, text, limit=2) == reference(text, SEARCH_CORPUS), text
        top = backend.search(SCOPE, KIND, "customer").hits[0]
        assert top.document.key == "customers"  # exact title token: 8 points
        assert top.document.body == search_write("customers", *SEARCH_CORPUS["customers"]).body

    @_EXAMPLES
    @given(ops=_OPS, text=_QUERY, limit=st.integers(1, 4))
    def test_matches_every_live_document_and_nothing_else(
        self,
        backend: DocumentBackend,
        ops: list[tuple[str, tuple[list[str], list[str]] | None]],
        text: str,
        limit: int,
    ) -> None:
        kind = f"s{uuid.uuid4().hex[:12]}"  # a fresh kind per example
        live: dict[str, tuple[list[str], list[str]]] = {}
        for key, texts in ops:
            if texts is None:
                if key in live:
                    backend.delete(SCOPE, kind, key, ANY)
                    del live[key]
            else:
                backend.put(SCOPE, kind, search_write(key, *texts), ANY)
                live[key] = texts
        found = search_keys(backend, text, kind=kind, limit=limit)
        assert found == reference(text, live)
        terms = parse_query(text)
        for key, _ in found:
            tokens = [t for field in search_fields(*live[key]).values() for t in field]
            assert all(any(t.startswith(term) for t in tokens) for term in terms)

    def test_deleted_and_rewritten_documents(self, backend: DocumentBackend) -> None:
        load_corpus(backend)
        backend.delete(SCOPE, KIND, "orders", ANY)
        backend.put(SCOPE, KIND, search_write("customers", ("Clients",), ("no more",)), ANY)
        assert [k for k, _ in search_keys(backend, "customer")] == ["payments"]
        assert search_keys(backend, "clients") == [("customers", 8), ("custody", 2)]
        backend.put(SCOPE, KIND, search_write("orders", ("orders",)), ANY)
        assert search_keys(backend, "orders") == [("fullwidth", 8), ("orders", 8)]

    def test_scoping(self, backend: DocumentBackend) -> None:
        load_corpus(backend)
        for scope in OTHER_SCOPES:
            assert backend.search(scope, KIND, "customer").hits == []
        assert backend.search(SCOPE, "gadget", "customer").hits == []
        secret = {"s": (("customer secret",), ())}
        load_corpus(backend, OTHER_SCOPES[1], KIND, secret)
        load_corpus(backend, SCOPE, "gadget", secret)
        assert "s" not in {k for k, _ in search_keys(backend, "customer")}
        assert search_keys(backend, "secret") == []
        hits = backend.search(OTHER_SCOPES[1], KIND, "customer").hits
        assert [(h.document.key, h.document.scope) for h in hits] == [("s", OTHER_SCOPES[1])]

    def test_pages_concatenate_to_one_ranked_list(self, backend: DocumentBackend) -> None:
        corpus = {f"k{i:02d}": ((f"item{i % 3}",), ("shared word",)) for i in range(25)}
        load_corpus(backend, corpus=corpus)
        whole = search_keys(backend, "shared", limit=MAX_SEARCH_LIMIT)
        assert whole == reference("shared", corpus)
        assert len(whole) == 25
        for limit in (1, 4, 24, 25):
            assert search_keys(backend, "shared", limit=limit) == whole
        page = backend.search(SCOPE, KIND, "shared", limit=25)
        assert page.next_token is None

    def test_pagination_under_concurrent_writes(self, backend: DocumentBackend) -> None:
        stable = {f"stable{i:02d}": ((f"tok{i % 4}",), ("common text",)) for i in range(20)}
        load_corpus(backend, corpus=stable)
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            n = 0
            try:
                while not stop.is_set() and n < 200:
                    key = f"churn{n % 7}"
                    title = (f"tok{n % 5}",) if n % 3 else ("other",)
                    backend.put(SCOPE, KIND, search_write(key, title, ("common",)), ANY)
                    n += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            seen: list[str] = []
            token: str | None = None
            while True:
                page = backend.search(SCOPE, KIND, "common tok", limit=3, page_token=token)
                seen += [hit.document.key for hit in page.hits]
                if page.next_token is None:
                    break
                token = page.next_token
        finally:
            stop.set()
            thread.join()
        assert not errors, errors
        assert sorted(k for k in seen if k.startswith("stable")) == sorted(stable)
        assert len(seen) == len(set(seen))

    @pytest.mark.parametrize(
        ("text", "limit", "path"),
        [
            ("", 20, "text"),
            ("  !!! --- ", 20, "text"),
            ("a b c d e f g h i", 20, "text"),
            ("x" * 1001, 20, "text"),
            (None, 20, "text"),
            ("customer", 0, "limit"),
            ("customer", MAX_SEARCH_LIMIT + 1, "limit"),
            ("customer", True, "limit"),
            ("customer", "5", "limit"),
        ],
    )
    def test_bad_input_is_refused(
        self, backend: DocumentBackend, text: object, limit: object, path: str
    ) -> None:
        with pytest.raises(ValidationError) as info:
            backend.search(SCOPE, KIND, text, limit=limit)  # type: ignore[arg-type]
        assert [p.loc for p in info.value.problems] == [path]

    def test_bad_page_tokens_are_refused(self, backend: DocumentBackend) -> None:
        load_corpus(backend)
        token = backend.search(SCOPE, KIND, "customer", limit=1).next_token
        assert token is not None
        forged = base64.urlsafe_b64encode(b'{"s":"8","k":"a","q":["customer"]}').decode()
        nested = base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode()  # no RecursionError
        for bad in ("garbage!", "e30", token[:-3], forged, 42, "A" * 5000, nested):
            with pytest.raises(ValidationError) as info:
                backend.search(SCOPE, KIND, "customer", page_token=bad)  # type: ignore[arg-type]
            assert [p.loc for p in info.value.problems] == ["page_token"]
        with pytest.raises(ValidationError) as info:
            backend.search(SCOPE, KIND, "orders", page_token=token)
        assert [p.loc for p in info.value.problems] == ["page_token"]

    def test_words_keep_their_combining_marks(self, backend: DocumentBackend) -> None:
        # Devanagari vowel signs and viramas are marks (Mn/Mc), not letters: a word
        # split at them would become its bare consonants, found by unrelated words.
        backend.put(SCOPE, KIND, search_write("hindi", ("हिन्दी भाषा",)), ANY)
        backend.put(SCOPE, KIND, search_write("consonants", ("हम नया दिन",)), ANY)
        backend.put(SCOPE, KIND, search_write("thai", ("ภาษาไทย",)), ANY)
        assert search_keys(backend, "हिन्दी") == [("hindi", 8)]
        assert search_keys(backend, "हिन") == [("hindi", 4)]  # a prefix, marks included
        assert search_keys(backend, "ภาษาไทย") == [("thai", 8)]
        assert search_keys(backend, "ภา") == [("thai", 4)]

    def test_long_non_ascii_words_are_found_by_every_prefix(self, backend: DocumentBackend) -> None:
        # 32-character tokens whose encodings outgrow any name or key budget
        long_cjk = "顧客" * 20  # cut to 32 characters
        long_hindi = "हिन्दी" * 8
        backend.put(SCOPE, KIND, search_write("cjk", (long_cjk,)), ANY)
        backend.put(SCOPE, KIND, search_write("hindi", (long_hindi,)), ANY)
        backend.put(SCOPE, KIND, search_write("other", ("顧客" * 15 + "データ",)), ANY)
        assert search_keys(backend, long_cjk) == [("cjk", 8)]
        assert search_keys(backend, long_cjk[:31]) == [("cjk", 4)]
        assert search_keys(backend, long_cjk[:30] + "デ") == [("other", 4)]
        assert search_keys(backend, long_cjk[:3]) == [("cjk", 4), ("other", 4)]
        assert search_keys(backend, long_hindi) == [("hindi", 8)]
        assert search_keys(backend, long_hindi[:20]) == [("hindi", 4)]

    def test_hostile_unicode_round_trips(self, backend: DocumentBackend) -> None:
        load_corpus(backend)
        expectations = {
            "fullwidth orders": "fullwidth",  # NFKC: fullwidth letters are ASCII
            "file": "fullwidth",  # NFKC: the ﬁ ligature is f + i
            "STRASSE zürich": "zurich",  # casefold: ß is ss
            "مرحبا": "arabic",
            "العملاء": "arabic",
            "emoji 😀": "arabic",  # the emoji is no word; the rest still matches
            "日本語": "japanese",
            "顧客": "japanese",
        }
        for text, key in expectations.items():
            hits = backend.search(SCOPE, KIND, text).hits
            assert [h.document.key for h in hits] == [key], text
            assert hits[0].document.body == search_write(key, *SEARCH_CORPUS[key]).body
        assert backend.search(SCOPE, KIND, "😀 orders").hits  # only "orders" is a term
