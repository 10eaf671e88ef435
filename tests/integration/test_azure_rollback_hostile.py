"""Hostile tests of the Azure rollback checks and the clocks around them (ADR 0004).

Legitimate operation must never look like a rollback or lose data: concurrent
writers and multi-document commits on the same keys, slow requests between the
archive and the head write, clocks skewed by hours. And rollbacks that the ADR
says are caught must be caught. Runs on Azurite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from tests.integration._azure_helpers import RequestLog, counted_backend, write

from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend, _clock, _query, _search, _txn
from dq_stores.documents import ANY, MUST_NOT_EXIST, FieldFilter, Put, Query
from dq_stores.search import search_fields
from dq_stores.verify import verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
KIND = "contract"
HOUR = 3600.0


class _Skewed(datetime):
    """``datetime`` whose ``now`` is off by ``skew``."""

    skew = timedelta(0)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + cls.skew


def _skew_reader_clock(patch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's clock, as every reader-side module sees it, off by ``seconds``."""
    _Skewed.skew = timedelta(seconds=seconds)
    for module in (_query, _search, _txn):
        patch.setattr(module, "datetime", _Skewed)
    patch.setattr(_clock, "_now", lambda: time.time() + seconds)


@pytest.fixture
def raw(azure_connection_string: str, azure_container: str) -> Iterator[ContainerClient]:
    with BlobServiceClient.from_connection_string(azure_connection_string) as service:
        yield service.get_container_client(azure_container)


def _keys(backend: AzureBlobBackend, dataset: str) -> list[str]:
    query = Query((FieldFilter("dataset", (dataset,)),))
    return [d.key for d in backend.query(ACME, KIND, query).items]


# -- clocks skewed by hours: no data hidden --------------------------------------------
@pytest.mark.parametrize("finder", ["query", "search"])
def test_a_reader_clock_hours_ahead_leaves_in_flight_entries_alone(
    azure_connection_string: str,
    azure_container: str,
    monkeypatch: pytest.MonkeyPatch,
    finder: str,
) -> None:
    """A writer has put its index entries and is about to commit the head; a reader
    whose clock is an hour ahead must not take them for 10-minute-old orphans and
    delete them — the document would then be missing from queries once committed."""
    log = RequestLog()
    writer, client = counted_backend(azure_connection_string, azure_container, log)
    entered, release = threading.Event(), threading.Event()

    def hold_head_write(method: str, path: str) -> None:
        if method == "PUT" and path.endswith("/contract/h/fresh"):
            entered.set()
            release.wait(30)

    doc = write("fresh", 1, dataset=("acme",), **search_fields(["quarterly report"]))
    with client:
        log.on_request = hold_head_write
        thread = threading.Thread(target=writer.put, args=(ACME, KIND, doc, MUST_NOT_EXIST))
        thread.start()
        try:
            assert entered.wait(30)
            with monkeypatch.context() as patch:
                _skew_reader_clock(patch, HOUR)
                with AzureBlobBackend(
                    azure_container, connection_string=azure_connection_string
                ) as reader:
                    if finder == "query":
                        assert _keys(reader, "acme") == []  # not committed yet
                    else:
                        assert reader.search(ACME, KIND, "quarterly").hits == []
                time.sleep(0.5)  # background clean-up, if any, has run
        finally:
            release.set()
            thread.join(30)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as after:
        assert after.get(ACME, KIND, "fresh").revision == 1
        assert _keys(after, "acme") == ["fresh"]
        hits = after.search(ACME, KIND, "quarterly").hits
        assert [h.document.key for h in hits] == ["fresh"]
        assert not list(verify(after, scope=ACME))


def test_a_writer_clock_hours_ahead_waits_for_a_live_commit_instead_of_aborting_it(
    azure_connection_string: str,
    azure_container: str,
    raw: ContainerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pending commit younger than the lease is waited for: a writer whose clock
    is an hour ahead must not take it for an hour-old abandoned one and abort it."""
    from dq_stores.azure_blob import _commit

    commit_point = _commit.CommitMixin._commit_point
    outcomes: list[bool] = []

    def slow_commit_point(self: Any, *args: Any) -> bool:
        time.sleep(1.5)  # the other writer meets the lock meanwhile
        outcomes.append(commit_point(self, *args))
        return outcomes[-1]

    monkeypatch.setattr(_commit.CommitMixin, "_commit_point", slow_commit_point)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as seed:
        seed.put(ACME, KIND, write("a", 1), ANY)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as live:
        thread = threading.Thread(target=live.commit, args=(ACME, (Put(KIND, write("a", 2)),)))
        thread.start()
        head = raw.get_blob_client("acme/prod/contract/h/a")
        deadline = time.monotonic() + 20
        while "tx" not in (head.get_blob_properties().metadata or {}):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with monkeypatch.context() as patch:
            _skew_reader_clock(patch, HOUR)
            with AzureBlobBackend(
                azure_container, connection_string=azure_connection_string
            ) as ahead:
                assert ahead.put(ACME, KIND, write("a", 3), ANY).revision == 3
        thread.join(30)
    assert outcomes == [True]  # the live commit was not aborted under it
