"""Azure Blob backend on Azurite: integrity, blob layout, crash points, request counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient
from tests.integration._azure_helpers import FAST_RETRIES, RequestLog, counted_backend, write

from dq_metadata.errors import IntegrityError, MisconfiguredError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.azure_blob._client import make_service_client
from dq_stores.documents import ANY, MUST_NOT_EXIST, FieldFilter, Query, at_revision
from dq_stores.testing._helpers import HOSTILE_KEYS

pytestmark = pytest.mark.azure

SCOPE = Scope("acme", "prod")
OTHER = Scope("acme", "dev")
KIND = "contract"


class Crash(BaseException):
    """Stands in for the process dying at a chosen request."""


@pytest.fixture
def backend(azure_connection_string: str, azure_container: str) -> Iterator[AzureBlobBackend]:
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as b:
        yield b


def _keys(backend: AzureBlobBackend, query: Query, scope: Scope = SCOPE) -> list[str]:
    return [d.key for d in backend.query(scope, KIND, query).items]


def test_repr_and_errors_never_show_the_account_key(
    azure_connection_string: str, azure_container: str
) -> None:
    backend = AzureBlobBackend(azure_container, connection_string=azure_connection_string)
    key = azure_connection_string.split("AccountKey=")[1].split(";", maxsplit=1)[0]
    assert key not in repr(backend)
    backend.close()
    broken = azure_connection_string.replace("AccountKey=", "AccountKey=x")
    with pytest.raises(MisconfiguredError) as info:
        AzureBlobBackend(azure_container, connection_string=broken + ";Bogus")
    assert key not in str(info.value)
    with pytest.raises(MisconfiguredError):
        AzureBlobBackend(azure_container)  # neither connection string nor account URL


def test_tampered_head_and_revision_raise_integrity_error(
    backend: AzureBlobBackend, raw: ContainerClient
) -> None:
    backend.put(SCOPE, KIND, write("orders", 1), MUST_NOT_EXIST)
    backend.put(SCOPE, KIND, write("orders", 2), at_revision(1))
    head = raw.get_blob_client("acme/prod/contract/h/orders")
    data = head.download_blob().readall()
    head.upload_blob(data.replace(b'"value":2', b'"value":3'), overwrite=True)
    with pytest.raises(IntegrityError):
        backend.get(SCOPE, KIND, "orders")
    old = raw.get_blob_client("acme/prod/contract/r/orders/000000000001")
    old.upload_blob(b"not a document", overwrite=True)
    with pytest.raises(IntegrityError):
        backend.get_revision(SCOPE, KIND, "orders", 1)
    # a head copied under another key's name is caught too
    raw.get_blob_client("acme/prod/contract/h/other").upload_blob(data, overwrite=True)
    with pytest.raises(IntegrityError):
        backend.get(SCOPE, KIND, "other")


def test_hostile_keys_stay_under_their_scope_prefix(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, prefix="dq/v1"
    ) as backend:
        for i, key in enumerate(HOSTILE_KEYS):
            short = key[:200]  # indexed values and sort keys are capped at 512 bytes
            backend.put(
                SCOPE, KIND, write(key, i, sort_key=short, dataset=(short,)), MUST_NOT_EXIST
            )
        names = list(raw.list_blob_names())
        assert names
        assert all(n.startswith("dq/v1/acme/prod/contract/") for n in names)
        assert all(len(n) <= 1024 and ".." not in n.split("/") for n in names)
        for i, key in enumerate(HOSTILE_KEYS):
            assert backend.get(SCOPE, KIND, key).body == write(key, i).body
            found = backend.query(SCOPE, KIND, Query((FieldFilter("dataset", (key[:200],)),)))
            assert key in [d.key for d in found.items]  # "k"*1024 and "k"*200 share a value
            with pytest.raises(NotFoundError):
                backend.get(OTHER, KIND, key)
        assert backend.count(OTHER, KIND) == 0
        assert backend.list_environments("acme") == ["prod"]


def _crash_at(log: RequestLog, method: str, marker: str) -> None:
    def hook(m: str, path: str) -> None:
        if m == method and marker in path:
            log.on_request = None
            raise Crash

    log.on_request = hook


def test_crash_before_commit_leaves_the_old_revision_and_no_visible_trace(
    azure_connection_string: str, azure_container: str, backend: AzureBlobBackend
) -> None:
    log = RequestLog()
    crashing, client = counted_backend(azure_connection_string, azure_container, log)
    ds = FieldFilter("dataset", ("orders",))
    with client:
        crashing.put(SCOPE, KIND, write("c1", 1, "1", dataset=("orders",)), MUST_NOT_EXIST)
        _crash_at(log, "PUT", "/contract/h/c1")  # dies after archive + index, before the head
        with pytest.raises(Crash):
            crashing.put(SCOPE, KIND, write("c1", 2, "2", dataset=("orders", "payments")), ANY)
    assert backend.get(SCOPE, KIND, "c1").revision == 1
    assert [d.revision for d in backend.history(SCOPE, KIND, "c1")] == [1]
    assert _keys(backend, Query((ds,))) == ["c1"]
    assert _keys(backend, Query((FieldFilter("dataset", ("payments",)),))) == []
    assert backend.count(SCOPE, KIND, (ds,)) == 1
    # the next writer continues the sequence as if nothing happened
    backend.put(SCOPE, KIND, write("c1", 3, "3", dataset=("payments",)), at_revision(1))
    assert [d.revision for d in backend.history(SCOPE, KIND, "c1")] == [1, 2]
    assert _keys(backend, Query((ds,))) == []
    assert _keys(backend, Query((FieldFilter("dataset", ("payments",)),))) == ["c1"]
    assert _keys(backend, Query(descending=True)) == ["c1"]


def test_crash_after_commit_before_index_cleanup_is_invisible(
    azure_connection_string: str, azure_container: str, backend: AzureBlobBackend
) -> None:
    log = RequestLog()
    crashing, client = counted_backend(azure_connection_string, azure_container, log)
    with client:
        crashing.put(SCOPE, KIND, write("c2", 1, "1", dataset=("a",)), MUST_NOT_EXIST)
        _crash_at(log, "DELETE", "/contract/")  # dies retiring the old index entries
        with pytest.raises(Crash):
            crashing.put(SCOPE, KIND, write("c2", 2, "2", dataset=("b",)), at_revision(1))
    assert backend.get(SCOPE, KIND, "c2").revision == 2
    assert _keys(backend, Query((FieldFilter("dataset", ("a",)),))) == []
    assert _keys(backend, Query((FieldFilter("dataset", ("b",)),))) == ["c2"]
    assert _keys(backend, Query()) == ["c2"]
    assert _keys(backend, Query(descending=True)) == ["c2"]
    assert [d.revision for d in backend.history(SCOPE, KIND, "c2")] == [1, 2]


def test_requests_per_operation(azure_connection_string: str, azure_container: str) -> None:
    """Request counts are the latency budget (~4-5 ms each on Azurite): pin them."""
    log = RequestLog()
    backend, client = counted_backend(azure_connection_string, azure_container, log)
    fields = {"dataset": ("orders",), "status": ("active",)}
    backend_url = client.get_container_client(azure_container).url
    with client, backend:
        backend.put(SCOPE, KIND, write("k", 1, "1", **fields), MUST_NOT_EXIST)
        # head + 2 sort-index entries + 2 per indexed value
        assert len(log.take()) == 1 + 2 + 2 * 2
        backend.get(SCOPE, KIND, "k")
        assert log.take() == [("GET", f"{backend_url}/acme/prod/contract/h/k")]
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "missing")  # an existence check never lists
        assert [m for m, _ in log.take()] == ["GET"]
        backend.put(SCOPE, KIND, write("k", 2, "1", **fields), at_revision(1))
        # read head, archive it, conditional head write; unchanged index: no entry writes
        assert sorted(m for m, _ in log.take()) == ["GET", "PUT", "PUT"]
        for i in range(2, 6):
            backend.put(SCOPE, KIND, write(f"v{i}", i, str(i), **fields), ANY)
        log.take()
        latest = backend.query(
            SCOPE,
            KIND,
            Query(
                (FieldFilter("dataset", ("orders",)), FieldFilter("status", ("active",))),
                descending=True,
                limit=1,
            ),
        )
        assert [d.key for d in latest.items] == ["v5"]
        # one listing of the dataset's descending range + the heads of limit + 1 candidates
        assert sorted(m for m, _ in log.take()) == ["GET", "GET", "GET"]
        backend.delete(SCOPE, KIND, "k")
        methods = sorted(m for m, _ in log.take())
        assert methods == ["DELETE"] * 6 + ["GET", "PUT", "PUT"]


def test_a_lost_commit_response_is_recognised_even_after_another_writer_moved_on(
    azure_connection_string: str, azure_container: str, backend: AzureBlobBackend
) -> None:
    """The response to our head write is lost, the client retries (412), and meanwhile
    another writer committed on top: we must report success, not write a duplicate."""
    from azure.core.exceptions import ServiceResponseError

    backend.put(SCOPE, KIND, write("z", 0), MUST_NOT_EXIST)
    fired: list[int] = []

    def drop_after_commit(response: object) -> None:
        http = response.http_request  # type: ignore[attr-defined]
        if not fired and http.method == "PUT" and http.url.split("?")[0].endswith("/h/z"):
            fired.append(1)
            backend.put(SCOPE, KIND, write("z", "other"), ANY)  # commits on top of ours
            raise ServiceResponseError("connection dropped before the response arrived")

    client = make_service_client(
        connection_string=azure_connection_string,
        account_url=None,
        credential=None,
        settings=FAST_RETRIES,
        raw_response_hook=drop_after_commit,
    )
    with client, AzureBlobBackend(azure_container, client=client) as unlucky:
        stored = unlucky.put(SCOPE, KIND, write("z", "mine"), at_revision(1))
    assert fired
    assert stored.revision == 2
    history = backend.history(SCOPE, KIND, "z")
    assert [d.body for d in history] == [write("z", v).body for v in (0, "mine", "other")]


def test_entries_left_by_a_crashed_writer_never_hide_or_fake_a_match(
    azure_connection_string: str, azure_container: str, backend: AzureBlobBackend
) -> None:
    """Index entries carry the fields they stand for, and queries skip entries on them:
    a crashed writer's entries (same sort key and key, other fields) must not change that."""
    log = RequestLog()
    crashing, client = counted_backend(azure_connection_string, azure_container, log)

    def latest(status: str) -> list[str]:
        filters = (FieldFilter("dataset", ("orders",)), FieldFilter("status", (status,)))
        return _keys(backend, Query(filters, descending=True, limit=1))

    with client:
        crashing.put(SCOPE, KIND, write("c3", 1, "1", dataset=("orders",), status=("draft",)), ANY)
        _crash_at(log, "PUT", "/contract/h/c3")
        with pytest.raises(Crash):
            crashing.put(
                SCOPE, KIND, write("c3", 2, "1", dataset=("orders",), status=("active",)), ANY
            )
    assert latest("draft") == ["c3"]
    assert latest("active") == []
    assert backend.count(SCOPE, KIND, (FieldFilter("status", ("active",)),)) == 0
    backend.put(SCOPE, KIND, write("c3", 3, "1", dataset=("orders",), status=("active",)), ANY)
    assert latest("draft") == []
    assert latest("active") == ["c3"]
    assert backend.get(SCOPE, KIND, "c3").revision == 2


def test_a_missing_container_is_a_configuration_error_not_a_missing_document(
    azure_connection_string: str,
) -> None:
    with AzureBlobBackend("no-such-container", connection_string=azure_connection_string) as b:
        with pytest.raises(MisconfiguredError):
            b.get(SCOPE, KIND, "k")
        with pytest.raises(MisconfiguredError):
            b.put(SCOPE, KIND, write("k", 1), MUST_NOT_EXIST)
