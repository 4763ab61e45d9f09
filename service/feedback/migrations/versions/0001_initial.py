"""The store's first schema: issued cards, their suggestions and the suggestions' labels, feedback,
client token ids.

A database created before migrations existed (the tables made at start by the service itself, with
or without `issued_suggestion` and `suggestion_label`) is adopted: only the tables it lacks are created.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "issued_card" not in present:
        op.create_table(
            "issued_card",
            sa.Column("uuid", sa.String(64), primary_key=True),
            sa.Column("service_id", sa.String(200), nullable=False),
            sa.Column("hook_instance", sa.String(200), nullable=False),
            sa.Column("rule_id", sa.String(200)),
            sa.Column("indicator", sa.String(16)),
            sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "feedback" not in present:
        op.create_table(
            "feedback",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("service_id", sa.String(200), nullable=False),
            sa.Column("card_uuid", sa.String(64), nullable=False),
            sa.Column("hook_instance", sa.String(200)),
            sa.Column("rule_id", sa.String(200)),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("accepted_suggestions", sa.JSON),
            sa.Column("override_reason", sa.JSON),
            sa.Column("outcome_timestamp", sa.String(40), nullable=False),
            sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
            sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_retry"),
        )
    if "issued_suggestion" not in present:
        op.create_table(
            "issued_suggestion",
            sa.Column("card_uuid", sa.String(64), primary_key=True),
            sa.Column("suggestion_uuid", sa.String(64), primary_key=True),
        )
    if "suggestion_label" not in present:
        op.create_table(
            "suggestion_label",
            sa.Column("card_uuid", sa.String(64), primary_key=True),
            sa.Column("suggestion_uuid", sa.String(64), primary_key=True),
            sa.Column("label", sa.String(300)),
        )
    if "token_id" not in present:
        op.create_table(
            "token_id",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("expires_at", sa.BigInteger, nullable=False),
        )
        op.create_index("ix_token_id_expires_at", "token_id", ["expires_at"])


def downgrade() -> None:
    for table in ("token_id", "suggestion_label", "issued_suggestion", "feedback", "issued_card"):
        op.drop_table(table)
