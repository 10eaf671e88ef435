"""An Azure key's history as a chain: archived revisions 1..N-1 plus the head N.

Each format-2 record names its predecessor's record hash (``prev``), so a missing,
reordered, replaced or rolled-back revision shows as a broken link or a gap. A
rollback by exactly one revision leaves no gap (the head is again a byte-identical
copy of the archived ``r/{N}``); it shows in the blobs' times instead: the head's
bytes were written after ``r/{N}`` was archived (:func:`written_after`), where every
writer archives a head only after it was written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dq_stores.azure_blob._records import HeadRecord

__all__ = ["ORDER_SLACK", "history_problem", "written_after"]

#: Seconds by which a head's bytes must postdate its archived copy to count as
#: written after it: Last-Modified has whole seconds, and the two blobs may be
#: kept by servers whose clocks differ slightly.
ORDER_SLACK = 2.0


def written_after(head_written: float | None, archived: datetime | None) -> bool:
    """Whether the head's bytes (written at ``head_written``, service epoch seconds)
    were written after its archived copy was created (``archived``, Last-Modified)."""
    if head_written is None or archived is None:
        return False
    return head_written - archived.timestamp() > ORDER_SLACK


def history_problem(
    archived: Sequence[HeadRecord],
    head: HeadRecord | None,
    *,
    start: int = 1,
    rewritten: bool = False,
) -> str | None:
    """What is wrong with ``archived`` (any order) + ``head`` as one history, or ``None``.

    An archived copy of the head itself is fine (writers archive before they commit,
    so a writer that died in between leaves one) — unless ``rewritten``: the head's
    bytes were written after that copy, so the head was put back (a rollback by one).
    ``start`` > 1: revisions before it were pruned (their marker was written first),
    so the chain is checked from the oldest kept revision, whose link is taken as is;
    a head below ``start`` went back (a rollback, even with no archived copy left).
    """
    if head is None:
        return "archived revisions exist but the head is gone" if archived else None
    top = head.doc.revision
    if start > top:
        # Pruning never reaches the head's revision (the marker is written first), and
        # heads only move forward: a head below the pruned prefix was put back.
        return (
            f"the head is revision {top} but revisions through {start - 1} were pruned (a rollback)"
        )
    by_rev: dict[int, HeadRecord] = {}
    for record in archived:
        rev = record.doc.revision
        if rev > top or (rev == top and record.digest != head.digest):
            return f"the head is revision {top} but revision {rev} was archived (a rollback)"
        by_rev[rev] = record
    if rewritten and top in by_rev:
        return (
            f"the head (revision {top}) was written after revision {top} was archived: "
            f"revision {top + 1} was committed and the head put back (a rollback)"
        )
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
