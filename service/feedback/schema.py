"""The feedback store's tables, as the code uses them.  The database gets them only through the
migrations (service/feedback/migrations, `dah-cds migrate`): a change here comes with a new revision,
and tests/feedback/test_migrations.py fails while the two disagree."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

issued_cards = Table(
    "issued_card",
    metadata,
    Column("uuid", String(64), primary_key=True),
    Column("service_id", String(200), nullable=False),
    Column("hook_instance", String(200), nullable=False),
    Column("rule_id", String(200)),
    Column("indicator", String(16)),
    Column("issued_at", DateTime(timezone=True), nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(200), nullable=False),
    Column("card_uuid", String(64), nullable=False),
    Column("hook_instance", String(200)),
    Column("rule_id", String(200)),
    Column("outcome", String(16), nullable=False),
    Column("accepted_suggestions", JSON),
    Column("override_reason", JSON),
    Column("outcome_timestamp", String(40), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_retry"),
)

# The suggestions of each issued card (§Feedback: acceptedSuggestions name them by uuid).
issued_suggestions = Table(
    "issued_suggestion",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("suggestion_uuid", String(64), primary_key=True),
)

# The label each suggestion was shown with, for the per-suggestion report (its uuid is per call).
suggestion_labels = Table(
    "suggestion_label",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("suggestion_uuid", String(64), primary_key=True),
    Column("label", String(300)),
)

# The scope of each issued card, for quiet cards (service.hooks.suppression): who it was shown for, in
# which encounter, at which hook and for which draft orders; patient and encounter ids are kept as
# sha256 keys, never as sent; `card_key` is what the card said (service.feedback.cardkey), so a repeat at
# order-sign is the same card, not only a card of the same rule (NULL for cards recorded before it existed).
issued_scope = Table(
    "issued_scope",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("rule_id", String(200)),
    Column("hook", String(64), nullable=False),
    Column("patient_key", String(64), nullable=False),
    Column("encounter_key", String(64)),
    Column("draft_key", String(64)),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("card_key", String(64)),
    Index("ix_issued_scope_patient", "patient_key", "issued_at"),
)

# What identifies the order each suggestion of a card proposes, for quiet cards after an accepted
# suggestion (service.hooks.orders): `orders` is a list of {"type": resourceType, "groups": [["system|code"]]}
# (one group per ingredient of a medication, else one group), one per resource the suggestion creates.
# Only for cards of rules with an accept window.
suggestion_orders = Table(
    "suggestion_order",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("suggestion_uuid", String(64), primary_key=True),
    Column("orders", JSON, nullable=False),
)

# Cards a call left out because they were quiet, for the feedback report.
suppressed_cards = Table(
    "suppressed_card",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(200), nullable=False),
    Column("hook_instance", String(200), nullable=False),
    Column("card_uuid", String(64), nullable=False),
    Column("rule_id", String(200)),
    Column("reason", String(32), nullable=False),  # overridden | accepted | repeat
    Column("quiet_until", DateTime(timezone=True)),
    Column("suppressed_at", DateTime(timezone=True), nullable=False, index=True),
)

# CDS Hooks 2.0 §Trusting CDS Clients: `jti` "used to protect against replay attacks".
# The key is sha256(iss NUL jti): fixed size, whatever the client sends.
token_ids = Table(
    "token_id",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),  # epoch seconds
)
