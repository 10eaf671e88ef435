"""In-memory results store: the ``memory`` choice for run results (tests, ephemeral use)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import quote

from dq_metadata.errors import IntegrityError, NotFoundError, Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.keys import validate_key
from dq_stores.results import CHUNK_SIZE, ResultRef, ResultsStore, StoredObject, iter_chunks

__all__ = ["MemoryResultsStore"]


def _name(value: str, what: str) -> str:
    try:
        validate_key(value)
    except ValidationError:
        raise ValidationError(
            "invalid result name", [Problem(what, "must be a non-empty string without NUL")]
        ) from None
    return quote(value, safe="")


class MemoryResultsStore(ResultsStore):
    """Result objects kept as bytes in a dictionary keyed by URI."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, bytes] = {}
        self._written: dict[str, tuple[str, datetime, str]] = {}  # uri → run id, time, type

    @staticmethod
    def _prefix(scope: Scope) -> str:
        return f"memory://{scope.tenant}/{scope.environment}/"

    def _uri(self, scope: Scope, ref: ResultRef) -> str:
        if not isinstance(scope, Scope) or not ref.uri.startswith(self._prefix(scope)):
            raise ValidationError(
                "invalid result reference", [Problem("uri", "does not belong to this scope")]
            )
        return ref.uri

    def upload(
        self,
        scope: Scope,
        run_id: str,
        name: str,
        source: BinaryIO | Iterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> ResultRef:
        if not isinstance(scope, Scope):
            raise ValidationError("invalid scope", [Problem("scope", "must be a Scope")])
        uri = self._prefix(scope) + f"{_name(run_id, 'run_id')}/{_name(name, 'name')}"
        data = b"".join(iter_chunks(source))
        with self._lock:
            self._objects[uri] = data
            self._written[uri] = (run_id, datetime.now(UTC), content_type)
        return ResultRef(uri, len(data), hashlib.sha256(data).hexdigest(), content_type)

    def open(self, scope: Scope, ref: ResultRef) -> Iterator[bytes]:
        uri = self._uri(scope, ref)
        with self._lock:
            data = self._objects.get(uri)
        if data is None:
            raise NotFoundError(f"no result object at {uri}")
        return self._stream(data, ref)

    @staticmethod
    def _stream(data: bytes, ref: ResultRef) -> Iterator[bytes]:
        for start in range(0, len(data), CHUNK_SIZE):
            yield data[start : start + CHUNK_SIZE]
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise IntegrityError(f"result object {ref.uri} does not match its recorded sha256")

    def delete(self, scope: Scope, ref: ResultRef) -> None:
        uri = self._uri(scope, ref)
        with self._lock:
            self._objects.pop(uri, None)
            self._written.pop(uri, None)

    def iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        prefix = self._prefix(scope)
        with self._lock:
            found = [
                StoredObject(
                    ResultRef(uri, len(data), hashlib.sha256(data).hexdigest(), meta[2]),
                    meta[0],
                    meta[1],
                )
                for uri, data in self._objects.items()
                if uri.startswith(prefix) and (meta := self._written[uri])
            ]
        yield from sorted(found, key=lambda o: o.ref.uri)
