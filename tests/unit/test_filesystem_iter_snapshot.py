"""``iter_documents`` of the filesystem backend: each batch one index snapshot.

A store of up to one batch must come from a single snapshot: the iterator used
to ask for another batch after a short one, a later snapshot in which a key past
the last one yielded may have come alive — so a history replace landing between
the two showed keys of the old *and* the new version (the crash test's
``one snapshot shows several versions``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.documents import IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import backend as fs_backend

SCOPE = Scope("iter", "snapshot")
KIND = "doc"
_AT = datetime(2021, 5, 6, tzinfo=UTC)


def _doc(key: str, version: int, *, deleted: bool = False) -> list[StoredDocument]:
    if deleted:
        return [StoredDocument(SCOPE, KIND, key, 1, b"", "", IndexEntry(), _AT, True)]
    body = canonical_json({"key": key, "version": version})
    return [StoredDocument(SCOPE, KIND, key, 1, body, content_hash(body), IndexEntry(), _AT)]


def _versions(docs: list[StoredDocument]) -> list[int]:
    return [json.loads(d.body)["version"] for d in docs]


def test_a_replace_during_a_short_iteration_is_not_mixed_in(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path, durability="process")
    # version 0: "a" live, "b" a tombstone; version 1: both live
    backend.restore_many(SCOPE, KIND, [("a", _doc("a", 0)), ("b", _doc("b", 0, deleted=True))])
    it = backend.iter_documents(SCOPE, KIND)
    first = next(it)  # reads the one (short) batch: ["a"] at version 0
    backend.restore_many(SCOPE, KIND, [("a", _doc("a", 1)), ("b", _doc("b", 1))], replace=True)
    assert _versions([first, *it]) == [0]
    assert _versions(list(backend.iter_documents(SCOPE, KIND))) == [1, 1]
    backend.close()


@pytest.mark.parametrize("n", range(7))
def test_iteration_in_batches_yields_every_live_document_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    monkeypatch.setattr(fs_backend, "ITER_BATCH", 2)  # full, short and empty last batches
    backend = FilesystemBackend(tmp_path, durability="process")
    keys = [f"k{i}" for i in range(n)]
    backend.restore_many(
        SCOPE, KIND, [(k, _doc(k, 0, deleted=i % 3 == 2)) for i, k in enumerate(keys)]
    )
    live = [k for i, k in enumerate(keys) if i % 3 != 2]
    assert [d.key for d in backend.iter_documents(SCOPE, KIND)] == live
    assert [d.key for d in backend.iter_documents(SCOPE)] == live
    backend.close()
