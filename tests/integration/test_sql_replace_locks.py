"""PostgreSQL: replaces of overlapping keys queue on per-key advisory locks.

A replace that lost the race to another replace's insert of the same key reruns (up
to five times, ADR 0013); under constant contention a hostile pass saw a replace lose
every rerun (``ConflictError``: "written by others during each of 5 attempts"). Each
replace now takes a transaction-scoped advisory lock per key, in one order, before
anything else, so replaces of the same keys wait for each other instead.
"""

from __future__ import annotations

import random
import threading

import pytest
from tests.support.postgres import wait_for_lock_wait

from dq_stores.documents import ANY
from dq_stores.testing._helpers import KIND, SCOPE, doc
from dq_stores.testing.restore_replace import _made
from dq_stores.verify import verify

sql = pytest.importorskip("dq_stores.sql")
pytestmark = pytest.mark.postgres


def test_a_replace_waits_on_its_keys_advisory_lock(
    postgres_url: str, postgres_admin_url: str
) -> None:
    import psycopg

    from dq_stores.sql import _restore

    new = _made("k", 3, "new")
    with sql.SqlBackend(postgres_url) as backend:
        backend.put(SCOPE, KIND, doc("k", 0, tag="old"), ANY)
        outcome: list[BaseException | None] = []

        def replace() -> None:
            try:
                backend.restore_many(SCOPE, KIND, [("k", new)], replace=True)
            except BaseException as exc:  # reported by the assertion below
                outcome.append(exc)
            else:
                outcome.append(None)

        lock = {"class": _restore.REPLACE_LOCK_CLASS, "t": SCOPE.tenant,
                "e": SCOPE.environment, "k": KIND, "keys": ["k"]}  # fmt: skip
        with psycopg.connect(postgres_admin_url) as other:  # another replace, holding k
            other.execute(_restore.REPLACE_LOCK, lock)
            thread = threading.Thread(target=replace)
            thread.start()
            wait_for_lock_wait(postgres_admin_url, "wait_event = 'advisory'")
            assert thread.is_alive()
            assert backend.history(SCOPE, KIND, "k")[-1].revision == 1  # nothing yet
            other.commit()
        thread.join(30)
        assert outcome == [None]
        assert [d.sha256 for d in backend.history(SCOPE, KIND, "k")] == [d.sha256 for d in new]


def test_replaces_of_overlapping_keys_in_any_order_all_win(postgres_url: str) -> None:
    keys = [f"k{i}" for i in range(5)]
    with sql.SqlBackend(postgres_url) as backend:
        for key in keys:
            backend.put(SCOPE, KIND, doc(key, 0, tag="old"), ANY)
        failures: list[BaseException] = []

        def replacer(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for round_ in range(8):
                    chosen = rng.sample(keys, 3)
                    batch = [(key, _made(key, 1 + rng.randrange(4), f"t{seed}r{round_}"))
                             for key in chosen]  # fmt: skip
                    backend.restore_many(SCOPE, KIND, batch, replace=True)
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=replacer, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert list(verify(backend)) == []
