"""The bytes of head and revision blobs, and of index-entry metadata.

A head (and each archived revision, a byte-for-byte copy of a former head) is one
JSON header line, ``\\n``, then the document's canonical JSON body. The header
holds what the port returns besides the body, the writer's id (to recognise its
own commit when a response was lost and a retry saw 409/412), and the etags of
the index entries written for this revision (so the next writer removes exactly
those and never a newer writer's entry).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import IndexEntry, StoredDocument

__all__ = [
    "EntryMeta",
    "HeadRecord",
    "decode_entry_meta",
    "encode_entry_meta",
    "index_digest",
]

_MAX_META = 7000  # of the 8 KiB Azure allows per blob

_FORMAT = 2
_LEGACY = 1


def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode(
        "ascii"
    )


def record_hash(header: dict[str, Any], body: bytes) -> str:
    """``h`` of a format-2 record: sha256 over the header without ``h``, ``\n``, body."""
    return hashlib.sha256(_header_bytes(header) + b"\n" + body).hexdigest()


@dataclass(frozen=True, slots=True)
class HeadRecord:
    """One revision as stored: the document plus bookkeeping for the next writer."""

    doc: StoredDocument
    writer: str
    entries: dict[str, str] = field(default_factory=dict)  # index name suffix -> etag
    prev: str | None = ""  # the previous revision's record hash; None: format 1 (no link)
    digest: str = ""  # this record's hash (set when read back)

    def to_bytes(self) -> bytes:
        header = self._header()
        header["h"] = record_hash(header, self.doc.body)
        return _header_bytes(header) + b"\n" + self.doc.body

    def own_digest(self) -> str:
        """The hash this record carries once written (the next revision's ``prev``)."""
        return str(record_hash(self._header(), self.doc.body))

    def _header(self) -> dict[str, Any]:
        doc = self.doc
        header: dict[str, Any] = {
            "v": _FORMAT,
            "tenant": doc.scope.tenant,
            "env": doc.scope.environment,
            "kind": doc.kind,
            "prev": self.prev or "",
            "key": doc.key,
            "rev": doc.revision,
            "sha256": doc.sha256,
            "fields": {name: list(values) for name, values in doc.index.fields.items()},
            "sort": doc.index.sort_key,
            "at": doc.written_at.isoformat(),
            "deleted": doc.deleted,
            "writer": self.writer,
            "entries": self.entries,
        }
        return header

    @classmethod
    def from_bytes(cls, data: bytes, scope: Scope, kind: str, name: str) -> HeadRecord:
        """Parse and verify; raise ``IntegrityError`` for anything not written by us."""
        head, sep, body = data.partition(b"\n")
        try:
            if not sep:
                raise ValueError("no header line")
            meta: dict[str, Any] = json.loads(head)
            if meta.get("v") not in (_FORMAT, _LEGACY):
                raise ValueError("unknown format")
            doc = StoredDocument(
                scope=scope,
                kind=kind,
                key=str(meta["key"]),
                revision=int(meta["rev"]),
                body=body,
                sha256=str(meta["sha256"]),
                index=IndexEntry(
                    {str(k): tuple(str(v) for v in vs) for k, vs in meta["fields"].items()},
                    str(meta["sort"]),
                ),
                written_at=datetime.fromisoformat(meta["at"]),
                deleted=bool(meta["deleted"]),
            )
            entries = {str(k): str(v) for k, v in meta["entries"].items()}
            writer = str(meta["writer"])
            prev = None if meta["v"] == _LEGACY else str(meta["prev"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"blob {name!r} is not a document this library wrote") from exc
        if prev is None:  # format 1: only the body is hashed
            expected = "" if doc.deleted else hashlib.sha256(body).hexdigest()
            if doc.sha256 != expected:
                raise IntegrityError(
                    f"{kind} {doc.key!r} in {scope}: stored bytes fail their sha256"
                )
            return cls(doc, writer, entries, None, hashlib.sha256(data).hexdigest())
        # Format 2: one hash over header and body. The body's own sha256 (in the
        # header) was checked against the body before it was written, so a record
        # whose ``h`` verifies has a matching body: hashing the body once suffices.
        if doc.deleted and (doc.sha256 or body):
            raise IntegrityError(f"{kind} {doc.key!r} in {scope}: a tombstone with a body")
        digest = meta.pop("h", None)
        if digest != record_hash(meta, body):
            raise IntegrityError(
                f"{kind} {doc.key!r} in {scope}: blob {name!r} fails its record hash "
                "(its header or body was changed)"
            )
        if (meta["tenant"], meta["env"], meta["kind"]) != (
            scope.tenant,
            scope.environment,
            kind,
        ):
            raise IntegrityError(
                f"{kind} {doc.key!r} in {scope}: blob {name!r} belongs to another document "
                f"({meta['kind']} in {meta['tenant']}/{meta['env']})"
            )
        return cls(doc, writer, entries, prev, str(digest))


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """What an index entry says about its document, readable from a listing.

    Everything but ``revision`` is a function of the entry's name (which ends in
    :func:`index_digest`), so whoever wrote the entry, it describes exactly the
    index entry its name stands for: a query may skip it on ``fields`` alone.
    ``fields`` is ``None`` when too large for blob metadata (8 KiB).
    """

    revision: int
    key: str
    sort_key: str
    digest: str
    fields: dict[str, tuple[str, ...]] | None


def index_digest(index: IndexEntry) -> str:
    """Short digest of a whole index entry (sort key + every field value)."""
    fields = sorted((name, sorted(set(values))) for name, values in index.fields.items())
    raw = json.dumps([index.sort_key, fields], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]


def encode_entry_meta(doc: StoredDocument) -> dict[str, str]:
    base: dict[str, Any] = {
        "r": doc.revision,
        "k": doc.key,
        "s": doc.index.sort_key,
        "h": index_digest(doc.index),
    }
    full = dict(base, f={name: list(values) for name, values in doc.index.fields.items()})
    for payload in (full, base):
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        encoded = base64.urlsafe_b64encode(raw).decode("ascii")
        if len(encoded) <= _MAX_META:
            break
    return {"m": encoded}  # without fields: ≤ ~2.2 KB (key and sort key are bounded)


def decode_entry_meta(metadata: dict[str, str] | None) -> EntryMeta | None:
    """``None`` for an entry whose metadata is missing or unreadable (treated as stale)."""
    try:
        payload = json.loads(base64.urlsafe_b64decode((metadata or {})["m"]))
        fields = payload.get("f")
        return EntryMeta(
            int(payload["r"]),
            str(payload["k"]),
            str(payload["s"]),
            str(payload["h"]),
            None if fields is None else {str(n): tuple(map(str, v)) for n, v in fields.items()},
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
