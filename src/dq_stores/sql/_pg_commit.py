"""PostgreSQL statements of an atomic commit: one pipeline, one transaction, one Sync.

Every expectation is checked by the statement that applies it. A step that does
not hold makes its statement *fail* on purpose (a cast of a marker text to
``integer``), which aborts the implicit transaction: the server skips the rest
of the pipeline and rolls everything back at the Sync, so a refused commit costs
the same single round trip as an applied one. The marker carries the step's
index and the key's live revision, so the client can raise the right error
without reading again. See ADR 0003, "Atomic commits".

Locking under READ COMMITTED (each statement sees what committed before it
started, and waits for row locks held by others). A commit of several steps
first takes every head row it names, in ``(kind, key)`` order:

1. it inserts a placeholder head row (revision 0, deleted) for each key that has
   none (``ON CONFLICT DO NOTHING``): a concurrent insert of that key — by a
   write, another commit or a bulk import — now waits for this transaction;
2. it locks every head row of its keys (``FOR NO KEY UPDATE``).

From then on nothing this commit checks can change before it commits, so every
step's check holds at commit time (no lost update, no write skew), and commits
wait for each other in one global order instead of deadlocking. A write step on
a placeholder turns it into revision 1; the last statement deletes the
placeholders only guards touched. Placeholders are never visible to anyone
else: inserted and deleted within one transaction, they read as absent keys.
A single-step commit is one conditional statement, like a single write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.documents import ExpectKind
from dq_stores.sql._commit import Refused, Step
from dq_stores.sql._executor import HEAD_COLUMNS, RETURNING, head_statement, pyformat

__all__ = ["commit_statements", "refused"]

_PK = "{a}tenant = %(t)s AND {a}environment = %(e)s AND {a}kind = %(k)s AND {a}key = %(key)s"
# The key's live revision as text ('-' when absent or deleted) at the statement's snapshot.
_LIVE = (
    "coalesce((SELECT CASE WHEN c.deleted THEN NULL ELSE c.revision::text END"
    f" FROM dq_heads c WHERE {_PK.format(a='c.')}), '-')"
)
_MARKER = "dq-commit-refused"
# Evaluated only when the step does not hold; depends on a row, so never constant-folded.
_REFUSE = f"CAST('{_MARKER}:' || %(i)s::text || ':' || {_LIVE} AS integer)"
_REFUSED = re.compile(_MARKER + r":(\d+):(\d+|-)")

_KEYS = "unnest(%(kinds)s::text[], %(keys)s::text[]) AS u(kind, key)"
_RESERVE = (
    f"INSERT INTO dq_heads ({HEAD_COLUMNS}) SELECT %(t)s, %(e)s, u.kind, u.key, 0, true,"
    f" ''::bytea, '', '{{}}', '', now(), NULL, NULL FROM {_KEYS}"
    ' ORDER BY u.kind COLLATE "C", u.key COLLATE "C"'
    " ON CONFLICT (tenant, environment, kind, key) DO NOTHING"
)
_LOCK = (
    f"SELECT 1 FROM dq_heads h JOIN {_KEYS} ON h.kind = u.kind AND h.key = u.key"
    " WHERE h.tenant = %(t)s AND h.environment = %(e)s"
    " ORDER BY h.kind, h.key FOR NO KEY UPDATE OF h"
)
_RELEASE = (
    f"DELETE FROM dq_heads h USING {_KEYS} WHERE h.tenant = %(t)s AND h.environment = %(e)s"
    " AND h.kind = u.kind AND h.key = u.key AND h.revision = 0"
)
_WRITE = (
    "WITH h AS ({head}{returning}), r AS (INSERT INTO dq_revisions ({cols})"
    " SELECT {cols} FROM h) SELECT CASE WHEN count(*) = 1 THEN min(h.revision)"
    " ELSE {refuse} END FROM h"
)
# Guards read rows this commit already locked (a single-step commit only reads).
_GUARD_REVISION = (
    f"SELECT CASE WHEN count(*) = 1 THEN 0 ELSE {_REFUSE} END FROM dq_heads"
    f" WHERE {_PK.format(a='')} AND NOT deleted AND revision = %(rev)s"
)
_GUARD_ABSENT = (
    f"SELECT CASE WHEN count(*) = 0 THEN 0 ELSE {_REFUSE} END FROM dq_heads"
    f" WHERE {_PK.format(a='')} AND NOT deleted"
)
_DELETE_POSTINGS = f"DELETE FROM dq_postings WHERE {_PK.format(a='')}"
_INSERT_POSTINGS = (
    "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
    " SELECT %(t)s, %(e)s, %(k)s, f, v, %(sk)s, %(key)s"
    " FROM unnest(%(pf)s::text[], %(pv)s::text[]) AS np(f, v)"
)


def _write_sql(step: Step) -> str:
    assert step.rev is not None
    head = pyformat(head_statement(step.expect, step.rev.deleted, True))
    return _WRITE.format(head=head, returning=RETURNING, cols=HEAD_COLUMNS, refuse=_REFUSE)


def commit_statements(
    scope: Scope, steps: Sequence[Step], at: datetime
) -> tuple[list[tuple[str, dict[str, Any]]], list[int | None]]:
    """The commit's statements in order, and for each step the index of the statement
    whose single row is its new revision (``None`` for guards)."""
    t, e = scope.tenant, scope.environment
    statements: list[tuple[str, dict[str, Any]]] = []
    if len(steps) > 1:
        every = {"t": t, "e": e, "kinds": [s.kind for s in steps], "keys": [s.key for s in steps]}
        statements += [(_RESERVE, every), (_LOCK, every)]
    results: list[int | None] = []
    guarded: list[Step] = []
    for i, step in enumerate(steps):
        base = {"t": t, "e": e, "k": step.kind, "key": step.key, "i": i}
        rev = step.rev
        if rev is None:
            results.append(None)
            guarded.append(step)
            if step.expect.kind is ExpectKind.ABSENT:
                statements.append((_GUARD_ABSENT, base))
            else:
                statements.append((_GUARD_REVISION, {**base, "rev": step.expect.revision}))
            continue
        params = {**rev.params(scope, step.kind, at), "i": i, "rev": step.expect.revision}
        results.append(len(statements))
        statements.append((_write_sql(step), params))
        if step.expect.kind is not ExpectKind.ABSENT:  # a live head may have postings
            statements.append((_DELETE_POSTINGS, base))
        if rev.postings:
            posting = {
                **base,
                "sk": rev.sort_key,
                "pf": [f for f, _ in rev.postings],
                "pv": [v for _, v in rev.postings],
            }
            statements.append((_INSERT_POSTINGS, posting))
    if guarded and len(steps) > 1:
        kinds, keys = [s.kind for s in guarded], [s.key for s in guarded]
        statements.append((_RELEASE, {"t": t, "e": e, "kinds": kinds, "keys": keys}))
    return statements, results


def refused(exc: BaseException) -> Refused | None:
    """The refusal a commit statement raised on purpose, or ``None`` for other errors."""
    if getattr(exc, "sqlstate", None) != "22P02":
        return None
    match = _REFUSED.search(str(exc))
    if match is None:
        return None
    live = match.group(2)
    return Refused(int(match.group(1)), None if live == "-" else int(live))
