"""Stores written before issue 11 (record format 1) still read, and upgrade as they change.

Format 1 is accepted explicitly (ADR 0002): its hash covers kind, key, revision and
body but no scope and no link to the previous revision; the next write of a key
produces a format-2 record whose link names the format-1 record's hash.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.fs_records import format1

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.verify import VerifyCounts, verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("acme", "prod")
KIND = "contract"


def _doc(key: str, revision: int) -> StoredDocument:
    body = canonical_json({"key": key, "revision": revision})
    entry = IndexEntry({"status": ("active",)}, f"{revision:03d}")
    return StoredDocument(
        SCOPE, KIND, key, revision, body, content_hash(body), entry, datetime.now(UTC)
    )


def _old_store(root: Path) -> Path:
    """Two revisions of ``orders`` as the previous release laid them out (no index yet:
    the first open derives it from the heads, as after a reboot)."""
    kind_dir = root / "acme" / "prod" / "docs" / KIND
    kind_dir.mkdir(parents=True)
    for revision in (1, 2):
        (kind_dir / f"orders.r{revision}").write_bytes(format1(KIND, _doc("orders", revision)))
    os.link(kind_dir / "orders.r2", kind_dir / "orders.head")
    return kind_dir


def test_format1_records_read_and_upgrade_on_the_next_write(tmp_path: Path) -> None:
    root = tmp_path / "store"
    kind_dir = _old_store(root)
    with FilesystemBackend(root) as backend:
        assert backend.get(SCOPE, KIND, "orders").revision == 2
        assert [d.revision for d in backend.history(SCOPE, KIND, "orders")] == [1, 2]
        assert backend.count(SCOPE, KIND) == 1
        body = canonical_json({"key": "orders", "revision": 3})
        backend.put(
            SCOPE,
            KIND,
            DocumentWrite("orders", body, content_hash(body), IndexEntry({}, "003")),
            ANY,
        )
    assert (kind_dir / "orders.head").read_bytes()[65:].split(b"\n", 1)[1].startswith(b"#2\0")
    counts = VerifyCounts()
    with FilesystemBackend(root) as fresh:
        assert [d.revision for d in fresh.history(SCOPE, KIND, "orders")] == [1, 2, 3]
        assert list(verify(fresh, counts=counts)) == []
    assert (counts.revisions, counts.legacy_records) == (3, 2)


def test_a_format1_head_is_still_hash_checked(tmp_path: Path) -> None:
    root = tmp_path / "store"
    kind_dir = _old_store(root)
    data = bytearray((kind_dir / "orders.head").read_bytes())
    data[-3] ^= 1
    (kind_dir / "orders.head").write_bytes(bytes(data))
    with FilesystemBackend(root) as backend, pytest.raises(IntegrityError):
        backend.get(SCOPE, KIND, "orders")
