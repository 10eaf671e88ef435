"""Refuse new revision rows without a record hash: writers from before 0005.

Migration 0005 added the record-hash chain as nullable columns, so a process of
the previous version that was already running when ``dq db upgrade`` ran (it
checked the schema when it started) went on writing: its revision rows had no
``record_hash`` after chained ones, and its head updates left the head with its
predecessor's hash. ``dq verify`` then reported ``history`` and ``head`` problems
on those keys for good (no repair computes hashes, ADR 0017). From this revision
on, the database refuses such a row, so such a writer's write fails and changes
nothing until it is restarted on the new version:

* PostgreSQL: ``CHECK (record_hash IS NOT NULL) NOT VALID`` on ``dq_revisions``
  — enforced for rows inserted or updated from now on, older rows unchecked;
* SQLite (no ``ADD CONSTRAINT``): a trigger aborting an insert of such a row.

Every write of this library sets the hash (the head statement or the restore).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NAME = "ck_dq_revisions_chained"
_MESSAGE = "dq: a revision row without a record hash (a writer older than schema 0005?)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE dq_revisions ADD CONSTRAINT {_NAME}"
            " CHECK (record_hash IS NOT NULL) NOT VALID"
        )
    else:
        op.execute(
            f"CREATE TRIGGER {_NAME} BEFORE INSERT ON dq_revisions"
            f" WHEN NEW.record_hash IS NULL BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE dq_revisions DROP CONSTRAINT {_NAME}")
    else:
        op.execute(f"DROP TRIGGER {_NAME}")
