"""§Feedback within limits: items per post, text lengths, suggestion ids checked against the card
that was issued, and one transaction per post (all items stored or none)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.conformance.helpers import base_request, outcome
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW

SERVICE = PATIENT_VIEW
FEEDBACK = SERVICE + "/feedback"


@pytest.fixture
def make_app(database_url, synthetic_content):
    """The app on the synthetic content with one feedback database, SQLite then PostgreSQL (tests/conftest.py)."""
    from service.app import create_app

    def make(**config):
        app = create_app({"database_url": database_url, **config}, clock=lambda: T0, content=synthetic_content)
        app.config.update(TESTING=True)
        return app

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def cards(app) -> list[dict]:
    response = app.test_client().post(SERVICE, json=base_request())
    found = [c for c in response.get_json()["cards"] if c.get("suggestions")]
    assert len(found) >= 2
    return found


def stored_rows(app) -> list[dict]:
    """The feedback table's rows, read as the report command's SQL would."""
    from sqlalchemy import select

    from service.feedback.store import feedback

    with app.extensions["cds"].store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(feedback).order_by(feedback.c.id)).mappings()]


def accepted(card: dict, suggestion: str | None = None, minute: int = 5, **extra) -> dict:
    return {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": f"2026-03-01T12:{minute:02d}:00Z",
            "acceptedSuggestions": [{"id": suggestion or card["suggestions"][0]["uuid"]}], **extra}


def overridden(card: dict, minute: int = 6, comment: str = "not now") -> dict:
    return {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": f"2026-03-01T12:{minute:02d}:00Z",
            "overrideReason": {"userComment": comment}}


def test_an_accepted_suggestion_must_be_one_of_the_cards_own(app, cards):
    client = app.test_client()
    other = cards[1]["suggestions"][0]["uuid"]  # a real suggestion, of another card
    for wrong in ("never-issued", other):
        issues = outcome(client.post(FEEDBACK, json={"feedback": [accepted(cards[0], wrong)]}), 422)
        assert issues[0]["expression"] == ["feedback[0].acceptedSuggestions[0].id"]
    assert stored_rows(app) == []
    for suggestion in cards[0]["suggestions"]:
        assert client.post(FEEDBACK, json={"feedback": [accepted(cards[0], suggestion["uuid"])]}).status_code == 200


def test_one_bad_item_stores_none_of_the_post(app, cards):
    client = app.test_client()
    post = {"feedback": [accepted(cards[0]), overridden(cards[1]), accepted(cards[1], "not-a-suggestion")]}
    issues = outcome(client.post(FEEDBACK, json=post), 422)
    assert issues[0]["expression"] == ["feedback[2].acceptedSuggestions[0].id"]
    assert stored_rows(app) == []
    post["feedback"][2] = {**post["feedback"][2], "card": "never-issued"}
    outcome(client.post(FEEDBACK, json=post), 422)
    assert stored_rows(app) == []


def test_a_post_is_one_transaction_even_when_the_database_fails_midway(app, cards):
    """The database refuses the third row (a trigger stands in for a full disk or a lost connection):
    the two rows before it are rolled back with it."""
    store = app.extensions["cds"].store
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON feedback WHEN NEW.outcome_timestamp = "
                              "'2026-03-01T12:09:00Z' BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              "IF NEW.outcome_timestamp = '2026-03-01T12:09:00Z' THEN RAISE EXCEPTION 'disk full'; "
                              "END IF; RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON feedback FOR EACH ROW EXECUTE FUNCTION refuse()"))
    post = {"feedback": [accepted(cards[0], minute=7), overridden(cards[1], minute=8), overridden(cards[0], minute=9)]}
    response = app.test_client().post(FEEDBACK, json=post)
    assert response.status_code == 500 and response.get_json()["resourceType"] == "OperationOutcome"
    assert stored_rows(app) == []


def test_items_per_post_are_limited(make_app, cards, app):
    client = app.test_client()
    many = {"feedback": [overridden(cards[0], minute=i % 60) for i in range(101)]}
    issues = outcome(client.post(FEEDBACK, json=many), 413)
    assert issues[0]["code"] == "too-costly" and "101 feedback items" in issues[0]["diagnostics"]
    assert stored_rows(app) == []
    hundred = {"feedback": [{**overridden(cards[0]), "outcomeTimestamp": f"2026-03-01T{12 + i // 60}:{i % 60:02d}:00Z"}
                            for i in range(100)]}
    assert client.post(FEEDBACK, json=hundred).get_json() == {"stored": 100, "duplicates": 0}


def test_a_repeated_item_in_one_post_is_stored_once(app, cards):
    client = app.test_client()
    answer = client.post(FEEDBACK, json={"feedback": [overridden(cards[0]), overridden(cards[0])]}).get_json()
    assert answer == {"stored": 1, "duplicates": 1}
    assert client.post(FEEDBACK, json={"feedback": [overridden(cards[0])]}).get_json() == {"stored": 0,
                                                                                           "duplicates": 1}


@pytest.mark.parametrize("item, where", [
    (lambda c: overridden(c, comment="x" * 2001), "feedback[0].overrideReason.userComment"),
    (lambda c: {**overridden(c), "overrideReason": {"reason": {"code": "c" * 201, "system": "s"}}},
     "feedback[0].overrideReason.reason.code"),
    (lambda c: {**overridden(c), "card": "c" * 65}, "feedback[0].card"),
    (lambda c: accepted(c, "s" * 65), "feedback[0].acceptedSuggestions[0].id"),
])
def test_texts_past_their_length_are_400(app, cards, item, where):
    issues = outcome(app.test_client().post(FEEDBACK, json={"feedback": [item(cards[0])]}), 400)
    assert issues[0]["expression"] == [where]


def test_only_the_fields_feedback_defines_are_stored(app, cards):
    item = overridden(cards[0]) | {"extra": "x" * 1000}
    item["overrideReason"] |= {"reason": {"code": "c", "system": "s", "junk": [1] * 100}, "more": "y" * 1000}
    assert app.test_client().post(FEEDBACK, json={"feedback": [item]}).status_code == 200
    row, = stored_rows(app)
    assert row["override_reason"] == {"reason": {"code": "c", "system": "s"}, "userComment": "not now"}
