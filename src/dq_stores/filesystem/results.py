"""Filesystem results store: large run results as files under the scope directory.

``<root>/<tenant>/<environment>/results/<run>/<name>`` with ``<run>`` and ``<name>``
from :func:`dq_stores.keys.encode_key`. Uploads stream into a temp file with an
incremental sha256, are fsynced and renamed into place (then the directory is
fsynced); downloads stream and verify size and sha256 at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from dq_metadata.errors import IntegrityError, NotFoundError, Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.filesystem._errors import translated
from dq_stores.filesystem._layout import Layout, fsync_dir, make_dirs
from dq_stores.keys import decode_key, encode_key, validate_key
from dq_stores.results import CHUNK_SIZE, ResultRef, ResultsStore, StoredObject, iter_chunks

__all__ = ["FilesystemResultsStore"]


class FilesystemResultsStore(ResultsStore):
    """Result objects as files; ``file://`` URIs."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._layout = Layout(root)

    def __repr__(self) -> str:
        return f"FilesystemResultsStore({self._layout.root!r})"

    def _results_dir(self, scope: Scope) -> str:
        if not isinstance(scope, Scope):
            raise ValidationError(f"scope must be a Scope, got {type(scope).__name__}")
        return os.path.join(self._layout.scope_dir(scope), "results")

    def upload(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        source: BinaryIO | Iterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> ResultRef:
        run_dir = os.path.join(self._results_dir(scope), encode_key(validate_key(run_id)))
        final = os.path.join(run_dir, encode_key(validate_key(name)))
        temp = os.path.join(run_dir, f".upload-{secrets.token_hex(8)}")
        digest = hashlib.sha256()
        size = 0
        with translated("upload"):
            make_dirs(run_dir)
            try:
                with open(temp, "wb") as out:
                    for chunk in iter_chunks(source):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, final)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                raise
            fsync_dir(run_dir)
        return ResultRef(_uri(final), size, digest.hexdigest(), content_type)

    def _path(self, scope: Scope, ref: ResultRef) -> str:
        base = self._results_dir(scope)
        parts = urlsplit(ref.uri)
        path = os.path.normpath(unquote(parts.path))
        if (
            parts.scheme != "file"
            or parts.netloc not in ("", "localhost")
            or os.path.dirname(os.path.dirname(path)) != base
            or os.path.basename(path).startswith(".")
        ):
            raise ValidationError(
                "invalid result reference",
                [Problem("uri", "does not name a result of this scope in this store")],
            )
        return path

    def open(self, scope: Scope, ref: ResultRef) -> Iterator[bytes]:
        path = self._path(scope, ref)
        with translated("open result"):
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
            except FileNotFoundError:
                raise NotFoundError("result object not found") from None
        return _verified(handle, ref)

    def delete(self, scope: Scope, ref: ResultRef) -> None:
        path = self._path(scope, ref)
        with translated("delete result"), contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        base = self._results_dir(scope)
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
                    path = os.path.join(folder, name)
                    try:
                        info = os.stat(path)
                    except FileNotFoundError:
                        continue
                    written = datetime.fromtimestamp(info.st_mtime, UTC)
                    ref = ResultRef(_uri(path), info.st_size, "")
                    yield StoredObject(ref, _run_id(run_dir), written)


def _run_id(name: str) -> str:
    """The run id of a results directory; ``""`` for a (one-way) digest name."""
    try:
        return decode_key(name)
    except ValueError:
        return ""


def _uri(path: str) -> str:
    # Names are encode_key output ([a-z0-9_-]) under a validated scope: nothing to quote.
    return "file://" + path


def _verified(handle: BinaryIO, ref: ResultRef) -> Iterator[bytes]:
    digest = hashlib.sha256()
    size = 0
    with handle, translated("read result"):
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            yield chunk
    if size != ref.size or digest.hexdigest() != ref.sha256:
        raise IntegrityError("result object does not match its recorded size and sha256")
