"""A commit decided but not applied — its writer killed after the fsynced journal,
before raising the applying flag — is completed by the next writer or by the next
backend to open the scope, never by a read of a scope already open.

Every read path (``get``, ``get_revision``, ``history``, ``query``, ``count``,
``iter_documents``, ``search``, ``verify``) of a backend that had the scope open
leaves the journal alone and answers from the state before the commit, so a
reader that read some of the commit's keys never sees the rest at their new
revision with no writer running (ADR 0002, "Reads never complete a commit"). The
last test replays the race the crash test's ledger caught: a ``query`` whose
index snapshot is older than a head (a writer committed meanwhile) reaching the
lock while such a journal waits.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from tests.support import fs_journal

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores import search as search_core
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Put, Query, at_revision
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _index as index
from dq_stores.verify import VerifyCounts, verify

SCOPE = Scope("decided", "test")
KIND = "acct"


def _write(key: str, value: int) -> DocumentWrite:
    body = canonical_json({"key": key, "value": value})
    fields = {"v": (str(value),), search_core.SEARCH_TITLE_FIELD: (f"account{key}",)}
    return DocumentWrite(key, body, content_hash(body), IndexEntry(fields, key))


_note = functools.partial(fs_journal.note, scope=SCOPE)


def _transfer(backend: FilesystemBackend) -> None:
    """A transfer a -> b: the commit the tests leave decided but not applied."""
    a, b = backend.get(SCOPE, KIND, "a"), backend.get(SCOPE, KIND, "b")
    backend.commit(
        SCOPE,
        [
            Put(KIND, _write("a", 90), at_revision(a.revision)),
            Put(KIND, _write("b", 110), at_revision(b.revision)),
        ],
    )


def _kill_mid_commit(store: Path) -> None:
    fs_journal.kill_at_journal(store, SCOPE, _transfer)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    with FilesystemBackend(store) as backend:
        backend.put(SCOPE, KIND, _write("a", 100), ANY)
        backend.put(SCOPE, KIND, _write("b", 100), ANY)
        backend.put(SCOPE, KIND, _write("c", 7), ANY)
        backend.put(SCOPE, KIND, _write("c", 8), ANY)  # c at revision 2
    return store


def _values(backend: FilesystemBackend) -> dict[str, int]:
    return {
        k: int(backend.get(SCOPE, KIND, k).body.split(b'"value":')[1].rstrip(b"}")) for k in "ab"
    }


READS: dict[str, Any] = {
    "get": lambda b: [b.get(SCOPE, KIND, k) for k in "abc"],
    "get_revision": lambda b: [b.get_revision(SCOPE, KIND, k, 1) for k in "ab"],
    "history": lambda b: [b.history(SCOPE, KIND, k) for k in "ab"],
    "query": lambda b: b.query(SCOPE, KIND, Query(limit=1)),
    "count": lambda b: b.count(SCOPE, KIND),
    "iter_documents": lambda b: list(b.iter_documents(SCOPE)),
    "search": lambda b: b.search(SCOPE, KIND, "account"),
    "verify": lambda b: list(verify(b, SCOPE, counts=VerifyCounts())),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_no_read_completes_a_decided_commit(root: Path, read: str) -> None:
    with FilesystemBackend(root) as long_lived, FilesystemBackend(root) as other:
        assert _values(long_lived) == {"a": 100, "b": 100}  # both have the scope open
        READS[read](other)
        _kill_mid_commit(root)
        note = _note(root)
        assert _values(long_lived) == {"a": 100, "b": 100}
        READS[read](other)
        assert _note(root) == note
        assert _values(long_lived) == {"a": 100, "b": 100}
        # The next write, to any key of the scope, completes it before its own checks.
        long_lived.put(SCOPE, "other", _write("x", 1), ANY)
        assert _note(root) == b""
        assert _values(long_lived) == _values(other) == {"a": 90, "b": 110}
        assert [p.code for p in verify(long_lived, SCOPE, counts=VerifyCounts())] == []


def test_a_backend_opening_the_scope_completes_it(root: Path) -> None:
    _kill_mid_commit(root)
    with FilesystemBackend(root) as fresh:
        assert _values(fresh) == {"a": 90, "b": 110}
    assert _note(root) == b""


def test_a_query_with_an_older_snapshot_does_not_complete_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger race: the query's index rows predate ``c``'s last commit, so its
    read of ``c`` finds a next revision file and takes the lock — where the
    decided journal waits. It must read again, not roll the journal forward."""
    real_query, calls = index.query, []

    def older_snapshot(conn: Any, kind: str, query: Query, cursor: Any, fetch: int) -> Any:
        rows = real_query(conn, kind, query, cursor, fetch)
        calls.append(len(rows))
        if len(calls) == 1:  # as if read before c's revision 2 was committed
            return [(s, k, r - 1 if k == "c" else r) for s, k, r in rows]
        return rows

    with FilesystemBackend(root) as backend:
        assert _values(backend) == {"a": 100, "b": 100}
        _kill_mid_commit(root)
        note = _note(root)
        monkeypatch.setattr(index, "query", older_snapshot)
        page = backend.query(SCOPE, KIND, Query())
        assert [(d.key, d.revision) for d in page.items] == [("a", 1), ("b", 1), ("c", 2)]
        assert len(calls) == 2  # read again from a new snapshot
        assert _note(root) == note
        assert _values(backend) == {"a": 100, "b": 100}
