"""Quiet cards on the preview page (service.web.preview_quiet) on the synthetic content: a decision
marked on a card makes it quiet in the next run (greyed, outside the live cards, with why, until when,
the override reason and the rule-page link) without touching the feedback store; forgetting brings
it back; and what a clinician decided through the service quiets the card in the preview too."""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.feedback.store import feedback, issued_cards
from tests.conftest import T0
from tests.protocol_content import PATIENT_VIEW, create_protocol_app, patient_view_request

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def app(tmp_path):
    return create_protocol_app(tmp_path / "feedback.sqlite3", T0)


@pytest.fixture
def client(app):
    return app.test_client()


def bundle() -> str:
    prefetch = patient_view_request()["prefetch"]
    resources = [prefetch["patient"]] + [e["resource"] for key in ("conditions", "observations")
                                         for e in prefetch[key]["entry"]]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]})


def preview(client, **extra) -> str:
    form = {"scenario": "", "hook": "patient-view", "service": "proto-patient-view", "now": "",
            "bundle": bundle(), "draft_orders": "", **extra}
    response = client.post("/preview", data=form, content_type=FORM)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def live(page: str) -> list[str]:
    return re.findall(r'<article class="card indicator-\w+" data-indicator="\w+" data-rule="([^"]*)"', page)


def quiet(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<article class="quiet-card indicator-\w+" data-rule="([^"]*)" data-reason="([^"]*)"', page)


def button(page: str, text: str) -> str:
    """The decision a button of the page posts."""
    found = re.search(r'<button type="submit" form="preview-form" name="decide" class="mark[^"]*" value="([^"]*)">'
                      + re.escape(text) + "</button>", page)
    assert found, f"no button {text!r}"
    return html.unescape(found.group(1))


def decisions_field(page: str) -> str:
    return html.unescape(re.search(r'name="decisions" id="decisions" value="([^"]*)"', page).group(1))


def test_a_card_marked_overridden_is_quiet_in_the_next_run_and_back_when_forgotten(client, app):
    first = preview(client)
    assert live(first) == ["PROTO-VERY-HIGH", "PROTO-HIGH", "PROTO-PROBLEMS"] and quiet(first) == []
    assert "Mark overridden" not in first.split('data-rule="PROTO-PROBLEMS"')[1], "no policy, no buttons"

    marked = preview(client, decide=button(first, "Mark overridden: Already done"))
    assert live(marked) == ["PROTO-VERY-HIGH", "PROTO-PROBLEMS"]
    assert quiet(marked) == [("PROTO-HIGH", "overridden")]
    card = marked.split('<article class="quiet-card')[1].split("</article>")[0]
    assert "The level is high" in card and '<time class="until">2026-03-02T12:00:00+00:00</time>' in card
    assert '<span class="override-reason">done</span>' in card
    assert 'href="http://localhost/guidance/PROTO-HIGH"' in card, "the rule page, as the card linked it"

    kept = preview(client, decisions=decisions_field(marked))
    assert quiet(kept) == [("PROTO-HIGH", "overridden")], "the decision stays with the page"
    later = preview(client, decisions=decisions_field(marked), now="2026-03-02T12:00:01Z")
    assert "PROTO-HIGH" in live(later), "the window is over"
    forgotten = preview(client, decisions=decisions_field(marked), forget="1")
    assert "PROTO-HIGH" in live(forgotten) and decisions_field(forgotten) == ""
    with app.extensions["cds"].store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(issued_cards)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(feedback)).scalar() == 0


def test_a_critical_card_marked_overridden_stays_live(client):
    first = preview(client)
    again = preview(client, decide=button(first, "Mark overridden: Already done"))
    assert "PROTO-VERY-HIGH" in live(again), "PROTO-VERY-HIGH has no policy, and is critical"


def test_a_card_a_clinician_overrode_through_the_service_is_quiet_in_the_preview(client):
    body = dict(patient_view_request(), hookInstance=str(uuid.uuid4()))
    cards = client.post(PATIENT_VIEW, json=body).get_json()["cards"]
    high = next(c for c in cards if c["source"]["topic"]["code"] == "PROTO-HIGH")
    item = {"card": high["uuid"], "outcome": "overridden", "outcomeTimestamp": T0.isoformat(),
            "overrideReason": {"reason": {"system": "http://example.org/fhir/CodeSystem/proto-override-reason",
                                               "code": "done"}}}
    assert client.post(PATIENT_VIEW + "/feedback", json={"feedback": [item]}).status_code == 200
    page = preview(client, now=(T0 + timedelta(hours=1)).isoformat())
    assert quiet(page) == [("PROTO-HIGH", "overridden")] and "PROTO-HIGH" not in live(page)


def test_a_decision_that_is_not_one_is_refused_on_the_page(client):
    response = client.post("/preview", data={"hook": "patient-view", "bundle": bundle(),
                                             "decisions": '[{"rule": "PROTO-HIGH", "outcome": "ignored"}]'},
                           content_type=FORM)
    assert response.status_code == 400 and "outcome" in response.get_data(as_text=True)
