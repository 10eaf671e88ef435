"""Hostile checks of ``dq verify``'s port walk (``dq_stores.integrity``) and its
neighbours, round "breakr".

A pruned-history marker never covers its key's head: ``prune_history`` lowers
``keep_from_revision`` to the head, so a marker recording revisions ``1..n`` with
``n`` at or past the head is damage — a tampered archive brings one in through
``dq import`` (markers are restored first, like any key, and a history starting at
revision 1 is not checked against them). The filesystem store refuses to read such
a key; the port walk (memory, SQLite, PostgreSQL) accepted it, because revisions
below the first kept one may legitimately still be there (a prune writes its marker
before it removes anything).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.support.backends import backend_factory

from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.retention import PRUNED_KIND, PrunedPrefix, marker_key, marker_write
from dq_stores.testing._helpers import KIND, SCOPE, doc
from dq_stores.testing.restore_replace import _made
from dq_stores.verify import verify


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgres", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    with backend_factory(request, tmp_path)() as opened:
        yield opened


def _marker(pruned_through: int, anchor: str) -> list[StoredDocument]:
    write = marker_write(PrunedPrefix(KIND, "k", pruned_through, anchor, datetime.now(UTC)))
    at = datetime(2020, 1, 1, tzinfo=UTC)
    return [
        StoredDocument(SCOPE, PRUNED_KIND, write.key, 1, write.body, write.sha256, write.index, at)
    ]


@pytest.mark.parametrize("through", [5, 9])
def test_an_imported_marker_covering_the_head_is_reported(
    backend: DocumentBackend, through: int
) -> None:
    """An archive whose marker of ``k`` records revisions 1..5 (the head) or 1..9
    (past it), imported like ``dq import`` does — markers first, then ``k``'s whole
    history 1..5 — is one ``history`` problem of ``k``, on every backend."""
    history = _made("k", 5, "src")
    backend.restore_many(
        SCOPE, PRUNED_KIND, [(marker_key(KIND, "k"), _marker(through, history[-1].sha256))]
    )
    backend.restore_many(SCOPE, KIND, [("k", history)])
    problems = list(verify(backend))
    assert [(p.code, p.kind, p.key) for p in problems] == [("history", KIND, "k")]


@pytest.mark.parametrize("name", ["memory", "filesystem", "sqlite", "postgres"])
def test_a_prune_between_the_marker_check_and_the_restore_is_not_left_recorded(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    """``dq import --replace`` of ``k`` pruned at the source (marker through 2, then
    revisions 3..7) over a target ``k`` with revisions 1..5. Between the restore's
    marker check (through 2: fine) and its write, ``dq gc`` prunes the target's old
    ``k`` through 3 — a complete, legitimate prune, which moves the marker to 3.
    The restore then writes 3..7 under a marker through 3 (the old revision 3's
    anchor): the filesystem store reads ``history`` as 4..7 (revision 3 hidden),
    the others keep 3..7 but any export of ``k`` is refused on import ("marker has
    pruned_through=3, not 2"), and ``dq verify`` reports nothing anywhere. The restore
    must refuse (nothing written) or leave the marker through 2."""
    from dq_metadata.errors import ConflictError, ValidationError

    if name == "memory":
        backend: DocumentBackend = MemoryBackend()
    elif name == "filesystem":
        backend = FilesystemBackend(tmp_path / "store", durability="process")
    else:
        sql = pytest.importorskip("dq_stores.sql")
        url = (
            f"sqlite:///{tmp_path / 'dq.sqlite3'}"
            if name == "sqlite"
            else request.getfixturevalue("postgres_url")
        )
        backend = sql.SqlBackend(url)
    with backend:
        for n in range(5):
            backend.put(SCOPE, KIND, doc("k", n, tag="old"), ANY)
        source = MemoryBackend()
        source.restore_many(SCOPE, KIND, [("k", _made("k", 7, "src"))])
        source.prune_history(SCOPE, KIND, "k", 3)
        name_of = marker_key(KIND, "k")
        markers = [(name_of, source.history(SCOPE, PRUNED_KIND, name_of))]
        backend.restore_many(SCOPE, PRUNED_KIND, markers, replace=True)
        real = backend._check_pruned_start

        def then_prune(*args: object) -> None:
            real(*args)  # type: ignore[arg-type]
            assert backend.prune_history(SCOPE, KIND, "k", 4) == 3

        backend._check_pruned_start = then_prune  # type: ignore[method-assign]
        try:
            imported = source.history(SCOPE, KIND, "k")
            backend.restore_many(SCOPE, KIND, [("k", imported)], replace=True)
        except (ValidationError, ConflictError):
            pass  # refused: nothing written, the pruned old history stands
        else:
            prefix = backend.pruned_prefix(SCOPE, KIND, "k")
            assert prefix is not None
            assert prefix.pruned_through == 2
            assert [d.revision for d in backend.history(SCOPE, KIND, "k")] == [3, 4, 5, 6, 7]
        finally:
            del backend._check_pruned_start
        assert list(verify(backend)) == []


class _DeletedAgainDuringReRead(MemoryBackend):
    """``hot`` is deleted right after the listing saw it live (so the walk re-reads
    it), and while the re-read reads its pruned prefix it is put, deleted again and
    pruned up to that tombstone: the head reads as absent before and after, but the
    history the re-read holds is older than the marker it then reads."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0

    def history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        if key == "hot" and self.step == 0:
            self.step = 1
            self.delete(scope, kind, key)
        return super().history(scope, kind, key)

    def pruned_prefix(self, scope: Scope, kind: str, key: str) -> PrunedPrefix | None:
        if key == "hot" and self.step == 1:
            self.step = 2  # the walk's own read; the next is the re-read's
        elif key == "hot" and self.step == 2:
            self.step = 3
            self.put(scope, kind, doc("hot", 9), ANY)
            tombstone = self.delete(scope, kind, key)
            self.prune_history(scope, kind, key, tombstone.revision)
        return super().pruned_prefix(scope, kind, key)


def test_a_key_deleted_put_deleted_and_pruned_during_a_re_read_is_not_reported() -> None:
    """Absent before and after is not "no write between": the re-read's history must
    end at the same tombstone after its marker read too, or it is read again."""
    backend = _DeletedAgainDuringReRead()
    for n in range(3):
        backend.put(SCOPE, KIND, doc("hot", n), ANY)
    assert [str(p) for p in verify(backend)] == []
    assert backend.step == 3


class _MarkerDroppedAfterListing(MemoryBackend):
    """``k``'s pruned-history marker is listed, then — before the walk reads its
    history — a replace gives ``k`` a whole history, which drops the marker."""

    def __init__(self) -> None:
        super().__init__()
        self.replaced = False

    def history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        if kind == PRUNED_KIND and not self.replaced:
            self.replaced = True
            self.restore_many(scope, KIND, [("k", _made("k", 2, "new"))], replace=True)
        return super().history(scope, kind, key)


def test_a_marker_dropped_by_a_replace_after_the_listing_is_not_reported() -> None:
    """A replace from revision 1 removes a key's marker entirely (the only key that can
    go): a listed marker whose history then reads "not found" and which is absent is
    no damage — verify under ``dq import --replace`` reported "[history] … not found"."""
    backend = _MarkerDroppedAfterListing()
    for n in range(4):
        backend.put(SCOPE, KIND, doc("k", n), ANY)
    backend.prune_history(SCOPE, KIND, "k", 3)
    assert [str(p) for p in verify(backend)] == []
    assert backend.replaced
