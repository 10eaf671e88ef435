"""A history replace killed at *every* step: each key wholly old or wholly new.

As ``test_filesystem_commit_steps``: the child counts the system calls of the
write protocol and SIGKILLs itself just before the k-th one, for k = 1, 2, ...
until a replace completes. After each kill a reader that had the scope open all
along, and then a fresh one, must see both keys with the old histories or both
with the new ones, through every read path, and ``verify`` must be clean. Then
a journal a power loss "brings back" after the keys moved on must not undo them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.kill_steps import sigkill_at_call

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.verify import verify

SCOPE = Scope("steps", "replace")
KIND = "doc"
KEYS = ("a", "b/c")
_AT = datetime(2020, 1, 2, tzinfo=UTC)


def _history(key: str, version: int) -> list[StoredDocument]:
    n = {(0, "a"): 3, (0, "b/c"): 1, (1, "a"): 2, (1, "b/c"): 4}[(version, key)]
    out = []
    for rev in range(1, n + 1):
        at = _AT + timedelta(hours=10 * version + rev)
        if version == 1 and key == "a" and rev == n:
            out.append(StoredDocument(SCOPE, KIND, key, rev, b"", "", IndexEntry(), at, True))
            continue
        body = canonical_json({"key": key, "version": version, "rev": rev})
        index = IndexEntry({"v": (str(version),)}, f"{rev:03d}")
        out.append(StoredDocument(SCOPE, KIND, key, rev, body, content_hash(body), index, at))
    return out


def _shape(docs: list[StoredDocument]) -> list[tuple[object, ...]]:
    return [(d.revision, d.sha256, d.written_at, d.deleted) for d in docs]


def _replace_dying_at(root: str, step: int, version: int) -> None:
    backend = FilesystemBackend(root)
    backend.history(SCOPE, KIND, "a")  # open the scope before counting
    sigkill_at_call(step)
    batch = [(key, _history(key, version)) for key in KEYS]
    backend.restore_many(SCOPE, KIND, batch, replace=True)


def _state(backend: FilesystemBackend) -> int:
    """The version both keys hold, asserting every read path agrees."""
    versions = set()
    for key in KEYS:
        shape = _shape(backend.history(SCOPE, KIND, key))
        found = [v for v in (0, 1) if shape == _shape(_history(key, v))]
        assert found, f"{key!r} is no version whole: {shape}"
        versions.add(found[0])
    assert len(versions) == 1, f"a replace is visible in part: {versions}"
    (version,) = versions
    live = [h[-1] for h in (_history(k, version) for k in KEYS) if not h[-1].deleted]
    assert backend.count(SCOPE, KIND, [FieldFilter("v", (str(version),))]) == len(live)
    assert backend.count(SCOPE, KIND, [FieldFilter("v", (str(1 - version),))]) == 0
    assert sorted(d.key for d in backend.iter_documents(SCOPE)) == sorted(d.key for d in live)
    for key in KEYS:
        head = _history(key, version)[-1]
        try:
            assert backend.get(SCOPE, KIND, key).sha256 == head.sha256
        except NotFoundError:
            assert head.deleted
    return version


def test_a_replace_killed_at_any_step_leaves_each_batch_old_or_new(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    long_lived = FilesystemBackend(root)
    long_lived.restore_many(SCOPE, KIND, [(key, _history(key, 0)) for key in KEYS])
    ctx = multiprocessing.get_context("fork")
    version, outcomes = 0, []
    for step in range(1, 80):
        child = ctx.Process(target=_replace_dying_at, args=(root, step, 1 - version))
        child.start()
        child.join(30)
        seen = _state(long_lived)  # replays a raised flag; may lag an unapplied journal
        with FilesystemBackend(root) as fresh:  # opening the scope replays any note
            after = _state(fresh)
            assert list(verify(fresh, SCOPE)) == []
        assert _state(long_lived) == after
        outcomes.append((seen, after != version))
        version = after
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL
    else:
        raise AssertionError("the replace never completed")
    changed = [moved for _, moved in outcomes]
    assert False in changed, outcomes  # killed before its commit point: nothing changed
    assert True in changed[:-1], outcomes  # killed after it: rolled forward
    leftovers = [p.name for p in (tmp_path / "store/steps/replace/docs" / KIND).iterdir()]
    assert [name for name in leftovers if name.startswith(".")] == []
    long_lived.close()


def test_a_replace_journal_brought_back_after_later_writes_undoes_nothing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    backend = FilesystemBackend(root)
    backend.restore_many(SCOPE, KIND, [(key, _history(key, 0)) for key in KEYS])
    lock = root / "steps/replace/.lock"
    journals: list[bytes] = []
    real = os.pwrite

    def keep(fd: int, data: bytes, offset: int) -> int:
        if data.startswith(b"replace "):
            journals.append(data)
        return real(fd, data, offset)

    os.pwrite = keep  # type: ignore[assignment]
    try:
        backend.restore_many(SCOPE, KIND, [(key, _history(key, 1)) for key in KEYS], replace=True)
    finally:
        os.pwrite = real  # type: ignore[assignment]
    body = canonical_json({"key": "b/c", "later": True})
    backend.put(SCOPE, KIND, DocumentWrite("b/c", body, content_hash(body)), ANY)  # revision 5
    backend.close()
    (journal,) = journals
    lock.write_bytes(journal)  # as if a power loss had lost the clearing of the note
    (root / "steps/replace/.applying").write_bytes(b"\x01" + bytes(63))
    with FilesystemBackend(root) as fresh:
        history = fresh.history(SCOPE, KIND, "b/c")
        assert [d.revision for d in history] == [1, 2, 3, 4, 5]  # moved on: left alone
        assert fresh.get(SCOPE, KIND, "b/c").body == body
        assert _shape(fresh.history(SCOPE, KIND, "a")) == _shape(_history("a", 1))
        assert list(verify(fresh, SCOPE)) == []
