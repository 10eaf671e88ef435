"""Document tables: immutable revisions, current heads, index postings.

Every primary key and index leads with (tenant, environment) so the tables can
be distributed by tenant (Citus) and every scoped query is an index range scan.
Text that is compared or ordered uses COLLATE "C" (byte order) on PostgreSQL;
SQLite's default BINARY collation already compares UTF-8 bytes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _scope_columns() -> list[sa.Column[str]]:
    return [
        sa.Column("tenant", _text(), nullable=False),
        sa.Column("environment", _text(), nullable=False),
        sa.Column("kind", _text(), nullable=False),
    ]


def _document_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("key", _text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("sort_key", _text(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "dq_revisions",
        *_scope_columns(),
        *_document_columns(),
        sa.PrimaryKeyConstraint(
            "tenant", "environment", "kind", "key", "revision", name="pk_dq_revisions"
        ),
    )
    op.create_table(
        "dq_heads",
        *_scope_columns(),
        *_document_columns(),
        sa.PrimaryKeyConstraint("tenant", "environment", "kind", "key", name="pk_dq_heads"),
    )
    op.create_index(
        "ix_dq_heads_order",
        "dq_heads",
        ["tenant", "environment", "kind", "deleted", "sort_key", "key"],
    )
    op.create_table(
        "dq_postings",
        *_scope_columns(),
        sa.Column("field", _text(), nullable=False),
        sa.Column("value", _text(), nullable=False),
        sa.Column("sort_key", _text(), nullable=False),
        sa.Column("key", _text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant",
            "environment",
            "kind",
            "field",
            "value",
            "sort_key",
            "key",
            name="pk_dq_postings",
        ),
    )
    op.create_index(
        "ix_dq_postings_document", "dq_postings", ["tenant", "environment", "kind", "key"]
    )


def downgrade() -> None:
    op.drop_table("dq_postings")
    op.drop_table("dq_heads")
    op.drop_table("dq_revisions")
