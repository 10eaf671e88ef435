"""Results-store port: large job-run results as streamed, hash-verified objects.

A run keeps only the :class:`ResultRef`, a **logical** name of the object in its
store — scope, run id, name, size, content type and sha256 — never a URL, a path
or a credential. The store resolves it at read time with its *current*
credentials and location, so a reference survives a rotated SAS, a new password
or another working directory (ADR 0012).

The port does everything that is the same for every adapter: it validates the
scope, names and references, hashes uploads while they stream, and verifies size
and sha256 at the end of every download. Adapters implement three hooks —
:meth:`ResultsStore._write`, :meth:`ResultsStore._read` and
:meth:`ResultsStore._remove` — that only move bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from dq_metadata.errors import IntegrityError, MisconfiguredError, Problem, ValidationError
from dq_metadata.models.job_run import ResultObject
from dq_metadata.scope import Scope
from dq_stores.keys import decode_key, encode_key, is_digest_name, validate_key

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "HashingChunks",
    "ResultRef",
    "ResultsStore",
    "StoredObject",
    "is_long_name",
    "iter_chunks",
    "original_name",
    "resolve_digest",
    "storage_name",
]

CHUNK_SIZE = 4 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"_h[0-9a-f]{64}")


def _name_problem(value: object, field: str) -> Problem | None:
    try:
        validate_key(value)
    except ValidationError:
        return Problem(field, "must be a non-empty string without NUL, at most 1024 bytes")
    return None


@dataclass(frozen=True, slots=True)
class ResultRef:
    """The logical name of a stored result and what its bytes must hash to.

    ``scope`` + ``run_id`` + ``name`` name the object inside its results store;
    ``size`` (bytes), ``sha256`` (lower-case hex) and ``content_type`` describe it.
    Where the bytes are (a path, a blob URL, a row) is the store's business.

    ``digest_name`` marks a reference read from an old-style ``uri`` that held only
    the digest of a long name: ``name`` is then that digest (``_h`` + sha256 hex of
    the unknown name), which stores resolve to the object stored under it.

    Raises:
        ValidationError: on construction, when any field is malformed.
    """

    scope: Scope
    run_id: str
    name: str
    size: int
    sha256: str
    content_type: str = DEFAULT_CONTENT_TYPE
    digest_name: bool = False

    def __post_init__(self) -> None:
        problems = [
            p
            for p in (_name_problem(self.run_id, "run_id"), _name_problem(self.name, "name"))
            if p is not None
        ]
        if self.digest_name is not False and not (
            self.digest_name is True and isinstance(self.name, str) and _DIGEST.fullmatch(self.name)
        ):
            problems.append(Problem("name", "with digest_name must be '_h' + 64 hex digits"))
        if not isinstance(self.scope, Scope):
            problems.append(Problem("scope", "must be a Scope"))
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            problems.append(Problem("size", "must be an int ≥ 0"))
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            problems.append(Problem("sha256", "must be 64 lower-case hex digits"))
        if not isinstance(self.content_type, str) or not self.content_type.strip():
            problems.append(Problem("content_type", "must be a non-empty string"))
        if problems:
            raise ValidationError("invalid result reference", problems)

    @classmethod
    def of(cls, obj: ResultObject) -> ResultRef:
        """The reference a run document's :class:`ResultObject` stands for.

        Old-style objects (a ``uri``) were already read into the logical form by the model.

        Raises:
            ValidationError: the object names an invalid scope or key.
        """
        scope = Scope(obj.tenant, obj.environment)
        return cls(
            scope, obj.run_id, obj.name, obj.size, obj.sha256, obj.content_type, obj.digest_name
        )

    def to_object(self) -> ResultObject:
        """The :class:`ResultObject` a run document keeps for this reference."""
        return ResultObject(
            tenant=self.scope.tenant,
            environment=self.scope.environment,
            run_id=self.run_id,
            name=self.name,
            size=self.size,
            sha256=self.sha256,
            content_type=self.content_type,
            digest_name=self.digest_name,
        )

    def describe(self) -> str:
        """A human-readable name for messages: ``result 'r.json' of run 'run-1' in acme/prod``."""
        where = f"{self.scope.tenant}/{self.scope.environment}"
        what = f"stored as digest {self.name!r}" if self.digest_name else repr(self.name)
        return f"result {what} of run {self.run_id!r} in {where}"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object a results store holds, as :meth:`ResultsStore.iter_objects` lists it:
    its logical name (``scope``, ``run_id``, ``name``), ``size`` in bytes as stored
    now, and ``written_at`` (UTC).

    ``digest_name`` is true for an object stored under the digest of a long name
    whose original the store does not know (written before stores recorded it):
    ``name`` is then the digest, as in a :class:`ResultRef` with ``digest_name``.
    """

    scope: Scope
    run_id: str
    name: str
    size: int
    written_at: datetime
    digest_name: bool = False
    #: Like ``digest_name`` for the run id (a long run id the store has no record of).
    digest_run_id: bool = False

    def describe(self) -> str:
        where = f"{self.scope.tenant}/{self.scope.environment}"
        what = f"stored as digest {self.name!r}" if self.digest_name else repr(self.name)
        return f"result {what} of run {self.run_id!r} in {where}"


def storage_name(ref: ResultRef | StoredObject) -> str:
    """The name-part of ``ref`` in stores that name objects by :func:`encode_key`
    (filesystem, Azure): the encoding, or the digest a ``digest_name`` reference holds."""
    return ref.name if ref.digest_name else encode_key(ref.name)


def resolve_digest(ref: ResultRef, names: Iterable[str]) -> ResultRef:
    """``ref`` (``digest_name``) as the one of ``names`` (the run's object names in a
    store keyed by the name itself) whose digest it holds; without one, the object
    named by the digest itself (a copy made under it when the name was unknown)."""
    for name in names:
        if encode_key(name) == ref.name:
            return dataclasses.replace(ref, name=name, digest_name=False)
    return dataclasses.replace(ref, digest_name=False)


def original_name(part: str, record: Callable[[], str | None]) -> tuple[str, bool] | None:
    """The run id or name a store that names objects by :func:`encode_key` (filesystem,
    Azure) wrote as the name-part ``part``, and whether it is only known as its digest;
    ``None`` for a part such a store never writes.

    A plain part decodes to its name (``None`` if it does not decode). A digest part
    (``_h…``) is the original that ``record()`` returns — what the store kept beside
    the object, ``None`` without one; called only for digest parts — when it encodes
    to ``part``. Without a record (written before records existed) or with one naming
    another key, it is the digest itself (``(part, True)``) if ``part`` is a
    well-formed digest (``_h`` + 64 lowercase hex digits), else ``None``."""
    if not is_digest_name(part):
        try:
            return decode_key(part), False
        except ValueError:
            return None
    original = record()
    if original is not None and encode_key(original) == part:
        return original, False
    return (part, True) if _DIGEST.fullmatch(part) else None


def is_long_name(name: str) -> bool:
    """Whether ``name`` is stored under a digest by :func:`encode_key` (so a store that
    names objects by it must keep the original beside the object)."""
    return is_digest_name(encode_key(name))


def iter_chunks(
    source: BinaryIO | Iterable[bytes], chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Yield non-empty byte chunks from a binary file object or an iterable of bytes."""
    if hasattr(source, "read"):
        while chunk := source.read(chunk_size):
            yield chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)


class HashingChunks:
    """An iterator over an upload's chunks that counts and hashes them as they pass.

    ``size`` and ``sha256`` are final once the iterator is exhausted (adapters that
    store the digest with the object, like Azure's metadata, read it then).
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self._digest.update(chunk)
        self.size += len(chunk)
        return chunk

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class ResultsStore(ABC):
    """Port for large result objects, addressed by scope, run id and name.

    ``upload``, ``open`` and ``delete`` are the same for every adapter (validation,
    hashing, verification); adapters implement ``_write``, ``_read`` and ``_remove``.
    """

    def upload(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        source: BinaryIO | Iterable[bytes],
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> ResultRef:
        """Stream ``source`` into the store; return the object's logical reference.

        Nothing is visible under the final name until the upload is complete.
        Re-uploading the same (scope, run_id, name) replaces the object.

        Raises:
            ValidationError: bad scope, run id, name or content type; nothing written.
            StoreUnavailableError: the store could not be reached after retries.
        """
        problems = [
            p
            for p in (_name_problem(run_id, "run_id"), _name_problem(name, "name"))
            if p is not None
        ]
        if not isinstance(scope, Scope):
            problems.append(Problem("scope", "must be a Scope"))
        if not isinstance(content_type, str) or not content_type.strip():
            problems.append(Problem("content_type", "must be a non-empty string"))
        if problems:
            raise ValidationError("invalid result upload", problems)
        chunks = HashingChunks(iter_chunks(source))
        self._write(scope, run_id, name, chunks, content_type)
        return ResultRef(scope, run_id, name, chunks.size, chunks.sha256, content_type)

    def open(self, scope: Scope, ref: ResultRef) -> Iterator[bytes]:
        """Stream the object's bytes back in chunks, verifying size and sha256.

        Raises:
            ValidationError: ``ref`` is not a ``ResultRef`` of ``scope``.
            NotFoundError: no such object (raised by this call, before any chunk).
            IntegrityError: raised at the end of the stream if the bytes do not
                match ``ref.sha256`` / ``ref.size``.
        """
        self._check(scope, ref)
        return _verified(self._read(self._resolve(ref)), ref)

    def delete(self, scope: Scope, ref: ResultRef) -> None:
        """Remove the object; a missing object is not an error.

        Raises:
            ValidationError: ``ref`` is not a ``ResultRef`` of ``scope``.
        """
        self._check(scope, ref)
        self._remove(self._resolve(ref))

    def iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        """Every complete object of ``scope``, by logical name (for retention: ``dq gc``).

        Raises:
            ValidationError: ``scope`` is not a ``Scope``.
            MisconfiguredError: the store cannot list its objects.
        """
        if not isinstance(scope, Scope):
            raise ValidationError("invalid scope", [Problem("scope", "must be a Scope")])
        return self._iter_objects(scope)

    def delete_object(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        *,
        digest_name: bool = False,
        digest_run_id: bool = False,
    ) -> None:
        """Remove the object ``name`` of ``run_id`` whatever its bytes (an orphan found by
        :meth:`iter_objects`; pass its ``digest_name`` and ``digest_run_id``); a missing
        object is not an error.

        Raises:
            ValidationError: a bad scope, run id or name.
        """
        # Only the name matters to removal; size and digest are placeholders.
        ref = ResultRef(scope, run_id, name, 0, "0" * 64, digest_name=digest_name)
        if digest_run_id:
            self._check(scope, ref)
            if not _DIGEST.fullmatch(run_id):
                raise ValidationError(
                    "invalid run id", [Problem("run_id", "with digest_run_id must be a digest")]
                )
            self._remove_in_digest_run(ref)
        else:
            self.delete(scope, ref)

    def _remove_in_digest_run(self, ref: ResultRef) -> None:
        """Remove ``ref`` whose ``run_id`` is the digest a listing reported (adapters
        whose listings report ``digest_run_id`` override this)."""
        raise MisconfiguredError(f"{type(self).__name__} lists no digest run ids")

    def _resolve(self, ref: ResultRef) -> ResultRef:
        """``ref`` as this adapter finds it. Adapters that name objects by
        :func:`storage_name` take a ``digest_name`` reference as it is (this default);
        adapters keyed by the name itself override it to look up the long name whose
        digest it holds (and keep the reference when none has)."""
        return ref

    def _iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        """List the complete objects of ``scope`` (adapters that can list override this)."""
        raise MisconfiguredError(f"{type(self).__name__} cannot list its objects")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and handles."""

    @staticmethod
    def _check(scope: Scope, ref: ResultRef) -> None:
        if not isinstance(scope, Scope):
            raise ValidationError("invalid scope", [Problem("scope", "must be a Scope")])
        if not isinstance(ref, ResultRef):
            raise ValidationError(
                "invalid result reference", [Problem("ref", "must be a ResultRef")]
            )
        if ref.scope != scope:
            raise ValidationError(
                "invalid result reference",
                [Problem("ref.scope", f"belongs to another scope than {scope}")],
            )

    # -- adapter hooks ---------------------------------------------------------
    @abstractmethod
    def _write(
        self, scope: Scope, run_id: str, name: str, chunks: HashingChunks, content_type: str
    ) -> None:
        """Store ``chunks`` under (scope, run_id, name) atomically, replacing any object.

        Names are validated keys (any string without NUL): encode them for storage.
        ``chunks.size``/``chunks.sha256`` are final once ``chunks`` is exhausted.
        Leave nothing behind on failure.
        """

    @abstractmethod
    def _read(self, ref: ResultRef) -> Iterator[bytes]:
        """Return an iterator over the object's bytes (raise ``NotFoundError`` now)."""

    @abstractmethod
    def _remove(self, ref: ResultRef) -> None:
        """Remove the object; a missing one is not an error."""


def _verified(chunks: Iterator[bytes], ref: ResultRef) -> Iterator[bytes]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if size != ref.size or digest.hexdigest() != ref.sha256:
        raise IntegrityError(
            f"{ref.describe()} does not match its recorded size and sha256: "
            "the stored object was changed or replaced; re-run the job to produce it again"
        )
