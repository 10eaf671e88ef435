"""Seals (ADR 0002, "Seals"): every write that moves a head clears the write bits of
the revision file it superseded; a sealed inode must never be a head again.

Which files end up sealed after each kind of write, what a umask that strips the
owner-write bit does, a writer that dies between its head move and its seal, old
stores (nothing sealed), a reader racing a writer (never a false ``IntegrityError``),
and the operations that read, copy, prune or replace sealed files.
"""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, Delete, DocumentWrite, IndexEntry, Put, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _writes as writes
from dq_stores.verify import VerifyCounts, verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("acme", "prod")
KIND = "contract"
_AT = datetime(2020, 1, 2, tzinfo=UTC)


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({}, f"{n:03d}"))


def _history(key: str, length: int, version: int = 0) -> list[StoredDocument]:
    out = []
    for rev in range(1, length + 1):
        body = canonical_json({"key": key, "version": version, "rev": rev})
        at = _AT + timedelta(hours=rev)
        out.append(
            StoredDocument(SCOPE, KIND, key, rev, body, content_hash(body), IndexEntry(), at)
        )
    return out


def _docs(root: Path) -> Path:
    return root / "acme" / "prod" / "docs" / KIND


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _sealed_revisions(root: Path, key: str) -> dict[int, bool]:
    """``{revision: sealed}`` for every revision file of ``key`` (sealed: no write bit)."""
    out = {}
    for path in _docs(root).glob(f"{key}.r*"):
        out[int(path.name.rsplit(".r", 1)[1])] = not _mode(path) & 0o222
    return dict(sorted(out.items()))


def _verify(backend: FilesystemBackend, **kwargs: bool) -> tuple[list[str], VerifyCounts]:
    counts = VerifyCounts()
    found = [p.code for p in verify(backend, SCOPE, counts=counts, **kwargs)]
    return found, counts


@pytest.mark.parametrize("durability", ["full", "process"])
def test_every_write_seals_what_it_superseded(tmp_path: Path, durability: str) -> None:
    root = tmp_path / "store"
    with FilesystemBackend(root, durability=durability) as backend:  # type: ignore[arg-type]
        for n in (1, 2, 3):
            backend.put(SCOPE, KIND, _write("put", n), ANY)
        backend.put_many(SCOPE, KIND, [_write("bulk", 1)])
        backend.put_many(SCOPE, KIND, [_write("bulk", 2), _write("new", 1)])
        backend.put(SCOPE, KIND, _write("gone", 1), ANY)
        backend.delete(SCOPE, KIND, "gone", ANY)
        backend.put(SCOPE, KIND, _write("gone", 3), ANY)  # over a tombstone
        backend.commit(SCOPE, [Put(KIND, _write("c1", 1)), Put(KIND, _write("c2", 1))])
        backend.commit(SCOPE, [Put(KIND, _write("c1", 2)), Delete(KIND, "c2")])
        backend.commit(SCOPE, [Put(KIND, _write("one", 1))])
        backend.commit(SCOPE, [Put(KIND, _write("one", 2))])  # one document: no journal
        backend.restore_many(SCOPE, KIND, [("restored", _history("restored", 4))])
        backend.restore_many(SCOPE, KIND, [("put", _history("put", 2, 1))], replace=True)
        for key in ("bulk", "gone", "c1", "c2", "one", "restored", "put"):
            assert backend.get_revision(SCOPE, KIND, key, 1).revision == 1
        assert _verify(backend) == ([], _verify(backend)[1])
        assert _verify(backend)[1].unsealed == 0
    expected = {
        "put": {1: True, 2: False},
        "bulk": {1: True, 2: False},
        "new": {1: False},
        "gone": {1: True, 2: True, 3: False},
        "c1": {1: True, 2: False},
        "c2": {1: True, 2: False},
        "one": {1: True, 2: False},
        "restored": {1: True, 2: True, 3: True, 4: False},
    }
    for key, want in expected.items():
        assert _sealed_revisions(root, key) == want, key
        assert _mode(_docs(root) / f"{key}.head") & 0o200, key


def test_a_umask_without_owner_write_still_makes_writable_heads(tmp_path: Path) -> None:
    """Files are created 0o644 minus the umask: ``umask 0222`` would make every new
    revision look sealed, so writers give the owner the write bit back (and only it)."""
    root = tmp_path / "store"
    root.mkdir()
    old = os.umask(0o222)
    try:
        with FilesystemBackend(root) as backend:
            for n in (1, 2):
                backend.put(SCOPE, KIND, _write("a", n), ANY)
            backend.restore_many(SCOPE, KIND, [("r", _history("r", 2))])
            assert backend.get(SCOPE, KIND, "a").revision == 2
            assert backend.get(SCOPE, KIND, "r").revision == 2
            assert _verify(backend)[0] == []
    finally:
        os.umask(old)
    assert _mode(_docs(root) / "a.head") == 0o644  # 0o444 from the umask, +owner write
    assert _mode(_docs(root) / "a.r1") == 0o444
    assert _mode(_docs(root) / "r.r1") == 0o444
    assert _mode(_docs(root) / "r.head") == 0o644


class _Crash(BaseException):
    """The writer stops here (nothing after this point runs)."""


def _crash(*_args: object) -> None:
    raise _Crash


@pytest.mark.parametrize("how", ["single", "journal"])
def test_a_writer_that_dies_before_its_seal_is_sealed_by_the_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    root = tmp_path / "store"
    backend = FilesystemBackend(root)
    for n in (1, 2):
        backend.put(SCOPE, KIND, _write("a", n), ANY)
        backend.put(SCOPE, KIND, _write("b", n), ANY)
    monkeypatch.setattr(writes, "seal_superseded", _crash)
    keys = ("a",) if how == "single" else ("a", "b")  # one document: no journal
    with pytest.raises(_Crash):
        backend.commit(SCOPE, [Put(KIND, _write(key, 3)) for key in keys])
    monkeypatch.undo()
    assert _sealed_revisions(root, "a") == {1: True, 2: False, 3: False}  # head moved, no seal
    backend.close()
    with FilesystemBackend(root) as fresh:  # opening the scope replays the note
        assert fresh.get(SCOPE, KIND, "a").revision == 3
        assert _verify(fresh) == ([], _verify(fresh)[1])
    assert _sealed_revisions(root, "a") == {1: True, 2: True, 3: False}
    if how == "journal":
        assert _sealed_revisions(root, "b") == {1: True, 2: True, 3: False}


def test_a_lost_seal_and_note_are_sealed_by_the_rebuild(tmp_path: Path) -> None:
    """A power loss kept the head move and lost both the seal and the note (never
    fsynced); the rebuild that follows a reboot (here: a deleted index) seals."""
    root = tmp_path / "store"
    with FilesystemBackend(root) as backend:
        for n in (1, 2, 3):
            backend.put(SCOPE, KIND, _write("a", n), ANY)
    os.chmod(_docs(root) / "a.r2", 0o644)
    for path in (root / "acme/prod").glob("index.sqlite3*"):
        path.unlink()
    with FilesystemBackend(root) as fresh:
        assert fresh.get(SCOPE, KIND, "a").revision == 3
    assert _sealed_revisions(root, "a") == {1: True, 2: True, 3: False}


def test_an_old_store_reads_and_verify_counts_then_seals_its_unsealed_revisions(
    tmp_path: Path,
) -> None:
    """A store written before seals: every revision file is writable. Reads and
    writes work; verify counts the unsealed superseded files (not problems) and
    ``repair_index`` seals them."""
    root = tmp_path / "store"
    with FilesystemBackend(root) as backend:
        for n in (1, 2, 3, 4):
            backend.put(SCOPE, KIND, _write("a", n), ANY)
    for path in _docs(root).iterdir():
        os.chmod(path, 0o644)
    with FilesystemBackend(root) as backend:
        assert backend.get(SCOPE, KIND, "a").revision == 4
        assert [d.revision for d in backend.history(SCOPE, KIND, "a")] == [1, 2, 3, 4]
        found, counts = _verify(backend)
        assert (found, counts.unsealed, counts.repaired) == ([], 3, [])
        found, counts = _verify(backend, repair_index=True)
        assert (found, counts.unsealed, counts.repaired) == ([], 3, [SCOPE])
        assert _sealed_revisions(root, "a") == {1: True, 2: True, 3: True, 4: False}
        assert _verify(backend)[1].unsealed == 0
        assert backend.put(SCOPE, KIND, _write("a", 5), ANY).revision == 5


def test_verify_finds_one_unsealed_superseded_revision(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with FilesystemBackend(root) as backend:
        for n in (1, 2, 3):
            backend.put(SCOPE, KIND, _write("a", n), ANY)
        assert _verify(backend)[1].unsealed == 0
        os.chmod(_docs(root) / "a.r1", 0o600)
        found, counts = _verify(backend)
        assert (found, counts.unsealed) == ([], 1)


_READS = {
    "get": lambda backend: backend.get(SCOPE, KIND, "a"),
    "query": lambda backend: backend.query(SCOPE, KIND).items[0],
    "iter_documents": lambda backend: next(iter(backend.iter_documents(SCOPE, KIND))),
}


@pytest.mark.parametrize("read", sorted(_READS))
@pytest.mark.parametrize("shared", [True, False], ids=["one-backend", "two-backends"])
def test_a_reader_racing_a_writer_never_sees_a_false_rollback(
    tmp_path: Path, shared: bool, read: str
) -> None:
    """A reader opens the head (``get``) or the revision file its index snapshot names
    (``query``, ``iter_documents``), the writer moves the head on and seals the old
    inode, and the reader's ``fstat`` finds it sealed: under the lock the head has
    moved on, so the read answers the new head — never ``IntegrityError``."""
    read_one = _READS[read]
    root = tmp_path / "store"
    writer = FilesystemBackend(root, durability="process")
    writer.put(SCOPE, KIND, _write("a", 0), ANY)
    reader = writer if shared else FilesystemBackend(root, durability="process")
    settled = 0
    real = reader._settled_head

    def counting(*args: object) -> object:
        nonlocal settled
        settled += 1
        return real(*args)  # type: ignore[arg-type]

    reader._settled_head = counting  # type: ignore[method-assign]
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            n = 1
            while not stop.is_set():
                writer.put(SCOPE, KIND, _write("a", n), ANY)
                n += 1
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    seen = last = 0
    try:
        while seen < 2000 or last < 200:
            revision = read_one(reader).revision
            assert revision >= last  # never back in time
            last = revision
            seen += 1
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert seen >= 2000
    assert last >= 200
    print(f"{seen} reads, {last} writes, {settled} decided under the lock")
    assert _verify(writer)[0] == []
    if not shared:
        reader.close()
    writer.close()


def test_sealed_files_are_read_pruned_exported_and_replaced(tmp_path: Path) -> None:
    """History, export (``iter_histories``), a restore into another store, pruning and
    a history replace over sealed files; the copy's new heads are not sealed."""
    source, target = tmp_path / "source", tmp_path / "target"
    with FilesystemBackend(source) as backend:
        for n in (1, 2, 3, 4):
            backend.put(SCOPE, KIND, _write("a", n), ANY)
        assert [d.revision for d in backend.history(SCOPE, KIND, "a")] == [1, 2, 3, 4]
        histories = [(h[-1].key, h) for h in backend.iter_histories(SCOPE, KIND)]
        backend.prune_history(SCOPE, KIND, "a", 3)
        assert [d.revision for d in backend.history(SCOPE, KIND, "a")] == [3, 4]
        backend.restore_many(SCOPE, KIND, [("a", _history("a", 3, 2))], replace=True)
        assert backend.get(SCOPE, KIND, "a").revision == 3
        assert _sealed_revisions(source, "a") == {1: True, 2: True, 3: False}
        assert backend.put(SCOPE, KIND, _write("a", 9), ANY).revision == 4
        assert _verify(backend)[0] == []
    with FilesystemBackend(target) as copy:
        copy.restore_many(SCOPE, KIND, histories)
        assert copy.get(SCOPE, KIND, "a").revision == 4
        assert _verify(copy)[0] == []
    assert _sealed_revisions(target, "a") == {1: True, 2: True, 3: True, 4: False}
    assert _mode(_docs(target) / "a.head") & 0o200


def test_a_write_over_a_sealed_head_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with FilesystemBackend(root) as backend:
        for n in (1, 2, 3):
            backend.put(SCOPE, KIND, _write("a", n), ANY)
    docs = _docs(root)
    (docs / "a.head").unlink()
    os.link(docs / "a.r1", docs / "a.head")
    for name in ("a.r2", "a.r3"):
        (docs / name).unlink()
    with FilesystemBackend(root) as backend:
        with pytest.raises(IntegrityError, match="superseded"):
            backend.get(SCOPE, KIND, "a")
        with pytest.raises(IntegrityError, match="rolled-back or removed head"):
            backend.put(SCOPE, KIND, _write("a", 9), ANY)
        assert sorted(p.name for p in docs.iterdir()) == ["a.head", "a.r1"]
