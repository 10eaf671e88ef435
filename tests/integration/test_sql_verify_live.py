"""``dq verify`` on a SQL store that is being written, or whose prune was interrupted.

The SQL listing reads heads in batches ahead of the history reads, and a prune
writes its marker before it removes revisions (ADR 0014): neither a write nor a
prune in between, nor a prune stopped between its two steps, is damage. A removed
revision the marker does not cover still is.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry
from dq_stores.retention import PrunedPrefix
from dq_stores.verify import verify

sql = pytest.importorskip("dq_stores.sql")
KIND = "contract"


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"n": (str(n % 3),)}, "s"))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dq.sqlite'}"
    request.applymarker(pytest.mark.postgres)
    return str(request.getfixturevalue("postgres_url"))


def test_verify_while_keys_are_written_and_pruned_finds_nothing(url: str) -> None:
    scope = Scope("live", "prod")
    keys = [f"k{i:02d}" for i in range(30)]
    with sql.SqlBackend(url) as backend:
        backend.put_many(scope, KIND, [_write(key, 0) for key in keys])
    stop = threading.Event()
    failed: list[BaseException] = []

    def writer() -> None:
        try:
            with sql.SqlBackend(url) as backend:
                n = 0
                while not stop.is_set():
                    n += 1
                    key = keys[n % len(keys)]
                    backend.put(scope, KIND, _write(key, n), ANY)
                    if n % 7 == 0:
                        backend.put_many(scope, KIND, [_write(keys[(n + 3) % len(keys)], n)])
                    if n % 5 == 0:
                        head = backend.get(scope, KIND, key)
                        backend.prune_history(scope, KIND, key, head.revision)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with sql.SqlBackend(url) as backend:
            found = [str(p) for _ in range(15) for p in verify(backend, scope=scope)]
    finally:
        stop.set()
        thread.join()
    assert not failed, failed
    assert found == [], found[:5]


def test_a_prune_stopped_after_its_marker_is_not_damage(url: str) -> None:
    scope = Scope("stopped", "prod")
    with sql.SqlBackend(url) as backend:
        for key in ("a", "b"):
            for n in range(5):
                backend.put(scope, KIND, _write(key, n), ANY)
            history = backend.history(scope, KIND, key)
            # the port's first step of prune_history(..., 4), then the process stops
            marker = PrunedPrefix(KIND, key, 3, history[2].sha256, datetime.now(UTC))
            backend._advance_marker(scope, marker)
        assert list(verify(backend, scope=scope)) == []
        backend.prune_history(scope, KIND, "a", 4)  # the next prune removes them
        assert list(verify(backend, scope=scope)) == []
    raw: Any = sql.SqlBackend(url)
    with raw:  # a revision the marker does not cover, removed: still reported
        raw._scope_read(
            scope,
            "DELETE FROM dq_revisions WHERE tenant = 'stopped' AND key = 'b' AND revision = 4"
            " RETURNING revision",
            [],
        )
        found = {(p.code, p.key) for p in verify(raw, scope=scope)}
    assert found == {("history", "b")}, found
