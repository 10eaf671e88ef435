"""In-memory results store: the ``memory`` choice for run results (tests, ephemeral use)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.results import (
    CHUNK_SIZE,
    HashingChunks,
    ResultRef,
    ResultsStore,
    StoredObject,
    resolve_digest,
)

__all__ = ["MemoryResultsStore"]

_Key = tuple[str, str, str, str]


class MemoryResultsStore(ResultsStore):
    """Result objects kept as bytes in a dictionary keyed by (tenant, env, run id, name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[_Key, tuple[bytes, datetime]] = {}

    def __repr__(self) -> str:
        return "MemoryResultsStore()"

    @staticmethod
    def _key(scope: Scope, run_id: str, name: str) -> _Key:
        return (scope.tenant, scope.environment, run_id, name)

    def _write(
        self, scope: Scope, run_id: str, name: str, chunks: HashingChunks, content_type: str
    ) -> None:
        data = b"".join(chunks)
        with self._lock:
            self._objects[self._key(scope, run_id, name)] = (data, datetime.now(UTC))

    def _resolve(self, ref: ResultRef) -> ResultRef:
        if not ref.digest_name:
            return ref
        run = (ref.scope.tenant, ref.scope.environment, ref.run_id)
        with self._lock:
            names = [key[3] for key in self._objects if key[:3] == run]
        return resolve_digest(ref, names)

    def _read(self, ref: ResultRef) -> Iterator[bytes]:
        with self._lock:
            found = self._objects.get(self._key(ref.scope, ref.run_id, ref.name))
        if found is None:
            raise NotFoundError(f"{ref.describe()} not found")
        data = found[0]
        return (data[start : start + CHUNK_SIZE] for start in range(0, len(data), CHUNK_SIZE))

    def _remove(self, ref: ResultRef) -> None:
        with self._lock:
            self._objects.pop(self._key(ref.scope, ref.run_id, ref.name), None)

    def _iter_objects(self, scope: Scope) -> Iterator[StoredObject]:
        with self._lock:
            found = [
                StoredObject(scope, run_id, name, len(data), at)
                for (tenant, env, run_id, name), (data, at) in self._objects.items()
                if (tenant, env) == (scope.tenant, scope.environment)
            ]
        yield from sorted(found, key=lambda o: (o.run_id, o.name))
