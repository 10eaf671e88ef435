"""Azure blobs edited outside the library: a fresh backend raises ``IntegrityError``
(or, for index entries, ``dq verify`` reports and ``--repair-index`` restores them).

Every field read back from a head or revision blob is covered by its record hash
(format 2), identity included; the ``deleted`` metadata flag listings use never
hides a document. Runs on Azurite (``DQ_REQUIRE_BACKENDS=1`` to fail instead of skip).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from tests.integration._azure_helpers import write

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.documents import ANY, FieldFilter, Query
from dq_stores.verify import IntegrityProblem, verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
GLOBEX = Scope("globex", "prod")
KIND = "contract"
HEAD = "acme/prod/contract/h/orders"


@pytest.fixture
def fresh(azure_connection_string: str, azure_container: str) -> Iterator[Any]:
    """A factory of fresh backends (nothing cached), closed at the end."""
    opened: list[AzureBlobBackend] = []

    def make() -> AzureBlobBackend:
        opened.append(AzureBlobBackend(azure_container, connection_string=azure_connection_string))
        return opened[-1]

    with make() as seed:
        for scope in (ACME, GLOBEX):
            for n in (1, 2, 3):
                seed.put(scope, KIND, write("orders", n, dataset=(scope.tenant,)), ANY)
            seed.put(scope, KIND, write("other", 1), ANY)
    yield make
    for backend in opened:
        backend.close()


def _problems(fresh: Any, scope: Scope = ACME) -> list[IntegrityProblem]:
    return list(verify(fresh(), scope=scope))


def _edit_header(raw: ContainerClient, name: str, **changes: Any) -> None:
    blob = raw.get_blob_client(name)
    props = blob.get_blob_properties()
    header, _, body = blob.download_blob().readall().partition(b"\n")
    meta = json.loads(header)
    meta.update(changes)
    line = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    blob.upload_blob(line + b"\n" + body, overwrite=True, metadata=props.metadata)


def test_a_clean_store_verifies(fresh: Any) -> None:
    assert _problems(fresh) == []
    assert _problems(fresh, GLOBEX) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"rev": 2},
        {"fields": {"dataset": ["globex"]}},
        {"sort": "zzz"},
        {"at": "2001-01-01T00:00:00+00:00"},
        {"deleted": True, "sha256": ""},
        {"prev": "0" * 64},
    ],
    ids=["revision", "fields", "sort-key", "timestamp", "deleted", "link"],
)
def test_every_header_field_is_covered_by_the_hash(
    fresh: Any, raw: ContainerClient, changes: dict[str, Any]
) -> None:
    _edit_header(raw, HEAD, **changes)
    with pytest.raises(IntegrityError):
        fresh().get(ACME, KIND, "orders")
    assert {p.code for p in _problems(fresh)} >= {"record"}
    # the same edit on an archived revision
    _edit_header(raw, "acme/prod/contract/r/orders/000000000001", **changes)
    with pytest.raises(IntegrityError):
        fresh().get_revision(ACME, KIND, "orders", 1)


def test_another_tenants_head_copied_over_raises(fresh: Any, raw: ContainerClient) -> None:
    data = raw.get_blob_client("globex/prod/contract/h/orders").download_blob().readall()
    raw.get_blob_client(HEAD).upload_blob(
        data, overwrite=True, metadata={"rev": "3", "deleted": "0"}
    )
    with pytest.raises(IntegrityError, match="another document"):
        fresh().get(ACME, KIND, "orders")
    assert _problems(fresh)


def test_a_deleted_flag_set_from_outside_hides_nothing(fresh: Any, raw: ContainerClient) -> None:
    raw.get_blob_client(HEAD).set_blob_metadata({"rev": "3", "deleted": "1"})
    backend = fresh()
    assert backend.count(ACME, KIND) == 2
    assert sorted(d.key for d in backend.iter_documents(ACME, KIND)) == ["orders", "other"]
    assert {p.code for p in _problems(fresh)} == {"head"}


def test_rollback_deleted_and_reordered_revisions_break_history(
    fresh: Any, raw: ContainerClient
) -> None:
    first = raw.get_blob_client("acme/prod/contract/r/orders/000000000001")
    second = raw.get_blob_client("acme/prod/contract/r/orders/000000000002")
    one, two = first.download_blob().readall(), second.download_blob().readall()
    # reordered
    first.upload_blob(two, overwrite=True)
    second.upload_blob(one, overwrite=True)
    with pytest.raises(IntegrityError):
        fresh().history(ACME, KIND, "orders")
    # a deleted middle revision
    first.upload_blob(one, overwrite=True)
    second.delete_blob()
    with pytest.raises(IntegrityError, match="missing"):
        fresh().history(ACME, KIND, "orders")
    assert {p.code for p in _problems(fresh)} == {"history"}
    # rollback: revision 1 copied over the head
    second.upload_blob(two, overwrite=True)
    raw.get_blob_client(HEAD).upload_blob(
        one, overwrite=True, metadata={"rev": "1", "deleted": "0"}
    )
    with pytest.raises(IntegrityError, match="rollback"):
        fresh().history(ACME, KIND, "orders")
    assert "head" in {p.code for p in _problems(fresh)}


@pytest.mark.parametrize("how", ["upload", "server-side-copy"])
def test_get_alone_catches_a_rolled_back_head(
    fresh: Any, raw: ContainerClient, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Revision 1 copied over the head of revision 3: ``get`` notices the head blob was
    written long after its record (here: > 0.5 s instead of a few seconds, to keep
    the test short) and finds revision 2 archived — the head went back."""
    import time

    from dq_stores.azure_blob import _place

    monkeypatch.setattr(_place, "_PLACED_SKEW", 0.5)
    monkeypatch.setattr(_place, "_PLACED_NEAR", (0.5, 0.5))
    reader = fresh()
    assert reader.get(ACME, KIND, "orders").revision == 3  # a long-lived reader too
    # Last-Modified has whole seconds (an HTTP date): wait past one more second
    time.sleep(1.6)
    first = raw.get_blob_client("acme/prod/contract/r/orders/000000000001")
    head = raw.get_blob_client(HEAD)
    if how == "upload":
        head.upload_blob(
            first.download_blob().readall(), overwrite=True, metadata={"rev": "1", "deleted": "0"}
        )
    else:
        head.start_copy_from_url(first.url, requires_sync=True)
    for backend in (fresh(), reader):
        with pytest.raises(IntegrityError, match="rolled-back head"):
            backend.get(ACME, KIND, "orders")
        assert backend.get(ACME, KIND, "other").revision == 1  # a head in place: no error
    # a legitimate write much later than its predecessor is not mistaken for one
    time.sleep(1.6)
    with fresh() as writer:
        writer.put(ACME, KIND, write("other", 2), ANY)
    assert fresh().get(ACME, KIND, "other").revision == 2


def test_deleted_index_entries_are_found_and_repaired(fresh: Any, raw: ContainerClient) -> None:
    entries = list(raw.list_blob_names(name_starts_with="acme/prod/contract/x/"))
    assert entries
    heads_before = {
        n: raw.get_blob_client(n).download_blob().readall()
        for n in raw.list_blob_names(name_starts_with="acme/prod/contract/h/")
    }
    for name in entries:
        raw.delete_blob(name)
    problems = _problems(fresh)
    assert {p.code for p in problems} == {"index"}
    list(verify(fresh(), scope=ACME, repair_index=True))
    assert _problems(fresh) == []
    assert {
        n: raw.get_blob_client(n).download_blob().readall() for n in heads_before
    } == heads_before
    found = fresh().query(ACME, KIND, Query((FieldFilter("dataset", ("acme",)),)))
    assert [d.key for d in found.items] == ["orders"]


def _format1(raw: ContainerClient, name: str) -> bytes:
    """The blob as the previous release wrote it (format 1: only the body hashed)."""
    header, _, body = raw.get_blob_client(name).download_blob().readall().partition(b"\n")
    meta = json.loads(header)
    for field in ("tenant", "env", "kind", "prev", "h"):
        del meta[field]
    meta["v"] = 1
    return json.dumps(meta, separators=(",", ":"), sort_keys=True).encode() + b"\n" + body


def test_format1_blobs_still_read_and_the_next_write_links_to_them(
    fresh: Any, raw: ContainerClient
) -> None:
    for name in (HEAD, *raw.list_blob_names(name_starts_with="acme/prod/contract/r/orders/")):
        blob = raw.get_blob_client(name)
        metadata = blob.get_blob_properties().metadata
        blob.upload_blob(_format1(raw, name), overwrite=True, metadata=metadata)
    backend = fresh()
    assert backend.get(ACME, KIND, "orders").revision == 3
    assert [d.revision for d in backend.history(ACME, KIND, "orders")] == [1, 2, 3]
    backend.put(ACME, KIND, write("orders", 4, dataset=("acme",)), ANY)
    assert [d.revision for d in fresh().history(ACME, KIND, "orders")] == [1, 2, 3, 4]
    assert _problems(fresh) == []
