"""Write a dq archive in one pass with bounded memory (see ``docs/archive-format.md``)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.archive import _guards
from dq_stores.archive._lines import BodyNormalizer, ScopeTally, encode_line
from dq_stores.documents import StoredDocument

__all__ = [
    "FORMAT",
    "READABLE_VERSIONS",
    "ROOT",
    "VERSION",
    "ArchiveWriter",
    "ResultMeta",
    "member_digest_prefix",
]

FORMAT = "dq-archive"
#: Written by this library. 2: a history may start at revision k > 1 (pruned by
#: ``dq gc``), and each scope's pruned-history markers come before its other kinds.
VERSION = 2
#: Read by this library: every version-1 archive is a valid version-2 archive.
READABLE_VERSIONS = (1, 2)
ROOT = "dq-archive"
CHUNK_BYTES = 4 * 1024 * 1024
_MODES = {".gz": "w|gz", ".tgz": "w|gz", ".xz": "w|xz", ".bz2": "w|bz2", ".tar": "w|"}


def member_digest_prefix(name: str, size: int) -> bytes:
    """What the archive digest hashes before each member's sha256: its name and size.

    ``archive_digest`` = sha256 over every member but the manifest, in order, of
    ``f"{name}\n{size}\n"`` followed by the 32-byte sha256 of the member's data.
    """
    return f"{name}\n{size}\n".encode()


def ResultMeta(
    run_id: str, name: str, sha256: str, size: int, content_type: str, ref: dict[str, Any]
) -> dict[str, Any]:
    """A results object's metadata line: what it is and the reference it had."""
    return {
        "run_id": run_id,
        "name": name,
        "sha256": sha256,
        "size": size,
        "content_type": content_type,
        "ref": ref,
    }


class _Hashing(io.RawIOBase):
    """A readable stream over byte chunks that hashes and counts what it hands out."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self.sha.update(self._pending[:n])
        self._pending = self._pending[n:]
        self.size += n
        return n

    def drain(self) -> None:
        while self.readinto(bytearray(1 << 16)):
            pass


class ArchiveWriter:
    """Streams histories and results objects into ``path`` (a tar, compressed by suffix).

    ``.tar.gz``/``.tgz`` → gzip, ``.tar.xz`` → xz, ``.tar.bz2`` → bzip2, else plain
    tar. Written to ``path.partial`` and renamed when :meth:`finish` succeeds;
    :meth:`abort` (or leaving the ``with`` block by an exception) removes it, so a
    failed export leaves nothing at ``path``.

    Memory: one documents member (≤ ``chunk_bytes`` plus one line) at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        normalize: BodyNormalizer | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.path = Path(path)
        mode = _MODES.get(self.path.suffix, "w|")
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._file = open(self._partial, "wb")  # noqa: SIM115 - closed by finish/abort
        self._tar = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115
            fileobj=self._file, mode=mode
        )
        self._normalize = normalize
        self._chunk_bytes = chunk_bytes
        self._digest = hashlib.sha256()
        self._mtime = int(time.time())
        self._buffer = bytearray()
        self._scope: Scope | None = None
        self._seq = 0
        self._results_seq = 0
        self.tallies: dict[Scope, ScopeTally] = {}
        self._scopes: list[Scope] = []

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()

    # -- members ---------------------------------------------------------------------
    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"{ROOT}/{name}")
        info.size = len(data)
        info.mtime = self._mtime
        info.mode = 0o644
        self._digest.update(member_digest_prefix(info.name, info.size))
        self._digest.update(hashlib.sha256(data).digest())
        self._tar.addfile(info, io.BytesIO(data))

    @staticmethod
    def _scope_dir(scope: Scope) -> str:
        return f"scopes/{scope.tenant}/{scope.environment}"

    def _flush(self) -> None:
        if self._buffer and self._scope is not None:
            self._seq += 1
            self._add(
                f"{self._scope_dir(self._scope)}/documents-{self._seq:06d}.jsonl",
                bytes(self._buffer),
            )
            self._buffer.clear()

    def _enter_scope(self, scope: Scope) -> ScopeTally:
        if scope != self._scope:
            if scope in self.tallies:
                raise ValidationError(
                    f"scope {scope} was already written; give each scope's data together"
                )
            self._flush()
            self._scope = scope
            self._seq = 0
            self._results_seq = 0
            self.tallies[scope] = ScopeTally()
        return self.tallies[scope]

    # -- public ------------------------------------------------------------------------
    def begin(self, scopes: Sequence[Scope], source: str = "") -> None:
        """Write the header: format, version, time and the scopes that follow."""
        self._scopes = list(scopes)
        header = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.now(UTC).isoformat(),
            "source": source,
            "scopes": [[s.tenant, s.environment] for s in self._scopes],
        }
        self._add("header.json", json.dumps(header, sort_keys=True).encode() + b"\n")

    def add_history(self, scope: Scope, history: Sequence[StoredDocument]) -> None:
        """Append one key's history (every revision, oldest first).

        Raises:
            ValidationError: its line would be longer than the archive's maximum
                record size (:data:`MAX_LINE_BYTES`), which readers refuse.
        """
        line = encode_line(history)
        if len(line) > _guards.MAX_LINE_BYTES:
            head = history[-1]
            raise ValidationError(
                f"the history of {head.kind} {head.key!r} in {scope} is {len(line)} bytes as an "
                f"archive line, over the archive's maximum record size of "
                f"{_guards.MAX_LINE_BYTES} bytes; export stopped"
            )
        tally = self._enter_scope(scope)
        self._buffer += line
        tally.add_history(history, self._normalize)
        if len(self._buffer) >= self._chunk_bytes:
            self._flush()

    def add_result(self, scope: Scope, meta: dict[str, Any], chunks: Iterable[bytes]) -> None:
        """Stream one results object (``meta`` from :func:`ResultMeta`) into the archive.

        It is written before any later history line of the scope, so an importer has
        the object before the run that references it.

        Raises:
            IntegrityError: the bytes do not have the size and sha256 ``meta`` states.
        """
        tally = self._enter_scope(scope)
        self._flush()
        self._results_seq += 1
        base = f"{self._scope_dir(scope)}/results/{self._results_seq:06d}"
        self._add(f"{base}.json", json.dumps(meta, sort_keys=True).encode() + b"\n")
        info = tarfile.TarInfo(f"{ROOT}/{base}.bin")
        info.size = int(meta["size"])
        info.mtime = self._mtime
        info.mode = 0o644
        stream = _Hashing(chunks)
        self._digest.update(member_digest_prefix(info.name, info.size))
        try:
            self._tar.addfile(info, stream)
        except OSError:
            if stream.size >= info.size:
                raise  # not a short object: a failure writing the archive
            stream.size = -1  # fewer bytes than recorded
        else:
            stream.drain()  # lets the source verify what it streamed; counts any surplus
        if stream.size != info.size or stream.sha.hexdigest() != meta["sha256"]:
            raise IntegrityError(
                f"results object {meta['name']!r} of run {meta['run_id']!r} in {scope} does "
                "not match its recorded size/sha256; export stopped"
            )
        self._digest.update(stream.sha.digest())
        tally.add_result(meta["sha256"], info.size, str(meta["content_type"]))

    def finish(self) -> dict[str, Any]:
        """Write the manifest, close and move the archive into place; the manifest."""
        self._flush()
        for scope in self._scopes:
            self.tallies.setdefault(scope, ScopeTally())
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "scopes": {f"{s.tenant}/{s.environment}": t.as_dict() for s, t in self.tallies.items()},
            "archive_digest": self._digest.hexdigest(),
        }
        self._add_manifest(manifest)
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._partial, self.path)
        return manifest

    def _add_manifest(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, sort_keys=True, indent=1).encode() + b"\n"
        info = tarfile.TarInfo(f"{ROOT}/manifest.json")
        info.size = len(data)
        info.mtime = self._mtime
        info.mode = 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def abort(self) -> None:
        """Discard the partial archive. Idempotent."""
        with contextlib.suppress(Exception):
            self._tar.close()
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._partial)
