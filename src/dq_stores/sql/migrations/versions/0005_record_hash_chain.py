"""A record-hash chain on every revision (and its head copy): tamper evidence.

``record_hash`` is sha256 over a row's identity, deleted flag, body sha256, index
fields, sort key, time and ``prev_hash`` (the predecessor's record hash); see
``dq_stores.sql._chain`` and ADR 0017. Both columns are nullable: rows written
before this migration stay ``NULL`` ("unchained", reported as a note by ``dq
verify``). No hash is computed here: hashing rows nobody has checked would
certify whatever they hold now, tampered or not.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("dq_heads", "dq_revisions")
_COLUMNS = ("record_hash", "prev_hash")


def upgrade() -> None:
    for table in _TABLES:
        for column in _COLUMNS:
            op.add_column(table, sa.Column(column, sa.Text(), nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        for column in reversed(_COLUMNS):
            op.drop_column(table, column)
