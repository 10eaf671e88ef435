"""Row-level security on PostgreSQL (no-op elsewhere).

Each table only shows rows of the scope set for the current transaction with
``set_config('dq.tenant', ..., true)`` / ``dq.environment``; ``'*'`` widens to all
tenants or environments (admin listing). Unset settings match nothing, so a
query that forgot its scope fails closed. FORCE makes the table owner subject
to the policy too; superusers and BYPASSRLS roles still bypass it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("dq_revisions", "dq_heads", "dq_postings")
_SCOPED = (
    "(tenant = current_setting('dq.tenant', true)"
    " OR current_setting('dq.tenant', true) = '*')"
    " AND (environment = current_setting('dq.environment', true)"
    " OR current_setting('dq.environment', true) = '*')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY dq_scope ON {table} USING ({_SCOPED}) WITH CHECK ({_SCOPED})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS dq_scope ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
