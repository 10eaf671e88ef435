"""Commit records and head locks of multi-document commits (ADR 0010).

A commit record ``{scope}_tx/{id}`` lists the heads a commit touches. Its blob
metadata ``state`` is ``pending`` (created with ``If-None-Match: *``), then exactly
one of ``committed`` (its writer, ``If-Match`` the pending etag: the commit point;
the body then also holds every new head's bytes) or ``aborted`` (anyone, ``If-Match``
the pending etag). A head taking part carries the metadata ``tx=<id>`` ("locked")
while its bytes stay the last rolled-forward revision; a key without a head is
locked by an empty placeholder head.

Body: one ASCII JSON header line listing the operations (head name, kind, key, length
of the new head bytes or ``null``), ``\\n``, then the new head bytes concatenated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from dq_metadata.errors import IntegrityError

__all__ = [
    "ABORTED",
    "COMMITTED",
    "MOD",
    "PENDING",
    "RESTORE",
    "TX",
    "Blob",
    "TxOp",
    "TxRecord",
    "clean_metadata",
]

TX = "tx"
#: Head metadata a lock adds and its release keeps: when the head's bytes were last
#: written (epoch seconds of its Last-Modified before the first lock), since
#: Set Blob Metadata moves Last-Modified on without touching the bytes.
MOD = "mod"
STATE = "state"
#: Metadata of the empty head a restore creates first, and of the revisions it writes:
#: the restore's id (``_restore.py``).
RESTORE = "restore"
PENDING, COMMITTED, ABORTED = "pending", "committed", "aborted"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Blob:
    """One downloaded blob: bytes, etag and metadata (a head, a revision or a record)."""

    raw: bytes
    etag: str
    metadata: dict[str, str]
    modified: datetime | None = None

    @property
    def tx(self) -> str | None:
        """The id of the commit that holds this head locked, if any."""
        return self.metadata.get(TX)

    @property
    def written(self) -> float | None:
        """When the blob's bytes were last written (service clock, epoch seconds):
        Last-Modified, or the time a lock recorded before it moved Last-Modified on."""
        stamp = self.metadata.get(MOD)
        if stamp is not None:
            try:
                return float(stamp)
            except ValueError:
                pass
        return None if self.modified is None else self.modified.timestamp()

    @property
    def placeholder(self) -> bool:
        """An empty head: locks a key that had no head (reads as absent)."""
        return not self.raw

    @property
    def restoring(self) -> str | None:
        """The id of the restore that holds this empty head (not finished, or died)."""
        return self.metadata.get(RESTORE) if self.placeholder and self.tx is None else None


def clean_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """A head's metadata without its lock."""
    return {k: v for k, v in metadata.items() if k != TX}


@dataclass(frozen=True, slots=True)
class TxOp:
    """One head a commit touches; ``new`` is the head to roll forward to (``None``: a
    guard, or the record is still pending)."""

    head: str
    kind: str
    key: str
    new: bytes | None = None


@dataclass(frozen=True, slots=True)
class TxRecord:
    """A commit record as stored: id, operations, state, and the blob's etag and age."""

    txid: str
    ops: tuple[TxOp, ...]
    state: str = PENDING
    etag: str = ""
    modified: datetime | None = None

    def to_bytes(self) -> bytes:
        header = {
            "v": _FORMAT,
            "id": self.txid,
            "ops": [
                {
                    "h": op.head,
                    "k": op.kind,
                    "key": op.key,
                    "n": None if op.new is None else len(op.new),
                }
                for op in self.ops
            ],
        }
        line = json.dumps(header, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
        return line.encode("ascii") + b"\n" + b"".join(op.new or b"" for op in self.ops)

    @classmethod
    def from_blob(cls, blob: Blob, name: str) -> TxRecord:
        """Parse a stored record; ``IntegrityError`` for anything this library did not write."""
        head, sep, rest = blob.raw.partition(b"\n")
        try:
            if not sep:
                raise ValueError("no header line")
            meta: dict[str, Any] = json.loads(head)
            if meta.get("v") != _FORMAT:
                raise ValueError("unknown format")
            ops: list[TxOp] = []
            offset = 0
            for item in meta["ops"]:
                size = item["n"]
                new = None if size is None else rest[offset : offset + int(size)]
                offset += 0 if size is None else int(size)
                ops.append(TxOp(str(item["h"]), str(item["k"]), str(item["key"]), new))
            if offset != len(rest):
                raise ValueError("truncated")
            state = blob.metadata.get(STATE, "")
            if state not in (PENDING, COMMITTED, ABORTED):
                raise ValueError("unknown state")
            return cls(str(meta["id"]), tuple(ops), state, blob.etag, blob.modified)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(
                f"blob {name!r} is not a commit record this library wrote"
            ) from exc

    def with_heads(self, heads: list[bytes | None]) -> TxRecord:
        """The committed form: the same operations with their new head bytes."""
        ops = tuple(replace(op, new=new) for op, new in zip(self.ops, heads, strict=True))
        return replace(self, ops=ops, state=COMMITTED)

    def new_head(self, head: str) -> bytes | None:
        """The bytes ``head`` rolls forward to (``None`` for a guard or an unknown head)."""
        return next((op.new for op in self.ops if op.head == head), None)

    def age(self, now: datetime | None = None) -> float:
        """Seconds since the record was written (≥ 0), at ``now`` — the service's
        time (its Last-Modified is the service's), this machine's clock if not given."""
        if self.modified is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - self.modified).total_seconds())
