"""Results-store port: large job-run results as streamed, hash-verified objects.

A run keeps only the :class:`ResultRef`; the bytes live in a filesystem directory
or an Azure Blob container. Uploads and downloads stream in chunks, so memory
stays bounded whatever the object's size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from dq_metadata.errors import MisconfiguredError
from dq_metadata.scope import Scope

__all__ = ["CHUNK_SIZE", "ResultRef", "ResultsStore", "StoredObject", "iter_chunks"]

CHUNK_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ResultRef:
    """Where a stored result lives and what it must hash to."""

    uri: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object a results store holds (``iter_objects``): its reference (the
    ``sha256`` is ``""`` where the store keeps none), run id and write time (UTC)."""

    ref: ResultRef
    run_id: str
    written_at: datetime


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


class ResultsStore(ABC):
    """Port for large result objects, addressed by scope, run id and name."""

    @abstractmethod
    def upload(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        source: BinaryIO | Iterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> ResultRef:
        """Stream ``source`` into the store; return its URI, size and sha256.

        Nothing is visible under the final name until the upload is complete.
        Re-uploading the same (run_id, name) replaces the object.

        Raises:
            ValidationError: bad scope, run id or name.
            StoreUnavailableError: the store could not be reached after retries.
        """

    @abstractmethod
    def open(self, scope: Scope, ref: ResultRef) -> Iterator[bytes]:
        """Stream the object's bytes back in chunks, verifying size and sha256.

        Raises:
            NotFoundError: no object at ``ref.uri``.
            IntegrityError: raised at the end of the stream if the bytes do not
                match ``ref.sha256`` / ``ref.size``.
            ValidationError: ``ref.uri`` does not belong to ``scope`` in this store.
        """

    @abstractmethod
    def delete(self, scope: Scope, ref: ResultRef) -> None:
        """Remove the object; a missing object is not an error."""

    def iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        """Every complete object of ``scope`` (for retention: ``dq gc``).

        Raises:
            MisconfiguredError: the store cannot list its objects.
        """
        raise MisconfiguredError(f"{type(self).__name__} cannot list its objects")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and handles."""
