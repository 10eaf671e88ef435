"""Index shapes whose good plans are the only plausible ones without statistics.

Freshly loaded, restored or migrated tables have no planner statistics until
(auto)analyze runs. The planner then estimates every equality with a default
selectivity, sees one row behind any index that starts with (tenant,
environment, kind), and breaks the tie in favour of the most recently created
index: ``get`` walked ``ix_dq_heads_order`` over the whole kind, and a filtered
count walked ``ix_dq_postings_document``. So:

* ``dq_heads`` keeps only its primary key: a key lookup, update or upsert has
  nothing else to use. Pages in ``(sort_key, key)`` order are ranges of a
  posting every live document has, ``(field, value) = ('', '')`` (field names
  are ids, never empty), backfilled here; ``ix_dq_heads_order`` goes.
* The index that finds a document's postings (to replace them on a write) leads
  with ``key``: statements that name the key use it; a page or count, which
  never binds the key, cannot.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _see_every_scope() -> None:
    # FORCE ROW LEVEL SECURITY applies to the owner too: widen this transaction's scope
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT set_config('dq.tenant', '*', true), set_config('dq.environment', '*', true)"
        )


def upgrade() -> None:
    _see_every_scope()
    op.drop_index("ix_dq_heads_order", table_name="dq_heads")
    op.execute(
        "INSERT INTO dq_postings (tenant, environment, kind, field, value, sort_key, key)"
        " SELECT tenant, environment, kind, '', '', sort_key, key FROM dq_heads"
        " WHERE deleted = false"
    )
    op.drop_index("ix_dq_postings_document", table_name="dq_postings")
    op.create_index("ix_dq_postings_key", "dq_postings", ["key", "tenant", "environment", "kind"])


def downgrade() -> None:
    _see_every_scope()
    op.drop_index("ix_dq_postings_key", table_name="dq_postings")
    op.create_index(
        "ix_dq_postings_document", "dq_postings", ["tenant", "environment", "kind", "key"]
    )
    op.execute("DELETE FROM dq_postings WHERE field = ''")
    op.create_index(
        "ix_dq_heads_order",
        "dq_heads",
        ["tenant", "environment", "kind", "deleted", "sort_key", "key"],
    )
