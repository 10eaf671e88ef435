"""Contract search on Azure Blob (Azurite): search-token postings, verified against heads.

Matching and ranking equal :func:`dq_stores.search.rank` over the same corpus; deleted
and other tenants' documents are never hits; pages are exact; a stale or forged posting
never yields a wrong hit; requests grow with the matches, not the store (ADR 0004).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration._azure_helpers import RequestLog, counted_backend

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.azure_blob._layout import search_name_prefix, search_value_name
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.search import SEARCH_BODY_FIELD, SEARCH_TITLE_FIELD, rank, search_fields
from dq_stores.verify import verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
GLOBEX = Scope("globex", "prod")
KIND = "contract"
LONG_CJK = "顧客管理データベース設計書類一覧"  # one 16-character token: a long (digest) name

CORPUS: dict[str, tuple[list[str], list[str]]] = {
    "orders": (["orders", "sales"], ["Customer orders with email and shipping address"]),
    "customers": (["customers", "crm"], ["Customer master data: customerEmail, phone"]),
    "email-events": (["email_events", "marketing"], ["Email opens per customer and campaign"]),
    "shipping": (["shipments"], ["Parcels shipped to a customer address, by carrier"]),
    "inventory": (["inventory", "warehouse"], ["Stock levels per warehouse and SKU"]),
    "payments": (["payments", "finance"], ["Card payments; customer id, amount, currency"]),
    "strasse": (["Straße", "adressen"], ["Postanschrift der Kunden (Straße, Ort)"]),
    "kunden": ([LONG_CJK, "kunden"], ["顧客 の データ"]),
    "empty-body": (["orphans"], []),
}
QUERIES = [
    "customer",
    "cust",
    "email",
    "customer email",
    "ship addr",
    "warehouse sku",
    "strasse",
    "STRASSE ort",
    "顧客",
    "顧客管理データベース",
    LONG_CJK,
    "nothing-here",
    "c",
]


def contract(
    key: str, title: list[str], body: list[str], **extra: tuple[str, ...]
) -> DocumentWrite:
    payload = canonical_json({"id": key, "title": title, "body": body})
    fields = {**search_fields(title, body), **extra}
    return DocumentWrite(key, payload, content_hash(payload), IndexEntry(fields, key))


def _seed(backend: AzureBlobBackend, scope: Scope = ACME) -> None:
    backend.put_many(
        scope,
        KIND,
        (contract(k, t, b, dataset=(k,), status=("active",)) for k, (t, b) in CORPUS.items()),
    )


def _hits(backend: AzureBlobBackend, scope: Scope, text: str, limit: int = 100) -> list[Any]:
    page = backend.search(scope, KIND, text, limit=limit)
    assert page.next_token is None
    return [(hit.document.key, hit.score) for hit in page.hits]


def _expected(backend: AzureBlobBackend, scope: Scope, text: str) -> list[tuple[str, int]]:
    from dq_stores.search import parse_query

    docs = list(backend.iter_documents(scope, KIND))
    return [(doc.key, points) for points, doc in rank(parse_query(text), docs, None)]


@pytest.fixture
def backend(azure_connection_string: str, azure_container: str) -> Iterator[AzureBlobBackend]:
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as made:
        yield made


def test_search_names_keep_prefixes() -> None:
    for token in ["customer", "straße", LONG_CJK, "ü" * 32, "a-b_c"]:
        name = search_value_name(token)
        assert len(name) <= 80
        for cut in range(1, len(token) + 1):
            assert name.startswith(search_name_prefix(token[:cut]))
    assert search_value_name("customer") == "customer"
    assert search_value_name(LONG_CJK) != search_value_name(LONG_CJK[:-1] + "表")


def test_matches_and_ranking_equal_rank_over_the_corpus(backend: AzureBlobBackend) -> None:
    _seed(backend)
    for text in QUERIES:
        assert _hits(backend, ACME, text) == _expected(backend, ACME, text), text
    # title "email" exact (8) + body "customer" (2) before title "customers" (4) + body (2)
    assert _hits(backend, ACME, "customer email")[:2] == [("email-events", 10), ("customers", 6)]
    assert [k for k, _ in _hits(backend, ACME, "顧客管理データベース")] == ["kunden"]


def test_random_queries_rank_like_the_reference(backend: AzureBlobBackend) -> None:
    _seed(backend)
    words = sorted({w for t, b in CORPUS.values() for text in [*t, *b] for w in text.split()})
    words += ["zzz", "cu", "sh", "per", "Kunden"]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(words), min_size=1, max_size=3))
    def check(query: list[str]) -> None:
        text = " ".join(query)
        if not any(ch.isalnum() for ch in text):
            return
        assert _hits(backend, ACME, text) == _expected(backend, ACME, text)

    check()


def test_deleted_and_changed_documents_are_not_found(backend: AzureBlobBackend) -> None:
    _seed(backend)
    backend.delete(ACME, KIND, "payments", ANY)
    assert "payments" not in [k for k, _ in _hits(backend, ACME, "customer")]
    assert _hits(backend, ACME, "currency") == []
    backend.put(ACME, KIND, contract("inventory", ["stock"], ["Levels"]), ANY)
    assert _hits(backend, ACME, "warehouse") == []
    assert _hits(backend, ACME, "stock") == [("inventory", 8)]
    backend.put(ACME, KIND, contract("payments", ["payments"], ["currency"]), ANY)
    assert _hits(backend, ACME, "currency") == [("payments", 2)]


def test_another_tenant_or_kind_never_sees_a_hit(backend: AzureBlobBackend) -> None:
    _seed(backend)
    assert backend.search(GLOBEX, KIND, "customer").hits == []
    assert backend.search(ACME, "other", "customer").hits == []
    backend.put(GLOBEX, KIND, contract("globex-only", ["customer"], []), ANY)
    assert [k for k, _ in _hits(backend, GLOBEX, "customer")] == ["globex-only"]
    assert "globex-only" not in [k for k, _ in _hits(backend, ACME, "customer")]


def test_pages_are_exact_under_concurrent_writes(backend: AzureBlobBackend) -> None:
    for i in range(14):
        title = ["customer"] if i % 3 == 0 else [f"t{i}"]
        backend.put(ACME, KIND, contract(f"k{i:02d}", title, ["customer data"]), ANY)
    everything = _hits(backend, ACME, "customer")
    assert len(everything) == 14
    walked: list[tuple[str, int]] = []
    token = None
    for n in range(20):
        page = backend.search(ACME, KIND, "customer", limit=3, page_token=token)
        walked += [(h.document.key, h.score) for h in page.hits]
        if n == 1:  # between pages: a new best hit, a deletion ahead, an unchanged rewrite
            backend.put(ACME, KIND, contract("a-new", ["customer"], []), ANY)
            backend.delete(ACME, KIND, "k13", ANY)
            backend.put(ACME, KIND, contract("k11", ["t11"], ["customer data"]), ANY)
        token = page.next_token
        if token is None:
            break
    keys = [k for k, _ in walked]
    assert len(keys) == len(set(keys))
    unchanged = [kv for kv in everything if kv[0] not in {"k13"}]
    assert [kv for kv in walked if kv[0] != "a-new"] == unchanged
    assert walked == sorted(walked, key=lambda kv: (-kv[1], kv[0]))


def test_stale_and_forged_postings_never_yield_a_wrong_hit(
    backend: AzureBlobBackend, raw: ContainerClient
) -> None:
    _seed(backend)
    base = "acme/prod/contract/x/"
    postings = {
        p.name: p.metadata
        for p in raw.list_blobs(name_starts_with=base + "search_title/", include=["metadata"])
    }
    warehouse = [n for n in postings if n.startswith(base + "search_title/warehouse/")]
    assert len(warehouse) == 1
    # the writer crashed before retiring: the old revision's posting stays behind
    backend.put(ACME, KIND, contract("inventory", ["stock"], []), ANY)
    raw.upload_blob(warehouse[0], b"", metadata=postings[warehouse[0]], overwrite=True)
    # forged: the current entry's digest, claiming a token the document does not have
    orders = next(n for n in postings if n.startswith(base + "search_title/orders/"))
    claim = json.loads(base64.urlsafe_b64decode(postings[orders]["m"]))
    claim["f"][SEARCH_TITLE_FIELD].append("zebra")
    forged = base + "search_title/zebra/a/" + orders.rsplit("/", 1)[1]
    meta = {"m": base64.urlsafe_b64encode(json.dumps(claim).encode()).decode()}
    raw.upload_blob(forged, b"", metadata=meta, overwrite=True)
    # forged: a posting whose metadata says nothing readable
    raw.upload_blob(base + "search_title/zebra/a/0!0!0", b"", metadata={"m": "junk"})
    raw.upload_blob(base + "search_title/zebrafish", b"", metadata=meta)  # not a posting name
    assert _hits(backend, ACME, "warehouse") == []
    assert _hits(backend, ACME, "zebra") == []
    assert _hits(backend, ACME, "stock") == [("inventory", 8)]
    backend.close()  # waits for the background removal of provably stale postings
    left = set(raw.list_blob_names(name_starts_with=base + "search_title/"))
    assert warehouse[0] not in left
    assert forged not in left


def test_search_fields_get_ascending_entries_only_and_verify_repairs_them(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as backend:
        _seed(backend)
        names = list(raw.list_blob_names(name_starts_with="acme/prod/contract/x/"))
        search = [n for n in names if n.split("/")[4] in (SEARCH_TITLE_FIELD, SEARCH_BODY_FIELD)]
        assert search
        assert all(n.split("/")[-2] == "a" for n in search)
        assert {n.split("/")[-2] for n in names if n not in search} == {"a", "d"}
        assert list(verify(backend, scope=ACME)) == []
        lost = [n for n in search if "/search_title/customers/" in n]
        for name in lost:
            raw.delete_blob(name)
        assert {p.code for p in verify(backend, scope=ACME)} == {"index"}
        assert "customers" not in [k for k, _ in _hits(backend, ACME, "customers")]
        list(verify(backend, scope=ACME, repair_index=True))
        assert list(verify(backend, scope=ACME)) == []
        assert set(lost) <= set(raw.list_blob_names(name_starts_with="acme/prod/contract/x/"))
        assert _hits(backend, ACME, "customers")[0][0] == "customers"


@pytest.mark.parametrize("descending", [False, True])
def test_queries_on_search_fields_work_both_ways(
    backend: AzureBlobBackend, descending: bool
) -> None:
    _seed(backend)
    backend.put(ACME, KIND, contract("zz-customer", ["customer"], [], status=("active",)), ANY)
    query = Query((FieldFilter(SEARCH_BODY_FIELD, ("customer", "email")),), descending=descending)
    keys = [d.key for d in backend.query(ACME, KIND, query).items]
    expected = ["customers", "email-events", "orders", "payments", "shipping"]
    assert keys == (expected[::-1] if descending else expected)
    pages: list[str] = []
    token = None
    while True:
        page = backend.query(
            ACME, KIND, Query(query.filters, descending, limit=2, page_token=token)
        )
        pages += [d.key for d in page.items]
        token = page.next_token
        if token is None:
            break
    assert pages == keys
    both = Query(
        (FieldFilter(SEARCH_TITLE_FIELD, ("customer",)), FieldFilter("status", ("active",))),
        descending=descending,
    )
    assert [d.key for d in backend.query(ACME, KIND, both).items] == ["zz-customer"]
    assert backend.count(ACME, KIND, (FieldFilter(SEARCH_BODY_FIELD, ("customer",)),)) == 5


def _requests(log: RequestLog, container: str) -> tuple[int, int]:
    """(listings, blob reads) among the requests taken from ``log``."""
    taken = log.take()
    lists = sum(1 for m, p in taken if m == "GET" and p.endswith(f"/{container}"))
    return lists, len(taken) - lists


def test_requests_grow_with_matches_not_with_the_store(
    azure_connection_string: str, azure_container: str
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    filler = ["Orders shipped per warehouse and carrier, with customer id and amounts"]
    with client, backend:
        backend.put_many(ACME, KIND, (contract(f"m{i}", ["needle"], []) for i in range(5)))
        backend.put_many(ACME, KIND, (contract(f"f{i}", [f"hay{i}"], filler) for i in range(15)))
        log.take()
        assert len(backend.search(ACME, KIND, "needle").hits) == 5
        assert _requests(log, azure_container) == (2, 5)  # title + body listing, 5 heads
        backend.put_many(ACME, KIND, (contract(f"g{i}", [f"hay{i}"], filler) for i in range(45)))
        log.take()
        assert len(backend.search(ACME, KIND, "needle customer").hits) == 0
        assert _requests(log, azure_container) == (2, 0)  # no head matches both: no reads
        assert len(backend.search(ACME, KIND, "needle").hits) == 5
        assert _requests(log, azure_container) == (2, 5)  # 4x the store: the same
        backend.put_many(ACME, KIND, (contract(f"n{i}", ["needles"], []) for i in range(5)))
        log.take()
        assert len(backend.search(ACME, KIND, "needle").hits) == 10
        assert _requests(log, azure_container) == (2, 10)  # 2x the matches: 2x the reads


def test_publish_requests_of_a_contract_with_100_tokens(
    azure_connection_string: str, azure_container: str
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    # names, ids and tags (title) and descriptions (body): 100 distinct words
    title = ["Customer orders", "sales.orders", "gold", "pii"]
    words = ["".join(pair) for pair in itertools.product("abcdefghij", repeat=2)]
    body = [f"Orders placed by a customer {' '.join(words[:90])}"]
    doc = contract("orders", title, body, dataset=("orders",), status=("active",))
    fields = doc.index.fields
    tokens = len(fields[SEARCH_TITLE_FIELD]) + len(fields[SEARCH_BODY_FIELD])
    assert tokens == 100
    with client, backend:
        backend.put(ACME, KIND, doc, ANY)
        taken = [m for m, _ in log.take()]
        # 1 head + 2 x (sort index, dataset, status) + 1 per search token
        assert taken.count("PUT") == 1 + 2 * 3 + tokens, (len(taken), tokens)
