"""A committer killed at *every* step: each commit is whole or absent for every reader.

The child process counts the system calls of the write protocol (``pwrite``,
``fsync``, ``link``, ``replace``, ``ftruncate``, ``unlink``) and SIGKILLs itself
just before the k-th one, for k = 1, 2, ... until a commit completes. After each
kill a reader that had the scope open all along, and then a fresh one, must see
both documents at their old revision or both at the new one, through ``get``,
``query``, ``count`` and ``iter_documents`` alike.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
from pathlib import Path

from tests.support.kill_steps import sigkill_at_call

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.documents import DocumentWrite, FieldFilter, IndexEntry, Put, Query, at_revision
from dq_stores.filesystem import FilesystemBackend

SCOPE = Scope("steps", "test")
KINDS = ("acct", "audit")
_CALLS = ("pwrite", "fsync", "link", "replace", "ftruncate", "unlink")


def _write(key: str, value: int) -> DocumentWrite:
    body = canonical_json({"key": key, "value": value})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"v": (str(value),)}, key))


def _commit_dying_at(root: str, step: int, value: int) -> None:
    backend = FilesystemBackend(root)
    ops = [Put(kind, _write("k", value + 1), at_revision(value)) for kind in KINDS]
    backend.get(SCOPE, KINDS[0], "k")  # open the scope before counting
    sigkill_at_call(step, _CALLS)
    backend.commit(SCOPE, ops)


def _state(backend: FilesystemBackend) -> int:
    """The value both documents hold, asserting every read path agrees."""
    values = set()
    for kind in KINDS:
        doc = backend.get(SCOPE, kind, "k")
        value = json.loads(doc.body)["value"]
        assert doc.revision == value
        (listed,) = backend.query(SCOPE, kind, Query()).items
        assert (listed.revision, listed.body) == (doc.revision, doc.body)
        assert backend.count(SCOPE, kind, [FieldFilter("v", (str(value),))]) == 1
        values.add(value)
    iterated = {(d.kind, d.revision) for d in backend.iter_documents(SCOPE)}
    assert iterated == {(kind, next(iter(values))) for kind in KINDS}
    assert len(values) == 1, f"a commit is visible in part: {values}"
    return values.pop()


def test_a_commit_killed_at_any_step_is_whole_or_absent(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    long_lived = FilesystemBackend(root)
    long_lived.commit(SCOPE, [Put(kind, _write("k", 1)) for kind in KINDS])
    ctx = multiprocessing.get_context("fork")
    value, outcomes = 1, []
    for step in range(1, 60):
        child = ctx.Process(target=_commit_dying_at, args=(root, step, value))
        child.start()
        child.join(30)
        seen = _state(long_lived)  # the reader that stayed open: it replays a raised flag
        with FilesystemBackend(root) as fresh:  # opening the scope replays any note
            after = _state(fresh)
        # Killed between the journal and raising the flag, the commit is decided but not
        # applied: the long-lived reader may still see the old state until someone
        # replays; never a newer one, and from then on the same one.
        assert seen <= after
        assert _state(long_lived) == after
        assert after in (value, value + 1)
        outcomes.append(after - value)
        value = after
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL
    else:
        raise AssertionError("the commit never completed")
    assert 0 in outcomes, outcomes  # killed before its commit point: absent
    assert 1 in outcomes[:-1], outcomes  # killed after it: rolled forward
    assert [
        p.name
        for p in (tmp_path / "store/steps/test/docs/acct").iterdir()
        if p.name.startswith(".")
    ] == []
    long_lived.close()
