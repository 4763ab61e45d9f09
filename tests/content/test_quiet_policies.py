"""The clinical content's quiet policies (plandefinitions/README.md, "The clinical content's quiet
policies"): the TB-screening card of a prednisone order is shown once per ordering session, at
order-select, and not again at order-sign for the same unchanged draft; a changed draft shows it again;
a dose-check card is shown at both steps; a store that cannot be read shows every card.  Through the real
Flask app on plandefinitions/, with a temporary SQLite store and the service's clock moved by the test;
the patient and draft are the scenario case SAFE-LTBI/order-select-prednisone-20-acute-dah (SLE with DAH,
no IGRA in the record, prednisone 20 mg daily drafted)."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from service.app import create_app
from service.engine.quiet import QUIET_EXTENSIONS
from service.feedback.report import rule_report
from service.feedback.store import FeedbackStore
from tests.conftest import CONTENT, T0

CASE = CONTENT / "tests" / "SAFE-LTBI" / "order-select-prednisone-20-acute-dah.json"
TRACE = "http://example.org/fhir/cds-hooks/extension/trace"
ORDER_HOOKS = {"order-select", "order-sign"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(tmp_path):
    return tmp_path / "feedback.sqlite3"


@pytest.fixture
def ehr(database, clock, content):
    app = create_app({"database_url": f"sqlite:///{database}"}, clock=clock, content=content)
    app.config.update(TESTING=True)
    return app.test_client()


def select_request() -> dict[str, Any]:
    case = json.loads(CASE.read_text(encoding="utf-8"))
    return case["request"]


def sign_request(dose: float = 20) -> dict[str, Any]:
    """order-sign for the same drafts, as an EHR sends it after order-select: no selections, the draft's
    version and authoring time moved on; `dose` changes the drafted prednisone dose (mg)."""
    body = copy.deepcopy(select_request())
    body["hook"] = "order-sign"
    del body["context"]["selections"]
    [entry] = body["context"]["draftOrders"]["entry"]
    draft = entry["resource"]
    draft["meta"] = {"versionId": "2", "lastUpdated": "2026-03-01T12:02:00Z"}
    draft["authoredOn"] = "2026-03-01T12:02:00Z"
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = dose
    return body


def call(client, service: str, body: dict[str, Any], trace: bool = False) -> dict[str, Any]:
    body = dict(body, hookInstance=str(uuid.uuid4()))  # every step is a new hook instance
    response = client.post(f"/cds-services/{service}" + ("?_trace=true" if trace else ""), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def rules(body: dict[str, Any]) -> list[str]:
    return [card["source"]["topic"]["code"] for card in body["cards"]]


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """The response with the per-call ids (card and suggestion uuids: they follow the hookInstance)
    blanked and the trace left out, so two calls' whole responses compare."""
    out = copy.deepcopy(body)
    out.pop("extension", None)
    for card in out["cards"]:
        card["uuid"] = "-"
        card.get("extension", {}).pop(TRACE, None)
        if card.get("extension") == {}:
            del card["extension"]
        for suggestion in card.get("suggestions") or []:
            suggestion["uuid"] = "-"
    return out


def test_the_tb_screening_card_is_shown_at_order_select_and_not_again_at_order_sign(ehr, clock, database):
    selected = call(ehr, "safety-order-select", select_request())
    assert rules(selected) == ["SAFE-LTBI"]
    [card] = selected["cards"]
    assert card["indicator"] == "warning" and card["summary"].startswith("No latent TB screen in 12 months")

    clock.now = T0 + timedelta(minutes=2)
    assert call(ehr, "safety-order-sign", sign_request()) == {"cards": []}

    clock.now = T0 + timedelta(minutes=3)
    traced = call(ehr, "safety-order-sign", sign_request(), trace=True)
    assert traced["cards"] == []
    [quiet] = traced["extension"][TRACE]["quiet"]
    assert quiet == {"uuid": quiet["uuid"], "rule": "SAFE-LTBI", "summary": card["summary"], "indicator": "warning",
                     "reason": "repeat", "until": "2026-03-02T12:00:00+00:00",
                     "link": {"label": "Why this recommendation", "type": "absolute",
                              "url": "http://localhost/guidance/SAFE-LTBI"}}
    assert "overrideReason" not in quiet
    [row] = [r for r in rule_report(FeedbackStore(f"sqlite:///{database}")) if r["rule"] == "SAFE-LTBI"]
    assert row["suppressed"] == 2


def test_a_changed_dose_shows_the_card_again_at_order_sign(ehr, clock):
    selected = call(ehr, "safety-order-select", select_request())
    clock.now = T0 + timedelta(minutes=2)
    changed = call(ehr, "safety-order-sign", sign_request(dose=40), trace=True)
    assert rules(changed) == ["SAFE-LTBI"]
    assert without_ids(changed) == without_ids(selected)
    assert "quiet" not in changed["extension"][TRACE]


def test_the_next_ordering_session_shows_the_card_again(ehr, clock):
    """A second order-sign (no order-select before it) and an order-sign a day after the order-select each
    show the card: only the order-select of the same session makes the repeat."""
    call(ehr, "safety-order-select", select_request())
    clock.now = T0 + timedelta(minutes=2)
    assert call(ehr, "safety-order-sign", sign_request()) == {"cards": []}
    clock.now = T0 + timedelta(hours=24, minutes=1)
    assert rules(call(ehr, "safety-order-sign", sign_request())) == ["SAFE-LTBI"]


def test_a_dose_check_card_is_still_shown_at_order_sign(ehr, clock):
    """Prednisone drafted as the first glucocorticoid of acute DAH: the dose check's card (no quiet
    policy, one card per drafted order) comes at both steps, identical, while the TB card is quiet."""
    selected = call(ehr, "dose-checks-order-select", select_request())
    call(ehr, "safety-order-select", select_request())
    assert rules(selected) == ["DC-MP-PULSE-LOW"]
    clock.now = T0 + timedelta(minutes=2)
    signed = call(ehr, "dose-checks-order-sign", sign_request(), trace=True)
    assert without_ids(signed) == without_ids(selected)
    assert "quiet" not in signed["extension"][TRACE]
    assert call(ehr, "safety-order-sign", sign_request()) == {"cards": []}


def test_a_store_that_cannot_be_read_shows_the_card(ehr, clock, monkeypatch):
    selected = call(ehr, "safety-order-select", select_request())

    def broken(self, *args, **kwargs):
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(FeedbackStore, "quiet_history", broken)
    clock.now = T0 + timedelta(minutes=2)
    signed = call(ehr, "safety-order-sign", sign_request(), trace=True)
    assert without_ids(signed) == without_ids(selected)
    trace = signed["extension"][TRACE]
    assert "quiet" not in trace
    assert {"severity": "warning", "location": "quiet cards",
            "message": "feedback store unavailable: every card is shown"} in trace["issues"]


def policy_actions(content) -> dict[str, tuple[str, frozenset[str]]]:
    """Action id -> (priority, hooks) of every action of the clinical content with a quiet policy."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for path in sorted(CONTENT.glob("PlanDefinition-*.json")):
        stack = list(json.loads(path.read_text(encoding="utf-8")).get("action", []))
        while stack:
            action = stack.pop()
            if any(e.get("url") in QUIET_EXTENSIONS for e in action.get("extension", [])):
                hooks = frozenset(t.get("name") for t in action.get("trigger", []))
                out[action["id"]] = (action.get("priority"), hooks)
            stack.extend(action.get("action", []))
    return out


def test_only_non_critical_safety_cards_of_both_order_steps_are_once_per_draft(content):
    """The policies the content README states: once per draft, no override or accept window, never on a
    critical card, only on rules that answer both order-select and order-sign."""
    actions = policy_actions(content)
    assert sorted(actions) == ["safe-hbv-rtx", "safe-ltbi", "safe-pcp-atovaquone", "safe-pcp-pediatric",
                               "safe-pcp-tmp-smx"]
    for aid, (priority, hooks) in actions.items():
        assert priority != "stat" and ORDER_HOOKS <= hooks, aid
    quiet = content.services["safety-order-sign"].plan.quiet
    assert sorted(quiet) == ["SAFE-HBV-RTX", "SAFE-LTBI", "SAFE-PCP"]
    for rule, policy in quiet.items():
        assert policy.once_per_draft and policy.after_override is None and policy.after_accept is None, rule
    assert content.services["dose-checks-order-sign"].plan.quiet == {}
    assert content.services["dah-order-sign"].plan.quiet == {}
