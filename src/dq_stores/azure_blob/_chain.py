"""An Azure key's history as a chain: archived revisions 1..N-1 plus the head N.

Each format-2 record names its predecessor's record hash (``prev``), so a missing,
reordered, replaced or rolled-back revision shows as a broken link or a gap.
"""

from __future__ import annotations

from collections.abc import Sequence

from dq_stores.azure_blob._records import HeadRecord

__all__ = ["history_problem"]


def history_problem(
    archived: Sequence[HeadRecord], head: HeadRecord | None, *, start: int = 1
) -> str | None:
    """What is wrong with ``archived`` (any order) + ``head`` as one history, or ``None``.

    An archived copy of the head itself is fine (writers archive before they commit).
    ``start`` > 1: revisions before it were pruned (their marker was written first),
    so the chain is checked from the oldest kept revision, whose link is taken as is.
    """
    if head is None:
        return "archived revisions exist but the head is gone" if archived else None
    top = head.doc.revision
    by_rev: dict[int, HeadRecord] = {}
    for record in archived:
        rev = record.doc.revision
        if rev > top or (rev == top and record.digest != head.digest):
            return f"the head is revision {top} but revision {rev} was archived (a rollback)"
        by_rev[rev] = record
    by_rev[top] = head
    first = by_rev.get(start)
    before = (first.prev or "") if start > 1 and first is not None else ""
    for rev in range(start, top + 1):
        link = by_rev.get(rev)
        if link is None:
            return f"revision {rev} is missing"
        if link.prev is not None and link.prev != before:
            return f"revision {rev} does not follow revision {rev - 1} (history was edited)"
        before = link.digest
    return None
