"""The HTTP surface: discovery, service calls, feedback, and every bad input answered with
a specific 4xx FHIR OperationOutcome (never a 500 or a stack trace)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.protocol_content import (
    PATIENT_VIEW,
    PATIENT_VIEW_RULES,
    RULES,
    order_request,
    patient_view_request,
    topics,
)
from tests.web.test_feedback_limits import stored_rows

REQUEST = patient_view_request()
SERVICE = PATIENT_VIEW


def outcome(response, status: int) -> list[dict]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Traceback" not in response.get_data(as_text=True)
    return body["issue"]


def without(key: str, where: str | None = None) -> dict:
    body = copy.deepcopy(REQUEST)
    (body[where] if where else body).pop(key)
    return body


def test_discovery_lists_one_service_per_plan_and_hook(client):
    services = client.get("/cds-services").get_json()["services"]
    assert sorted((s["id"], s["hook"]) for s in services) == [
        ("proto-both", "order-sign"), ("proto-both", "patient-view"), ("proto-order-select", "order-select"),
        ("proto-order-sign", "order-sign"), ("proto-patient-view", "patient-view")]
    proto = next(s for s in services if s["id"] == "proto-patient-view")
    assert proto["prefetch"] == {
        "patient": "Patient/{{context.patientId}}",
        "encounter": "Encounter/{{context.encounterId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "observations": "Observation?patient={{context.patientId}}&code="
                        "http://example.org/fhir/CodeSystem/proto-observation|level,"
                        "http://example.org/fhir/CodeSystem/proto-observation|other",
    }
    assert proto["title"] == "Synthetic plan for protocol tests"
    assert all(s["description"] for s in services)


def high(body: dict) -> dict:
    return next(c for c in body["cards"] if c["source"]["topic"]["code"] == "PROTO-HIGH")


def test_service_call_returns_cards(client):
    body = client.post(SERVICE, json=REQUEST).get_json()
    assert topics(body) == PATIENT_VIEW_RULES
    assert [c["indicator"] for c in body["cards"]] == ["critical", "warning", "info"]
    card = high(body)
    assert (card["summary"], card["detail"]) == ("The level is high", "A level above **10** was recorded.")
    assert [s["label"] for s in card["suggestions"]] == ["Order a recheck", "Order a recheck tomorrow"]
    assert set(body) == {"cards"}


RECHECK = {
    "resourceType": "ServiceRequest", "status": "draft", "intent": "proposal",
    "instantiatesCanonical": ["http://example.org/fhir/ActivityDefinition/proto-recheck"],
    "code": {"coding": [{"system": "http://example.org/fhir/CodeSystem/proto-observation", "code": "level",
                         "display": "Level"}], "text": "Recheck the level"},
    "occurrenceTiming": {"repeat": {"count": 2, "frequency": 1, "period": 1, "periodUnit": "d"}},
    "subject": {"reference": "Patient/p01"}, "encounter": {"reference": "Encounter/e01"},
    "requester": {"reference": "Practitioner/pr01"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Recheck the level.</p></div>'},
}


def without_uuids(body: dict) -> dict:
    """The response with its card and suggestion uuids taken out, after checking they are there."""
    body = copy.deepcopy(body)
    for card in body["cards"]:
        assert card.pop("uuid")
        for suggestion in card.get("suggestions", []):
            assert suggestion.pop("uuid")
    return body


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_an_order_call_is_answered_with_exactly_these_cards(client, hook):
    """The whole answer to an order hook: the draft dosed above 10 (m01) gets one card whose first
    suggestion updates that draft whole, with only the dose, its text and the narrative changed, and
    whose second replaces it (delete + create in one suggestion); the other draft (m02 at 5 units on
    order-sign, m03 at 30 units but not selected on order-select) gets nothing."""
    request = order_request(hook)
    draft = next(e["resource"] for e in request["context"]["draftOrders"]["entry"] if e["resource"]["id"] == "m01")
    updated = copy.deepcopy(draft)
    updated["dosageInstruction"][0]["text"] = "10 units once daily"
    updated["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 10
    narrative = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Medication A: 10 units once daily.</p></div>'
    updated["text"] = {"status": "generated", "div": narrative}
    source = {"label": "Protocol test source", "url": "https://example.org/protocol-test-source"}
    body = client.post(f"/cds-services/proto-{hook}", json=request).get_json()
    assert without_uuids(body) == {"cards": [
        {"summary": "The drafted dose of m01 is above 10", "detail": "A drafted order doses more than 10 units.",
         "indicator": "warning",
         "source": {**source, "topic": {"system": RULES, "code": "PROTO-DOSE", "display": "Dose above 10"}},
         "selectionBehavior": "at-most-one",
         "suggestions": [
             {"label": "Lower the dose to 10",
              "actions": [{"type": "update", "description": "Lower the dose to 10", "resource": updated}]},
             {"label": "Replace the order by a recheck",
              "actions": [{"type": "create", "description": "Order a recheck", "resource": RECHECK},
                          {"type": "delete", "description": "Remove the drafted order",
                           "resourceId": "MedicationRequest/m01"}]},
         ],
         "links": [{"label": "Why this recommendation", "url": "http://localhost/guidance/PROTO-DOSE",
                    "type": "absolute"}]},
        {"summary": "An order is being written", "detail": "Shown on every order hook.", "indicator": "info",
         "source": {**source, "topic": {"system": RULES, "code": "PROTO-ORDER", "display": "Ordering"}},
         "links": [{"label": "Why this recommendation", "url": "http://localhost/guidance/PROTO-ORDER",
                    "type": "absolute"}]},
    ]}
    assert "m02" not in json.dumps(body) and "m03" not in json.dumps(body)


def test_card_uuids_are_stable_for_the_same_hook_instance(client):
    first = client.post(SERVICE, json=REQUEST).get_json()
    again = client.post(SERVICE, json=REQUEST).get_json()
    other = client.post(SERVICE, json=dict(REQUEST, hookInstance="another")).get_json()
    assert first == again
    assert high(first)["uuid"] == high(again)["uuid"] != high(other)["uuid"]
    assert not {c["uuid"] for c in first["cards"]} & {c["uuid"] for c in other["cards"]}


def test_not_json_content_type_is_415(client):
    issues = outcome(client.post(SERVICE, data="hook=x", content_type="text/plain"), 415)
    assert "application/json" in issues[0]["diagnostics"]


def test_invalid_json_is_400(client):
    issues = outcome(
        client.post(SERVICE, data="{not json", content_type="application/json"), 400
    )
    assert "not valid JSON" in issues[0]["diagnostics"]


@pytest.mark.parametrize("missing", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_naming_it(client, missing):
    issues = outcome(client.post(SERVICE, json=without(missing)), 400)
    assert any(missing in (i.get("diagnostics", "") + " ".join(i.get("expression", []))) for i in issues)


def test_missing_patient_id_is_400_naming_the_path(client):
    issues = outcome(client.post(SERVICE, json=without("patientId", "context")), 400)
    assert any("patientId" in i.get("diagnostics", "") + " ".join(i.get("expression", [])) for i in issues)


def test_wrong_hook_for_the_service_is_400(client):
    issues = outcome(client.post(SERVICE, json=dict(REQUEST, hook="order-sign")), 400)
    assert any("hook" in i.get("diagnostics", "") for i in issues)


@pytest.mark.parametrize("bad", ["not a bundle", 42, {"resourceType": "Bundle", "entry": "oops"}, {"entry": []}])
def test_malformed_prefetch_is_400_naming_the_key(client, bad):
    body = copy.deepcopy(REQUEST)
    body["prefetch"]["observations"] = bad
    issues = outcome(client.post(SERVICE, json=body), 400)
    assert any("observations" in i.get("diagnostics", "") + " ".join(i.get("expression", [])) for i in issues)


def test_unknown_service_is_404(client):
    issues = outcome(client.post("/cds-services/no-such-service", json=REQUEST), 404)
    assert "no-such-service" in issues[0]["diagnostics"]


def test_missing_prefetch_without_fhir_server_is_412_naming_the_key(client):
    body = copy.deepcopy(REQUEST)
    del body["prefetch"]["observations"]
    issues = outcome(client.post(SERVICE, json=body), 412)
    assert "observations" in issues[0]["diagnostics"]


def test_null_prefetch_key_means_no_data(client):
    body = copy.deepcopy(REQUEST)
    body["prefetch"]["observations"] = None
    response = client.post(SERVICE, json=body)
    assert response.status_code == 200
    assert topics(response.get_json()) == ["PROTO-PROBLEMS"]  # the level cards have no level to fire on


def test_unknown_route_and_method_are_outcomes(client):
    outcome(client.get("/nowhere"), 404)
    outcome(client.get(SERVICE), 405)


def _feedback(card_uuid: str, suggestion: str = "x", **extra) -> dict:
    item = {"card": card_uuid, "outcome": "accepted", "outcomeTimestamp": "2026-03-01T12:05:00Z",
            "acceptedSuggestions": [{"id": suggestion}]}
    item.update(extra)
    return {"feedback": [item]}


def test_feedback_is_stored_for_issued_cards_and_retries_are_idempotent(client, app):
    card = high(client.post(SERVICE, json=REQUEST).get_json())
    accepted = card["suggestions"][0]["uuid"]
    first = client.post(SERVICE + "/feedback", json=_feedback(card["uuid"], accepted))
    retry = client.post(SERVICE + "/feedback", json=_feedback(card["uuid"], accepted))
    assert first.status_code == retry.status_code == 200
    assert first.get_json()["stored"] == 1 and retry.get_json()["duplicates"] == 1
    rows = stored_rows(app)
    assert len(rows) == 1 and rows[0]["rule_id"] == "PROTO-HIGH" and rows[0]["hook_instance"] == REQUEST["hookInstance"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": [{"card": "x"}]},
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-03-01T12:00:00Z"}]},
    ],
)
def test_malformed_feedback_is_400(client, body):
    outcome(client.post(SERVICE + "/feedback", json=body), 400)


def test_feedback_for_a_card_never_issued_is_422(client):
    issues = outcome(client.post(SERVICE + "/feedback", json=_feedback("never-issued")), 422)
    assert issues[0]["expression"] == ["feedback[0].card"]


def test_trace_on_request_explains_each_card_and_what_did_not_fire(client):
    body = client.post(SERVICE + "?_trace=true", json=REQUEST).get_json()
    from cards.render import TRACE_EXTENSION

    card_trace = high(body)["extension"][TRACE_EXTENSION]
    assert card_trace[0]["action"] == "high" and card_trace[0]["conditions"][0]["result"] is True
    assert set(card_trace[0]["conditions"][0]["resources"]) >= {"Observation/o5", "Observation/o6", "Observation/o7"}
    assert all(entry["applied"] for entry in body["extension"][TRACE_EXTENSION]["actions"])
    quiet = copy.deepcopy(REQUEST)
    quiet["prefetch"]["observations"] = None
    everything = client.post(SERVICE + "?_trace=true", json=quiet).get_json()["extension"][TRACE_EXTENSION]["actions"]
    assert {entry["action"] for entry in everything if entry["applied"] is False} == {"very-high", "high"}
    plain = client.post(SERVICE, json=REQUEST).get_json()
    assert "extension" not in plain and "extension" not in high(plain)
    header = client.post(SERVICE, json=REQUEST, headers={"X-CDS-Trace": "true"}).get_json()
    assert "extension" in header


def test_a_key_whose_template_cannot_be_filled_needs_no_server(client):
    """No encounterId: the encounter key means no data, even when the EHR did not send it; with an
    encounterId and no fhirServer, the same missing key is a 412."""
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    keys = [k for k, t in services["proto-patient-view"]["prefetch"].items() if "context.encounterId" in t]
    assert keys == ["encounter"] and "encounter" not in REQUEST["prefetch"]
    response = client.post(SERVICE, json=REQUEST)
    assert response.status_code == 200 and topics(response.get_json()) == PATIENT_VIEW_RULES
    body = copy.deepcopy(REQUEST)
    body["context"]["encounterId"] = "e01"
    issues = outcome(client.post(SERVICE, json=body), 412)
    assert issues[0]["expression"] == ["prefetch.encounter"]
