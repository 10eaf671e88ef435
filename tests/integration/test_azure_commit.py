"""Multi-document commits on Azurite: request counts, and a writer stopped before
each of its requests — every reader (fresh or long-lived) sees all or nothing, and
the next writer settles what was left (ADR 0010)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient
from tests.integration._azure_helpers import RequestLog, counted_backend, write

from dq_metadata.errors import ConflictError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.documents import MUST_NOT_EXIST, Put, at_revision

pytestmark = pytest.mark.azure

SCOPE = Scope("acme", "prod")
KIND = "account"
TOTAL = 100
#: Requests of one two-document transfer: 2 GET heads | 2 archive PUT + record PUT |
#: lock a | lock b | commit point PUT | 2 roll-forward PUT | record DELETE.
TRANSFER_REQUESTS = 11
COMMIT_POINT = 7  # 0-based index of the commit point among them


class Crash(BaseException):
    """Stands in for the process dying at a chosen request."""


def value(backend: AzureBlobBackend, key: str) -> tuple[int, int]:
    """(value, revision) of an account."""
    found = backend.get(SCOPE, KIND, key)
    return int(json.loads(found.body)["value"]), found.revision


def transfer(backend: AzureBlobBackend) -> None:
    """Move 1 from ``a`` to ``b`` in one guarded two-document commit."""
    (a, ra), (b, rb) = value(backend, "a"), value(backend, "b")
    backend.commit(
        SCOPE,
        [
            Put(KIND, write("a", a - 1), at_revision(ra)),
            Put(KIND, write("b", b + 1), at_revision(rb)),
        ],
    )


def transfer_retrying(backend: AzureBlobBackend) -> None:
    while True:
        try:
            transfer(backend)
            return
        except ConflictError:
            continue


def setup_accounts(backend: AzureBlobBackend) -> None:
    backend.commit(
        SCOPE,
        [Put(KIND, write("a", TOTAL), MUST_NOT_EXIST), Put(KIND, write("b", 0), MUST_NOT_EXIST)],
    )


def assert_consistent(backend: AzureBlobBackend) -> int:
    """Both accounts show the same number of transfers and keep the sum; return it."""
    (a, ra), (b, rb) = value(backend, "a"), value(backend, "b")
    assert a + b == TOTAL, (a, b)
    assert ra == rb, (ra, rb)  # every commit moved both: equal revisions or a torn commit
    assert (a, b) == (TOTAL - (ra - 1), ra - 1)
    assert backend.count(SCOPE, KIND) == 2
    assert {d.key: d.revision for d in backend.iter_documents(SCOPE, KIND)} == {"a": ra, "b": rb}
    assert len(backend.history(SCOPE, KIND, "a")) == len(backend.history(SCOPE, KIND, "b")) == ra
    return ra - 1


def leftovers(raw: ContainerClient) -> tuple[list[str], list[str]]:
    """(locked heads, commit records) in the container."""
    locked, records = [], []
    for props in raw.list_blobs(include=["metadata"]):
        if "/_tx/" in props.name:
            records.append(props.name)
        elif "tx" in (props.metadata or {}):
            locked.append(props.name)
    return locked, records


@pytest.fixture
def backend(azure_connection_string: str, azure_container: str) -> Iterator[AzureBlobBackend]:
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=1.0
    ) as b:
        yield b


def test_requests_of_a_two_document_commit(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    log = RequestLog()
    counted, client = counted_backend(azure_connection_string, azure_container, log)
    with client, counted:
        setup_accounts(counted)
        log.take()
        value(counted, "a")
        assert [m for m, _ in log.take()] == ["GET"]  # no commit pending: one request
        transfer(counted)
        methods = [m for m, _ in log.take()]
        assert len(methods) == 2 + TRANSFER_REQUESTS  # the transfer's own two reads first
        assert sorted(methods) == ["DELETE"] + ["GET"] * 4 + ["PUT"] * 8
        counted.put(SCOPE, KIND, write("a", 7), at_revision(2))
        assert sorted(m for m, _ in log.take()) == ["GET", "PUT", "PUT"]  # single put: unchanged
    assert leftovers(raw) == ([], [])


@pytest.mark.parametrize("stop_at", range(TRANSFER_REQUESTS + 1))
def test_a_writer_stopped_before_any_request_leaves_all_or_nothing(
    azure_connection_string: str,
    azure_container: str,
    backend: AzureBlobBackend,
    raw: ContainerClient,
    stop_at: int,
) -> None:
    setup_accounts(backend)
    long_lived = AzureBlobBackend(azure_container, connection_string=azure_connection_string)
    assert assert_consistent(long_lived) == 0
    log = RequestLog()
    crashing, client = counted_backend(azure_connection_string, azure_container, log)
    (a, ra), (b, rb) = value(backend, "a"), value(backend, "b")
    seen = [0]
    lock = threading.Lock()

    def die(_method: str, _path: str) -> None:
        with lock:
            seen[0] += 1
            if seen[0] - 1 == stop_at:
                raise Crash

    log.on_request = die
    ops = [
        Put(KIND, write("a", a - 1), at_revision(ra)),
        Put(KIND, write("b", b + 1), at_revision(rb)),
    ]
    with client:
        if stop_at < TRANSFER_REQUESTS:
            with pytest.raises(Crash):
                crashing.commit(SCOPE, ops)
        else:
            crashing.commit(SCOPE, ops)
    expected = 1 if stop_at > COMMIT_POINT else 0
    with long_lived:
        assert assert_consistent(long_lived) == expected
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as fresh:
        assert assert_consistent(fresh) == expected
    # the next writer settles what the stopped one left (aborting it after the lease)
    transfer_retrying(backend)
    assert assert_consistent(backend) == expected + 1
    locked, records = leftovers(raw)
    assert locked == []
    # A writer stopped between creating its record and its first lock, or before deleting
    # it, leaves an unreferenced record: no head points at it, nobody ever reads it.
    assert len(records) <= (1 if stop_at in (2, 3, 4, 5, 10) else 0), records


def test_an_empty_head_left_by_an_aborted_commit_is_absent_to_writers(
    backend: AzureBlobBackend, raw: ContainerClient
) -> None:
    """An aborted commit that had locked a new key leaves an empty, unlocked head:
    readers see no document, and so must every writer (a commit guarding on the key
    once raised ``IntegrityError`` on those empty bytes)."""
    from dq_metadata.errors import NotFoundError
    from dq_stores.documents import MUST_NOT_EXIST as ABSENT
    from dq_stores.documents import ConditionCheck, Delete

    head = f"{SCOPE.tenant}/{SCOPE.environment}/{KIND}/h/"
    for key in ("fresh", "guarded", "put", "gone"):
        raw.upload_blob(head + key, b"", overwrite=True)
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, KIND, "fresh")
    stored = backend.commit(
        SCOPE,
        [Put(KIND, write("fresh", 1), ABSENT), ConditionCheck(KIND, "guarded", ABSENT)],
    )
    assert stored[0] is not None
    assert stored[0].revision == 1
    assert backend.get(SCOPE, KIND, "fresh").revision == 1
    assert backend.put(SCOPE, KIND, write("put", 1), ABSENT).revision == 1
    with pytest.raises(NotFoundError):
        backend.commit(SCOPE, [Delete(KIND, "gone")])
    assert [d.key for d in backend.iter_documents(SCOPE, KIND)] == ["fresh", "put"]
