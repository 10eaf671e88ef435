"""SIGKILL a writer in the middle of history replaces (``restore_many(replace=True)``).

The writer replaces the whole history of every key, batch after batch, by one of
several *versions* (different lengths, bodies, index entries; some end in a
tombstone). After every kill a fresh backend (which rolls the dead writer's
replace journal forward, or discards its staged files) must find every key
wholly at one version — the same one for all keys, since each batch holds them
all — with exactly that version's history, its index agreeing (counts and
queries per version tag), no leftover files, and ``verify`` clean. Two readers
that had the store open before the first kill (a process and a thread) read
throughout: every history they see is one version whole, and every one-snapshot
read (a page, a count, a batch of ``iter_documents``) shows a single version.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import FieldFilter, IndexEntry, Query, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem.backend import Durability
from dq_stores.verify import verify

SCOPE = Scope("crash", "replace")
KIND = "doc"
KEYS = (*(f"key-{i}" for i in range(5)), "Key/With/Slashes", "..", "x" * 300)
VERSIONS = 5
_AT = datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC)


def _history(key: str, version: int) -> list[StoredDocument]:
    """Version ``version`` of ``key``'s history: its length, tombstone and tags vary."""
    rng = random.Random(f"{key}/{version}")
    n = 1 + (version * 3 + len(key)) % 6
    out = []
    for rev in range(1, n + 1):
        at = _AT + timedelta(days=version, minutes=rev)
        if rev == n and (version + len(key)) % 4 == 0:
            out.append(StoredDocument(SCOPE, KIND, key, rev, b"", "", IndexEntry(), at, True))
            continue
        pad = "p" * rng.randrange(0, 12_000)  # torn files would not parse
        body = canonical_json({"key": key, "version": version, "rev": rev, "pad": pad})
        index = IndexEntry({"version": (f"v{version}",)}, f"{rng.randrange(40):03d}")
        out.append(StoredDocument(SCOPE, KIND, key, rev, body, content_hash(body), index, at))
    return out


HISTORIES = {v: {key: _history(key, v) for key in KEYS} for v in range(VERSIONS)}


def _shape(docs: list[StoredDocument]) -> list[tuple[object, ...]]:
    return [(d.revision, d.sha256, d.written_at, d.deleted, d.index) for d in docs]


SHAPES = {v: {key: _shape(h) for key, h in hs.items()} for v, hs in HISTORIES.items()}
LIVE = {v: sum(not h[-1].deleted for h in hs.values()) for v, hs in HISTORIES.items()}


def _version_of(key: str, docs: list[StoredDocument]) -> int:
    """The version ``docs`` is, whole (``AssertionError`` for a mix)."""
    shape = _shape(docs)
    found = [v for v in range(VERSIONS) if SHAPES[v][key] == shape]
    assert found, f"{key!r}: a history that is no version whole: {shape}"
    return found[0]


def _writer(root: str, seed: int, durability: Durability) -> None:
    rng = random.Random(seed)
    backend = FilesystemBackend(root, durability=durability)
    while True:
        version = rng.randrange(VERSIONS)
        batch = list(HISTORIES[version].items())
        rng.shuffle(batch)
        backend.restore_many(SCOPE, KIND, batch, replace=True)


def _one_version(docs: list[StoredDocument]) -> set[int]:
    versions = {json.loads(d.body)["version"] for d in docs}
    assert len(versions) <= 1, f"one snapshot shows several versions: {versions}"
    return versions


def check_store(backend: FilesystemBackend) -> int:
    """Every key wholly at one version, the same for all; every read path agrees."""
    versions = set()
    for key in KEYS:
        try:
            versions.add(_version_of(key, backend.history(SCOPE, KIND, key)))
        except NotFoundError:
            raise AssertionError(f"{key!r} lost its history") from None
    assert len(versions) == 1, f"a batch is visible in part: {versions}"
    (version,) = versions
    for key, docs in HISTORIES[version].items():
        head = docs[-1]
        if head.deleted:
            with pytest.raises(NotFoundError):
                backend.get(SCOPE, KIND, key)
        else:
            assert backend.get(SCOPE, KIND, key).sha256 == head.sha256
        with pytest.raises(NotFoundError):
            backend.get_revision(SCOPE, KIND, key, head.revision + 1)
    for v in range(VERSIONS):
        expected = LIVE[v] if v == version else 0
        assert backend.count(SCOPE, KIND, [FieldFilter("version", (f"v{v}",))]) == expected
    page = backend.query(SCOPE, KIND, Query(limit=50))
    assert _one_version(list(page.items)) <= {version}
    assert len(page.items) == LIVE[version] == backend.count(SCOPE, KIND)
    assert [d.key for d in page.items] == sorted(
        (d.key for d in page.items), key=lambda k: (HISTORIES[version][k][-1].index.sort_key, k)
    )
    assert len(list(backend.iter_documents(SCOPE, KIND))) == LIVE[version]
    return version


def _reader(root: str | FilesystemBackend, stop: Any, failures: Any, reads: Any) -> None:
    """Reads throughout the kills: whole histories, single-version snapshots."""
    backend = root if isinstance(root, FilesystemBackend) else FilesystemBackend(root)
    rng = random.Random(7)
    while not stop.is_set():
        try:
            key = rng.choice(KEYS)
            _version_of(key, backend.history(SCOPE, KIND, key))
            _one_version(list(backend.query(SCOPE, KIND, Query(limit=50)).items))
            _one_version(list(backend.iter_documents(SCOPE, KIND)))
            counts = [
                backend.count(SCOPE, KIND, [FieldFilter("version", (f"v{v}",))])
                for v in range(VERSIONS)
            ]
            assert all(c in (0, LIVE[v]) for v, c in enumerate(counts)), counts
            with reads.get_lock():
                reads.value += 1
        except Exception as exc:  # reported to the test, which fails on any
            with failures.get_lock():
                failures.value += 1
            print(f"replace reader: {exc!r}", flush=True)


def _interrupted(root: Path) -> str:
    scope_dir = root / SCOPE.tenant / SCOPE.environment
    note = (scope_dir / ".lock").read_bytes().split(b"\n", 1)[0]
    if (scope_dir / ".applying").read_bytes()[:1] == b"\x01":
        return "applying"
    return note.split(b" ", 1)[0].decode() if note else "idle"


def _leftovers(root: Path) -> list[str]:
    kind_dir = root / SCOPE.tenant / SCOPE.environment / "docs" / KIND
    return [p.name for p in kind_dir.iterdir() if p.name.startswith(".")]


def _replace_crash_loop(root: Path, kills: int, durability: Durability) -> Counter[str]:
    ctx = multiprocessing.get_context("fork")
    long_lived = FilesystemBackend(root, durability=durability)
    long_lived.restore_many(SCOPE, KIND, list(HISTORIES[0].items()))
    stop, failures, reads = ctx.Event(), ctx.Value("i", 0), ctx.Value("i", 0)
    reader = ctx.Process(target=_reader, args=(str(root), stop, failures, reads), daemon=True)
    reader.start()
    thread = threading.Thread(target=_reader, args=(long_lived, stop, failures, reads), daemon=True)
    thread.start()
    rng = random.Random(1313)
    seen: Counter[str] = Counter()
    try:
        for round_ in range(kills):
            proc = ctx.Process(
                target=_writer, args=(str(root), rng.randrange(1 << 30), durability), daemon=True
            )
            proc.start()
            time.sleep(rng.uniform(0.02, 0.15))
            assert proc.is_alive(), "the writer died on its own"
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(10)
            assert proc.exitcode == -signal.SIGKILL
            seen[_interrupted(root)] += 1
            seen[f"v{check_store(long_lived)}"] += 1  # recovers as a long-lived reader
            if round_ % 5 == 4 or round_ == kills - 1:
                with FilesystemBackend(root) as fresh:
                    check_store(fresh)
                    assert _leftovers(root) == [], "recovery must remove staged files"
                    problems = list(verify(fresh, SCOPE))
                    assert problems == [], problems
    finally:
        stop.set()
        reader.join(30)
        thread.join(30)
    assert reader.exitcode == 0
    assert failures.value == 0, "a reader saw a mixed or partial replace (see stdout)"
    seen["reads"] = reads.value
    long_lived.close()
    return seen


@pytest.mark.parametrize("durability", ["full", "process"])
def test_sigkilled_replace_leaves_every_key_wholly_old_or_new(
    tmp_path: Path, durability: Durability
) -> None:
    seen = _replace_crash_loop(tmp_path / "store", kills=60, durability=durability)
    print(dict(seen))
    assert seen["applying"] + seen["replace"] > 0, "no kill landed inside a replace's swap"
    assert sum(seen[f"v{v}"] for v in range(1, VERSIONS)) > 0, "no replace ever completed"
    assert seen["reads"] > 60


@pytest.mark.slow
def test_many_sigkilled_replaces(tmp_path: Path) -> None:
    seen = _replace_crash_loop(tmp_path / "store", kills=400, durability="full")
    print(dict(seen))
    assert seen["applying"] + seen["replace"] > 0
