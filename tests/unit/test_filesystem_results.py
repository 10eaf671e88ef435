"""Filesystem results store: streamed, verified, and confined to its scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.filesystem import FilesystemResultsStore
from dq_stores.keys import encode_key
from dq_stores.results import ResultRef

SCOPE = Scope("acme", "prod")


def _path(root: Path, ref: ResultRef) -> Path:
    return root / "acme" / "prod" / "results" / encode_key(ref.run_id) / encode_key(ref.name)


def test_results_live_under_the_scope_with_encoded_names(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(SCOPE, "../run", "a/b.csv", [b"x" * 10, b"y" * 5])
    assert (ref.run_id, ref.name) == ("../run", "a/b.csv")
    path = _path(tmp_path, ref)
    assert path.is_relative_to(tmp_path / "acme" / "prod" / "results")
    assert path.read_bytes() == b"x" * 10 + b"y" * 5
    assert ref.size == 15
    assert b"".join(store.open(SCOPE, ref)) == b"x" * 10 + b"y" * 5


@pytest.mark.parametrize(
    ("run_id", "name"),
    [("../../..", "etc"), ("run", ".upload-1234"), ("run", "../../other/x"), ("..", "..")],
)
def test_hostile_names_never_leave_the_scopes_results(
    tmp_path: Path, run_id: str, name: str
) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(SCOPE, run_id, name, [b"data"])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [_path(tmp_path, ref)]
    assert b"".join(store.open(SCOPE, ref)) == b"data"
    store.delete(SCOPE, ref)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_results_are_read_from_the_stores_root_not_a_recorded_path(tmp_path: Path) -> None:
    first = FilesystemResultsStore(tmp_path / "a")
    ref = first.upload(SCOPE, "run", "name", [b"data"])
    (tmp_path / "a").rename(tmp_path / "b")
    assert b"".join(FilesystemResultsStore(tmp_path / "b").open(SCOPE, ref)) == b"data"


def test_a_ref_from_another_scope_is_refused(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(Scope("acme", "dev"), "run", "name", [b"data"])
    with pytest.raises(ValidationError):
        list(store.open(SCOPE, ref))


def test_a_tampered_object_fails_at_the_end_of_the_stream(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(SCOPE, "run", "name", [b"a" * 100])
    _path(tmp_path, ref).write_bytes(b"b" * 100)
    stream = store.open(SCOPE, ref)
    with pytest.raises(IntegrityError):
        list(stream)


def test_a_failed_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        store.upload(SCOPE, "run", "name", broken())
    run_dir = tmp_path / "acme" / "prod" / "results" / "run"
    assert list(run_dir.iterdir()) == []
