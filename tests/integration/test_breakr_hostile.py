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

from dq_stores.backend import DocumentBackend
from dq_stores.documents import StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.retention import PRUNED_KIND, PrunedPrefix, marker_key, marker_write
from dq_stores.testing._helpers import KIND, SCOPE
from dq_stores.testing.restore_replace import _made
from dq_stores.verify import verify


@pytest.fixture(params=["memory", "filesystem", "sqlite", "postgres", "azure"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    if request.param == "filesystem":
        with FilesystemBackend(tmp_path / "store", durability="process") as fs:
            yield fs
        return
    if request.param == "azure":
        from dq_stores.azure_blob import AzureBlobBackend

        container = request.getfixturevalue("azure_container")
        connection = request.getfixturevalue("azure_connection_string")
        with AzureBlobBackend(container, connection_string=connection) as az:
            yield az
        return
    sql = pytest.importorskip("dq_stores.sql")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dq.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with sql.SqlBackend(url) as backend:
        yield backend


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
