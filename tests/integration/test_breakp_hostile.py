"""Hostile checks of ``prune_history`` refusing to prune a history a replace changed
under it (ADR 0014 item 2): the marker the refused prune wrote is taken back — only
if the marker is still its own, by revision *and* sha256.

A pruned-history marker's revision numbers do not name one marker for good: a replace
by a whole history (starting at revision 1) drops the marker's rows, so the next
pruner's marker is revision 1 again. A prune that wrote revision 1, was overtaken by
such a replace and a second, complete prune of the new history, then took back "its"
marker — revision 1, the second pruner's — and the second prune's removed revisions
were left without the marker that records them: ``history`` started at 3 with nothing
pruned (``verify`` reported it, the filesystem store refused to read the key). The
take-back now also compares the marker's sha256.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.backends import backend_factory
from tests.support.postgres import wait_for_lock_wait

from dq_metadata.errors import ConflictError, IntegrityError
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.retention import PRUNED_KIND, marker_key
from dq_stores.testing._helpers import KIND, SCOPE, doc
from dq_stores.testing.restore_replace import _made
from dq_stores.verify import verify


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    with backend_factory(request, tmp_path)() as opened:
        yield opened


def test_a_refused_prune_does_not_take_back_a_later_pruners_marker(
    backend: DocumentBackend,
) -> None:
    """P1 reads revisions 1..5 of ``k`` and writes its marker (revision 1, through 3).
    Before P1 checks and removes, a replace gives ``k`` a whole new history 1..6 (the
    marker's rows go with the old one) and P2 prunes it through 2: P2's marker is
    revision 1 again, revisions 1..2 are gone. P1 must give up (ConflictError) and
    leave P2's marker alone; the store must verify clean."""
    for n in range(5):
        backend.put(SCOPE, KIND, doc("k", n, tag="old"), ANY)
    new = _made("k", 6, "new")
    real = backend._prune_history
    other: list[int] = []
    calls: list[object] = []

    def overtaken(*args: object) -> None:
        calls.append(args)
        if len(calls) == 1:  # P1, before its check: the replace, then all of P2
            backend.restore_many(SCOPE, KIND, [("k", new)], replace=True)
            other.append(backend.prune_history(SCOPE, KIND, "k", 3))
        real(*args)  # type: ignore[arg-type]

    backend._prune_history = overtaken  # type: ignore[method-assign, assignment]
    try:
        with pytest.raises(ConflictError, match="replaced while it was being pruned"):
            backend.prune_history(SCOPE, KIND, "k", 4)
    finally:
        del backend._prune_history
    assert other == [2]
    prefix = backend.pruned_prefix(SCOPE, KIND, "k")
    assert prefix is not None
    assert prefix.pruned_through == 2
    assert [d.revision for d in backend.history(SCOPE, KIND, "k")] == [3, 4, 5, 6]
    assert list(verify(backend)) == []


@pytest.mark.parametrize("damage", ["loop", "file"])
def test_iter_histories_of_a_damaged_kind_directory_is_integrity_error(
    tmp_path: Path, damage: str
) -> None:
    """A kind directory replaced by a symbolic link loop (or by a file) makes every
    read of the kind ``IntegrityError`` naming no path; ``iter_histories`` (what
    ``dq export`` and ``dq migrate`` stream) raised the bare ``OSError`` with the
    tenant's path ("Too many levels of symbolic links: /…/acme/prod/docs/widget")."""
    root = tmp_path / "store"
    with FilesystemBackend(root, durability="process") as fs:
        fs.put(SCOPE, KIND, doc("k", 1), ANY)
        fs.put(SCOPE, "other", doc("o", 1), ANY)
        kind_dir = root / SCOPE.tenant / SCOPE.environment / "docs" / KIND
        for child in kind_dir.iterdir():
            child.unlink()
        kind_dir.rmdir()
        if damage == "loop":
            kind_dir.symlink_to(KIND)
        else:
            kind_dir.write_bytes(b"junk")
        with pytest.raises(IntegrityError, match="changed outside dq") as raised:
            list(fs.iter_histories(SCOPE))
        assert str(tmp_path) not in str(raised.value)
        assert SCOPE.tenant not in str(raised.value)


@pytest.mark.postgres
def test_a_postgres_replace_waiting_on_another_replace_of_its_key_wins(
    postgres_url: str, postgres_admin_url: str
) -> None:
    """Two replaces of one key at once: the second one's deletes wait for the first
    (its row lock on the head) and then, READ COMMITTED, do not see the head it
    inserted; its insert met that head and the whole batch failed with "restore writes
    only into keys that were never written" — a refusal a replace never owes, and
    with a message that is wrong for it. (SQLite and memory serialize the two.) The
    replace runs again and wins."""
    import psycopg

    sql = pytest.importorskip("dq_stores.sql")
    new = _made("k", 3, "new")
    with sql.SqlBackend(postgres_url) as backend:
        for n in range(2):
            backend.put(SCOPE, KIND, doc("k", n, tag="old"), ANY)
        outcome: list[BaseException | None] = []

        def replace() -> None:
            try:
                backend.restore_many(SCOPE, KIND, [("k", new)], replace=True)
            except BaseException as exc:  # reported by the assertion below
                outcome.append(exc)
            else:
                outcome.append(None)

        with psycopg.connect(postgres_admin_url) as first:  # the first replace, held open
            first.execute(
                "CREATE TEMP TABLE h AS SELECT * FROM dq_heads WHERE kind = %s AND key = 'k'",
                (KIND,),
            )
            first.execute("DELETE FROM dq_heads WHERE kind = %s AND key = 'k'", (KIND,))
            first.execute("INSERT INTO dq_heads SELECT * FROM h")
            second = threading.Thread(target=replace)
            second.start()
            # until the second replace waits on the head's lock
            wait_for_lock_wait(postgres_admin_url, "query LIKE 'DELETE FROM dq_heads%%'")
            first.commit()
        second.join(30)
        assert outcome == [None]
        history = backend.history(SCOPE, KIND, "k")
        assert [(d.revision, d.sha256) for d in history] == [(d.revision, d.sha256) for d in new]
        assert list(verify(backend)) == []


def test_a_refused_prune_does_not_take_back_the_marker_an_import_brought(
    backend: DocumentBackend,
) -> None:
    """``dq gc`` prunes ``k`` through 4 (its marker: revision 1) while ``dq import
    --replace`` brings ``k`` pruned at the source: the markers first (``k``'s is
    revision 1 there too, through 2), then ``k``'s revisions 3..7. The prune gives up
    — and must leave the imported marker alone, or revisions 1..2 read as lost."""
    backend.restore_many(SCOPE, KIND, [("k", _made("k", 6, "old"))])
    source = MemoryBackend()
    source.restore_many(SCOPE, KIND, [("k", _made("k", 7, "src"))])
    source.prune_history(SCOPE, KIND, "k", 3)
    marker = source.history(SCOPE, PRUNED_KIND, marker_key(KIND, "k"))
    imported = source.history(SCOPE, KIND, "k")
    real = backend._prune_history
    calls: list[object] = []

    def overtaken(*args: object) -> None:
        calls.append(args)
        if len(calls) == 1:  # after the prune wrote its marker: the import
            markers = [(marker_key(KIND, "k"), marker)]
            backend.restore_many(SCOPE, PRUNED_KIND, markers, replace=True)
            backend.restore_many(SCOPE, KIND, [("k", imported)], replace=True)
        real(*args)  # type: ignore[arg-type]

    backend._prune_history = overtaken  # type: ignore[method-assign, assignment]
    try:
        with pytest.raises(ConflictError, match="replaced while it was being pruned"):
            backend.prune_history(SCOPE, KIND, "k", 5)
    finally:
        del backend._prune_history
    prefix = backend.pruned_prefix(SCOPE, KIND, "k")
    assert prefix is not None
    assert prefix.pruned_through == 2
    assert [d.revision for d in backend.history(SCOPE, KIND, "k")] == [3, 4, 5, 6, 7]
    assert list(verify(backend)) == []
