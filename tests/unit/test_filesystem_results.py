"""Filesystem results store: streamed, verified, and confined to its scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.filesystem import FilesystemResultsStore
from dq_stores.results import ResultRef

SCOPE = Scope("acme", "prod")


def test_results_live_under_the_scope_with_encoded_names(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(SCOPE, "../run", "a/b.csv", [b"x" * 10, b"y" * 5])
    path = Path(ref.uri.removeprefix("file://"))
    assert path.is_relative_to(tmp_path / "acme" / "prod" / "results")
    assert path.read_bytes() == b"x" * 10 + b"y" * 5
    assert ref.size == 15
    assert b"".join(store.open(SCOPE, ref)) == b"x" * 10 + b"y" * 5


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "https://example.com/acme/prod/results/run/name",
        "{results}/../../../../other/x",
        "{results}/run/.upload-1234",
        "{results}/run",
    ],
)
def test_refs_outside_this_scopes_results_are_refused(tmp_path: Path, uri: str) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(SCOPE, "run", "name", [b"data"])
    results = ref.uri.rsplit("/", 2)[0]
    forged = ResultRef(uri.format(results=results), ref.size, ref.sha256)
    with pytest.raises(ValidationError):
        list(store.open(SCOPE, forged))
    with pytest.raises(ValidationError):
        store.delete(SCOPE, forged)


def test_a_ref_from_another_scope_is_refused(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(Scope("acme", "dev"), "run", "name", [b"data"])
    with pytest.raises(ValidationError):
        list(store.open(SCOPE, ref))


def test_a_tampered_object_fails_at_the_end_of_the_stream(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    ref = store.upload(SCOPE, "run", "name", [b"a" * 100])
    Path(ref.uri.removeprefix("file://")).write_bytes(b"b" * 100)
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
