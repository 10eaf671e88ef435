"""Hostile checks of ``restore_many``'s pruned-start marker check made again under
the write's exclusion, and of ``dq verify``'s pruned-history marker checks, round
"breaks".

A marker's ``pruned_through`` was read with ``int(...)``: ``"2"``, ``2.5`` and
``true`` read as revisions 2, 2 and 1, and ``1e400`` (JSON for infinity) raised a
bare ``OverflowError`` — on SQL translated to "the write may or may not have been
applied". And ``dq verify`` stopped at a malformed marker on the port walk (memory,
SQLite, PostgreSQL) and on Azure when the key's revision 1 was gone, and reported
nothing on Azure when it was still there; the filesystem store reported it as the
key's ``history`` problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.canonical import content_hash
from dq_metadata.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, DocumentWrite, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.retention import PRUNED_KIND, marker_key
from dq_stores.testing._helpers import KIND, SCOPE, doc
from dq_stores.testing.restore_replace import _made
from dq_stores.verify import verify

#: ``pruned_through`` values that are not a JSON integer >= 1 (the marker is 2)
_NOT_A_REVISION = [b"1e400", b'"2"', b"2.5", b"true", b"0"]


def _open(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> DocumentBackend:
    if name == "memory":
        return MemoryBackend()
    if name == "filesystem":
        return FilesystemBackend(tmp_path / "store", durability="process")
    if name == "azure":
        from dq_stores.azure_blob import AzureBlobBackend

        container = request.getfixturevalue("azure_container")
        connection = request.getfixturevalue("azure_connection_string")
        return AzureBlobBackend(container, connection_string=connection)
    sql = pytest.importorskip("dq_stores.sql")
    if name == "sqlite":
        return sql.SqlBackend(f"sqlite:///{tmp_path / 'dq.sqlite3'}")
    return sql.SqlBackend(request.getfixturevalue("postgres_url"), pool_size=1, max_overflow=0)


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgres", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    with _open(request.param, request, tmp_path) as opened:
        yield opened


def _pruned_source() -> MemoryBackend:
    """``k`` with revisions 1..5, pruned through 2."""
    source = MemoryBackend()
    source.restore_many(SCOPE, KIND, [("k", _made("k", 5, "src"))])
    source.prune_history(SCOPE, KIND, "k", 3)
    return source


def _tampered(marker: StoredDocument, value: bytes) -> StoredDocument:
    body = marker.body.replace(b'"pruned_through":2', b'"pruned_through":' + value)
    assert body != marker.body
    return StoredDocument(
        SCOPE, PRUNED_KIND, marker.key, 1, body, content_hash(body), marker.index, marker.written_at
    )


@pytest.mark.parametrize("value", _NOT_A_REVISION)
@pytest.mark.parametrize("name", ["memory", "filesystem", "sqlite", "postgres"])
def test_a_restore_under_a_marker_that_is_not_one_is_integrity_error(
    request: pytest.FixtureRequest, tmp_path: Path, name: str, value: bytes
) -> None:
    """A tampered archive's marker of ``k`` (its sha256 fitting the body) with
    ``pruned_through`` not an integer: the restore of ``k``'s history 3..5 after it
    is refused as damage (``IntegrityError``), nothing written — checked before the
    write and again under its exclusion."""
    source = _pruned_source()
    name_of = marker_key(KIND, "k")
    marker = _tampered(source.history(SCOPE, PRUNED_KIND, name_of)[0], value)
    with _open(name, request, tmp_path) as backend:
        backend.restore_many(SCOPE, PRUNED_KIND, [(name_of, [marker])])
        with pytest.raises(IntegrityError, match="is malformed"):
            backend.pruned_prefix(SCOPE, KIND, "k")
        history = [("k", source.history(SCOPE, KIND, "k"))]
        with pytest.raises(IntegrityError, match="is malformed"):
            backend.restore_many(SCOPE, KIND, history)
        if name != "memory":  # memory's check under its lock is this same method
            backend._check_pruned_start = lambda *args: None  # type: ignore[method-assign]
            try:  # the check under the write's exclusion alone
                with pytest.raises(IntegrityError, match="is malformed"):
                    backend.restore_many(SCOPE, KIND, history, replace=True)
            finally:
                del backend._check_pruned_start
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "k")


@pytest.mark.parametrize("pruned", [False, True], ids=["revision-1-kept", "pruned"])
@pytest.mark.parametrize("value", [b"1e400", b"0"])
def test_verify_reports_a_malformed_marker_once_and_goes_on(
    backend: DocumentBackend, value: bytes, pruned: bool
) -> None:
    """``k``'s marker says ``pruned_through`` 1e400 or 0: one ``history`` problem of
    ``k`` (not a verify that stops, nor nothing, nor the problem twice) on every
    backend, whether ``k`` still has revision 1 (a history from revision 1 restored
    after the marker) or was pruned (the marker rewritten)."""
    name_of = marker_key(KIND, "k")
    if pruned:
        for n in range(5):
            backend.put(SCOPE, KIND, doc("k", n), ANY)
        backend.prune_history(SCOPE, KIND, "k", 3)
        marker = _tampered(backend.get(SCOPE, PRUNED_KIND, name_of), value)
        write = DocumentWrite(name_of, marker.body, marker.sha256, marker.index)
        backend.put(SCOPE, PRUNED_KIND, write, ANY)
    else:
        marker = _tampered(_pruned_source().history(SCOPE, PRUNED_KIND, name_of)[0], value)
        backend.restore_many(SCOPE, PRUNED_KIND, [(name_of, [marker])])
        backend.restore_many(SCOPE, KIND, [("k", _made("k", 5, "src"))])
    problems = [(p.code, p.kind, p.key, p.message) for p in verify(backend)]
    assert problems == [("history", KIND, "k", f"pruned-history marker {name_of!r} is malformed")]


@pytest.mark.parametrize("name", ["memory", "filesystem", "sqlite", "postgres", "azure"])
def test_stores_pruned_as_dq_gc_prunes_verify_clean(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    """Held: no false positive of the marker-past-head check — a key pruned to its
    tombstone (``dq gc``: marker through N-1, head N), put again, deleted and pruned
    again; a key pruned and then deleted; one pruned and then replaced from revision 1
    (where a backend replaces), then pruned to a tombstone again."""
    with _open(name, request, tmp_path) as backend:

        def put(key: str, n: int) -> None:
            for i in range(n):
                backend.put(SCOPE, KIND, doc(key, f"{key}{i}"), ANY)

        def gc(key: str) -> None:
            backend.prune_history(SCOPE, KIND, key, backend.delete(SCOPE, KIND, key).revision)

        put("a", 4)
        gc("a")
        put("a", 2)
        assert list(verify(backend)) == []
        gc("a")
        put("b", 4)
        backend.prune_history(SCOPE, KIND, "b", 4)
        backend.delete(SCOPE, KIND, "b")
        assert list(verify(backend)) == []
        if backend.replaces_atomically:
            put("c", 4)
            backend.prune_history(SCOPE, KIND, "c", 4)
            backend.restore_many(SCOPE, KIND, [("c", _made("c", 2, "new"))], replace=True)
            assert backend.pruned_prefix(SCOPE, KIND, "c") is None
            gc("c")
        assert list(verify(backend)) == []


def test_postgres_restore_errors_in_its_transaction_leave_the_connection_clean(
    postgres_url: str,
) -> None:
    """Held: on one pooled connection, a restore of pruned keys refused inside its
    explicit transaction (a head already there; a marker moved since the port's
    check) leaves the connection usable; a mixed batch (revision 1 and 3) and a
    replace of 1000 pruned keys (the marker IN list) work."""
    sql = pytest.importorskip("dq_stores.sql")
    keys = [f"k{i:04d}" for i in range(1000)]
    source = MemoryBackend()
    source.restore_many(SCOPE, KIND, [(k, _made(k, 3, "src")) for k in keys])
    for key in keys[1:]:
        source.prune_history(SCOPE, KIND, key, 2)
    markers = [(marker_key(KIND, k), source.history(SCOPE, PRUNED_KIND, marker_key(KIND, k))) for k in keys[1:]]  # fmt: skip
    histories: list[tuple[str, Any]] = [(k, source.history(SCOPE, KIND, k)) for k in keys]
    with sql.SqlBackend(postgres_url, pool_size=1, max_overflow=0) as backend:
        backend.restore_many(SCOPE, PRUNED_KIND, markers)
        assert backend.restore_many(SCOPE, KIND, histories) == 1000
        with pytest.raises(ConflictError):
            backend.restore_many(SCOPE, KIND, histories[:2])
        backend.put(SCOPE, KIND, doc("z", 1), ANY)
        assert backend.restore_many(SCOPE, KIND, histories, replace=True) == 1000
        backend.prune_history(SCOPE, KIND, keys[1], 3)
        backend._check_pruned_start = lambda *args: None  # type: ignore[method-assign]
        try:
            with pytest.raises(ValidationError):
                backend.restore_many(SCOPE, KIND, histories[:2], replace=True)
        finally:
            del backend._check_pruned_start
        assert backend.put(SCOPE, KIND, doc("z", 2), ANY).revision == 2
        assert list(verify(backend)) == []
