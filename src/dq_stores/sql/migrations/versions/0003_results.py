"""Result objects: one header per (run, name), the bytes in fixed-size chunk rows.

``dq_results`` names the upload currently visible under each (run id, name);
``dq_result_chunks`` holds every upload's bytes as numbered rows. An upload writes
its chunks and then moves the header in one transaction, so nothing is visible
until it is complete. Both tables lead with (tenant, environment) like the
document tables, and on PostgreSQL carry the same row-level-security policy.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("dq_results", "dq_result_chunks")
_SCOPED = (
    "(tenant = current_setting('dq.tenant', true)"
    " OR current_setting('dq.tenant', true) = '*')"
    " AND (environment = current_setting('dq.environment', true)"
    " OR current_setting('dq.environment', true) = '*')"
)


def _text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _object_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("tenant", _text(), nullable=False),
        sa.Column("environment", _text(), nullable=False),
        sa.Column("run_id", _text(), nullable=False),
        sa.Column("name", _text(), nullable=False),
        sa.Column("upload", _text(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "dq_results",
        *_object_columns(),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "environment", "run_id", "name", name="pk_dq_results"),
    )
    op.create_table(
        "dq_result_chunks",
        *_object_columns(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant", "environment", "run_id", "name", "upload", "seq", name="pk_dq_result_chunks"
        ),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY dq_scope ON {table} USING ({_SCOPED}) WITH CHECK ({_SCOPED})")


def downgrade() -> None:
    op.drop_table("dq_result_chunks")
    op.drop_table("dq_results")
