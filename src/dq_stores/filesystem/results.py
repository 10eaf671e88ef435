"""Filesystem results store: large run results as files under the scope directory.

``<root>/<tenant>/<environment>/results/<run>/<name>`` with ``<run>`` and ``<name>``
from :func:`dq_stores.keys.encode_key`. Uploads stream into a temp file, are
fsynced and renamed into place (then the directory is fsynced); downloads stream
(the port verifies size and sha256). References are logical: the path is derived
from this store's root at read time, never stored.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.filesystem._errors import translated
from dq_stores.filesystem._layout import Layout, fsync_dir, make_dirs
from dq_stores.keys import decode_key, encode_key
from dq_stores.results import CHUNK_SIZE, HashingChunks, ResultRef, ResultsStore, StoredObject

__all__ = ["FilesystemResultsStore"]


class FilesystemResultsStore(ResultsStore):
    """Result objects as files below ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._layout = Layout(root)

    def __repr__(self) -> str:
        return f"FilesystemResultsStore({self._layout.root!r})"

    def _run_dir(self, scope: Scope, run_id: str) -> str:
        return os.path.join(self._layout.scope_dir(scope), "results", encode_key(run_id))

    def _path(self, ref: ResultRef) -> str:
        return os.path.join(self._run_dir(ref.scope, ref.run_id), encode_key(ref.name))

    def _write(
        self, scope: Scope, run_id: str, name: str, chunks: HashingChunks, content_type: str
    ) -> None:
        run_dir = self._run_dir(scope, run_id)
        final = os.path.join(run_dir, encode_key(name))
        temp = os.path.join(run_dir, f".upload-{secrets.token_hex(8)}")
        with translated("upload"):
            make_dirs(run_dir)
            try:
                with open(temp, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
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

    def _remove(self, ref: ResultRef) -> None:
        with translated("delete result"), contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(ref))

    def _iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        base = os.path.join(self._layout.scope_dir(scope), "results")
        with translated("list results"):
            try:
                run_dirs = sorted(os.listdir(base))
            except FileNotFoundError:
                return
            for run_dir in run_dirs:
                folder = os.path.join(base, run_dir)
                try:
                    names = sorted(os.listdir(folder))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    if name.startswith("."):
                        continue  # an upload in progress (or abandoned mid-way)
                    try:
                        info = os.stat(os.path.join(folder, name))
                        run_id, decoded = decode_key(run_dir), decode_key(name)
                    except (FileNotFoundError, ValueError):
                        continue  # removed meanwhile, or not a name this store wrote
                    written = datetime.fromtimestamp(info.st_mtime, UTC)
                    yield StoredObject(scope, run_id, decoded, info.st_size, written)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle, translated("read result"):
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
