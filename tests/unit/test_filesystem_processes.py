"""Filesystem backend across threads, forks and processes; errors are ours."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import os
import pickle
import threading
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ConflictError, NotFoundError, StoreUnavailableError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, MUST_NOT_EXIST, DocumentWrite, at_revision
from dq_stores.filesystem import FilesystemBackend

SCOPE = Scope("acme", "prod")
KIND = "counter"


def write(key: str, value: int) -> DocumentWrite:
    body = canonical_json({"value": value})
    return DocumentWrite(
        key,
        body,
        content_hash(body),
    )


def increment(backend: FilesystemBackend, times: int) -> None:
    done = 0
    while done < times:
        head = backend.get(SCOPE, KIND, "c")
        value = int(head.body.decode().split(":")[1].rstrip("}"))
        try:
            backend.put(SCOPE, KIND, write("c", value + 1), at_revision(head.revision))
        except ConflictError:
            continue
        done += 1


def _hold_lock(lock_path: str, held: threading.Event, release: threading.Event) -> None:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.set()
    release.wait(30)
    os._exit(0)


def test_a_writer_waits_while_another_process_holds_the_scope_lock(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path)
    backend.put(SCOPE, KIND, write("c", 0), MUST_NOT_EXIST)
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path / "acme/prod/.lock"), held, release))
    holder.start()
    assert held.wait(10)
    writer = threading.Thread(target=backend.put, args=(SCOPE, KIND, write("c", 1), ANY))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive(), "the write went ahead without the lock"
    assert backend.get(SCOPE, KIND, "c").revision == 1
    release.set()
    writer.join(10)
    holder.join(10)
    assert backend.get(SCOPE, KIND, "c").revision == 2
    backend.close()


def _increment_in_child(backend: FilesystemBackend, times: int) -> None:
    increment(backend, times)  # the instance the parent already used, after fork


def test_an_instance_used_before_fork_keeps_writers_exclusive_after_it(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path)
    backend.put(SCOPE, KIND, write("c", 0), MUST_NOT_EXIST)
    assert backend.count(SCOPE, KIND) == 1  # parent holds an index connection and lock fd
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_increment_in_child, args=(backend, 15)) for _ in range(2)]
    for child in children:
        child.start()
    increment(backend, 15)
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    head = backend.get(SCOPE, KIND, "c")
    assert (head.body, head.revision) == (canonical_json({"value": 45}), 46)
    assert backend.count(SCOPE, KIND) == 1
    backend.close()


def test_threads_share_one_instance_without_losing_updates(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path)
    backend.put(SCOPE, KIND, write("c", 0), MUST_NOT_EXIST)
    threads = [threading.Thread(target=increment, args=(backend, 10)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert backend.get(SCOPE, KIND, "c").revision == 41
    backend.close()


def test_pickles_to_a_backend_on_the_same_root(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path)
    backend.put(SCOPE, KIND, write("c", 0), MUST_NOT_EXIST)
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.get(SCOPE, KIND, "c").revision == 1
    assert repr(clone) == repr(backend)


@pytest.mark.parametrize(
    "error", [errno.EIO, errno.ENOSPC, errno.EACCES, errno.EMFILE], ids=errno.errorcode.get
)
def test_os_errors_become_store_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    """An OS error a retry (or an operator) can cure is ``StoreUnavailableError``,
    naming the operation and the errno, not the path. (A path inside the store that
    only a changed tree explains is ``IntegrityError``; a root that is not a usable
    directory ``MisconfiguredError``: tests/integration/test_filesystem_odd_files.py.)"""
    backend = FilesystemBackend(tmp_path / "store")
    backend.put(SCOPE, KIND, write("c", 0), ANY)
    backend.close()

    def failing(*_args: object, **_kwargs: object) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "open", failing)
    monkeypatch.setattr(os, "listdir", failing)
    monkeypatch.setenv("DQ_FS_NATIVE", "0")  # the C read opens files itself
    fresh = FilesystemBackend(tmp_path / "store")
    fresh._read_head = None  # type: ignore[assignment]
    with pytest.raises(StoreUnavailableError, match=errno.errorcode[error]) as caught:
        fresh.put(SCOPE, KIND, write("d", 0), ANY)
    assert isinstance(caught.value.__cause__, OSError)
    assert str(tmp_path) not in str(caught.value)
    for read in (
        lambda: fresh.get(SCOPE, KIND, "c"),
        lambda: fresh.history(SCOPE, KIND, "c"),
        lambda: list(fresh.iter_scopes()),
    ):
        with pytest.raises(StoreUnavailableError, match=errno.errorcode[error]):
            read()


def test_close_is_idempotent_and_the_backend_reopens_on_use(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path)
    backend.put(SCOPE, KIND, write("c", 0), MUST_NOT_EXIST)
    backend.close()
    backend.close()
    assert backend.count(SCOPE, KIND) == 1
    backend.delete(SCOPE, KIND, "c")
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, KIND, "c")
    backend.close()
