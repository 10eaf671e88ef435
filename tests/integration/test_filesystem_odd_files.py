"""Not a regular file where a record belongs: ``get`` never blocks or streams.

A FIFO named ``<key>.head`` (or ``.r<N>``) made ``open`` wait for a writer that
never comes — on both read paths, and again under the lock; a symlink to
``/dev/zero`` read until memory ran out. Anything but a regular file is now not
read at all: it is a damaged record (``IntegrityError``), like any foreign file.
A symbolic link loop in a record's place, or a file where a directory of the store
belongs, was ``StoreUnavailableError`` (retrying cannot help): now ``IntegrityError``
too; a root that is not a usable directory is ``MisconfiguredError`` up front.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, MisconfiguredError
from dq_metadata.scope import Scope
from dq_registries.cli._app import app
from dq_stores.documents import ANY, DocumentWrite
from dq_stores.filesystem import FilesystemBackend
from dq_stores.verify import verify

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


def _loop(path: Path) -> None:
    path.symlink_to(path.name)


ODD: dict[str, Callable[[Path], None]] = {
    "fifo": _fifo,
    "dir": _directory,
    "dev-zero": _zero,
    "symlink-loop": _loop,
}


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


def _file(path: Path) -> None:
    path.write_bytes(b"not a directory")


@pytest.mark.parametrize("odd", ["file", "symlink-loop"])
@pytest.mark.parametrize("where", ["t/e/docs/k", "t/e/docs", "t/e", "t"])
def test_a_directory_of_the_store_replaced_is_damage_for_every_operation(
    tmp_path: Path, where: str, odd: str
) -> None:
    """Every read and write of the scope then says the store was changed outside dq
    (``IntegrityError``, ``dq verify``), never "unavailable" (a retry cannot help) nor
    an empty answer (``count`` answers from the index alone, by design); ``dq verify``
    reports the scope ``unreadable`` and exits 1 — except for a whole tenant
    directory, which the walk cannot tell from any other file in the root."""
    root = tmp_path / "store"
    backend, _head = _store(root, 1)
    backend.close()
    victim = root / where
    os.rename(victim, tmp_path / "moved-away")
    {"file": _file, "symlink-loop": _loop}[odd](victim)
    body = canonical_json({"n": 9})
    fresh = FilesystemBackend(root, durability="process")
    operations: dict[str, Callable[[], object]] = {
        "get": lambda: fresh.get(SCOPE, "k", "key"),
        "put": lambda: fresh.put(SCOPE, "k", DocumentWrite("new", body, content_hash(body)), ANY),
        "query": lambda: fresh.query(SCOPE, "k"),
        "history": lambda: fresh.history(SCOPE, "k", "key"),
        "iter_documents": lambda: list(fresh.iter_documents(SCOPE, "k")),
    }
    for name, operation in operations.items():
        with pytest.raises(IntegrityError, match="changed outside dq") as raised:
            operation()
        assert str(tmp_path) not in str(raised.value), name  # no path: tenant names
    if where == "t":
        return
    assert [p.code for p in verify(fresh, SCOPE)] == ["unreadable"]
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    result = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "t/e: [unreadable] the check stopped: " in result.output
    assert "changed outside dq" in result.output


@pytest.mark.parametrize("odd", ["file", "symlink-loop", "file-in-path"])
def test_a_root_that_is_not_a_usable_directory_is_misconfigured(tmp_path: Path, odd: str) -> None:
    root = tmp_path / "root"
    if odd == "file":
        _file(root)
    elif odd == "symlink-loop":
        _loop(root)
    else:
        _file(tmp_path / "file")
        root = tmp_path / "file" / "root"
    with pytest.raises(MisconfiguredError, match="filesystem root"):
        FilesystemBackend(root)
