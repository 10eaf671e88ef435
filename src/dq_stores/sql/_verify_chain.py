"""``dq verify`` on SQL: every revision row against its record hash, and the chain.

Walks ``dq_revisions`` of one scope in ``(kind, key, revision)`` order, keyset
batches of 1,000 rows (bodies are not read: the port's walk checks them against
their sha256, which the record hash covers). Per key:

* a row with a ``record_hash`` must hash to it (``_chain.finish`` of its
  ``_chain.prefix``, over its columns as stored): an edited identity (tenant,
  environment, kind, key, revision), deleted flag, sha256, index fields, sort
  key, time or link is a ``record`` problem;
* each chained row must link to the row before it (``prev_hash`` = its
  ``record_hash``, revision numbers consecutive): a deleted, swapped or reordered
  revision is a ``history`` problem. The oldest kept row links to nothing unless
  revisions before it were pruned: it must then be the first revision after the
  key's pruned-history marker (``dq_stores.retention``) or older (a prune writes
  its marker before it removes rows), and its link, naming a row no longer
  stored, is taken as is (ADR 0017); a gap is accepted only where the marker
  says the missing revisions are pruned;
* rows written before migration 0005 have no hash: counted as ``unchained`` (a
  note), allowed only as a prefix of the key's history — a ``NULL`` hash after a
  chained revision is a ``history`` problem.

That each head is its newest revision (record hash included) is checked with the
head rows in ``_verify``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from dq_metadata.errors import DQError
from dq_metadata.scope import Scope
from dq_stores.integrity import IntegrityProblem, VerifyCounts
from dq_stores.sql._chain import finish, prefix, stamp_of
from dq_stores.sql._keyset import Reader, keyset_rows

__all__ = ["chain_problems"]

_BATCH = 1000
_COLUMNS = (
    "kind, key, revision, deleted, sha256, fields, sort_key, written_at, record_hash, prev_hash"
)


def _rows(read: Reader, scope: Scope, ph: str) -> Iterator[tuple[Any, ...]]:
    base = f"SELECT {_COLUMNS} FROM dq_revisions WHERE tenant = {ph} AND environment = {ph}"
    order = ("kind", "key", "revision")
    for row in keyset_rows(read, base, [scope.tenant, scope.environment], order, ph, _BATCH):
        yield tuple(row)


def _problem(scope: Scope, row: tuple[Any, ...], before: tuple[Any, ...] | None) -> str | None:
    """What is wrong with chained ``row`` after ``before`` (same key, or ``None``)."""
    kind, key, revision, deleted, sha256, fields, sort_key, at, digest, prev = row
    try:
        pre = prefix(
            scope.tenant,
            scope.environment,
            kind,
            key,
            deleted,
            sha256,
            fields,
            sort_key,
            stamp_of(at),
        )
        expected = finish(pre, revision, prev)
    except (TypeError, ValueError):
        expected = None
    if expected != digest:
        return "record"
    if before is None:
        return "history" if revision == 1 and prev is not None else None
    if before[8] is None:  # the first revision written after unchained ones links to nothing
        return None if prev is None else "history"
    if prev != before[8] or revision != before[2] + 1:
        return "history"
    return None


def chain_problems(
    read: Any,
    scope: Scope,
    placeholder: str,
    counts: VerifyCounts,
    first_kept: Callable[[str, str], int],
) -> Iterator[IntegrityProblem]:
    """Every revision row that fails its record hash or its link; counts unchained rows.

    ``first_kept(kind, key)``: the oldest revision pruning keeps (1: none pruned),
    asked only for keys whose oldest row is not revision 1 or that skip revisions;
    rows older than it may remain (a prune removes them after writing its marker).
    """
    before: tuple[Any, ...] | None = None
    for row in _rows(read, scope, placeholder):
        kind, key, revision = row[0], row[1], row[2]
        if before is not None and before[:2] != (kind, key):
            before = None
        if before is None and revision > 1:
            try:
                first = first_kept(kind, key)
            except DQError as exc:
                yield IntegrityProblem(scope, "history", str(exc), kind, key)
            else:
                # older rows may remain: a prune writes its marker before removing them
                # (interrupted, or running while this scope is walked)
                if revision > first:
                    yield IntegrityProblem(
                        scope,
                        "history",
                        f"the oldest revision is {revision} but "
                        + ("nothing was pruned" if first == 1 else f"pruning kept {first}.."),
                        kind,
                        key,
                    )
        if row[8] is None:
            counts.unchained += 1
            if before is not None and before[8] is not None:
                yield IntegrityProblem(
                    scope,
                    "history",
                    f"revision {revision} has no record hash but revision {before[2]}"
                    " before it is chained (a hash was removed, or the row replaced)",
                    kind,
                    key,
                )
        else:
            problem = _problem(scope, row, before)
            if (
                problem == "history"
                and before is not None
                and revision > before[2] + 1
                and first_kept(kind, key) >= revision
            ):  # the missing revisions are pruned (between two batches of this walk)
                problem = None
            if problem == "record":
                yield IntegrityProblem(
                    scope,
                    "record",
                    f"revision {revision} fails its record hash (its identity, deleted flag,"
                    " sha256, index fields, sort key, time or link was changed)",
                    kind,
                    key,
                )
            elif problem == "history":
                what = (
                    "names a predecessor but is the oldest revision"
                    if before is None
                    else f"does not link to revision {before[2]} before it"
                    + (
                        f" (revisions {before[2] + 1}..{revision - 1} are missing)"
                        if revision > before[2] + 1
                        else ""
                    )
                )
                yield IntegrityProblem(scope, "history", f"revision {revision} {what}", kind, key)
        before = row
