"""A PostgreSQL restart in the middle of operations: every call either completes
(after retrying) or raises StoreUnavailableError, and nothing is half-written."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import StoreUnavailableError
from dq_metadata.scope import Scope
from dq_stores import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.sql import SqlBackend

pytestmark = pytest.mark.postgres

SCOPE = Scope("acme", "prod")
WORKERS = 3
Written = dict[str, list[tuple[int, str]]]


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"id": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"n": (f"v{n % 3}",)}, key))


def _server_start(url: str) -> object:
    with SqlBackend(url) as backend:
        return backend._run(
            lambda conn: conn.execute("SELECT pg_postmaster_start_time()").fetchone(), safe=True
        )


def _assert_consistent(url: str, written: Written) -> None:
    with SqlBackend(url) as fresh:
        for key, acknowledged in written.items():
            history = fresh.history(SCOPE, "contract", key)
            revisions = [d.revision for d in history]
            assert revisions == list(range(1, len(history) + 1))  # no gaps, no torn write
            assert fresh.get(SCOPE, "contract", key).revision == revisions[-1]
            by_revision = {d.revision: d.sha256 for d in history}
            for revision, sha in acknowledged:  # every acknowledged write is there
                assert by_revision[revision] == sha
            assert all(d.sha256 == content_hash(d.body) for d in history)
        # postings agree with the heads: each live key is found under exactly its value
        for value in ("v0", "v1", "v2"):
            query = Query(filters=(FieldFilter("n", (value,)),), limit=1000)
            found = {d.key for d in fresh.query(SCOPE, "contract", query).items}
            expected = {
                d.key for d in fresh.iter_documents(SCOPE) if d.index.fields["n"] == (value,)
            }
            assert found == expected


def test_operations_survive_a_server_restart(postgres_server: Any, postgres_url: str) -> None:
    if not postgres_server.can_restart:
        pytest.skip("the server was not started by this test session")
    backend = SqlBackend(postgres_url, pool_size=WORKERS, retry_attempts=10)
    stop = threading.Event()
    written: Written = defaultdict(list)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        n = 0
        while not stop.is_set():
            key = f"w{worker}-{n % 5}"
            try:
                doc = backend.put(SCOPE, "contract", _write(key, n), ANY)
                written[key].append((doc.revision, doc.sha256))
                assert backend.get(SCOPE, "contract", key).revision >= doc.revision
            except StoreUnavailableError:
                pass  # allowed: the write's outcome is reported as unknown
            except BaseException as exc:
                failures.append(exc)
                return
            n += 1

    def acknowledged() -> int:
        return sum(len(v) for v in list(written.values()))

    started_before = _server_start(postgres_url)
    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        postgres_server.restart()
        at_restart = acknowledged()
        time.sleep(1.0)
        after_restart = acknowledged() - at_restart
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        backend.close()
    assert not failures, failures
    assert _server_start(postgres_url) != started_before, "the server did not restart"
    assert after_restart > 0, "no operation completed after the restart"
    _assert_consistent(postgres_url, written)
