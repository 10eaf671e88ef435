"""Dropped connections between the client and PostgreSQL during multi-document commits.

The TCP fault proxy cuts requests before the server sees them and tears replies
after the server acted (including after the COMMIT, before the client hears of
it). Afterwards every commit is either wholly visible or not at all: transfers
keep the balance sum, the counter, the revisions and the ledger in step; a commit
the client saw succeed is there, one it saw refused is not, and one that raised
``StoreUnavailableError`` may be either — but never in part.
"""

from __future__ import annotations

import random
import threading

import psycopg
import pytest
from tests.integration._commit_workload import (
    ACCOUNT,
    SCOPE,
    check_quiescent,
    plan_transfer,
    seed,
    transfer,
)
from tests.integration._fault_proxy import FaultProxy, Faults
from tests.support.postgres import PostgresServer

from dq_metadata.errors import ConflictError, NotFoundError, StoreUnavailableError
from dq_stores.sql import SqlBackend

pytestmark = pytest.mark.postgres


def _via(url: str, server: PostgresServer, port: int) -> str:
    host, real = server.host_port()
    assert f"@{host}:{real}/" in url
    return url.replace(f"@{host}:{real}/", f"@127.0.0.1:{port}/")


def _placeholders(admin_dsn: str) -> int:
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM dq_heads WHERE revision = 0").fetchone()
        assert row is not None
        return int(row[0])


def _worker(backend: SqlBackend, me: int, attempts: int, out: dict[str, list[str]]) -> None:
    rng = random.Random(me)
    for _ in range(attempts):
        try:
            ops, _n, token = plan_transfer(backend, rng)
        except StoreUnavailableError:
            out["read failed"].append("")
            continue
        try:
            backend.commit(SCOPE, ops)
        except StoreUnavailableError:  # applied or not, never in part
            out["unknown"].append(token)
        except (ConflictError, NotFoundError):
            out["refused"].append(token)
        else:
            out["applied"].append(token)


@pytest.mark.parametrize("seed_", [20261130, 77])
def test_random_drops_never_leave_half_a_commit(
    postgres_url: str, postgres_admin_url: str, postgres_server: PostgresServer, seed_: int
) -> None:
    with SqlBackend(postgres_url) as clean:
        seed(clean)
    faults = Faults(drop_request=0.03, drop_response=0.05, stall=0.01, stall_seconds=0.5)
    host, port = postgres_server.host_port()
    out: dict[str, list[str]] = {"applied": [], "refused": [], "unknown": [], "read failed": []}
    with FaultProxy((host, port), faults, seed=seed_) as proxy:
        backend = SqlBackend(
            _via(postgres_url, postgres_server, proxy.port), connect_timeout=2, retry_attempts=4
        )
        threads = [threading.Thread(target=_worker, args=(backend, me, 40, out)) for me in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        assert not any(t.is_alive() for t in threads)
        proxy.enabled = False
        backend.close()
    assert sum(proxy.injected.values()) >= 5, proxy.injected
    assert len(out["applied"]) >= 10, {k: len(v) for k, v in out.items()}
    with SqlBackend(postgres_url) as fresh:
        tokens = set(check_quiescent(fresh))  # every commit there is there whole
    assert set(out["applied"]) <= tokens  # acknowledged: applied
    assert not set(out["refused"]) & tokens  # refused: nothing of it
    assert tokens <= set(out["applied"]) | set(out["unknown"])  # nothing from elsewhere
    applied_unknown = len(tokens & set(out["unknown"]))
    print(  # shown with -s
        f"faults {proxy.injected}, outcomes { {k: len(v) for k, v in out.items()} },"
        f" unknown outcomes applied: {applied_unknown}"
    )
    assert _placeholders(postgres_admin_url) == 0


def _connected(url: str) -> SqlBackend:
    backend = SqlBackend(url, pool_size=1, max_overflow=0, retry_attempts=1)
    backend.get(SCOPE, ACCOUNT, "a0")  # the pooled connection is open and warm
    return backend


@pytest.mark.parametrize("lost", ["request", "reply"])
def test_a_commit_cut_at_one_point_is_all_or_nothing(
    postgres_url: str, postgres_admin_url: str, postgres_server: PostgresServer, lost: str
) -> None:
    """Cut exactly the commit's request (it never reaches the server: nothing is applied)
    or its reply (sent by the server after COMMIT: everything is applied)."""
    with SqlBackend(postgres_url) as clean:
        seed(clean)
    host, port = postgres_server.host_port()
    faults = Faults(drop_request=1.0) if lost == "request" else Faults(drop_response=1.0)
    with FaultProxy((host, port), faults) as proxy:
        proxy.enabled = False
        backend = _connected(_via(postgres_url, postgres_server, proxy.port))
        try:
            ops, _n, token = plan_transfer(backend, random.Random(1))
            proxy.enabled = True
            with pytest.raises(StoreUnavailableError, match="may or may not have been applied"):
                backend.commit(SCOPE, ops)
            proxy.enabled = False
        finally:
            backend.close()
    assert sum(proxy.injected.values()) == 1, proxy.injected
    with SqlBackend(postgres_url) as fresh:
        tokens = check_quiescent(fresh)
        assert list(tokens) == ([] if lost == "request" else [token])
        transfer(fresh, random.Random(2))  # the same keys commit normally afterwards
        assert len(check_quiescent(fresh)) == len(tokens) + 1
    assert _placeholders(postgres_admin_url) == 0
