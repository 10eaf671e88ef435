"""Azure heads rolled back from outside the library (ADR 0004, "`get` and rollbacks").

A rollback by exactly one revision (``r/{N}`` copied over the head after N+1 was
committed, or a saved head blob uploaded again) leaves the head byte-identical to
``r/{N}`` — as a writer that died between archiving and committing does. What
tells them apart: the rolled-back head's bytes were written *after* ``r/{N}`` was
archived, a crashed writer's archive after the head. ``get`` (when the head is not
fresh), ``history`` and ``dq verify`` catch the former and never the latter, nor
the head a multi-document commit locked and released after archiving it.

``get``'s freshness window is learned from the service's ``Date`` headers (a few
seconds instead of 30 s); a writer or reader with a skewed clock costs at most
one more request, never a false ``IntegrityError``. Runs on Azurite.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from tests.integration._azure_helpers import RequestLog, counted_backend, write

from dq_metadata.errors import ConflictError, IntegrityError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend, _clock, _place
from dq_stores.azure_blob import backend as azure_backend
from dq_stores.documents import ANY, Put
from dq_stores.verify import verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
KIND = "contract"
HEAD = "acme/prod/contract/h/orders"
# Last-Modified has whole seconds and two blobs may sit on servers whose clocks
# differ a little: "written after" needs a gap of more than 2 s (``_ORDER_SLACK``).
GAP = 3.2


class Crash(BaseException):
    """A writer dying at a chosen request."""


def _revision(n: int) -> str:
    return f"acme/prod/contract/r/orders/{n:012d}"


@pytest.fixture
def fresh(azure_connection_string: str, azure_container: str) -> Iterator[Any]:
    """A factory of fresh backends; ``orders`` at revision 3, ``other`` at 1."""
    opened: list[AzureBlobBackend] = []

    def make() -> AzureBlobBackend:
        opened.append(AzureBlobBackend(azure_container, connection_string=azure_connection_string))
        return opened[-1]

    with make() as seed:
        for n in (1, 2, 3):
            seed.put(ACME, KIND, write("orders", n, dataset=("acme",)), ANY)
        seed.put(ACME, KIND, write("other", 1), ANY)
    yield make
    for backend in opened:
        backend.close()


@pytest.fixture
def checks_every_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``get`` look at the place of every head written over 0.5 s from its record."""
    monkeypatch.setattr(_place, "_PLACED_SKEW", 0.5)
    monkeypatch.setattr(_place, "_PLACED_NEAR", (0.5, 0.5))


def _codes(fresh: Any) -> set[str]:
    return {p.code for p in verify(fresh(), scope=ACME)}


@pytest.mark.usefixtures("checks_every_head")
@pytest.mark.parametrize("how", ["server-side-copy", "upload-saved-head"])
def test_a_rollback_by_one_revision_is_caught(fresh: Any, raw: ContainerClient, how: str) -> None:
    head = raw.get_blob_client(HEAD)
    saved = head.download_blob()
    saved_bytes, saved_meta = saved.readall(), saved.properties.metadata
    time.sleep(GAP)
    with fresh() as writer:  # revision 4 archives r/3, then commits
        writer.put(ACME, KIND, write("orders", 4, dataset=("acme",)), ANY)
    reader = fresh()
    assert reader.get(ACME, KIND, "orders").revision == 4  # a long-lived reader too
    time.sleep(GAP)
    if how == "server-side-copy":
        head.start_copy_from_url(raw.get_blob_client(_revision(3)).url, requires_sync=True)
    else:
        head.upload_blob(saved_bytes, overwrite=True, metadata=saved_meta)
    assert (
        head.download_blob().readall()
        == raw.get_blob_client(_revision(3)).download_blob().readall()
    )
    for backend in (fresh(), reader):
        with pytest.raises(IntegrityError, match="rolled back"):
            backend.get(ACME, KIND, "orders")
        assert backend.get(ACME, KIND, "other").revision == 1  # a head in place: no error
    with pytest.raises(IntegrityError, match="rollback"):
        fresh().history(ACME, KIND, "orders")
    assert _codes(fresh) == {"head"}


@pytest.mark.usefixtures("checks_every_head")
def test_a_writer_that_died_between_archive_and_commit_is_no_rollback(
    fresh: Any, raw: ContainerClient, azure_connection_string: str, azure_container: str
) -> None:
    """Head and ``r/3`` byte-identical, the head unchanged since long before: fine."""
    time.sleep(GAP)
    log = RequestLog()
    crashing, client = counted_backend(azure_connection_string, azure_container, log)

    def crash_at_head(method: str, path: str) -> None:
        if method == "PUT" and path.endswith("/contract/h/orders"):
            raise Crash

    with client:
        log.on_request = crash_at_head
        with pytest.raises(Crash):
            crashing.put(ACME, KIND, write("orders", 4, dataset=("acme",)), ANY)
    leftover = raw.get_blob_client(_revision(3)).download_blob().readall()
    assert leftover == raw.get_blob_client(HEAD).download_blob().readall()
    time.sleep(GAP)
    assert fresh().get(ACME, KIND, "orders").revision == 3
    assert [d.revision for d in fresh().history(ACME, KIND, "orders")] == [1, 2, 3]
    assert _codes(fresh) == set()
    with fresh() as writer:  # the next writer carries on
        writer.put(ACME, KIND, write("orders", 4, dataset=("acme",)), ANY)
    assert [d.revision for d in fresh().history(ACME, KIND, "orders")] == [1, 2, 3, 4]


@pytest.mark.usefixtures("checks_every_head")
def test_a_head_locked_and_released_after_its_archive_is_no_rollback(
    fresh: Any, raw: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-document commit archives ``r/3``, locks the head (its Last-Modified
    moves on: Set Blob Metadata) and aborts: the head's bytes still predate ``r/3``."""
    from dq_stores.azure_blob import _commit

    lock_all = _commit.CommitMixin._lock_all

    def late_lock(self: Any, *args: Any) -> Any:
        time.sleep(GAP)  # the archive is old by the time the heads are locked
        return lock_all(self, *args)

    monkeypatch.setattr(_commit.CommitMixin, "_lock_all", late_lock)
    monkeypatch.setattr(_commit.CommitMixin, "_commit_point", lambda *a: False)
    monkeypatch.setattr(_commit, "_MAX_ATTEMPTS", 1)
    with fresh() as writer, pytest.raises(ConflictError):
        writer.commit(ACME, (Put(KIND, write("orders", 4, dataset=("acme",))),))
    props = raw.get_blob_client(HEAD).get_blob_properties()
    archived = raw.get_blob_client(_revision(3)).get_blob_properties()
    assert "tx" not in props.metadata  # released
    assert props.last_modified > archived.last_modified
    time.sleep(1.0)
    assert fresh().get(ACME, KIND, "orders").revision == 3
    assert [d.revision for d in fresh().history(ACME, KIND, "orders")] == [1, 2, 3]
    assert _codes(fresh) == set()


def test_get_catches_a_rollback_to_a_revision_written_seconds_before(
    fresh: Any, raw: ContainerClient
) -> None:
    """The window is learned (a few seconds), not 30 s: revision 1 copied over the
    head 7 s after it was written is caught by ``get`` alone."""
    time.sleep(7.0)
    head = raw.get_blob_client(HEAD)
    head.start_copy_from_url(raw.get_blob_client(_revision(1)).url, requires_sync=True)
    with pytest.raises(IntegrityError, match="rolled-back head"):
        fresh().get(ACME, KIND, "orders")


class _Skewed(datetime):
    skew = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + cls.skew


@pytest.mark.parametrize("skew", [-45.0, -3.0, 4.0, 45.0])
def test_skewed_clocks_cost_a_request_at_most_never_an_error(
    azure_connection_string: str,
    azure_container: str,
    monkeypatch: pytest.MonkeyPatch,
    skew: float,
) -> None:
    """A writer whose clock is off stamps records far from the service's time; a
    reader whose clock is off learns its offset. Neither is a rollback."""
    _Skewed.skew = timedelta(seconds=skew)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as seed:
        seed.put(ACME, KIND, write("orders", 1), ANY)
    with monkeypatch.context() as patch:
        patch.setattr(azure_backend, "datetime", _Skewed)  # the writer's clock
        with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as w:
            for n in (2, 3):
                w.put(ACME, KIND, write("orders", n), ANY)
            w.put(ACME, KIND, write("skewed", 1), ANY)
    log = RequestLog()
    reader, client = counted_backend(azure_connection_string, azure_container, log)
    with client:
        # a client we did not build: the offset is learned from our writes' responses
        reader.put(ACME, KIND, write("probe", 1), ANY)
        log.take()
        # Last-Modified - record time is about -skew; the window is [-2 s, +5 s]
        expected = 1 if -2.0 <= -skew <= 5.0 else 3  # 3: the head, r/N+1 and r/N
        for key, rev in (("orders", 3), ("skewed", 1)):
            assert reader.get(ACME, KIND, key).revision == rev
            assert len(log.take()) == expected
            assert reader.get(ACME, KIND, key).revision == rev  # checked once per head
            assert len(log.take()) == 1
        assert [d.revision for d in reader.history(ACME, KIND, "orders")] == [1, 2, 3]
        assert not list(verify(reader, scope=ACME))
    with monkeypatch.context() as patch:
        patch.setattr(_clock, "_now", lambda: time.time() + skew)  # the reader's clock
        with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as r:
            assert r.get(ACME, KIND, "orders").revision == 3
            assert r.get(ACME, KIND, "skewed").revision == 1
