"""The HTTP surface: discovery, service calls, feedback, and every bad input answered with
a specific 4xx FHIR OperationOutcome (never a 500 or a stack trace)."""

from __future__ import annotations

import copy
import json

import pytest

from tests.conftest import CONTENT
from tests.web.test_feedback_limits import stored_rows

CASE = json.loads((CONTENT / "tests" / "DAH-05" / "p01-gpa-hypoxemic.json").read_text())
REQUEST = CASE["request"]


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
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert services["dah-patient-view"]["hook"] == "patient-view"
    assert services["safety-order-select"]["hook"] == "order-select"
    prefetch = services["dah-patient-view"]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert prefetch["observations"].startswith("Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7")
    assert all(s["description"] for s in services.values())


def dah05(body: dict) -> dict:
    return next(c for c in body["cards"] if c["source"]["topic"]["code"] == "DAH-05")


def test_service_call_returns_cards(client):
    body = client.post("/cds-services/dah-patient-view", json=REQUEST).get_json()
    assert dah05(body)["indicator"] == "warning"


def test_card_uuids_are_stable_for_the_same_hook_instance(client):
    first = client.post("/cds-services/dah-patient-view", json=REQUEST).get_json()
    again = client.post("/cds-services/dah-patient-view", json=REQUEST).get_json()
    other = client.post("/cds-services/dah-patient-view", json=dict(REQUEST, hookInstance="another")).get_json()
    assert dah05(first)["uuid"] == dah05(again)["uuid"] != dah05(other)["uuid"]


def test_not_json_content_type_is_415(client):
    issues = outcome(client.post("/cds-services/dah-patient-view", data="hook=x", content_type="text/plain"), 415)
    assert "application/json" in issues[0]["diagnostics"]


def test_invalid_json_is_400(client):
    issues = outcome(
        client.post("/cds-services/dah-patient-view", data="{not json", content_type="application/json"), 400
    )
    assert "not valid JSON" in issues[0]["diagnostics"]


@pytest.mark.parametrize("missing", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_naming_it(client, missing):
    issues = outcome(client.post("/cds-services/dah-patient-view", json=without(missing)), 400)
    assert any(missing in (i.get("diagnostics", "") + " ".join(i.get("expression", []))) for i in issues)


def test_missing_patient_id_is_400_naming_the_path(client):
    issues = outcome(client.post("/cds-services/dah-patient-view", json=without("patientId", "context")), 400)
    assert any("patientId" in i.get("diagnostics", "") + " ".join(i.get("expression", [])) for i in issues)


def test_wrong_hook_for_the_service_is_400(client):
    issues = outcome(client.post("/cds-services/dah-patient-view", json=dict(REQUEST, hook="order-sign")), 400)
    assert any("hook" in i.get("diagnostics", "") for i in issues)


@pytest.mark.parametrize("bad", ["not a bundle", 42, {"resourceType": "Bundle", "entry": "oops"}, {"entry": []}])
def test_malformed_prefetch_is_400_naming_the_key(client, bad):
    body = copy.deepcopy(REQUEST)
    body["prefetch"]["observations"] = bad
    issues = outcome(client.post("/cds-services/dah-patient-view", json=body), 400)
    assert any("observations" in i.get("diagnostics", "") + " ".join(i.get("expression", [])) for i in issues)


def test_unknown_service_is_404(client):
    issues = outcome(client.post("/cds-services/no-such-service", json=REQUEST), 404)
    assert "no-such-service" in issues[0]["diagnostics"]


def test_missing_prefetch_without_fhir_server_is_412_naming_the_key(client):
    body = copy.deepcopy(REQUEST)
    del body["prefetch"]["observations"]
    issues = outcome(client.post("/cds-services/dah-patient-view", json=body), 412)
    assert "observations" in issues[0]["diagnostics"]


def test_null_prefetch_key_means_no_data(client):
    body = copy.deepcopy(REQUEST)
    body["prefetch"]["observations"] = None
    response = client.post("/cds-services/dah-patient-view", json=body)
    assert response.status_code == 200
    assert "DAH-05" not in [c["source"]["topic"]["code"] for c in response.get_json()["cards"]]


def test_unknown_route_and_method_are_outcomes(client):
    outcome(client.get("/nowhere"), 404)
    outcome(client.get("/cds-services/dah-patient-view"), 405)


def _feedback(card_uuid: str, suggestion: str = "x", **extra) -> dict:
    item = {"card": card_uuid, "outcome": "accepted", "outcomeTimestamp": "2026-03-01T12:05:00Z",
            "acceptedSuggestions": [{"id": suggestion}]}
    item.update(extra)
    return {"feedback": [item]}


def test_feedback_is_stored_for_issued_cards_and_retries_are_idempotent(client, app):
    card = dah05(client.post("/cds-services/dah-patient-view", json=REQUEST).get_json())
    accepted = card["suggestions"][0]["uuid"]
    first = client.post("/cds-services/dah-patient-view/feedback", json=_feedback(card["uuid"], accepted))
    retry = client.post("/cds-services/dah-patient-view/feedback", json=_feedback(card["uuid"], accepted))
    assert first.status_code == retry.status_code == 200
    assert first.get_json()["stored"] == 1 and retry.get_json()["duplicates"] == 1
    rows = stored_rows(app)
    assert len(rows) == 1 and rows[0]["rule_id"] == "DAH-05" and rows[0]["hook_instance"] == REQUEST["hookInstance"]


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
    outcome(client.post("/cds-services/dah-patient-view/feedback", json=body), 400)


def test_feedback_for_a_card_never_issued_is_422(client):
    issues = outcome(client.post("/cds-services/dah-patient-view/feedback", json=_feedback("never-issued")), 422)
    assert issues[0]["expression"] == ["feedback[0].card"]


def test_trace_on_request_explains_each_card_and_what_did_not_fire(client):
    body = client.post("/cds-services/dah-patient-view?_trace=true", json=REQUEST).get_json()
    from cards.render import TRACE_EXTENSION

    card_trace = dah05(body)["extension"][TRACE_EXTENSION]
    assert card_trace[0]["action"] == "dah-05" and card_trace[0]["conditions"][0]["result"] is True
    assert any(r.startswith("Observation/") for r in card_trace[0]["conditions"][0]["resources"])
    everything = body["extension"][TRACE_EXTENSION]["actions"]
    assert any(entry["applied"] is False for entry in everything)
    plain = client.post("/cds-services/dah-patient-view", json=REQUEST).get_json()
    assert "extension" not in plain and "extension" not in dah05(plain)
    header = client.post("/cds-services/dah-patient-view", json=REQUEST, headers={"X-CDS-Trace": "true"}).get_json()
    assert "extension" in header


def test_a_key_whose_template_cannot_be_filled_needs_no_server(client, content):
    """No encounterId: the encounter key means no data, even when the EHR did not send it."""
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    keys = [k for k, t in services["dah-patient-view"]["prefetch"].items() if "context.encounterId" in t]
    assert keys
    body = copy.deepcopy(REQUEST)
    for key in keys:
        body["prefetch"].pop(key, None)
    assert client.post("/cds-services/dah-patient-view", json=body).status_code == 200
