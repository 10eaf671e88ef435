"""A commit's staging: check every operation against the heads, build the revisions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from dq_metadata.scope import Scope
from dq_stores.documents import ConditionCheck, IndexEntry, Operation, Put, StoredDocument
from dq_stores.filesystem._layout import Layout, read_file
from dq_stores.filesystem._records import Header, decode_header
from dq_stores.filesystem._writes import Staged
from dq_stores.filtering import check_operation

__all__ = ["stage"]


def _head(kind_dir: str, kind: str, key: str) -> Header | None:
    try:
        data = read_file(Layout.head(kind_dir, key))
    except FileNotFoundError:
        return None
    return decode_header(data, kind, key)


def stage(
    scope: Scope, operations: tuple[Operation, ...], kind_dir_of: Callable[[Scope, str], str]
) -> tuple[list[Staged], list[StoredDocument | None]]:
    """Check every operation against the heads (in order) and build the new
    revisions. Hold the lock. Raises the first failure; nothing is written."""
    staged: list[Staged] = []
    out: list[StoredDocument | None] = []
    now = datetime.now(UTC)
    for op in operations:
        kind_dir = kind_dir_of(scope, op.kind)
        head = _head(kind_dir, op.kind, op.key)
        check_operation(op, None if head is None or head.deleted else head.revision)
        if isinstance(op, ConditionCheck):
            out.append(None)
            continue
        revision = 1 if head is None else head.revision + 1
        if isinstance(op, Put):
            w = op.write
            doc = StoredDocument(scope, op.kind, w.key, revision, w.body, w.sha256, w.index, now)
        else:
            doc = StoredDocument(
                scope, op.kind, op.key, revision, b"", "", IndexEntry(), now, deleted=True
            )
        staged.append(Staged(op.kind, kind_dir, doc, "" if head is None else head.digest))
        out.append(doc)
    return staged, out
