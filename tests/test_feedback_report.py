"""`dah-cds feedback-report` and service.feedback.report: rates, override reasons, the date window,
the per-service, per-week and per-suggestion splits, CSV and --database-url.  Cards and feedback
are stored as the service stores them (FeedbackStore.record_cards, add_feedback); one case goes
through HTTP as an EHR sends it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest

from service.cli import main
from service.feedback import FeedbackStore
from service.feedback.report import NO_REASON, rule_report, suggestion_report, week_of
from tests.conftest import CONTENT

REASONS = "http://example.org/fhir/CodeSystem/override-reason"


def card(uuid: str, rule: str, suggestions: tuple[str, ...] = ()) -> dict:
    return {"uuid": uuid, "indicator": "warning", "summary": "s",
            "source": {"label": "src", "topic": {"code": rule}},
            "suggestions": [{"uuid": f"{uuid}-s{i}", "label": label} for i, label in enumerate(suggestions)]}


def overridden(card_uuid: str, at: str, code: str | None = None, display: str | None = None,
               comment: str | None = None) -> dict:
    item: dict = {"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at}
    if code or comment:
        item["overrideReason"] = {}
        if code:
            coding = {"system": REASONS, "code": code}
            item["overrideReason"]["reason"] = coding | ({"display": display} if display else {})
        if comment:
            item["overrideReason"]["userComment"] = comment
    return item


def accepted(card_uuid: str, at: str, *suggestions: str) -> dict:
    return {"card": card_uuid, "outcome": "accepted", "outcomeTimestamp": at,
            "acceptedSuggestions": [{"id": s} for s in suggestions]}


def feed(store: FeedbackStore, service: str, items: list[dict]) -> None:
    store.add_feedback(service, items, store.issued_cards([i["card"] for i in items]))


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    """Two weeks of cards: R-A on two services, R-B on one; accepted, overridden, retried."""
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    week9, week10 = datetime(2026, 2, 24, 9, tzinfo=UTC), datetime(2026, 3, 3, 9, tzinfo=UTC)
    store.record_cards("svc-view", "h1", [card("a1", "R-A", ("Order X", "Order Y")), card("b1", "R-B")],
                       issued_at=week9)
    store.record_cards("svc-sign", "h2", [card("a2", "R-A", ("Order X", "Order Y"))], issued_at=week9)
    store.record_cards("svc-view", "h3", [card("a3", "R-A", ("Order X", "Order Y")), card("b3", "R-B")],
                       issued_at=week10)
    feed(store, "svc-view", [accepted("a1", "2026-02-24T09:01:00Z", "a1-s0"),
                             overridden("b1", "2026-02-24T09:02:00Z", "declined", "Patient declined",
                                        comment="wife present, said no")])
    feed(store, "svc-sign", [overridden("a2", "2026-02-24T10:00:00Z", "contraindicated"),
                             overridden("a2", "2026-02-24T10:00:05Z", "contraindicated")])  # a second click
    feed(store, "svc-view", [accepted("a3", "2026-03-03T09:01:00Z", "a3-s1"),
                             overridden("b3", "2026-03-03T09:02:00Z")])  # no reason given
    return store


def by_rule(rows: list[dict]) -> dict:
    return {r["rule"]: r for r in rows}


def test_rates_and_override_reasons_per_rule_each_card_counted_once(store):
    rows = by_rule(rule_report(store))
    a, b = rows["R-A"], rows["R-B"]
    assert (a["issued"], a["accepted"], a["overridden"]) == (3, 2, 1)
    assert a["override_reasons"] == {"contraindicated": 1}, "a card overridden twice with one reason counts once"
    assert (a["acceptance_rate"], a["override_rate"]) == (0.667, 0.333)
    assert (b["issued"], b["accepted"], b["overridden"]) == (2, 0, 2)
    assert b["override_reasons"] == {"Patient declined": 1, NO_REASON: 1}
    assert b["override_comments"] == 1 and "wife" not in json.dumps(rows), "comments are counted, never shown"


def test_the_window_takes_the_cards_issued_in_it_and_their_feedback(store):
    rows = by_rule(rule_report(store, since=date(2026, 3, 1)))
    assert (rows["R-A"]["issued"], rows["R-A"]["accepted"], rows["R-A"]["overridden"]) == (1, 1, 0)
    assert rows["R-B"]["override_reasons"] == {NO_REASON: 1}
    rows = by_rule(rule_report(store, until=date(2026, 2, 24)))
    assert rows["R-A"]["issued"] == 2 and rows["R-B"]["override_reasons"] == {"Patient declined": 1}
    assert rule_report(store, since=date(2026, 3, 4)) == []


def test_splits_by_service_and_by_week(store):
    per_service = {(r["rule"], r["service"]): r for r in rule_report(store, split=("service",))}
    assert sorted(per_service) == [("R-A", "svc-sign"), ("R-A", "svc-view"), ("R-B", "svc-view")]
    assert per_service["R-A", "svc-sign"]["overridden"] == 1 and per_service["R-A", "svc-view"]["accepted"] == 2
    per_week = {(r["rule"], r["week"]): r["issued"] for r in rule_report(store, split=("week",))}
    assert per_week == {("R-A", "2026-W09"): 2, ("R-A", "2026-W10"): 1, ("R-B", "2026-W09"): 1,
                        ("R-B", "2026-W10"): 1}
    assert week_of(datetime(2026, 1, 1)) == "2026-W01" and week_of(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"


def test_per_suggestion_offered_and_accepted(store):
    rows = {(r["rule"], r["suggestion"]): r for r in suggestion_report(store)}
    assert rows["R-A", "Order X"]["offered"] == 3 and rows["R-A", "Order X"]["accepted"] == 1
    assert rows["R-A", "Order Y"]["accepted"] == 1 and rows["R-A", "Order Y"]["acceptance_rate"] == 0.333
    assert not any(rule == "R-B" for rule, _ in rows), "cards without suggestions offer none"


def test_cli_csv_with_database_url_and_window(store, capsys):
    url = str(store.engine.url)
    assert main(["feedback-report", "--database-url", url, "--csv", "--since", "2026-02-01",
                 "--until", "2026-02-28"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rule"] for r in rows] == ["R-A", "R-B"]
    assert rows[0]["issued"] == "2" and rows[0]["override_reasons"] == "contraindicated=1"
    assert rows[1]["override_reasons"] == "Patient declined=1"

    assert main(["feedback-report", "--database-url", url, "--by", "service"]) == 0
    text = capsys.readouterr().out
    assert "svc-sign" in text and "contraindicated 1" in text and "Patient declined 1" in text

    assert main(["feedback-report", "--database-url", url, "--by", "suggestion", "--json"]) == 0
    assert {r["suggestion"] for r in json.loads(capsys.readouterr().out)} == {"Order X", "Order Y"}

    assert main(["feedback-report", "--database-url", url, "--since", "2026-03-02", "--until", "2026-03-01"]) == 2
    with pytest.raises(SystemExit):
        main(["feedback-report", "--since", "last tuesday"])


def test_csv_cells_a_spreadsheet_would_run_are_quoted(tmp_path, capsys):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'f.sqlite3'}")
    store.record_cards("svc", "h", [card("c1", "R-A")])
    feed(store, "svc", [overridden("c1", "2026-03-01T00:00:00Z", "x", display='=HYPERLINK("http://evil")')])
    assert main(["feedback-report", "--database-url", str(store.engine.url), "--csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["override_reasons"] == '\'=HYPERLINK("http://evil")=1'


def test_feedback_sent_over_http_is_reported_with_its_suggestion_and_reason(client, app, capsys):
    case = json.loads((CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json").read_text())
    cards = client.post("/cds-services/dah-patient-view", json=case["request"]).get_json()["cards"]
    with_suggestion = next(c for c in cards if c.get("suggestions"))
    other = next(c for c in cards if c is not with_suggestion and c.get("overrideReasons"))
    chosen = with_suggestion["suggestions"][0]
    reason = other["overrideReasons"][0]
    response = client.post("/cds-services/dah-patient-view/feedback", json={"feedback": [
        accepted(with_suggestion["uuid"], "2026-03-01T12:01:00Z", chosen["uuid"]),
        {"card": other["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-03-01T12:02:00Z",
         "overrideReason": {"reason": reason}}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    url = app.extensions["cds"].config.database_url
    assert main(["feedback-report", "--database-url", url, "--json"]) == 0
    rows = by_rule(json.loads(capsys.readouterr().out))
    assert rows[other["source"]["topic"]["code"]]["override_reasons"] == {reason["display"]: 1}
    assert main(["feedback-report", "--database-url", url, "--by", "suggestion", "--json"]) == 0
    suggestions = json.loads(capsys.readouterr().out)
    assert {"rule": with_suggestion["source"]["topic"]["code"], "suggestion": chosen["label"], "offered": 1,
            "accepted": 1, "acceptance_rate": 1.0} in suggestions
