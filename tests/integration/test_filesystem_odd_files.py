"""Not a regular file where a record belongs: ``get`` never blocks or streams.

A FIFO named ``<key>.head`` (or ``.r<N>``) made ``open`` wait for a writer that
never comes — on both read paths, and again under the lock; a symlink to
``/dev/zero`` read until memory ran out. Anything but a regular file is now not
read at all: it is a damaged record (``IntegrityError``), like any foreign file.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite
from dq_stores.filesystem import FilesystemBackend

pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("t", "e")


@contextmanager
def _within(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block blocks."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


ODD: dict[str, Callable[[Path], None]] = {"fifo": _fifo, "dir": _directory, "dev-zero": _zero}


def _store(root: Path, revisions: int) -> tuple[FilesystemBackend, Path]:
    backend = FilesystemBackend(root, durability="process")
    for n in range(revisions):
        body = canonical_json({"n": n})
        backend.put(SCOPE, "k", DocumentWrite("key", body, content_hash(body)), ANY)
    (head,) = root.glob("t/e/docs/k/*.head")
    return backend, head


@pytest.mark.parametrize("odd", sorted(ODD))
def test_a_head_that_is_not_a_regular_file_is_damaged(tmp_path: Path, odd: str) -> None:
    backend, head = _store(tmp_path, 2)
    head.unlink()
    ODD[odd](head)
    fresh = FilesystemBackend(tmp_path, durability="process")
    with _within(10):
        for reader in (backend, fresh):
            with pytest.raises(IntegrityError):
                reader.get(SCOPE, "k", "key")


@pytest.mark.parametrize("odd", sorted(ODD))
def test_a_revision_file_that_is_not_a_regular_file_is_damaged(tmp_path: Path, odd: str) -> None:
    """The head gone and ``.r2`` replaced: the read goes to the lock path's history."""
    backend, head = _store(tmp_path, 2)
    revision = Path(str(head)[: -len(".head")] + ".r2")
    head.unlink()
    revision.unlink()
    ODD[odd](revision)
    with _within(10):
        with pytest.raises(IntegrityError):
            FilesystemBackend(tmp_path, durability="process").get(SCOPE, "k", "key")
        with pytest.raises(IntegrityError):
            backend.history(SCOPE, "k", "key")
