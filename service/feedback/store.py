"""Issued cards and the feedback EHRs send about them.

Rules: every card the service returns is recorded (uuid, service, hookInstance, rule id);
feedback is accepted only for a card this service issued through the same service;
a repeated feedback item (same card, outcome and outcomeTimestamp) is stored once, so
EHR retries are idempotent.
"""

from __future__ import annotations


from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    JSON, Column, DateTime, Integer, MetaData, String, Table, UniqueConstraint, create_engine, func, insert, select,
)
from sqlalchemy.exc import IntegrityError

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


class FeedbackStore:
    def __init__(self, url: str):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, future=True)
        metadata.create_all(self.engine)

    def record_cards(self, service_id: str, hook_instance: str, cards: list[dict]) -> None:
        now = datetime.now(timezone.utc)
        rows = [
            {
                "uuid": c["uuid"],
                "service_id": service_id,
                "hook_instance": hook_instance,
                "rule_id": (c.get("source", {}).get("topic") or {}).get("code"),
                "indicator": c.get("indicator"),
                "issued_at": now,
            }
            for c in cards
        ]
        if not rows:
            return
        with self.engine.begin() as conn:
            known = set(conn.execute(select(issued_cards.c.uuid).where(issued_cards.c.uuid.in_([r["uuid"] for r in rows]))).scalars())
            fresh = [r for r in rows if r["uuid"] not in known]
            if fresh:
                conn.execute(insert(issued_cards), fresh)

    def issued(self, card_uuid: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(issued_cards).where(issued_cards.c.uuid == card_uuid)).mappings().first()
        return dict(row) if row else None

    def add_feedback(self, service_id: str, item: dict, card: dict) -> bool:
        """Store one feedback item; False when it was already stored (a retry)."""
        row = {
            "service_id": service_id,
            "card_uuid": item["card"],
            "hook_instance": card.get("hook_instance"),
            "rule_id": card.get("rule_id"),
            "outcome": item["outcome"],
            "accepted_suggestions": item.get("acceptedSuggestions"),
            "override_reason": item.get("overrideReason"),
            "outcome_timestamp": item["outcomeTimestamp"],
            "received_at": datetime.now(timezone.utc),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(feedback), [row])
        except IntegrityError:
            return False
        return True

    def rates(self) -> list[dict]:
        """Per rule: cards issued, accepted, overridden, and the rates (for the report command)."""
        with self.engine.connect() as conn:
            issued = dict(conn.execute(
                select(issued_cards.c.rule_id, func.count()).group_by(issued_cards.c.rule_id)).all())
            outcomes = conn.execute(
                select(feedback.c.rule_id, feedback.c.outcome, func.count(func.distinct(feedback.c.card_uuid)))
                .group_by(feedback.c.rule_id, feedback.c.outcome)).all()
        table: dict = {}
        for rule, n in issued.items():
            table[rule] = {"rule": rule, "issued": n, "accepted": 0, "overridden": 0}
        for rule, outcome, n in outcomes:
            row = table.setdefault(rule, {"rule": rule, "issued": 0, "accepted": 0, "overridden": 0})
            row[outcome] = n
        for row in table.values():
            base = row["issued"] or 1
            row["acceptance_rate"] = round(row["accepted"] / base, 3)
            row["override_rate"] = round(row["overridden"] / base, 3)
        return sorted(table.values(), key=lambda r: str(r["rule"]))

    def feedback_rows(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(feedback).order_by(feedback.c.id)).mappings()]



