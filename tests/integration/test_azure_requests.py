"""Azure Blob: HTTP requests per operation, pinned (ADR 0004). Azurite ignores
``start_from``, so deep pages prove the listing-marker path."""

from __future__ import annotations

import pytest
from azure.storage.blob import ContainerClient
from tests.integration._azure_helpers import RequestLog, counted_backend, write

from dq_metadata.scope import Scope
from dq_stores.documents import ANY, MUST_NOT_EXIST, FieldFilter, Query, at_revision

SCOPE = Scope("acme", "prod")
KIND = "run"


def _lists(requests: list[tuple[str, str]], container: str) -> int:
    """Listings: GETs of the container itself (blob reads name a blob after it)."""
    return sum(1 for method, path in requests if method == "GET" and path.endswith(f"/{container}"))


def test_create_update_and_get_requests(azure_connection_string: str, azure_container: str) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    with client, backend:
        backend.put(SCOPE, KIND, write("k", 1, "a", job=("j",), status=("ok",)), MUST_NOT_EXIST)
        # the head PUT (If-None-Match *) and 2 entries (asc + desc) per posting:
        # all documents, job=j, status=ok
        assert sorted(m for m, _ in log.take()) == ["PUT"] * 7
        backend.put(SCOPE, KIND, write("k", 2, "a", job=("j",), status=("ok",)), at_revision(1))
        # same index: GET head, PUT archive, PUT head (If-Match)
        assert sorted(m for m, _ in log.take()) == ["GET", "PUT", "PUT"]
        backend.get(SCOPE, KIND, "k")
        assert [m for m, _ in log.take()] == ["GET"]


def test_a_deep_page_lists_from_its_cursor(
    azure_connection_string: str, azure_container: str
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    with client, backend:
        writes = (
            write(f"k{i:04d}", i, f"{i:06d}", status=("ok" if i % 2 else "bad",))
            for i in range(240)
        )
        backend.put_many(SCOPE, KIND, writes)
        query = Query((FieldFilter("status", ("ok",)),), limit=10)
        first = backend.query(SCOPE, KIND, query)
        # a page after a cursor learns (once per backend) whether start_from is honoured
        backend.query(SCOPE, KIND, Query(query.filters, limit=10, page_token=first.next_token))
        log.take()
        token, per_page, keys = None, [], []
        for _ in range(10):
            page = backend.query(SCOPE, KIND, Query(query.filters, limit=10, page_token=token))
            per_page.append(_lists(log.take(), azure_container))
            keys += [d.key for d in page.items]
            token = page.next_token
        assert keys == [f"k{i:04d}" for i in range(1, 200, 2)]
        # one listing per page, deep or not (the 10th page skips 90 matches and 90 others)
        assert per_page == [1] * 10, per_page


@pytest.mark.parametrize("descending", [False, True])
def test_deep_pages_with_markers_return_every_match_once(
    azure_connection_string: str, azure_container: str, descending: bool
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    with client, backend:
        # sort keys that share long prefixes and differ in the last character only
        backend.put_many(
            SCOPE,
            KIND,
            (write(f"k{i}", i, "x" * 40 + chr(97 + i % 26), s=("v",)) for i in range(120)),
        )
        backend.put(SCOPE, KIND, write("k0", "again", "x" * 40 + "a", s=("v",)), ANY)
        seen: list[str] = []
        token = None
        while True:
            page = backend.query(
                SCOPE, KIND, Query((FieldFilter("s", ("v",)),), descending, 7, token)
            )
            seen += [d.key for d in page.items]
            token = page.next_token
            if token is None:
                break
        assert sorted(seen) == sorted(f"k{i}" for i in range(120))
        assert len(seen) == 120


def test_a_filtered_count_reads_no_document(
    azure_connection_string: str, azure_container: str
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    with client, backend:
        writes = (
            write(f"k{i}", i, f"{i:04d}", status=("ok" if i % 3 else "bad",)) for i in range(90)
        )
        backend.put_many(SCOPE, KIND, writes)
        log.take()
        assert backend.count(SCOPE, KIND, (FieldFilter("status", ("ok",)),)) == 60
        # one listing of the heads, one of the posting: no document is read
        assert [m for m, _ in log.take()] == ["GET", "GET"]
        assert backend.count(SCOPE, KIND, (FieldFilter("status", ("ok", "bad")),)) == 90


def test_count_ignores_stale_entries_and_reads_heads_it_cannot_vouch_for(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    ok = (FieldFilter("status", ("ok",)),)
    with client, backend:
        for key in ("a", "b", "c"):
            backend.put(SCOPE, KIND, write(key, 1, key, status=("ok",)), MUST_NOT_EXIST)
        ok_dir = f"acme/prod/{KIND}/x/status/"
        entries = {
            p.name: p.metadata
            for p in raw.list_blobs(name_starts_with=ok_dir, include=["metadata"])
        }
        backend.put(SCOPE, KIND, write("a", 2, "a", status=("bad",)), at_revision(1))
        backend.delete(SCOPE, KIND, "b")
        # what a writer that died before retiring its old entries leaves behind
        for name, meta in entries.items():
            raw.upload_blob(name, b"", overwrite=True, metadata=meta)
        # a head written before heads carried their index digest
        head = f"acme/prod/{KIND}/h/c"
        raw.get_blob_client(head).set_blob_metadata({"rev": "1", "deleted": "0"})
        log.take()
        assert backend.count(SCOPE, KIND, ok) == 1  # only c
        assert sum(1 for m, p in log.take() if m == "GET" and p.endswith("/h/c")) == 1
        assert backend.count(SCOPE, KIND, (FieldFilter("status", ("bad",)),)) == 1  # a


def test_put_many_writes_a_repeated_key_in_order(
    azure_connection_string: str, azure_container: str
) -> None:
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    with client, backend:
        writes = [write(f"k{i % 7}", i, f"{i:04d}", n=(str(i),)) for i in range(70)]
        assert backend.put_many(SCOPE, KIND, writes) == 70
        for k in range(7):
            doc = backend.get(SCOPE, KIND, f"k{k}")
            assert (doc.revision, doc.index.fields["n"]) == (10, (str(63 + k),))
        assert backend.count(SCOPE, KIND) == 7
