"""Dropped and stalled connections between the client and Azurite.

Every operation either succeeds (after the client's retries) or raises
``StoreUnavailableError``; afterwards no revision is duplicated, lost or torn,
and the index agrees with the heads.
"""

from __future__ import annotations

import gc
import re
import threading
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator

import pytest
from tests.integration._azure_helpers import write
from tests.integration._fault_proxy import FaultProxy, Faults

from dq_metadata.errors import ConflictError, NotFoundError, StoreUnavailableError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend, ClientSettings
from dq_stores.documents import ANY, FieldFilter, Query, at_revision

pytestmark = [
    pytest.mark.azure,
    # Connections the proxy tears are dropped by the SDK's HTTP transport (urllib3)
    # without close(); their sockets are reported whenever GC happens to run.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(autouse=True)
def _collect_sockets_dropped_by_the_transport() -> Iterator[None]:
    """Collect those sockets here, so no later test is blamed for them."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


SCOPE = Scope("acme", "prod")
KIND = "run"
KEYS = ("k0", "k1", "k2")
SETTINGS = ClientSettings(
    retry_total=5, backoff_initial=0.01, backoff_max=0.05, connect_timeout=1.0, read_timeout=0.5
)


def _endpoint(connection_string: str) -> tuple[str, int]:
    match = re.search(r"BlobEndpoint=http://(127\.0\.0\.1|localhost):(\d+)/", connection_string)
    if match is None:
        pytest.skip("the fault proxy needs a local http Azurite endpoint")
    return match.group(1), int(match.group(2))


def _worker(
    backend: AzureBlobBackend,
    me: int,
    ops: int,
    log: list[tuple[str, int, bytes]],
    outcomes: Counter[str],
) -> None:
    for i in range(ops):
        key = KEYS[(me + i) % len(KEYS)]
        body_value = f"{me}-{i}-{uuid.uuid4().hex}"
        try:
            if i % 5 == 4:
                backend.delete(SCOPE, KIND, key)
                outcomes["deleted"] += 1
                continue
            if i % 2:
                current = backend.get(SCOPE, KIND, key)
                expect = at_revision(current.revision)
            else:
                expect = ANY
            doc = write(key, body_value, f"{i:04d}", state=("x",))
            stored = backend.put(SCOPE, KIND, doc, expect)
            log.append((key, stored.revision, doc.body))
            outcomes["written"] += 1
        except StoreUnavailableError:
            outcomes["unavailable"] += 1
        except (ConflictError, NotFoundError):
            outcomes["lost race"] += 1


@pytest.mark.parametrize("seed", [20261123, 4242])
def test_dropped_and_stalled_connections_never_duplicate_lose_or_tear(
    azure_connection_string: str, azure_container: str, seed: int
) -> None:
    host, port = _endpoint(azure_connection_string)
    faults = Faults(drop_request=0.04, drop_response=0.06, stall=0.015, stall_seconds=1.5)
    with FaultProxy((host, port), faults, seed=seed) as proxy:
        via_proxy = azure_connection_string.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        log: list[tuple[str, int, bytes]] = []
        outcomes: Counter[str] = Counter()
        backend = AzureBlobBackend(azure_container, connection_string=via_proxy, settings=SETTINGS)
        threads = [
            threading.Thread(target=_worker, args=(backend, me, 15, log, outcomes))
            for me in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        proxy.enabled = False
        backend.close()
    assert sum(proxy.injected.values()) >= 5, proxy.injected
    assert outcomes["written"] >= 10, outcomes
    print(f"faults {proxy.injected}, outcomes {dict(outcomes)}")  # shown with -s

    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as clean:
        bodies: Counter[bytes] = Counter()
        live: dict[str, int] = {}
        for key in KEYS:
            try:
                history = clean.history(SCOPE, KIND, key)  # reads verify every sha256: not torn
            except NotFoundError:
                assert not any(k == key for k, _, _ in log)
                continue
            assert [d.revision for d in history] == list(range(1, len(history) + 1))  # none lost
            bodies.update(d.body for d in history if not d.deleted)
            for k, revision, body in log:
                if k == key:
                    assert history[revision - 1].body == body  # each success is where it said
            if not history[-1].deleted:
                live[key] = history[-1].revision
                assert clean.get(SCOPE, KIND, key).revision == history[-1].revision
        assert all(n == 1 for n in bodies.values())  # no write landed twice
        for query in (Query(), Query(descending=True), Query((FieldFilter("state", ("x",)),))):
            found = clean.query(SCOPE, KIND, query).items
            assert {d.key: d.revision for d in found} == live
            assert len(found) == len(live)
        assert clean.count(SCOPE, KIND, (FieldFilter("state", ("x",)),)) == len(live)


def test_an_unreachable_store_raises_store_unavailable_after_bounded_retries(
    azure_connection_string: str, azure_container: str
) -> None:
    host, port = _endpoint(azure_connection_string)
    with FaultProxy((host, port), Faults(drop_request=1.0)) as proxy:
        via_proxy = azure_connection_string.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        with AzureBlobBackend(
            azure_container, connection_string=via_proxy, settings=SETTINGS
        ) as backend:
            with pytest.raises(StoreUnavailableError) as info:
                backend.put(SCOPE, KIND, write("k", 1), ANY)
            assert "AccountKey" not in str(info.value)
            with pytest.raises(StoreUnavailableError):
                backend.get(SCOPE, KIND, "k")
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as clean:
        assert clean.count(SCOPE, KIND) == 0
