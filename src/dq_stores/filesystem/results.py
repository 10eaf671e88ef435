"""Filesystem results store: large run results as files under the scope directory.

``<root>/<tenant>/<environment>/results/<run>/<name>`` with ``<run>`` and ``<name>``
from :func:`dq_stores.keys.encode_key`. Uploads stream into a temp file, are
fsynced and renamed into place (then the directory is fsynced); downloads stream
(the port verifies size and sha256). References are logical: the path is derived
from this store's root at read time, never stored.

A run id or name whose encoding is over ``MAX_NAME`` characters is stored under
its digest (``_h…``), which cannot be decoded: the original is kept in a **name
record**, ``.<digest>.name`` beside it (UTF-8, the whole content). The record is
written (temp file, fsync, rename, directory fsync) *before* the object or run
directory appears, so a crash never leaves an object a listing cannot name; a
record without its object is ignored and rewritten by the next upload. A digest
without a record (written before records existed) is listed as a digest
(``StoredObject.digest_name`` / ``digest_run_id``), never skipped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.filesystem._errors import translated
from dq_stores.filesystem._layout import Layout, fsync_dir, make_dirs
from dq_stores.keys import encode_key, is_digest_name
from dq_stores.results import (
    CHUNK_SIZE,
    HashingChunks,
    ResultRef,
    ResultsStore,
    StoredObject,
    original_name,
    storage_name,
)

__all__ = ["FilesystemResultsStore"]

#: Largest name record read back (a key is at most 1024 bytes of UTF-8).
_RECORD_MAX = 4096


class FilesystemResultsStore(ResultsStore):
    """Result objects as files below ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._layout = Layout(root)

    def __repr__(self) -> str:
        return f"FilesystemResultsStore({self._layout.root!r})"

    def _base(self, scope: Scope) -> str:
        return os.path.join(self._layout.scope_dir(scope), "results")

    def _path(self, ref: ResultRef, run_part: str | None = None) -> str:
        run = encode_key(ref.run_id) if run_part is None else run_part
        return os.path.join(self._base(ref.scope), run, storage_name(ref))

    def _write(
        self, scope: Scope, run_id: str, name: str, chunks: HashingChunks, content_type: str
    ) -> None:
        base = self._base(scope)
        run_part, name_part = encode_key(run_id), encode_key(name)
        run_dir = os.path.join(base, run_part)
        final = os.path.join(run_dir, name_part)
        temp = os.path.join(run_dir, f".upload-{secrets.token_hex(8)}")
        with translated("upload"):
            if is_digest_name(run_part) and _original(base, run_part) != (run_id, False):
                make_dirs(base)
                _write_record(base, run_part, run_id)  # before the run directory appears
            make_dirs(run_dir)
            try:
                with open(temp, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if is_digest_name(name_part):
                    _write_record(run_dir, name_part, name)  # before the object appears
                os.replace(temp, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                raise
            fsync_dir(run_dir)

    def _read(self, ref: ResultRef) -> Iterator[bytes]:
        with translated("open result"):
            try:
                handle = open(self._path(ref), "rb")  # noqa: SIM115 - closed by the generator
            except FileNotFoundError:
                raise NotFoundError(f"{ref.describe()} not found") from None
        return _chunks(handle)

    def _remove(self, ref: ResultRef, run_part: str | None = None) -> None:
        path = self._path(ref, run_part)
        with translated("delete result"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            folder, name_part = os.path.split(path)
            if is_digest_name(name_part):  # the object first: never an unnamed object
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_record_path(folder, name_part))

    def _remove_in_digest_run(self, ref: ResultRef) -> None:
        self._remove(ref, run_part=ref.run_id)

    def _iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        base = self._base(scope)
        with translated("list results"):
            try:
                run_dirs = sorted(d for d in os.listdir(base) if not d.startswith("."))
            except FileNotFoundError:
                return
            for run_dir in run_dirs:
                folder = os.path.join(base, run_dir)
                try:
                    names = sorted(os.listdir(folder))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                run_id = _original(base, run_dir)
                for name in names:
                    if name.startswith("."):
                        continue  # an upload in progress (or abandoned), or a name record
                    original = _original(folder, name)
                    try:
                        info = os.stat(os.path.join(folder, name))
                    except FileNotFoundError:
                        continue  # removed meanwhile
                    if run_id is None or original is None:
                        continue  # not a name this store wrote
                    yield StoredObject(
                        scope,
                        run_id[0],
                        original[0],
                        info.st_size,
                        datetime.fromtimestamp(info.st_mtime, UTC),
                        digest_name=original[1],
                        digest_run_id=run_id[1],
                    )


def _record_path(folder: str, part: str) -> str:
    return os.path.join(folder, f".{part}.name")


def _write_record(folder: str, part: str, original: str) -> None:
    """Durably record ``original`` as the key stored under the digest ``part``."""
    temp = os.path.join(folder, f".upload-{secrets.token_hex(8)}")
    try:
        with open(temp, "wb") as out:
            out.write(original.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, _record_path(folder, part))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(folder)


def _original(folder: str, part: str) -> tuple[str, bool] | None:
    """:func:`~dq_stores.results.original_name` of ``part`` in ``folder``, its
    original kept in the record file beside it (:func:`_write_record`)."""
    return original_name(part, functools.partial(_read_record, folder, part))


def _read_record(folder: str, part: str) -> str | None:
    try:
        with open(_record_path(folder, part), "rb") as record:
            return record.read(_RECORD_MAX).decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle, translated("read result"):
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
