"""``dq_stores.search``: the prefix range every backend scans is exactly "starts with"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_stores.search import PREFIX_END, parse_query, prefix_bounds, search_fields, tokenize


@given(st.text(max_size=60), st.text(max_size=60))
def test_prefix_range_is_startswith_for_every_token(text: str, query: str) -> None:
    tokens = tokenize(text)
    assert all(PREFIX_END not in t and 0 < len(t) <= 32 for t in tokens)
    terms = [t for q in [query] for t in tokenize(q)]
    for term in terms:
        low, high = prefix_bounds(term)
        for token in tokens:
            assert (low <= token < high) == token.startswith(term)
        # and in UTF-8 byte order (PostgreSQL COLLATE "C", SQLite BINARY)
        lo_b, hi_b = low.encode(), high.encode()
        for token in tokens:
            assert (lo_b <= token.encode() < hi_b) == token.startswith(term)


def test_tokens_fold_and_split() -> None:
    assert tokenize("customerEmail HTTPServer v2 snake_case") == [
        "customeremail", "customer", "email", "httpserver", "http", "server", "v2", "v",
        "2", "snake", "case",
    ]  # fmt: skip
    assert tokenize("STRASSE Zürich ÄrgerÖl 日本語") == [
        "strasse",
        "zürich",
        "ärgeröl",
        "ärger",
        "öl",
        "日本語",
    ]
    assert parse_query("Customer customer CUSTOMER!") == ("customer",)
    assert search_fields(["B a"], []) == {"search_title": ("a", "b")}


def test_combining_marks_stay_inside_their_word() -> None:
    assert tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
    assert tokenize("ภาษาไทย") == ["ภาษาไทย"]
    assert tokenize("e\u0301cole \u0301x a😀b \u20dd") == ["école", "x", "a", "b"]
    assert parse_query("हिन्दी") == ("हिन्दी",)


@pytest.mark.parametrize("query", ["customerEmail", "customer_email", "CustomerEmail", "cust em"])
def test_camel_and_snake_case_find_each_other(query: str) -> None:
    from dq_metadata.scope import Scope
    from dq_stores.documents import ANY, DocumentWrite, IndexEntry
    from dq_stores.memory import MemoryBackend

    backend = MemoryBackend()
    scope = Scope("acme", "prod")
    for key, name in (("a", "customer_email"), ("b", "customerEmail"), ("c", "customer id")):
        fields = search_fields(title=[name])
        backend.put(scope, "k", DocumentWrite.hashing(key, b"{}", IndexEntry(fields)), ANY)
    found = [hit.document.key for hit in backend.search(scope, "k", query).hits]
    assert sorted(found) == ["a", "b"]
