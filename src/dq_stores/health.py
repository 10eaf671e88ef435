"""Health checks of a deployment's stores (``dq doctor``): the result type and the
probes every backend gets (a scratch write/read/delete and a results round trip).

Technology-specific checks live beside their adapters
(``dq_stores.sql.health``, ``dq_stores.filesystem.health``,
``dq_stores.azure_blob.health``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.backend import RESERVED_TENANT, DocumentBackend
from dq_stores.documents import ANY, DocumentWrite, IndexEntry
from dq_stores.results import ResultsStore

__all__ = ["PROBE_SCOPE", "Check", "Status", "guarded", "probe_backend", "probe_results"]

Status = Literal["ok", "warning", "error"]

#: Scratch scope of the probes. Each probe writes the one key ``probe`` there,
#: deletes it and prunes its history: what remains is one tombstone (and its
#: pruned-prefix marker), whatever the number of doctor runs. Its tenant is
#: reserved: ``iter_scopes`` (whole-store verify, export, migrate) skips it.
PROBE_SCOPE = Scope(RESERVED_TENANT, "probe")
_PROBE_KIND = "doctor_probe"


@dataclass(frozen=True, slots=True)
class Check:
    """One check: ``name`` (e.g. ``read-write``), the ``store`` it is about (a
    technology such as ``postgres`` plus the stores using it), ``status``, a
    one-line ``message`` and, unless ok, the ``fix``."""

    name: str
    store: str
    status: Status
    message: str
    fix: str | None = None


def guarded(name: str, store: str, fix: str, run: Callable[[], Check | list[Check]]) -> list[Check]:
    """``run()``'s checks, or one error check (with ``fix``) if it raised."""
    try:
        found = run()
    except (DQError, OSError) as exc:
        return [Check(name, store, "error", f"{type(exc).__name__}: {exc}", fix)]
    return found if isinstance(found, list) else [found]


def probe_backend(backend: DocumentBackend, store: str) -> Check:
    """Write, read back, delete and prune one scratch document in :data:`PROBE_SCOPE`.

    Raises whatever the backend raises (``guarded`` turns it into an error check).
    """
    body = canonical_json({"probe": uuid.uuid4().hex})
    write = DocumentWrite("probe", body, content_hash(body), IndexEntry({}, ""))
    stored = backend.put(PROBE_SCOPE, _PROBE_KIND, write, ANY)
    read = backend.get(PROBE_SCOPE, _PROBE_KIND, "probe")
    if read.body != body or read.revision != stored.revision:
        return Check("read-write", store, "error", "the probe read back differs from its write")
    tombstone = backend.delete(PROBE_SCOPE, _PROBE_KIND, "probe")
    if type(backend)._prune_history is DocumentBackend._prune_history:  # a plug-in without it
        return Check(
            "read-write", store, "warning",
            "wrote, read and deleted a probe, but this backend cannot prune history (dq gc)",
            "implement DocumentBackend._prune_history in the backend (docs/plugins.md)",
        )  # fmt: skip
    backend.prune_history(PROBE_SCOPE, _PROBE_KIND, "probe", tombstone.revision)
    return Check(
        "read-write", store, "ok", f"wrote, read, deleted and pruned a probe in {PROBE_SCOPE}"
    )


def probe_results(results: ResultsStore, store: str) -> Check:
    """Upload a small object, read it back verified, delete it."""
    data = b"dq doctor probe " + uuid.uuid4().hex.encode()
    ref = results.upload(PROBE_SCOPE, "doctor-probe", "probe.bin", [data])
    try:
        back = b"".join(results.open(PROBE_SCOPE, ref))
    finally:
        results.delete(PROBE_SCOPE, ref)
    if back != data or ref.sha256 != hashlib.sha256(data).hexdigest():
        return Check("results-round-trip", store, "error", "the object read back differs")
    try:
        b"".join(results.open(PROBE_SCOPE, ref))
    except NotFoundError:
        return Check("results-round-trip", store, "ok", f"{len(data)}-byte object round-tripped")
    return Check("results-round-trip", store, "error", "the probe object survived its delete")
