"""Hostile tests of the rolled-back-head rule (ADR 0002, "Interrupted write vs.
rollback"): no legitimate operation, killed at any step, may leave files that a
fresh ``get`` or ``dq verify`` calls a rolled-back or removed head.

As ``test_filesystem_commit_steps``: a child counts the system calls of the write
protocol and SIGKILLs itself just before the k-th one, k = 1, 2, ... until the
operation completes. ``slow`` makes every link/rename/unlink wait 15 ms first (a
slow disk: every inode a step touches gets a ctime well past its mtime).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.kill_steps import sigkill_at_call

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Put, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _recovery as recovery
from dq_stores.filesystem import _writes as writes
from dq_stores.filesystem._layout import write_new_file
from dq_stores.filesystem._records import decode_full, encode_record
from dq_stores.verify import verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("hostile", "prod")
KIND = "doc"
_SLOW = ("link", "replace", "unlink", "rename")
_AT = datetime(2020, 1, 2, tzinfo=UTC)


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"n": (str(n),)}, f"{n:03d}"))


def _history(key: str, length: int, version: int) -> list[StoredDocument]:
    out = []
    for rev in range(1, length + 1):
        body = canonical_json({"key": key, "version": version, "rev": rev})
        at = _AT + timedelta(hours=10 * version + rev)
        index = IndexEntry({"v": (str(version),)}, f"{rev:03d}")
        out.append(StoredDocument(SCOPE, KIND, key, rev, body, content_hash(body), index, at))
    return out


def _operate(backend: FilesystemBackend, op: str, step: int) -> None:
    if op == "put":
        backend.put(SCOPE, KIND, _write("a", step), ANY)
    elif op == "put-new":
        backend.put(SCOPE, KIND, _write(f"new-{step}", step), ANY)
    elif op == "put_many":
        backend.put_many(SCOPE, KIND, [_write(k, step) for k in ("a", "b", f"new-{step}")])
    elif op == "delete":
        backend.delete(SCOPE, KIND, "b", ANY)
    elif op == "commit":
        writes = [Put(KIND, _write(k, step)) for k in ("a", "b", f"new-{step}")]
        backend.commit(SCOPE, writes)
    elif op == "restore":
        batch = [(f"r{step}-{k}", _history(f"r{step}-{k}", 4, 0)) for k in ("x", "y")]
        backend.restore_many(SCOPE, KIND, batch)
    elif op == "replace":
        batch = [(k, _history(k, n, step)) for k, n in (("a", 2), ("b", 5))]
        backend.restore_many(SCOPE, KIND, batch, replace=True)
    elif op == "prune":
        head = backend.get(SCOPE, KIND, "a").revision
        backend.prune_history(SCOPE, KIND, "a", head)
    else:  # pragma: no cover
        raise AssertionError(op)


def _slow_disk(name: str) -> None:
    if name in _SLOW:
        time.sleep(0.015)


def _dying_at(root: str, durability: Any, op: str, step: int, slow: bool) -> None:
    backend = FilesystemBackend(root, durability=durability)
    backend.get(SCOPE, KIND, "a")  # open the scope before counting
    sigkill_at_call(step, before=_slow_disk if slow else None)
    _operate(backend, op, step)


def _check(root: Path, durability: Any, long_lived: FilesystemBackend, keys: set[str]) -> None:
    """Every key reads (or is absent) without IntegrityError; verify is clean."""
    with FilesystemBackend(root, durability=durability) as fresh:
        for backend in (long_lived, fresh):
            for key in sorted(keys):
                with contextlib.suppress(NotFoundError):
                    backend.get(SCOPE, KIND, key)
        problems = [(p.code, p.key, p.message) for p in verify(fresh, SCOPE)]
        assert problems == []


def _seed(root: Path, durability: Any) -> FilesystemBackend:
    backend = FilesystemBackend(root, durability=durability)
    for n in (1, 2, 3):
        backend.put(SCOPE, KIND, _write("a", n), ANY)
    backend.put(SCOPE, KIND, _write("b", 1), ANY)
    return backend


OPS = ("put", "put-new", "put_many", "delete", "commit", "restore", "replace", "prune")


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-disk"])
@pytest.mark.parametrize("durability", ["full", "process"])
@pytest.mark.parametrize("op", OPS)
# The step-kill loop is the suite's longest filesystem test: the pure-Python read path
# runs it with the long variants (`-m slow`); the other modules here run both paths.
@pytest.mark.parametrize(
    "fs_read_path", ["native", pytest.param("python", marks=pytest.mark.slow)], indirect=True
)
def test_no_step_of_a_killed_write_reads_as_a_rollback(
    tmp_path: Path, op: str, durability: str, slow: bool
) -> None:
    root = tmp_path / "store"
    long_lived = _seed(root, durability)
    ctx = multiprocessing.get_context("fork")
    keys = {"a", "b"}
    for step in range(1, 120):
        child = ctx.Process(target=_dying_at, args=(str(root), durability, op, step, slow))
        child.start()
        child.join(60)
        keys |= {f"new-{step}", f"r{step}-x", f"r{step}-y"}
        _check(root, durability, long_lived, keys)
        # and the key's next write must work and read back
        long_lived.put(SCOPE, KIND, _write("a", 1000 + step), ANY)
        for key in sorted(keys):
            long_lived.put(SCOPE, KIND, _write(key, 2000 + step), ANY)
            assert long_lived.get(SCOPE, KIND, key).body == _write(key, 2000 + step).body
        _check(root, durability, long_lived, keys)
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL, child.exitcode
    else:
        raise AssertionError("the operation never completed")
    long_lived.close()


def test_a_restores_note_is_durable_before_its_first_revision_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss that kept a restore's revision files but lost its note (the
    intent is not fsynced for single writes) would leave r1..r<last> without a
    head: a removed head to ``get`` and ``verify``. So the note is fsynced first."""
    root = tmp_path / "store"
    backend = _seed(root, "full")
    lock_fd = os.open(root / "hostile/prod/.lock", os.O_RDONLY)
    lock = os.fstat(lock_fd).st_ino
    os.close(lock_fd)
    events: list[str] = []
    real_fsync, real_open = os.fsync, os.open

    def fsync(fd: int) -> None:
        if os.fstat(fd).st_ino == lock:
            events.append("fsync lock")
        real_fsync(fd)

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith(".r1"):
            events.append("create r1")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "open", open_)
    backend.restore_many(SCOPE, KIND, [("r", _history("r", 3, 0))])
    monkeypatch.undo()
    assert events[:2] == ["fsync lock", "create r1"], events
    backend.close()


def _ln_f(source: Path, target: Path) -> None:
    time.sleep(0.02)  # after the write by more than the ctime slack
    os.unlink(target)
    os.link(source, target)


def _write_over(backend: FilesystemBackend, how: str, key: str, other: str) -> None:
    if how == "restore":
        batch = [(other + "-new", _history(other + "-new", 2, 0)), (key, _history(key, 2, 0))]
        backend.restore_many(SCOPE, KIND, batch)
    elif how in ("put", "removed-head"):
        backend.put(SCOPE, KIND, _write(key, 9), ANY)
    elif how == "put_many":
        backend.put_many(SCOPE, KIND, [_write(other, 9), _write(key, 9)])
    elif how == "delete":
        backend.delete(SCOPE, KIND, key, ANY)
    else:
        backend.commit(SCOPE, [Put(KIND, _write(other, 9)), Put(KIND, _write(key, 9))])


@pytest.mark.parametrize("drop_index", [False, True], ids=["index", "no-index"])
@pytest.mark.parametrize("how", ["put", "put_many", "delete", "commit", "removed-head", "restore"])
def test_a_write_over_a_rolled_back_head_is_refused(
    tmp_path: Path, how: str, drop_index: bool
) -> None:
    """``ln -f r2 head`` (r3 committed), or ``rm head`` of a one-revision key, then
    a write: it would replace the committed revision file — and the only trace of
    the rollback. It raises instead and writes nothing; ``get`` and ``verify``
    still report the rollback."""
    root = tmp_path / "store"
    _seed(root, "full").close()
    docs = root / "hostile/prod/docs" / KIND
    removed = how in ("removed-head", "restore")
    key, other, kept = ("b", "a", "b.r1") if removed else ("a", "b", "a.r3")
    committed = (docs / kept).read_bytes()
    if removed:
        time.sleep(0.02)
        (docs / "b.head").unlink()
    else:
        _ln_f(docs / "a.r2", docs / "a.head")
    if drop_index:
        for path in (root / "hostile/prod").glob("index.sqlite3*"):
            path.unlink()
    before = sorted(p.name for p in docs.iterdir())
    with FilesystemBackend(root) as backend:
        other_revision = backend.get(SCOPE, KIND, other).revision
        with pytest.raises(IntegrityError, match="rolled-back or removed head"):
            _write_over(backend, how, key, other)
        assert sorted(p.name for p in docs.iterdir()) == before
        assert (docs / kept).read_bytes() == committed
        assert backend.get(SCOPE, KIND, other).revision == other_revision  # nothing written
        with pytest.raises(IntegrityError):
            backend.get(SCOPE, KIND, key)
        assert [p.code for p in verify(backend, SCOPE)]


class _PowerLoss(Exception):
    pass


def test_a_linked_leftover_without_a_boot_id_is_not_a_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a boot id (not Linux) no rebuild follows a reboot, so nothing removes
    the leftover of a put that linked ``.a.tmp`` as ``a.r4`` and lost power before
    the rename (note lost): its ctime moved with the link. Still a leftover — the
    temp shares its inode — not a rolled-back head, for ``get``, ``verify`` and
    the key's next write."""
    monkeypatch.setattr(recovery, "boot_id", lambda: None)
    root = tmp_path / "store"
    backend = _seed(root, "full")
    real_replace = os.replace

    def power_loss(src: Any, dst: Any) -> None:
        if str(dst).endswith("a.head"):
            raise _PowerLoss
        real_replace(src, dst)

    real_link = writes.link_revision

    def slow_link(source: str, target: str) -> None:
        time.sleep(0.02)  # a slow disk: the fsync before the link took 20 ms
        real_link(source, target)

    monkeypatch.setattr(writes, "link_revision", slow_link)
    monkeypatch.setattr(writes.os, "replace", power_loss)
    with pytest.raises(_PowerLoss):
        backend.put(SCOPE, KIND, _write("a", 4), ANY)
    monkeypatch.setattr(writes.os, "replace", real_replace)
    backend.close()
    docs = root / "hostile/prod/docs" / KIND
    assert os.path.samefile(docs / ".a.tmp", docs / "a.r4")
    os.truncate(root / "hostile/prod/.lock", 0)  # the page-cache note is gone
    time.sleep(0.02)
    with FilesystemBackend(root) as fresh:
        assert fresh.get(SCOPE, KIND, "a").revision == 3
        assert [p.code for p in verify(fresh, SCOPE)] == []
        assert fresh.put(SCOPE, KIND, _write("a", 5), ANY).revision == 4
        assert fresh.get(SCOPE, KIND, "a").body == _write("a", 5).body
        assert [p.code for p in verify(fresh, SCOPE)] == []


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_a_replace_takes_an_interrupted_writes_leftover_with_the_old_history(
    tmp_path: Path, length: int
) -> None:
    """A power loss left ``a.r4`` (uncommitted, never linked) beside head 3 — not a
    problem. A history replace by a history of at most 3 revisions
    must not leave it past the new head, where it reads as a rolled-back head."""
    root = tmp_path / "store"
    backend = _seed(root, "full")
    docs = root / "hostile/prod/docs" / KIND
    head = decode_full((docs / "a.head").read_bytes(), SCOPE, KIND, "a")
    body = b'{"n":4}'
    doc = StoredDocument(SCOPE, KIND, "a", 4, body, content_hash(body), IndexEntry(), _AT)
    write_new_file(str(docs / "a.r4"), encode_record(KIND, doc, head.digest))
    assert [p.code for p in verify(backend, SCOPE)] == []
    backend.restore_many(SCOPE, KIND, [("a", _history("a", length, 1))], replace=True)
    assert backend.get(SCOPE, KIND, "a").revision == length
    assert [p.code for p in verify(backend, SCOPE)] == []
    backend.close()


def test_a_rollback_two_back_with_the_newest_file_removed_and_no_index(tmp_path: Path) -> None:
    """Once a limit (r2's ctime dates from when the head moved past it, not from the
    rollback, so back-to-back puts hid it): r1 is sealed, so as the head it is a
    superseded revision, whatever the other files and the index say."""
    root = tmp_path / "store"
    _seed(root, "process").close()
    docs = root / "hostile/prod/docs" / KIND
    _ln_f(docs / "a.r1", docs / "a.head")
    (docs / "a.r3").unlink()
    for path in (root / "hostile/prod").glob("index.sqlite3*"):
        path.unlink()
    with FilesystemBackend(root) as backend, pytest.raises(IntegrityError):
        backend.get(SCOPE, KIND, "a")
