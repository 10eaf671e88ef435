"""Dropped and stalled connections during two-document commits (TCP fault proxy).

Transfers either commit whole or not at all: a reader on a clean connection never
sees a torn pair while they run, and afterwards the sum and revisions agree.
"""

from __future__ import annotations

import gc
import threading
import warnings
from collections import Counter
from collections.abc import Iterator

import pytest
from tests.integration._fault_proxy import FaultProxy, Faults
from tests.integration.test_azure_commit import (
    assert_consistent,
    setup_accounts,
    transfer,
    transfer_retrying,
    value,
)
from tests.integration.test_azure_faults import SETTINGS, _endpoint

from dq_metadata.errors import ConflictError, StoreUnavailableError
from dq_stores.azure_blob import AzureBlobBackend

pytestmark = [pytest.mark.azure, pytest.mark.filterwarnings("ignore::ResourceWarning")]


@pytest.fixture(autouse=True)
def _collect_sockets_dropped_by_the_transport() -> Iterator[None]:
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _worker(backend: AzureBlobBackend, rounds: int, outcomes: Counter[str]) -> None:
    for _ in range(rounds):
        try:
            transfer(backend)
            outcomes["committed"] += 1
        except StoreUnavailableError:
            outcomes["unavailable"] += 1
        except ConflictError:
            outcomes["lost race"] += 1


@pytest.mark.parametrize("seed", [20261130, 777])
def test_faults_during_commits_leave_every_transfer_whole_or_absent(
    azure_connection_string: str, azure_container: str, seed: int
) -> None:
    host, port = _endpoint(azure_connection_string)
    faults = Faults(drop_request=0.03, drop_response=0.05, stall=0.01, stall_seconds=1.0)
    torn: list[tuple[int, int, int, int]] = []
    stop = threading.Event()
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=2.0
    ) as clean:
        setup_accounts(clean)

        def reader() -> None:
            # Reads are one after another, so the later one may be ahead, never behind;
            # and each value must match its revision (one transfer per revision).
            flip = False
            while not stop.is_set():
                first, second = ("a", "b") if flip else ("b", "a")
                x, y = value(clean, first), value(clean, second)
                (a, ra), (b, rb) = (x, y) if first == "a" else (y, x)
                behind = rb < ra if first == "a" else ra < rb
                if behind or a != 101 - ra or b != rb - 1:
                    torn.append((a, ra, b, rb))
                flip = not flip

        watcher = threading.Thread(target=reader)
        watcher.start()
        outcomes: Counter[str] = Counter()
        try:
            with FaultProxy((host, port), faults, seed=seed) as proxy:
                via = azure_connection_string.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
                flaky = AzureBlobBackend(
                    azure_container, connection_string=via, settings=SETTINGS, commit_lease=2.0
                )
                threads = [
                    threading.Thread(target=_worker, args=(flaky, 8, outcomes)) for _ in range(3)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=300)
                assert not any(t.is_alive() for t in threads)
                proxy.enabled = False
                flaky.close()
        finally:
            stop.set()
            watcher.join()
        print(f"faults {proxy.injected}, outcomes {dict(outcomes)}")  # shown with -s
        assert sum(proxy.injected.values()) >= 3, proxy.injected
        assert outcomes["committed"] >= 3, outcomes
        assert torn == []
        done = assert_consistent(clean)
        # acknowledged transfers all landed; ambiguous ones (unavailable) at most once each
        assert outcomes["committed"] <= done <= outcomes["committed"] + outcomes["unavailable"]
        transfer_retrying(clean)  # settles whatever a failed commit left locked
        assert assert_consistent(clean) == done + 1
