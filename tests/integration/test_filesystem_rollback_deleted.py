"""Rollbacks that also delete the newer revision files, and index rows edited to an
older revision: no read returns the older revision as the current document.

``ln -f r<N> head`` plus ``rm r<N+1>...`` leaves no next revision file for ``get``'s
fast check to find; only the index still knows the newer revision. A head whose
inode changed long after its record was written (not "fresh", ADR 0002) is
therefore also compared with the index. An index row edited to name an older
revision must not make ``iter_documents`` or ``query`` (or ``search``) return that
revision: the record read must be the head.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Query
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import backend as fs_backend
from dq_stores.verify import verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

ACME = Scope("acme", "prod")
KIND = "contract"


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n, "text": "alpha"})
    # the same sort key in every revision: the row's sort key check cannot tell them apart
    return DocumentWrite(key, body, content_hash(body), IndexEntry({}, "same"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    with FilesystemBackend(store) as backend:
        for n in (1, 2, 3):
            backend.put(ACME, KIND, _write("orders", n), ANY)
    return store


def _docs(root: Path) -> Path:
    return root / "acme" / "prod" / "docs" / KIND


@pytest.mark.parametrize("to", [1, 2])
def test_a_rollback_that_deletes_the_newer_revisions_is_caught_by_get(
    root: Path, to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the rollback happens long after revision ``to`` was written (not a fresh head)
    monkeypatch.setattr(fs_backend, "_FRESH_MAX", -1.0)
    docs = _docs(root)
    os.unlink(docs / "orders.head")
    os.link(docs / f"orders.r{to}", docs / "orders.head")
    for n in range(to + 1, 4):
        os.unlink(docs / f"orders.r{n}")
    with FilesystemBackend(root) as backend, pytest.raises(IntegrityError):
        backend.get(ACME, KIND, "orders")


def _edit_index(root: Path, sql: str) -> None:
    conn = sqlite3.connect(root / "acme" / "prod" / "index.sqlite3")
    with conn:
        conn.execute(sql)
    conn.close()


def test_an_index_row_edited_to_an_older_revision_returns_no_stale_document(root: Path) -> None:
    _edit_index(root, "UPDATE heads SET revision = 2 WHERE key = 'orders'")
    with FilesystemBackend(root) as backend:
        assert backend.get(ACME, KIND, "orders").revision == 3
        for read in (
            lambda: list(backend.iter_documents(ACME, KIND)),
            lambda: backend.query(ACME, KIND, Query()).items,
        ):
            with pytest.raises(IntegrityError):
                read()


def test_verify_reports_a_revision_file_past_the_head_that_follows_nothing(root: Path) -> None:
    # a stray r5 beside head 3 (no r4): a later write of the key makes r4 the head and
    # then finds r5 beside it — verify must report it before that happens
    docs = _docs(root)
    (docs / "orders.r5").write_bytes((docs / "orders.r3").read_bytes())
    with FilesystemBackend(root) as backend:
        found = [(p.code, p.key) for p in verify(backend, ACME)]
    assert found == [("head", "orders")]
