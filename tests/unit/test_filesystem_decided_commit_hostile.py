"""Hostile tests of "reads never complete a commit" (ADR 0002) and its neighbours.

A multi-document commit whose writer is SIGKILLed at the fsync of its journal
(decided, flag down) must be invisible to every read of a backend that already
had the scope open — including new keys (revision 1, no head yet), deletes and
keys of several kinds — while reads answer the old state without raising; it
must be completed by the next writer (whose own checks then see it) and by the
next opener; a decided history replace waits the same way. A journal whose
revision files are gone (a power loss with ``durability="process"``, or damage)
must not wedge the scope.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support import fs_journal

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ConflictError, IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    Delete,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Put,
    Query,
    StoredDocument,
    at_revision,
)
from dq_stores.filesystem import FilesystemBackend
from dq_stores.verify import VerifyCounts, verify

SCOPE = Scope("hostile", "test")
A, B = "acct", "audit"


def _write(key: str, value: int) -> DocumentWrite:
    body = canonical_json({"key": key, "value": value})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"v": (str(value),)}, key))


_scope_dir = functools.partial(fs_journal.scope_dir, scope=SCOPE)
_note = functools.partial(fs_journal.note, scope=SCOPE)
_flag = functools.partial(fs_journal.flag, scope=SCOPE)


def _kill(
    root: Path, action: Callable[[FilesystemBackend], Any], prefix: bytes = b"commit "
) -> None:
    fs_journal.kill_at_journal(root, SCOPE, action, prefix)


def _mixed_commit(backend: FilesystemBackend) -> None:
    """a: 100 -> 90; new key n (revision 1); delete d; a new audit record (another kind)."""
    backend.commit(
        SCOPE,
        [
            Put(A, _write("a", 90), at_revision(1)),
            Put(A, _write("n", 10), MUST_NOT_EXIST),
            Delete(A, "d", at_revision(1)),
            Put(B, _write("t1", 1), MUST_NOT_EXIST),
        ],
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    with FilesystemBackend(store) as backend:
        backend.put(SCOPE, A, _write("a", 100), ANY)
        backend.put(SCOPE, A, _write("d", 5), ANY)
    return store


def _old_state(backend: FilesystemBackend) -> None:
    """Every read path answers the state before the mixed commit, without raising."""
    assert backend.get(SCOPE, A, "a").revision == 1
    assert backend.get(SCOPE, A, "d").revision == 1
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, A, "n")
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, B, "t1")
    with pytest.raises(NotFoundError):
        backend.get_revision(SCOPE, A, "a", 2)
    with pytest.raises(NotFoundError):
        backend.history(SCOPE, A, "n")
    assert [d.revision for d in backend.history(SCOPE, A, "a")] == [1]
    assert [d.key for d in backend.query(SCOPE, A, Query()).items] == ["a", "d"]
    assert backend.count(SCOPE, A) == 2
    assert backend.count(SCOPE, B) == 0
    assert backend.count(SCOPE, A, [FieldFilter("v", ("10",))]) == 0
    assert sorted((d.kind, d.key) for d in backend.iter_documents(SCOPE)) == [(A, "a"), (A, "d")]
    histories = sorted((h[-1].kind, h[-1].key, len(h)) for h in backend.iter_histories(SCOPE))
    assert histories == [(A, "a", 1), (A, "d", 1)]
    assert [p.code for p in verify(backend, SCOPE, counts=VerifyCounts())] == []


def _new_state(backend: FilesystemBackend) -> None:
    assert backend.get(SCOPE, A, "a").revision == 2
    assert backend.get(SCOPE, A, "n").revision == 1
    assert backend.get(SCOPE, B, "t1").revision == 1
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, A, "d")
    assert [d.key for d in backend.query(SCOPE, A, Query()).items] == ["a", "n"]
    assert backend.count(SCOPE, B) == 1
    assert [d.revision for d in backend.history(SCOPE, A, "d")] == [1, 2]
    assert [p.code for p in verify(backend, SCOPE, counts=VerifyCounts())] == []


def test_new_keys_deletes_and_kinds_wait_for_a_writer(root: Path) -> None:
    with FilesystemBackend(root) as long_lived:
        long_lived.count(SCOPE, A)
        long_lived.count(SCOPE, B)
        _kill(root, _mixed_commit)
        note = _note(root)
        for _ in range(2):
            _old_state(long_lived)
        assert _note(root) == note
        long_lived.put(SCOPE, "other", _write("x", 1), ANY)  # any writer completes it
        assert _note(root) == b""
        _new_state(long_lived)


def test_an_opener_completes_the_mixed_commit(root: Path) -> None:
    _kill(root, _mixed_commit)
    with FilesystemBackend(root) as fresh:
        _new_state(fresh)


def test_a_conditional_write_from_before_the_commit_conflicts(root: Path) -> None:
    with FilesystemBackend(root) as long_lived:
        seen = long_lived.get(SCOPE, A, "a")
        _kill(root, _mixed_commit)
        assert long_lived.get(SCOPE, A, "a").revision == seen.revision  # still the old state
        with pytest.raises(ConflictError):
            long_lived.put(SCOPE, A, _write("a", 1), at_revision(seen.revision))
        assert long_lived.get(SCOPE, A, "a").revision == 2  # the decided commit, not lost
        with pytest.raises(ConflictError):
            long_lived.commit(
                SCOPE,
                [
                    Put(A, _write("a", 2), at_revision(seen.revision)),
                    Put(A, _write("z", 2), ANY),
                ],
            )
        with pytest.raises(ConflictError):
            long_lived.put(SCOPE, A, _write("n", 1), MUST_NOT_EXIST)  # n was created
        with pytest.raises(NotFoundError):
            long_lived.delete(SCOPE, A, "d", ANY)  # d was deleted


def test_an_unconditional_write_lands_after_the_decided_commit(root: Path) -> None:
    """``ANY`` means "on top of whatever is committed": the decided commit is
    applied first, the write becomes the next revision — nothing is overwritten
    out of history."""
    with FilesystemBackend(root) as long_lived:
        long_lived.get(SCOPE, A, "a")
        _kill(root, _mixed_commit)
        assert long_lived.put(SCOPE, A, _write("a", 1), ANY).revision == 3
        assert long_lived.put_many(SCOPE, A, [_write("n", 2), _write("d", 3)]) == 2
        assert [d.revision for d in long_lived.history(SCOPE, A, "a")] == [1, 2, 3]
        assert [d.revision for d in long_lived.history(SCOPE, A, "n")] == [1, 2]
        assert [d.revision for d in long_lived.history(SCOPE, A, "d")] == [1, 2, 3]
        assert [p.code for p in verify(long_lived, SCOPE, counts=VerifyCounts())] == []


def test_two_processes_opening_at_once_roll_forward_once(root: Path) -> None:
    _kill(root, _mixed_commit)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def open_and_read() -> None:
        with FilesystemBackend(root) as fresh:
            results.put(
                (fresh.get(SCOPE, A, "a").revision, fresh.count(SCOPE, A), fresh.count(SCOPE, B))
            )

    procs = [ctx.Process(target=open_and_read) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert {results.get(timeout=5) for _ in procs} == {(2, 2, 1)}
    with FilesystemBackend(root) as fresh:
        _new_state(fresh)
        assert [d.revision for d in fresh.history(SCOPE, A, "a")] == [1, 2]


def _kill_in_replay(root: str) -> None:
    """A writer that starts replaying the decided journal and dies after its first
    head move: the flag is raised, the journal still there."""
    backend = FilesystemBackend(root)  # opening the scope starts the roll-forward
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace  # type: ignore[assignment]
    backend.put(SCOPE, A, _write("zz", 1), ANY)
    os._exit(3)  # not reached


def test_a_second_writer_killed_while_rolling_forward(root: Path) -> None:
    with FilesystemBackend(root) as long_lived:
        _old_state(long_lived)
        _kill(root, _mixed_commit)
        child = multiprocessing.get_context("fork").Process(
            target=_kill_in_replay, args=(str(root),)
        )
        child.start()
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        assert _flag(root) == 1
        assert _note(root).startswith(b"commit ")
        _new_state(long_lived)  # a raised flag: the reader rolls it forward
        with pytest.raises(NotFoundError):
            long_lived.get(SCOPE, A, "zz")  # the second writer never committed


# -- a decided history replace ------------------------------------------------
_AT = datetime(2020, 1, 2, tzinfo=UTC)


def _history(key: str, n: int, tag: int) -> list[StoredDocument]:
    out = []
    for rev in range(1, n + 1):
        body = canonical_json({"key": key, "tag": tag, "rev": rev})
        out.append(
            StoredDocument(
                SCOPE, A, key, rev, body, content_hash(body),
                IndexEntry({"v": (str(tag),)}, f"{rev:03d}"), _AT + timedelta(hours=rev),
            )
        )  # fmt: skip
    return out


def _replace(backend: FilesystemBackend) -> None:
    backend.restore_many(
        SCOPE, A, [("a", _history("a", 3, 7)), ("h", _history("h", 2, 7))], replace=True
    )


def test_a_decided_replace_waits_for_a_writer(root: Path) -> None:
    with FilesystemBackend(root) as long_lived:
        _old_state(long_lived)
        _kill(root, _replace, prefix=b"replace ")
        note = _note(root)
        _old_state(long_lived)
        assert _note(root) == note
        long_lived.put(SCOPE, B, _write("x", 1), ANY)
        assert _note(root) == b""
        assert [d.revision for d in long_lived.history(SCOPE, A, "a")] == [1, 2, 3]
        assert long_lived.get(SCOPE, A, "h").revision == 2
        assert [p.code for p in verify(long_lived, SCOPE, counts=VerifyCounts())] == []


# -- a journal whose revision files are gone -----------------------------------
def _revision_file(root: Path, kind: str, key: str, revision: int) -> Path:
    return _scope_dir(root) / "docs" / kind / f"{key}.r{revision}"


@pytest.mark.parametrize("damage", ["missing", "torn"])
def test_a_journal_with_lost_revision_files_does_not_wedge_the_scope(
    root: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``durability="process"`` does not fsync the revision files or the journal:
    after a power loss the journal may be on disk and a revision file not (or torn).
    No head moved, so the commit never became visible. The scope must stay usable:
    reads and writes of it must not raise forever."""
    _kill(root, _mixed_commit)
    lost = _revision_file(root, A, "a", 2)
    if damage == "missing":
        lost.unlink()
    else:
        lost.write_bytes(lost.read_bytes()[:20])
    with FilesystemBackend(root) as fresh:  # opening settles it: the commit never happened
        _old_state(fresh)  # verify included: the commit's other files are gone
        assert _note(root) == b""
        assert _flag(root) == 0
        fresh.put(SCOPE, A, _write("n", 1), MUST_NOT_EXIST)
        assert fresh.put(SCOPE, A, _write("a", 1), at_revision(1)).revision == 2
    # not silently: the discarded commit is logged (scope and size, no keys)
    (warning,) = [r for r in caplog.records if r.name == "dq_stores.filesystem._recovery"]
    assert warning.levelname == "WARNING"
    assert "discarded" in warning.getMessage()
    assert str(SCOPE) in warning.getMessage()


def test_a_journal_with_a_lost_revision_after_heads_moved_raises_clearly(root: Path) -> None:
    """Some heads of the commit already moved (the flag raised) and another's
    revision file is gone: the commit is partly visible and cannot be completed.
    That is damage: ``IntegrityError`` naming the key and what to do."""
    _kill(root, _mixed_commit)
    child = multiprocessing.get_context("fork").Process(target=_kill_in_replay, args=(str(root),))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL  # a's head moved, the rest not
    _revision_file(root, A, "n", 1).unlink()
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError, match="'n': revision 1"):
        fresh.count(SCOPE, A)


# -- the dq CLI over the filesystem default -------------------------------------
def test_the_cli_opens_and_rolls_forward(root: Path) -> None:
    _kill(root, _mixed_commit)
    env = {**os.environ, "DQ_HOME": str(root)}
    run = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", "verify"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 document(s)" in run.stdout, run.stdout
    assert "0 problem(s)" in run.stdout, run.stdout
    assert _note(root) == b""
    with FilesystemBackend(root) as fresh:
        _new_state(fresh)


@pytest.mark.parametrize(
    ("lost", "torn"),
    [(".h.x2", False), (".a.x2", False), (".a.x3", True)],
    ids=["new-key-last", "old-key-middle", "torn"],
)
def test_a_replace_journal_with_a_lost_staged_file_does_not_wedge_the_scope(
    root: Path, lost: str, torn: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """As for a commit journal: a ``replace`` journal whose staged file is gone
    (a power loss with ``durability="process"``: no ``syncfs`` before it) and no
    key swapped yet must not make every read and write of the scope fail, nor
    splice the old revision file into the new history: it is discarded, loudly."""
    _kill(root, _replace, prefix=b"replace ")
    kind_dir = _scope_dir(root) / "docs" / A
    assert (kind_dir / lost).exists(), "the replace staged nothing"
    if torn:
        (kind_dir / lost).write_bytes((kind_dir / lost).read_bytes()[:40])
    else:
        (kind_dir / lost).unlink()
    with FilesystemBackend(root) as fresh:
        _old_state(fresh)  # opening settles it; verify included: no staged file is left
        assert _note(root) == b""
        assert _flag(root) == 0
        fresh.put(SCOPE, A, _write("q", 1), ANY)
    (warning,) = [r for r in caplog.records if r.name == "dq_stores.filesystem._recovery"]
    assert warning.levelname == "WARNING"
    assert "discarded" in warning.getMessage()
    assert str(SCOPE) in warning.getMessage()
    assert "'a'" not in warning.getMessage()  # no keys in logs
    assert "'h'" not in warning.getMessage()


def _kill_after_first_swap(root: str) -> None:
    """Replay the decided replace and die right after key ``a``'s head moved."""
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if str(dst).endswith("/a.head"):
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace  # type: ignore[assignment]
    FilesystemBackend(root).count(SCOPE, A)  # opening rolls the journal forward
    os._exit(3)  # not reached


def test_a_replace_journal_with_a_lost_file_after_a_key_was_swapped_raises_clearly(
    root: Path,
) -> None:
    """Key ``a`` was swapped, then ``h``'s staged file is gone: the batch is partly
    applied and cannot be completed — ``IntegrityError`` naming the file, and
    nothing else is touched (no half-applied key gets worse)."""
    _kill(root, _replace, prefix=b"replace ")
    child = multiprocessing.get_context("fork").Process(
        target=_kill_after_first_swap, args=(str(root),)
    )
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    kind_dir = _scope_dir(root) / "docs" / A
    (kind_dir / ".h.x2").unlink()
    before = sorted(p.name for p in kind_dir.iterdir())
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError, match=r"\.h\.x2"):
        fresh.count(SCOPE, A)
    assert sorted(p.name for p in kind_dir.iterdir()) == before
    assert _note(root).startswith(b"replace ")
