"""Hostile checks of two changes: the filesystem store's indexed reads (query, search,
iter_documents) deciding sealed or missing revision files under the lock, and the
``dq`` CLI ignoring SIGINT once a command has ended.

A retention job pruning while someone queries is legitimate use: a key's write and
``prune_history`` landing between a query's index snapshot and its read of the file
the snapshot names is a writer that moved on (a retry), never ``IntegrityError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ConflictError, IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import backend as fs_backend
from dq_stores.search import search_fields

ACME = Scope("acme", "prod")
KIND = "contract"


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    fields = search_fields(title=["findable"])
    return DocumentWrite(key, body, content_hash(body), IndexEntry(fields, f"{n:03d}"))


_READS: dict[str, Callable[[FilesystemBackend], list[StoredDocument]]] = {
    "query": lambda b: list(b.query(ACME, KIND).items),
    "search": lambda b: [h.document for h in b.search(ACME, KIND, "findable").hits],
    "iter_documents": lambda b: list(b.iter_documents(ACME, KIND)),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[FilesystemBackend, FilesystemBackend]]:
    """A reader and, for the moves made under its read, a second backend on the root."""
    with (
        FilesystemBackend(tmp_path, durability="process") as reader,
        FilesystemBackend(tmp_path, durability="process") as other,
    ):
        for n in (1, 2):
            reader.put(ACME, KIND, _write("a", n), ANY)
        reader.put(ACME, KIND, _write("b", 1), ANY)
        yield reader, other


@pytest.mark.parametrize("read", sorted(_READS))
def test_a_revision_pruned_after_the_snapshot_is_a_retry_not_integrity_error(
    store: tuple[FilesystemBackend, FilesystemBackend],
    monkeypatch: pytest.MonkeyPatch,
    read: str,
) -> None:
    """The snapshot names ``a`` at revision 2; before its file is read, a writer puts
    revision 3 and a retention job prunes everything older (revision 2's file is
    gone). The read goes again and serves revision 3."""
    reader, other = store
    original = fs_backend.read_file_mode
    moved = []

    def read_file_mode(path: str) -> tuple[bytes, int]:
        if path.endswith("/a.r2") and not moved:
            moved.append(other.put(ACME, KIND, _write("a", 3), ANY).revision)
            assert other.prune_history(ACME, KIND, "a", 3) == 2
        return original(path)

    monkeypatch.setattr(fs_backend, "read_file_mode", read_file_mode)
    docs = _READS[read](reader)

    assert moved == [3]
    assert sorted((d.key, d.revision) for d in docs) == [("a", 3), ("b", 1)]


def test_a_missing_head_revision_file_is_still_integrity_error(
    store: tuple[FilesystemBackend, FilesystemBackend],
) -> None:
    """The retry is for a writer that moved on: with the head still at the revision
    whose file is gone, the indexed reads raise."""
    reader, _ = store
    (Path(reader._layout.root) / "acme" / "prod" / "docs" / KIND / "b.r1").unlink()
    for read in _READS.values():
        with pytest.raises(IntegrityError):
            read(reader)


def _history(key: str, length: int) -> list[StoredDocument]:
    out = []
    for rev in range(1, length + 1):
        w = _write(key, 100 + rev)
        at = datetime(2020, 1, 2, tzinfo=UTC) + timedelta(hours=rev)
        out.append(StoredDocument(ACME, KIND, key, rev, w.body, w.sha256, w.index, at))
    return out


def test_prune_history_racing_a_history_replace_removes_no_revision_of_the_new_history(
    store: tuple[FilesystemBackend, FilesystemBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``a`` has 5 revisions; ``prune_history(a, 5)`` reads them, and before it takes
    the lock another process replaces ``a``'s history with 4 new revisions (head 4).
    The prune unlinked ``a.r4``..``a.r1`` of the *new* history (``get`` then raised
    ``IntegrityError``: revision 4 is missing); now it removes nothing and raises
    ``ConflictError``, and the new history is whole (ADR 0014, item 2)."""
    pruner, other = store
    for n in (3, 4, 5):
        pruner.put(ACME, KIND, _write("a", n), ANY)
    original = pruner._prune_history

    def prune_after_a_replace(
        scope: Scope, kind: str, key: str, keep_from: int, seen: Mapping[int, str]
    ) -> None:
        other.restore_many(ACME, KIND, [("a", _history("a", 4))], replace=True)
        original(scope, kind, key, keep_from, seen)

    monkeypatch.setattr(pruner, "_prune_history", prune_after_a_replace)
    with pytest.raises(ConflictError, match="replaced while it was being pruned"):
        pruner.prune_history(ACME, KIND, "a", 5)

    with FilesystemBackend(pruner._layout.root, durability="process") as fresh:
        assert fresh.get(ACME, KIND, "a").body == _history("a", 4)[-1].body
        assert [d.revision for d in fresh.history(ACME, KIND, "a")] == [1, 2, 3, 4]


def test_history_read_while_writes_and_a_prune_move_past_its_head_is_never_empty(
    store: tuple[FilesystemBackend, FilesystemBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``history`` reads ``a``'s head (revision 2); before it reads the pruned-history
    marker, another process puts revisions 3 and 4 and prunes everything before 4.
    Expected: the history as it now is (revision 4), read again; it was ``[]`` — and
    ``prune_history`` of a live key raised ``IndexError`` on it (two retention jobs,
    or a get-then-prune, racing writers)."""
    reader, other = store
    original = reader._first_kept
    moved = []

    def first_kept_after_a_prune(scope: Scope, kind: str, kind_dir: str, key: str) -> int:
        if not moved:
            for n in (3, 4):
                moved.append(other.put(ACME, KIND, _write("a", n), ANY).revision)
            other.prune_history(ACME, KIND, "a", 4)
        return original(scope, kind, kind_dir, key)

    monkeypatch.setattr(reader, "_first_kept", first_kept_after_a_prune)
    assert [d.revision for d in reader.history(ACME, KIND, "a")] == [4]
    assert moved == [3, 4]


_IN_A_THREAD = """
import sys, threading
from dq_registries.cli import main
sys.argv[0] = "dq"
codes = []
def run():
    try:
        main()
    except SystemExit as exc:
        codes.append(exc.code)
thread = threading.Thread(target=run)
thread.start()
thread.join()
print(codes)
"""


@pytest.mark.parametrize(
    ("args", "code", "err"),
    [
        (("--version",), 0, ""),
        (("contracts", "list", "--json", "--config", "dq.yaml"), 0, ""),
        (("contracts", "publish", "missing.json", "--config", "dq.yaml"), 1, "error: "),
    ],
)
def test_dq_main_run_outside_the_main_thread_ends_with_its_exit_code(
    tmp_path: Path, args: tuple[str, ...], code: int, err: str
) -> None:
    """``main`` called from another thread (an embedding runner): ignoring SIGINT at
    its end is the main thread's business (``signal.signal`` raises ``ValueError``
    elsewhere); the command's own exit code comes out, no traceback."""
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(tmp_path / "store")}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    done = subprocess.run(
        [sys.executable, "-c", _IN_A_THREAD, *args],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"[{code}]", done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(err), done.stderr
