"""SIGKILL a writer at random moments; the store must stay whole and self-consistent.

After every kill a *fresh* backend (a reopen: it replays the dead writer's intent)
must read every key as a complete revision, and its index must answer queries
and counts exactly as the documents do. At the end every history is checked for
holes and every revision for completeness.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.filesystem import FilesystemBackend

SCOPE = Scope("crash", "test")
KIND = "doc"
KEYS = (*(f"key-{i}" for i in range(6)), "Key/With/Slashes", "x" * 300)
BUCKETS = ("red", "green", "blue")


def _write(key: str, n: int, rng: random.Random) -> DocumentWrite:
    # the padding makes torn writes observable: a partial body would not parse
    body = canonical_json({"key": key, "n": n, "pad": "p" * rng.randrange(0, 20_000)})
    tags = tuple(rng.sample(BUCKETS, rng.randrange(1, 3)))
    index = IndexEntry({"bucket": tags, "parity": (str(n % 2),)}, f"{rng.randrange(50):03d}")
    return DocumentWrite(key, body, content_hash(body), index)


def _writer(root: str, seed: int) -> None:
    rng = random.Random(seed)
    backend = FilesystemBackend(root)
    n = 0
    while True:
        n += 1
        roll = rng.random()
        if roll < 0.15:
            backend.put_many(SCOPE, KIND, (_write(k, n, rng) for k in rng.sample(KEYS, 4)))
        elif roll < 0.25:
            with contextlib.suppress(NotFoundError):
                backend.delete(SCOPE, KIND, rng.choice(KEYS))
        else:
            backend.put(SCOPE, KIND, _write(rng.choice(KEYS), n, rng), ANY)


def _live(backend: FilesystemBackend) -> dict[str, tuple[int, IndexEntry]]:
    live = {}
    for key in KEYS:
        try:
            doc = backend.get(SCOPE, KIND, key)
        except NotFoundError:
            continue
        assert json.loads(doc.body)["key"] == key, "a document is torn or misplaced"
        live[key] = (doc.revision, doc.index)
    return live


def _query_all(backend: FilesystemBackend, query: Query) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    while True:
        page = backend.query(SCOPE, KIND, query)
        out += [(d.key, d.revision) for d in page.items]
        if page.next_token is None:
            return out
        query = Query(query.filters, query.descending, query.limit, page.next_token)


def assert_index_agrees(root: Path) -> dict[str, tuple[int, IndexEntry]]:
    with FilesystemBackend(root) as backend:
        # a query opens the scope, which replays whatever the dead writer left
        everything = _query_all(backend, Query(limit=3))
        live = _live(backend)
        assert sorted(everything) == sorted((k, rev) for k, (rev, _) in live.items())
        in_order = sorted(live, key=lambda k: (live[k][1].sort_key, k))
        assert [k for k, _ in everything] == in_order
        assert backend.count(SCOPE, KIND) == len(live)
        for name, values in [("bucket", (b,)) for b in BUCKETS] + [
            ("bucket", ("red", "blue")),
            ("parity", ("0",)),
        ]:
            expected = sorted(
                k for k, (_, ix) in live.items() if set(ix.fields[name]) & set(values)
            )
            query = Query((FieldFilter(name, values),), descending=True, limit=2)
            assert sorted(k for k, _ in _query_all(backend, query)) == expected
            assert backend.count(SCOPE, KIND, [FieldFilter(name, values)]) == len(expected)
        both = [FieldFilter("bucket", ("green",)), FieldFilter("parity", ("1",))]
        expected_both = {
            k
            for k, (_, ix) in live.items()
            if "green" in ix.fields["bucket"] and ix.fields["parity"] == ("1",)
        }
        assert backend.count(SCOPE, KIND, both) == len(expected_both)
        leftovers = [
            p.name
            for p in (root / "crash" / "test" / "docs" / KIND).iterdir()
            if p.name.startswith(".")
        ]
        assert leftovers == [], "replay must remove unfinished writes"
    return live


def assert_histories_whole(root: Path) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    with FilesystemBackend(root) as backend:
        for key in KEYS:
            try:
                history = backend.history(SCOPE, KIND, key)  # IntegrityError on a hole
            except NotFoundError:
                continue
            assert [d.revision for d in history] == list(range(1, len(history) + 1))
            for doc in history:
                if doc.deleted:
                    outcomes["tombstones"] += 1
                    continue
                assert json.loads(doc.body)["key"] == key
                outcomes["revisions"] += 1
    return outcomes


def _crash_loop(root: Path, kills: int, writers: int) -> None:
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(2024)
    for round_ in range(kills):
        procs = [
            ctx.Process(target=_writer, args=(str(root), rng.randrange(1 << 30)), daemon=True)
            for _ in range(writers)
        ]
        for proc in procs:
            proc.start()
        time.sleep(rng.uniform(0.02, 0.12))
        for proc in procs:
            assert proc.is_alive(), "the writer died on its own"
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.join(10)
            assert proc.exitcode == -signal.SIGKILL
        if round_ % 5 == 4 or round_ == kills - 1:
            assert_index_agrees(root)
    outcomes = assert_histories_whole(root)
    assert outcomes["revisions"] > kills, "the writers barely wrote anything"


def test_sigkilled_writer_leaves_whole_documents_and_an_agreeing_index(tmp_path: Path) -> None:
    _crash_loop(tmp_path / "store", kills=60, writers=1)


@pytest.mark.slow
def test_many_sigkilled_concurrent_writers(tmp_path: Path) -> None:
    _crash_loop(tmp_path / "store", kills=400, writers=3)
