"""Issued cards and the feedback EHRs send about them; the ids of the client tokens in use.

Rules: every card the service returns is recorded (uuid, service, hookInstance, rule id) with
the uuids of its suggestions; feedback is accepted only for a card this service issued through
the same service (checked by service.hooks.feedback); the items of one feedback post are stored
in one transaction, all or none; a repeated feedback item (same card, outcome and
outcomeTimestamp, in the same post or a later one) is stored once, so EHR retries are idempotent.
A client token's `jti` is recorded until the token expires (`first_use_of_token`): the insert
is unique, so of two workers or instances sharing the database that see the same token,
exactly one is told it is the first use.

The tables (service.feedback.schema) come from the migrations, brought to the newest revision
when a store is opened (service.feedback.migrate).

Quiet cards (service.hooks.suppression): each issued card of a rule with a quiet policy is also
recorded with its call's scope (`issued_scope`: the patient and encounter as sha256 keys, never as
sent, the hook, the draft-orders key, and the key of what the card said, service.feedback.cardkey),
read back for one patient in one indexed query (`quiet_history`); the cards a call left out are
counted in `suppressed_card`.  What identifies the
order each suggestion proposes is recorded with the card when the caller gives it (`suggestion_order`),
and read back with an `accepted` feedback item as the orders of the suggestions it accepted (all the
card's suggestions when the item names none).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, event, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from service.feedback.cardkey import card_key
from service.feedback.migrate import upgrade
from service.feedback.schema import (
    feedback,
    issued_cards,
    issued_scope,
    issued_suggestions,
    metadata,
    suggestion_labels,
    suggestion_orders,
    suppressed_cards,
    token_ids,
)

__all__ = ["FeedbackStore", "feedback", "issued_cards", "issued_scope", "issued_suggestions", "metadata",
           "suggestion_labels", "suggestion_orders", "suppressed_cards", "token_ids"]

# One order a suggestion proposes: (resourceType, its code groups): one group of "system|code" codes per
# ingredient of a medication, else one group, its code (service.hooks.orders).
OrderKey = tuple[str, tuple[tuple[str, ...], ...]]
# The orders of each suggestion of the cards of a call, by (card uuid, suggestion uuid).
SuggestionOrders = Mapping[tuple[str, str], Sequence[OrderKey]]

# How long before its feedback a card may have been issued for the feedback to count (quiet_history).
FEEDBACK_AFTER_ISSUE = timedelta(days=7)
PURGE_EVERY_SECONDS = 60.0
# The databases the store runs on, with their INSERT that can skip rows already there (ON CONFLICT).
_INSERT_NEW: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def _utc(moment: datetime) -> datetime:
    """UTC, aware: SQLite gives back what it stored without its offset, so only UTC is stored."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def scope_key(value: str | None) -> str | None:
    """The stored form of a patient or encounter id: sha256, fixed size, not the id itself."""
    return None if value is None else hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CallScope:
    """What a call's cards are recorded with, and what quiet cards are matched on."""

    hook: str
    patient_id: str
    encounter_id: str | None = None
    draft_key: str | None = None
    # The rules whose cards are recorded with the scope (those with a quiet policy; None: every rule).
    # Only a rule with a policy is ever matched on it (service.hooks.suppression): a rule that gains a
    # policy later has no scope for its earlier cards, which then cannot make a card quiet (fail open).
    rules: frozenset[str] | None = None


@dataclass(frozen=True)
class PastCard:
    """One card issued for the patient, with one feedback item about it (outcome None: no feedback)."""

    rule_id: str | None
    hook: str
    encounter_key: str | None
    draft_key: str | None
    issued_at: datetime
    outcome: str | None = None
    override_reason: dict | None = None
    outcome_timestamp: str | None = None
    received_at: datetime | None = None
    # outcome `accepted`: the orders its accepted suggestions propose (empty: none proposes an order, or
    # the card was issued without them)
    accepted_orders: tuple[OrderKey, ...] = ()
    # what the card said (service.feedback.cardkey; None: recorded before the key was)
    card_key: str | None = None


def _sqlite_write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """SQLite file databases: write-ahead log, synced at checkpoints rather than on every commit
    (https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous: with WAL,
    NORMAL keeps the database consistent and every committed card survives a crash of the process;
    only a power loss can drop the last commits).  Readers do not block the writer, so workers sharing
    the file wait less; a writer waits up to 5 s for another's lock instead of failing at once."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=5000")
        # The mode is kept in the file: set once, by the first connection.  Switching needs the file to
        # itself, and SQLite answers "database is locked" at once (no busy wait) while another
        # connection of a store opening at the same moment holds it: try again for up to 5 s.
        deadline = time.monotonic() + 5
        while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class FeedbackStore:
    def __init__(self, url: str):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, future=True)
        if self.engine.dialect.name not in _INSERT_NEW:
            raise ValueError(f"the feedback store runs on SQLite or PostgreSQL, not {self.engine.dialect.name}")
        self._inserts: dict[str, Any] = {}
        if url.startswith("sqlite:") and ":memory:" not in url and url != "sqlite://":
            event.listen(self.engine, "connect", _sqlite_write_ahead_log)
        upgrade(self.engine)  # the schema at the newest revision, once for all who start together
        self._purged_at = 0.0
        self._purge_lock = threading.Lock()

    def reachable(self) -> str | None:
        """None when the database answers a trivial query, else the error's type (for /ready; the
        message may hold the URL's password, so it is not returned)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(literal(1)))
            return None
        except Exception as exc:  # any driver error means "not reachable"
            return type(exc).__name__

    def first_use_of_token(self, issuer: str, jti: str, expires_at: int, now: int) -> bool:
        """Record token id `jti` of `issuer` until `expires_at`; False if it is already recorded
        and not yet expired (a replay).  An expired record is taken over by one caller only."""
        key = hashlib.sha256(f"{issuer}\0{jti}".encode("utf-8", "surrogatepass")).hexdigest()
        self._purge_expired(now)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(token_ids), [{"key": key, "expires_at": expires_at}])
            return True
        except IntegrityError:
            with self.engine.begin() as conn:
                taken = conn.execute(update(token_ids).where(token_ids.c.key == key, token_ids.c.expires_at < now)
                                     .values(expires_at=expires_at)).rowcount
            return taken == 1

    def _purge_expired(self, now: int) -> None:
        """Delete expired token ids, at most once a minute per process."""
        with self._purge_lock:
            if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS and self._purged_at:
                return
            self._purged_at = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(delete(token_ids).where(token_ids.c.expires_at < now))

    def record_cards(self, service_id: str, hook_instance: str, cards: list[dict],
                     issued_at: datetime | None = None, scope: CallScope | None = None,
                     scope_at: datetime | None = None, orders: SuggestionOrders | None = None) -> None:
        """Record the cards of one call; with `scope`, also what quiet cards are matched on, at `scope_at`
        (the call's moment on the service's clock; default `issued_at`); with `orders`, the orders the
        cards' suggestions propose."""
        now = issued_at or datetime.now(UTC)
        scoped_at = _utc(scope_at or now)
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
        links = sorted({(c["uuid"], s["uuid"], str(s.get("label") or "")[:300])
                        for c in cards for s in c.get("suggestions") or [] if s.get("uuid")})
        scoped = [(r, c) for r, c in zip(rows, cards, strict=True)
                  if scope is not None and (scope.rules is None or r["rule_id"] in scope.rules)]
        # One statement per table, each row inserted unless already there (a repeated call with the
        # same hookInstance gives the same uuids): no read first, no retry.
        with self.engine.begin() as conn:
            conn.execute(self._insert_new(issued_cards), rows)
            if scope is not None and scoped:
                conn.execute(self._insert_new(issued_scope), [{
                    "card_uuid": r["uuid"], "rule_id": r["rule_id"], "hook": scope.hook,
                    "patient_key": scope_key(scope.patient_id), "encounter_key": scope_key(scope.encounter_id),
                    "draft_key": scope.draft_key, "issued_at": scoped_at, "card_key": card_key(c)}
                    for r, c in scoped])
            if links:
                conn.execute(self._insert_new(issued_suggestions),
                             [{"card_uuid": c, "suggestion_uuid": s} for c, s, _ in links])
                conn.execute(self._insert_new(suggestion_labels),
                             [{"card_uuid": c, "suggestion_uuid": s, "label": label} for c, s, label in links])
            proposed = [{"card_uuid": c, "suggestion_uuid": s,
                         "orders": [{"type": t, "groups": [list(g) for g in groups]} for t, groups in keys]}
                        for (c, s), keys in sorted((orders or {}).items()) if keys]
            if proposed:
                conn.execute(self._insert_new(suggestion_orders), proposed)

    def _insert_new(self, table: Any) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING on the table's primary key (SQLite and PostgreSQL both have it),
        made once per table."""
        statement = self._inserts.get(table.name)
        if statement is None:
            statement = _INSERT_NEW[self.engine.dialect.name](table).on_conflict_do_nothing()
            self._inserts[table.name] = statement
        return statement

    def issued(self, card_uuid: str) -> dict | None:
        return self.issued_cards([card_uuid]).get(card_uuid)

    def issued_cards(self, card_uuids: list[str]) -> dict[str, dict]:
        """The issued cards among `card_uuids`, by uuid, each with `suggestions` (the set of its
        suggestion uuids)."""
        wanted = sorted(set(card_uuids))
        with self.engine.connect() as conn:
            cards = {row["uuid"]: dict(row, suggestions=set()) for row in conn.execute(
                select(issued_cards).where(issued_cards.c.uuid.in_(wanted))).mappings()}
            for card_uuid, suggestion in conn.execute(select(issued_suggestions).where(
                    issued_suggestions.c.card_uuid.in_(wanted))).all():
                if card_uuid in cards:
                    cards[card_uuid]["suggestions"].add(suggestion)
        return cards

    def add_feedback(self, service_id: str, items: list[dict], cards: dict[str, dict],
                     received_at: datetime | None = None) -> int:
        """Store the feedback items of one post in one transaction, each with the issued card it is about
        (`cards`, by uuid); items already stored (retries) are left out.  The number stored."""
        received = _utc(received_at) if received_at else datetime.now(UTC)
        rows: dict[tuple, dict] = {}
        for item in items:
            key = (item["card"], item["outcome"], item["outcomeTimestamp"])
            card = cards[item["card"]]
            rows.setdefault(key, {
                "service_id": service_id,
                "card_uuid": item["card"],
                "hook_instance": card.get("hook_instance"),
                "rule_id": card.get("rule_id"),
                "outcome": item["outcome"],
                "accepted_suggestions": item.get("acceptedSuggestions"),
                "override_reason": item.get("overrideReason"),
                "outcome_timestamp": item["outcomeTimestamp"],
                "received_at": received,
            })
        for attempt in (1, 2):  # a concurrent post of the same items may commit first: then they are retries
            try:
                with self.engine.begin() as conn:
                    existing = {tuple(row) for row in conn.execute(
                        select(feedback.c.card_uuid, feedback.c.outcome, feedback.c.outcome_timestamp)
                        .where(feedback.c.card_uuid.in_(sorted({k[0] for k in rows}))))}
                    fresh = [row for key, row in rows.items() if key not in existing]
                    if fresh:
                        conn.execute(insert(feedback), fresh)
                return len(fresh)
            except IntegrityError:
                if attempt == 2:
                    raise
        return 0

    def rates(self) -> list[dict]:
        """Per rule: cards issued, accepted, overridden, and the rates (for the report command)."""
        with self.engine.connect() as conn:
            issued: dict[str | None, int] = dict(conn.execute(
                select(issued_cards.c.rule_id, func.count()).group_by(issued_cards.c.rule_id)).all())
            outcomes = conn.execute(
                select(feedback.c.rule_id, feedback.c.outcome, func.count(func.distinct(feedback.c.card_uuid)))
                .group_by(feedback.c.rule_id, feedback.c.outcome)).all()
        table: dict[str | None, dict[str, Any]] = {}  # by rule id (None: a card without one)
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

    def quiet_history(self, patient_id: str, rule_ids: Sequence[str], since: datetime) -> list[PastCard]:
        """The cards of rules `rule_ids` issued for the patient since `since` (or up to FEEDBACK_AFTER_ISSUE
        before it), each with each feedback item about it: one query on the patient index."""
        scope, fb = issued_scope, feedback
        query = (select(scope.c.rule_id, scope.c.hook, scope.c.encounter_key, scope.c.draft_key, scope.c.issued_at,
                        fb.c.outcome, fb.c.override_reason, fb.c.outcome_timestamp, fb.c.received_at,
                        scope.c.card_uuid, fb.c.accepted_suggestions, scope.c.card_key)
                 .select_from(scope.outerjoin(fb, fb.c.card_uuid == scope.c.card_uuid))
                 .where(scope.c.patient_key == scope_key(patient_id),
                        scope.c.issued_at >= _utc(since) - FEEDBACK_AFTER_ISSUE,
                        scope.c.rule_id.in_(sorted(set(rule_ids)))))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            accepted = sorted({row[9] for row in rows if row[5] == "accepted"})
            proposed: dict[str, dict[str, list]] = {}
            if accepted:  # a second indexed read, only when a suggestion was accepted
                for card, suggestion, keys in conn.execute(select(
                        suggestion_orders.c.card_uuid, suggestion_orders.c.suggestion_uuid, suggestion_orders.c.orders)
                        .where(suggestion_orders.c.card_uuid.in_(accepted))).all():
                    proposed.setdefault(card, {})[suggestion] = keys
        return [PastCard(rule, hook, encounter, draft, _utc(issued), outcome, reason, stamp,
                         None if received is None else _utc(received),
                         _accepted_orders(proposed.get(card, {}), chosen) if outcome == "accepted" else (), said)
                for rule, hook, encounter, draft, issued, outcome, reason, stamp, received, card, chosen, said in rows]

    def record_suppressed(self, service_id: str, hook_instance: str, rows: list[dict], at: datetime) -> None:
        """Count the cards one call left out (`rows`: uuid, rule, reason, until as an ISO 8601 text)."""
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(suppressed_cards), [
                {"service_id": service_id, "hook_instance": hook_instance, "card_uuid": r["uuid"],
                 "rule_id": r.get("rule"), "reason": r["reason"],
                 "quiet_until": _utc(datetime.fromisoformat(r["until"])), "suppressed_at": _utc(at)}
                for r in rows])


def _accepted_orders(by_suggestion: dict[str, list], chosen: Any) -> tuple[OrderKey, ...]:
    """The orders of the suggestions an `accepted` item names (CDS Hooks 2.0 §Feedback `acceptedSuggestions`,
    each `{"id": uuid}`); all the card's suggestions when it names none."""
    ids = {s.get("id") for s in chosen if isinstance(s, dict)} if isinstance(chosen, list) and chosen else None
    out: list[OrderKey] = []
    for suggestion, keys in sorted(by_suggestion.items()):
        if ids is None or suggestion in ids:
            out.extend((str(k.get("type")), tuple(tuple(str(c) for c in g) for g in k.get("groups") or ()
                                                  if isinstance(g, list)))
                       for k in keys if isinstance(k, dict))
    return tuple(out)
