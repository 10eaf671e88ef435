"""A rolled-back head is caught by ``get`` alone — and an interrupted write's
uncommitted revision file (a power loss lost the writer's note) is not mistaken
for one, by ``get`` or by ``dq verify``.

Rollbacks: ``ln -f r<N> head`` (the head stays a hard link, so the inode check of
ADR 0002 passes), with or without the index deleted first, and ``cp r1 head``
after the index was deleted (a fresh open derives the index from the rolled-back
heads, so head and index agree). ``get`` notices the committed next revision file
beside the head; under the scope lock it tells a committed one from a leftover —
one revision back with the index deleted, only by the next revision file's inode
having changed after its write (it was linked as the head, then unlinked).
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.cli._app import app
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Put, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _recovery as recovery
from dq_stores.filesystem import _writes as writes
from dq_stores.filesystem._layout import write_new_file
from dq_stores.filesystem._records import decode_full, encode_record
from dq_stores.verify import VerifyCounts, verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

ACME = Scope("acme", "prod")
KIND = "contract"


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({}, f"{n:03d}"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    with FilesystemBackend(store) as backend:
        for n in (1, 2, 3):
            backend.put(ACME, KIND, _write("orders", n), ANY)
        backend.put(ACME, KIND, _write("other", 1), ANY)
    return store


def _docs(root: Path) -> Path:
    return root / "acme" / "prod" / "docs" / KIND


def _drop_index(root: Path) -> None:
    for path in (root / "acme" / "prod").glob("index.sqlite3*"):
        path.unlink()


def _ln_f(source: Path, target: Path) -> None:
    time.sleep(0.02)  # a rollback happens after the write, by more than the ctime slack
    os.unlink(target)
    os.link(source, target)


def _verify(root: Path) -> tuple[list[tuple[str, str | None]], VerifyCounts]:
    counts = VerifyCounts()
    with FilesystemBackend(root) as backend:
        found = [(p.code, p.key) for p in verify(backend, ACME, counts=counts)]
    return found, counts


# r2-no-index: ln -f r2 head (one revision back) *and* the index deleted. The files
# look like a power loss's uncommitted r3 except for r3's inode: linked as the head,
# then unlinked by the rollback, its ctime is past its mtime.
@pytest.mark.parametrize(
    ("to", "drop_index"),
    [(1, False), (2, False), (1, True), (2, True)],
    ids=["r1", "r2", "r1-no-index", "r2-no-index"],
)
def test_a_hard_link_rollback_is_caught_by_a_fresh_get(
    root: Path, drop_index: bool, to: int
) -> None:
    if drop_index:
        _drop_index(root)
    _ln_f(_docs(root) / f"orders.r{to}", _docs(root) / "orders.head")
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError, match="rolled-back"):
            fresh.get(ACME, KIND, "orders")
        assert fresh.get(ACME, KIND, "other").revision == 1
    found, _ = _verify(root)
    assert ("head", "orders") in found


def test_a_copy_over_the_head_after_the_index_was_deleted_is_caught(root: Path) -> None:
    _drop_index(root)
    shutil.copyfile(_docs(root) / "orders.r1", _docs(root) / "orders.head")  # cp r1 head
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.get(ACME, KIND, "orders")
    assert _verify(root)[0]


def test_a_long_lived_reader_catches_a_rollback_to_an_inode_it_has_seen(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with FilesystemBackend(root) as backend:
        backend.put(ACME, KIND, _write("orders", 1), ANY)
        assert backend.get(ACME, KIND, "orders").revision == 1  # r1's inode remembered
        backend.put(ACME, KIND, _write("orders", 2), ANY)
        assert backend.get(ACME, KIND, "orders").revision == 2
        _ln_f(_docs(root) / "orders.r1", _docs(root) / "orders.head")
        with pytest.raises(IntegrityError, match="rolled-back"):
            backend.get(ACME, KIND, "orders")


class _PowerLoss(BaseException):
    """The machine stops: nothing after this point runs."""


def _interrupted_commit(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-document commit that stops after its records were written and fsynced
    but before its journal (the commit point) — and a power loss that lost the
    intent note the writer had put in the lock file (it is never fsynced)."""

    def power_loss(_intents: object) -> bytes:
        raise _PowerLoss

    with FilesystemBackend(root) as backend:
        monkeypatch.setattr(writes, "encode_journal", power_loss)
        with pytest.raises(_PowerLoss):
            backend.commit(
                ACME,
                [
                    Put(KIND, _write("orders", 4), ANY),
                    Put(KIND, _write("other", 2), ANY),
                    Put(KIND, _write("brand-new", 1), ANY),
                ],
            )
        monkeypatch.undo()
    os.truncate(root / "acme" / "prod" / ".lock", 0)  # the page-cache note is gone
    assert (_docs(root) / "orders.r4").exists()
    assert (_docs(root) / "brand-new.r1").exists()
    assert not (_docs(root) / "brand-new.head").exists()


def test_an_interrupted_write_is_not_a_rollback(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupted_commit(root, monkeypatch)
    with FilesystemBackend(root) as fresh:
        for _ in range(2):  # the second get is answered from the remembered judgement
            assert fresh.get(ACME, KIND, "orders").revision == 3
            assert fresh.get(ACME, KIND, "other").revision == 1
        with pytest.raises(NotFoundError):
            fresh.get(ACME, KIND, "brand-new")
        assert [d.revision for d in fresh.history(ACME, KIND, "orders")] == [1, 2, 3]
        assert fresh.get_revision(ACME, KIND, "other", 1).revision == 1
    found, counts = _verify(root)
    assert found == []
    assert counts.interrupted == 3
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    result = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert result.exit_code == 0, result.stdout
    assert "3 uncommitted revision file(s)" in result.stdout
    # the next writes replace the leftovers and the store is exactly clean again
    with FilesystemBackend(root) as backend:
        assert backend.put(ACME, KIND, _write("orders", 4), ANY).revision == 4
        assert backend.put(ACME, KIND, _write("brand-new", 1), ANY).revision == 1
        assert backend.get(ACME, KIND, "orders").revision == 4
    found, counts = _verify(root)
    assert (found, counts.interrupted) == ([], 1)  # only other.r2 is left


def test_a_rollback_over_an_interrupted_write_is_still_caught(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r4 left uncommitted; then r3 rolled back to r2 by hand: r4 is revision N+2."""
    _interrupted_commit(root, monkeypatch)
    _ln_f(_docs(root) / "orders.r2", _docs(root) / "orders.head")
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.get(ACME, KIND, "orders")
    found, _ = _verify(root)
    assert ("head", "orders") in found


def _leftover(root: Path, key: str, revision: int) -> Path:
    """Write ``<key>.r<revision>`` exactly as a writer does before its commit point
    (a new inode, fsynced, following the head) and never link it: what a power loss
    that lost the writer's note leaves."""
    docs = _docs(root)
    head = decode_full((docs / f"{key}.head").read_bytes(), ACME, KIND, key)
    w = _write(key, revision)
    doc = StoredDocument(ACME, KIND, key, revision, w.body, w.sha256, w.index, head.doc.written_at)
    path = docs / f"{key}.r{revision}"
    write_new_file(str(path), encode_record(KIND, doc, head.digest))
    return path


@pytest.mark.parametrize("drop_index", [False, True], ids=["index", "no-index"])
def test_an_old_uncommitted_leftover_is_not_a_rollback(root: Path, drop_index: bool) -> None:
    """A leftover read long after its write is still a leftover: reading, fsync and
    time change neither its ctime nor its mtime."""
    _leftover(root, "orders", 4)
    if drop_index:
        _drop_index(root)
    time.sleep(0.05)  # well past the ctime slack
    with FilesystemBackend(root) as fresh:
        for _ in range(2):
            assert fresh.get(ACME, KIND, "orders").revision == 3
        assert [d.revision for d in fresh.history(ACME, KIND, "orders")] == [1, 2, 3]
    found, counts = _verify(root)
    assert (found, counts.interrupted) == ([], 1)


def test_a_removed_head_of_a_one_revision_key_is_caught_without_the_index(root: Path) -> None:
    """``rm other.head`` (only r1 exists) and the index deleted: r1 alone looks like
    a new key's interrupted write — except that it was linked as the head once."""
    _drop_index(root)
    time.sleep(0.02)
    os.unlink(_docs(root) / "other.head")
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError, match="head was removed"):
        fresh.get(ACME, KIND, "other")
    found, _ = _verify(root)
    assert ("head", "other") in found


def test_a_new_keys_old_leftover_is_still_absent(root: Path) -> None:
    docs = _docs(root)
    w = _write("brand-new", 1)
    doc = StoredDocument(ACME, KIND, "brand-new", 1, w.body, w.sha256, w.index, datetime.now(UTC))
    write_new_file(str(docs / "brand-new.r1"), encode_record(KIND, doc, ""))
    time.sleep(0.05)
    with FilesystemBackend(root) as fresh, pytest.raises(NotFoundError):
        fresh.get(ACME, KIND, "brand-new")
    found, counts = _verify(root)
    assert (found, counts.interrupted) == ([], 1)


def test_a_power_loss_between_link_and_rename_leaves_no_linked_leftover(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put linked ``.orders.tmp`` as ``orders.r4`` and lost power before renaming it
    over the head, and its note was lost. The rebuild after the reboot removes the
    temp name — which changes r4's ctime — so it removes r4 too (the rename, the
    commit point, never happened), rather than leave a leftover that reads as once
    linked."""
    real_replace = os.replace

    def power_loss(src: object, dst: object) -> None:
        if str(dst).endswith("orders.head"):
            raise _PowerLoss
        real_replace(src, dst)  # type: ignore[arg-type]

    with FilesystemBackend(root) as backend:
        monkeypatch.setattr(writes.os, "replace", power_loss)
        with pytest.raises(_PowerLoss):
            backend.put(ACME, KIND, _write("orders", 4), ANY)
        monkeypatch.undo()
    docs = _docs(root)
    assert os.path.samefile(docs / ".orders.tmp", docs / "orders.r4")
    os.truncate(root / "acme" / "prod" / ".lock", 0)  # the page-cache note is gone
    _drop_index(root)  # the reboot: a new boot id rebuilds the index
    monkeypatch.setattr(recovery, "boot_id", lambda: "after-the-reboot")
    time.sleep(0.02)
    with FilesystemBackend(root) as fresh:
        assert fresh.get(ACME, KIND, "orders").revision == 3
    assert not (docs / "orders.r4").exists()
    assert not (docs / ".orders.tmp").exists()
    found, counts = _verify(root)
    assert (found, counts.interrupted) == ([], 0)
