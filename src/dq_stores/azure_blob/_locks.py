"""The blob requests of multi-document commits: records and head locks (ADR 0010).

Every request is conditional; the ones that release or clean up are best effort
(losing the race to someone doing the same step is the expected outcome).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from dq_metadata.errors import ConflictError, DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._client import azure_errors
from dq_stores.azure_blob._layout import Layout
from dq_stores.azure_blob._txn import MOD, PENDING, STATE, TX, Blob, TxRecord, clean_metadata

__all__ = ["TxBlobs", "best_effort", "poll_until"]

_IGNORED = (ResourceNotFoundError, ResourceModifiedError, ResourceExistsError)


def _lock_metadata(blob: Blob, txid: str) -> dict[str, str]:
    """A head's metadata while ``txid`` holds it: the lock, and (kept when released)
    when its bytes were written — so a head locked and released after its archive
    ``r/{n}`` was written is not mistaken for a rollback (ADR 0004)."""
    meta = {**blob.metadata, TX: txid}
    if MOD not in meta and blob.modified is not None:
        meta[MOD] = str(int(blob.modified.timestamp()))
    return meta


def best_effort(call: Callable[[], object], what: str) -> None:
    """A conditional clean-up step: losing the race to someone doing the same is fine."""
    with contextlib.suppress(DQError), azure_errors(what), contextlib.suppress(*_IGNORED):
        call()


def poll_until(done: Callable[[], bool], seconds: float, first: float, most: float) -> bool:
    """Wait up to ``seconds`` (from now; none if not positive) for ``done()``: sleep
    ``first`` seconds, doubling each time up to ``most`` and cut to the time left,
    and call ``done`` after each sleep. True as soon as it returns true; False once
    the time is up (``done`` was then called last at or just before the deadline)."""
    deadline = time.monotonic() + max(0.0, seconds)
    delay = first
    while time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, most)
        if done():
            return True
    return False


class TxBlobs:
    """Conditional requests on commit records and head locks of one container."""

    def __init__(
        self, container: ContainerClient, layout: Layout, fetch: Callable[[str, str], Blob | None]
    ) -> None:
        self._container = container
        self._layout = layout
        self._fetch = fetch

    @staticmethod
    def locked(blob: Blob | None, etag: str, txid: str) -> Blob:
        """The head as our lock left it (to release it ``If-Match`` that etag)."""
        if blob is None:
            return Blob(b"", etag, {"rev": "0", "deleted": "1", TX: txid})
        return Blob(blob.raw, etag, _lock_metadata(blob, txid))

    def lock(self, name: str, blob: Blob | None, txid: str) -> str | None:
        """Point one head at our record; its new etag, or ``None`` if it changed."""
        client = self._container.get_blob_client(name)
        try:
            with azure_errors(f"locking {name!r}"):
                if blob is None:
                    meta = {"rev": "0", "deleted": "1", TX: txid}
                    done = client.upload_blob(
                        b"",
                        overwrite=True,
                        metadata=meta,
                        match_condition=MatchConditions.IfMissing,
                    )
                else:
                    done = client.set_blob_metadata(
                        _lock_metadata(blob, txid),
                        etag=blob.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
            return str(done["etag"])
        except (ConflictError, NotFoundError):
            # A retried request whose first try landed looks like a conflict: look.
            again = self._fetch(name, f"reading {name!r}")
            return again.etag if again is not None and again.tx == txid else None

    def unlock(self, name: str, blob: Blob) -> None:
        """Release a lock without a new revision (guard, aborted or abandoned commit)."""
        client = self._container.get_blob_client(name)
        cond: dict[str, Any] = {"etag": blob.etag, "match_condition": MatchConditions.IfNotModified}
        if blob.placeholder:
            best_effort(functools.partial(client.delete_blob, **cond), f"unlocking {name!r}")
        else:
            meta = clean_metadata(blob.metadata)
            best_effort(
                functools.partial(client.set_blob_metadata, meta, **cond), f"unlocking {name!r}"
            )

    # -- records ------------------------------------------------------------------
    def create_record(self, scope: Scope, record: TxRecord) -> str:
        client = self._container.get_blob_client(self._layout.txn(scope, record.txid))
        try:
            with azure_errors(f"starting a commit in {scope}"):
                done = client.upload_blob(
                    record.to_bytes(),
                    overwrite=True,
                    metadata={STATE: PENDING},
                    match_condition=MatchConditions.IfMissing,
                )
            return str(done["etag"])
        except ConflictError:  # our own first try landed (the id is unique)
            with azure_errors(f"starting a commit in {scope}"):
                return str(client.get_blob_properties().etag)

    def set_state(self, scope: Scope, record: TxRecord, state: str) -> bool:
        """Move a pending record to ``state`` if still at its etag; whether we did."""
        client = self._container.get_blob_client(self._layout.txn(scope, record.txid))
        try:
            with azure_errors(f"aborting commit {record.txid} in {scope}"):
                client.set_blob_metadata(
                    {STATE: state}, etag=record.etag, match_condition=MatchConditions.IfNotModified
                )
            return True
        except (ConflictError, NotFoundError):
            return False

    def delete_record(self, scope: Scope, txid: str) -> None:
        client = self._container.get_blob_client(self._layout.txn(scope, txid))
        best_effort(client.delete_blob, f"finishing commit {txid} in {scope}")
