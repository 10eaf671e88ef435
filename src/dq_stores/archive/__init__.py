"""The portable dq archive: every scope, kind, key and revision, plus results objects.

A tar (optionally gzip/xz/bzip2-compressed) of JSON Lines, written and read in
one pass with bounded memory. The format is specified, with its version, in
``docs/archive-format.md``; why a tar of JSON Lines: ADR 0013.
"""

from __future__ import annotations

from dq_stores.archive._guards import MAX_LINE_BYTES
from dq_stores.archive._lines import (
    BodyNormalizer,
    ScopeTally,
    decode_line,
    encode_line,
    history_digest,
)
from dq_stores.archive._reader import (
    ArchiveEnd,
    ArchiveHeader,
    ArchiveHistory,
    ArchiveItem,
    ArchiveResult,
    read_archive,
)
from dq_stores.archive._writer import FORMAT, VERSION, ArchiveWriter, ResultMeta

__all__ = [
    "FORMAT",
    "MAX_LINE_BYTES",
    "VERSION",
    "ArchiveEnd",
    "ArchiveHeader",
    "ArchiveHistory",
    "ArchiveItem",
    "ArchiveResult",
    "ArchiveWriter",
    "BodyNormalizer",
    "ResultMeta",
    "ScopeTally",
    "decode_line",
    "encode_line",
    "history_digest",
    "read_archive",
]
