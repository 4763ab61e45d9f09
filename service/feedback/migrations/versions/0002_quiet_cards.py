"""Quiet cards: the scope each card was issued in (`issued_scope`) and the cards a call left out as
quiet (`suppressed_card`).  New tables only; the existing ones are untouched.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issued_scope",
        sa.Column("card_uuid", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(200)),
        sa.Column("hook", sa.String(64), nullable=False),
        sa.Column("patient_key", sa.String(64), nullable=False),
        sa.Column("encounter_key", sa.String(64)),
        sa.Column("draft_key", sa.String(64)),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_issued_scope_patient", "issued_scope", ["patient_key", "issued_at"])
    op.create_table(
        "suppressed_card",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service_id", sa.String(200), nullable=False),
        sa.Column("hook_instance", sa.String(200), nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=False),
        sa.Column("rule_id", sa.String(200)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("quiet_until", sa.DateTime(timezone=True)),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_suppressed_card_suppressed_at", "suppressed_card", ["suppressed_at"])


def downgrade() -> None:
    op.drop_index("ix_suppressed_card_suppressed_at", table_name="suppressed_card")
    op.drop_table("suppressed_card")
    op.drop_index("ix_issued_scope_patient", table_name="issued_scope")
    op.drop_table("issued_scope")
