"""Placeholder for 0003 (the results tables, added on another branch): no changes.

INTEGRATOR: delete this file when merging with the branch that adds
``0003_results.py``; ``0004`` revises ``0003`` either way.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
