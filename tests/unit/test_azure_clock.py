"""The service clock offset (``_clock``) and the "written after" rule (``_chain``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from dq_stores.azure_blob import _clock
from dq_stores.azure_blob._chain import ORDER_SLACK, written_after
from dq_stores.azure_blob._clock import ServiceClock
from dq_stores.azure_blob._txn import MOD, Blob

NOW = 1_800_000_000.25  # a local time with a fraction of a second


def _response(date: str | None) -> SimpleNamespace:
    headers = {} if date is None else {"Date": date}
    return SimpleNamespace(http_response=SimpleNamespace(headers=headers))


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [NOW]
    monkeypatch.setattr(_clock, "_now", lambda: now[0])
    return now


def test_the_offset_is_the_median_of_recent_dates(local: list[float]) -> None:
    clock = ServiceClock()
    assert clock.offset() is None
    service = datetime.fromtimestamp(NOW + 45.0, UTC)  # the service is 45 s ahead
    for _ in range(5):
        clock.observe(service.replace(microsecond=0))
    clock.observe(service - timedelta(hours=1))  # one wild sample does not move it
    offset = clock.offset()
    assert offset is not None
    assert abs(offset - 45.0) <= 0.75


def test_stale_samples_are_dropped(local: list[float]) -> None:
    clock = ServiceClock()
    clock.observe(datetime.fromtimestamp(NOW, UTC))
    local[0] += 601.0
    assert clock.offset() is None


def test_the_response_hook_reads_the_date_header_and_ignores_junk(local: list[float]) -> None:
    clock = ServiceClock()
    for junk in (None, "not a date", ""):
        clock.response_hook(_response(junk))
    clock.response_hook(SimpleNamespace())
    assert clock.offset() is None
    stamp = datetime.fromtimestamp(NOW - 10.0, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    clock.response_hook(_response(stamp))
    offset = clock.offset()
    assert offset is not None
    assert abs(offset + 10.0) <= 0.75


def test_a_head_counts_as_written_at_its_mod_metadata() -> None:
    modified = datetime.fromtimestamp(NOW, UTC)
    assert Blob(b"x", "e", {}, modified).written == NOW
    assert Blob(b"x", "e", {MOD: "1700000000"}, modified).written == 1_700_000_000.0
    assert Blob(b"x", "e", {MOD: "junk"}, modified).written == NOW
    assert Blob(b"x", "e", {}, None).written is None


def test_written_after_needs_more_than_the_slack() -> None:
    archived = datetime.fromtimestamp(NOW, UTC)
    assert not written_after(NOW + ORDER_SLACK, archived)
    assert written_after(NOW + ORDER_SLACK + 1.0, archived)
    assert not written_after(NOW - 100.0, archived)  # a crashed writer's leftover
    assert not written_after(None, archived)
    assert not written_after(NOW + 100.0, None)  # nothing archived


def test_now_is_the_service_time_once_the_offset_is_known(local: list[float]) -> None:
    """Ages against Last-Modified (orphaned index entries) use it: a local clock an
    hour ahead must not make a second-old entry look an hour old."""
    clock = ServiceClock()
    assert clock.now() == datetime.fromtimestamp(NOW, UTC)  # nothing known: local time
    local[0] = NOW + 3600.0  # this machine is an hour ahead of the service
    clock.observe(datetime.fromtimestamp(NOW, UTC).replace(microsecond=0))
    assert abs(clock.now().timestamp() - NOW) <= 0.75


def test_a_head_below_the_pruned_prefix_is_a_rollback() -> None:
    """Pruning stops below the head's revision; a head under it went back."""
    from dq_stores.azure_blob._chain import history_problem

    head = SimpleNamespace(doc=SimpleNamespace(revision=3), digest="d3", prev="d2")
    problem = history_problem([], head, start=4)  # type: ignore[arg-type]
    assert problem is not None
    assert "rollback" in problem
    assert history_problem([], head, start=3) is None  # revision 3 itself was kept


def test_a_passed_in_client_feeds_the_clock_per_operation_and_keeps_its_own_hook(
    local: list[float],
) -> None:
    """``HookedClient`` passes ``raw_response_hook`` with each operation (blob clients
    it hands out too); the caller's client-level hook, which that keyword replaces
    for the request, still runs; attributes and private names pass through."""
    from azure.storage.blob import BlobServiceClient

    seen: list[object] = []
    service = BlobServiceClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
        raw_response_hook=seen.append,
    )
    container = service.get_container_client("c")
    calls: list[dict[str, object]] = []

    class Fake:
        container_name = "c"
        _pipeline = container._pipeline

        def get_blob_client(self, name: str) -> Fake:
            return self

        def download_blob(self, **kwargs: object) -> str:
            calls.append(kwargs)
            return "ok"

    clock = ServiceClock()
    hooked = _clock.HookedClient(Fake(), clock)
    assert hooked.container_name == "c"
    assert hooked.get_blob_client("b").download_blob() == "ok"
    hook = calls[0]["raw_response_hook"]
    assert callable(hook)
    response = _response("Thu, 15 Jan 2027 08:00:00 GMT")
    hook(response)
    assert seen == [response]  # the caller's hook ran
    assert clock.offset() is not None  # and ours learned the service's Date
    bare = _clock.HookedClient(SimpleNamespace(download_blob=Fake().download_blob), clock)
    bare.download_blob()
    assert calls[1]["raw_response_hook"] == clock.response_hook
