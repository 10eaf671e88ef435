"""Filesystem record bytes built by hand: the format-1 records of stores written before
issue 11 (ADR 0002), and sealed records with chosen (or damaged) parts."""

from __future__ import annotations

import hashlib

from dq_stores.documents import StoredDocument

__all__ = ["format1", "sealed"]


def sealed(header: bytes, body: bytes, length: bytes | None = None) -> bytes:
    """A record of ``header`` and ``body``: the hex sha256 of the rest, a space, then the
    rest — the header's length in ASCII digits (or ``length`` as given, to damage it),
    a newline, the header and the body."""
    rest = b"".join((str(len(header)).encode() if length is None else length, b"\n", header, body))
    return hashlib.sha256(rest).hexdigest().encode() + b" " + rest


def format1(kind: str, doc: StoredDocument) -> bytes:
    """The record bytes the release before issue 11 wrote for ``doc`` (its
    ``encode_record``, verbatim): a NUL-separated header of kind, key, revision, body
    length, sha256, sort key, time and deleted flag, then each index field's name,
    count and values — no scope, no link to the previous revision."""
    parts = [
        kind, doc.key, str(doc.revision), str(len(doc.body)), doc.sha256,
        doc.index.sort_key, doc.written_at.isoformat(), "1" if doc.deleted else "0",
    ]  # fmt: skip
    for name, values in doc.index.fields.items():
        parts += [name, str(len(values)), *values]
    return sealed("\0".join(parts).encode("utf-8"), doc.body)
