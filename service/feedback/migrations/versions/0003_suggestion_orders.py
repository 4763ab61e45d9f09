"""Quiet cards after an accepted suggestion: what identifies the order each suggestion proposes
(`suggestion_order`), so the card stays quiet only while that order is active.  New table only.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suggestion_order",
        sa.Column("card_uuid", sa.String(64), primary_key=True),
        sa.Column("suggestion_uuid", sa.String(64), primary_key=True),
        sa.Column("orders", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suggestion_order")
