"""Quiet cards, repeats: what each scoped card said (`issued_scope.card_key`, service.feedback.cardkey),
so a card at order-sign is a repeat only of the same card shown at order-select.  One nullable column:
cards recorded before it have none, and such a card never makes a repeat quiet.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("issued_scope", sa.Column("card_key", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("issued_scope") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("card_key")
