"""The SQL statement behind ``SqlBackend._prune_history``."""

from __future__ import annotations

__all__ = ["prune_statement"]


def prune_statement(ph: str) -> str:
    """Delete the revisions of one key below a revision, never its head.

    Parameters, in order: tenant, environment, kind, key, keep_from, then tenant,
    environment, kind, key again for the head guard. Returns the removed revisions.
    """
    where = f"tenant = {ph} AND environment = {ph} AND kind = {ph} AND key = {ph}"
    return (
        f"DELETE FROM dq_revisions WHERE {where} AND revision < {ph}"
        f" AND revision < (SELECT h.revision FROM dq_heads h WHERE h.{where.replace(' AND ', ' AND h.')})"
        " RETURNING revision"
    )
