"""The feedback store (service.feedback.store) shared by several processes, on SQLite and on
PostgreSQL: cards recorded and feedback stored by stores racing on the same rows land once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from service.feedback import FeedbackStore
from service.feedback.schema import feedback, issued_cards, issued_suggestions

CARDS = [{"uuid": f"card-{i}", "indicator": "warning", "source": {"topic": {"code": "R1"}},
          "suggestions": [{"uuid": f"card-{i}-s1"}, {"uuid": f"card-{i}-s2"}]} for i in range(5)]


def race(stores: list[FeedbackStore], work) -> list:
    """Run `work(store)` in one thread per store, released together; their results."""
    barrier = threading.Barrier(len(stores))
    results: list = [None] * len(stores)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(stores[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def count(store: FeedbackStore, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_racing_stores_record_the_same_cards_and_feedback_once(database_url):
    stores = [FeedbackStore(database_url) for _ in range(4)]
    race(stores, lambda s: s.record_cards("svc", "hook-1", CARDS))
    assert count(stores[0], issued_cards) == 5 and count(stores[0], issued_suggestions) == 10
    cards = stores[0].issued_cards([c["uuid"] for c in CARDS])
    assert cards["card-0"]["suggestions"] == {"card-0-s1", "card-0-s2"}
    items = [{"card": c["uuid"], "outcome": "overridden", "outcomeTimestamp": f"2026-03-01T12:0{i}:00Z"}
             for i, c in enumerate(CARDS)]
    stored = race(stores, lambda s: s.add_feedback("svc", items, cards))
    assert sorted(stored) == [0, 0, 0, 5]  # one post stored them all; the others were retries
    assert count(stores[0], feedback) == 5
    rates = {r["rule"]: r for r in stores[0].rates()}
    assert rates["R1"]["issued"] == 5 and rates["R1"]["overridden"] == 5
    for store in stores:
        store.engine.dispose()


def test_racing_stores_record_scoped_cards_once_and_scope_only_rules_with_a_policy(database_url):
    """The scope quiet cards are matched on is recorded for the rules that have a policy only; the
    same call's cards recorded by racing stores (a retried hookInstance) land once in every table."""
    from datetime import UTC, datetime

    from service.feedback.cardkey import card_key
    from service.feedback.schema import issued_scope, suggestion_labels
    from service.feedback.store import CallScope

    cards = CARDS + [{"uuid": "other-0", "indicator": "info", "source": {"topic": {"code": "R2"}},
                      "suggestions": [{"uuid": "other-0-s1", "label": "Order X"}]}]
    scope = CallScope("order-sign", "patient-1", "enc-1", "drafts-1", rules=frozenset({"R2"}))
    stores = [FeedbackStore(database_url) for _ in range(4)]
    race(stores, lambda s: s.record_cards("svc", "hook-2", cards, scope=scope))
    race(stores, lambda s: s.record_cards("svc", "hook-2", cards, scope=scope))
    assert count(stores[0], issued_cards) == 6
    assert count(stores[0], issued_suggestions) == count(stores[0], suggestion_labels) == 11
    with stores[0].engine.connect() as conn:
        assert conn.execute(select(issued_scope.c.card_uuid, issued_scope.c.rule_id)).all() == [("other-0", "R2")]
    [past] = stores[0].quiet_history("patient-1", ["R2"], datetime.now(UTC))
    assert past.card_key == card_key(cards[-1]), "recorded with what the card said, read back with it"
    everything = CallScope("order-sign", "patient-1", rules=None)
    stores[0].record_cards("svc", "hook-3", [dict(CARDS[0], uuid="card-x")], scope=everything)
    with stores[0].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(issued_scope)).scalar_one() == 2
    for store in stores:
        store.engine.dispose()


def test_an_accepted_item_reads_back_the_orders_of_the_suggestions_it_accepted(database_url):
    from datetime import UTC, datetime

    from service.feedback.schema import suggestion_orders
    from service.feedback.store import CallScope

    store = FeedbackStore(database_url)
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    orders = {("card-0", "card-0-s1"): [("MedicationRequest", (("rx|10180",), ("rx|10829",)))],
              ("card-0", "card-0-s2"): [("ServiceRequest", (("lab|1", "lab|2"),))]}
    for _ in range(2):  # a retried call records its cards and their orders once
        store.record_cards("svc", "hook-1", CARDS[:2], issued_at=at, scope=CallScope("patient-view", "p1"),
                           orders=orders)
    assert count(store, suggestion_orders) == 2
    cards = store.issued_cards(["card-0", "card-1"])
    store.add_feedback("svc", [
        {"card": "card-0", "outcome": "accepted", "outcomeTimestamp": "2026-03-01T12:01:00Z",
         "acceptedSuggestions": [{"id": "card-0-s2"}]},
        {"card": "card-1", "outcome": "overridden", "outcomeTimestamp": "2026-03-01T12:01:00Z"}], cards)
    rows = {(r.outcome, r.accepted_orders) for r in store.quiet_history("p1", ["R1"], at)}
    assert rows == {("accepted", (("ServiceRequest", (("lab|1", "lab|2"),)),)), ("overridden", ())}
    store.engine.dispose()
