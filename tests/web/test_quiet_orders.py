"""An accepted suggestion is not proposed again while its order is active (quiet cards,
service.hooks.orders): through the service, as an EHR meets it.  The content is written here: a
patient-view plan that prefetches the patient's MedicationRequests, with a warning and a critical card
that each suggest a prednisone order written with the ingredient code, quiet for 7 days after an
accepted suggestion; a ConceptMap maps prednisone products (one alone, one with another ingredient) to
their ingredients."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from service.app import create_app
from service.content import load_folder
from service.engine.extensions import PROJECT_EXTENSION_BASE
from tests.conftest import T0
from tests.engine.helpers import RXNORM, cond, ingredient, library, plan, product_map, route_map, write
from tests.protocol_content import topics

SERVICE = "/cds-services/meds-patient-view"
TRACE = "http://example.org/fhir/cds-hooks/extension/trace"
PREDNISONE = "8640"  # ingredient
PREDNISONE_TABLET = "312617"  # a product of it
COMBINATION = "999990"  # a product of it and another ingredient
WEEK = {"url": PROJECT_EXTENSION_BASE + "cds-quiet-after-accept",
        "valueDuration": {"value": 7, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}


def card_action(aid: str, title: str, priority: str) -> dict:
    return {
        "id": aid, "title": title, "priority": priority,
        "code": [{"coding": [{"system": "http://example.org/fhir/CodeSystem/rules", "code": aid.upper()}]}],
        "trigger": [{"type": "named-event", "name": "patient-view"}],
        "condition": [cond("true")],
        "extension": [WEEK],
        "action": [{"id": f"{aid}-order", "title": "Order prednisone",
                    "definitionCanonical": "http://example.org/fhir/ActivityDefinition/pred"}],
    }


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    folder = tmp_path_factory.mktemp("meds")
    patient = {"url": "http://hl7.org/fhir/StructureDefinition/cqf-fhirQueryPattern",
               "valueString": "Patient/{{context.patientId}}"}
    requests = {"url": "http://hl7.org/fhir/StructureDefinition/cqf-fhirQueryPattern",
                "valueString": "MedicationRequest?patient={{context.patientId}}"}
    lib = library("meds", [], [{"id": "patient", "type": "Patient", "extension": [patient]},
                               {"id": "medications", "type": "MedicationRequest", "extension": [requests]}])
    activity = {"resourceType": "ActivityDefinition", "id": "pred",
                "url": "http://example.org/fhir/ActivityDefinition/pred", "status": "active",
                "kind": "MedicationRequest", "intent": "proposal",
                "productCodeableConcept": {"coding": [{"system": RXNORM, "code": PREDNISONE,
                                                       "display": "prednisone"}]}}
    products = product_map({
        PREDNISONE_TABLET: ("prednisone 5 MG Oral Tablet",
                            [ingredient(PREDNISONE, "prednisone", "5 mg", "Oral Tablet")]),
        COMBINATION: ("prednisone 5 MG / other 1 MG Oral Tablet",
                      [ingredient(PREDNISONE, "prednisone", "5 mg", "Oral Tablet"),
                       ingredient("99999", "other", "1 mg", "Oral Tablet")])})
    pd = plan([card_action("warn", "Start prednisone", "urgent"), card_action("crit", "Start prednisone now", "stat")],
              library=["http://example.org/fhir/Library/meds"], pid="meds")
    routes = route_map({"Oral Tablet": ("26643006", "Oral route")})
    return load_folder(write(folder, lib, activity, products, routes, pd))


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ehr(tmp_path, clock, content):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'cards.sqlite3'}"}, clock=clock, content=content)
    app.config.update(TESTING=True)
    return app.test_client()


def medication_request(code: str, status: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": f"mr-{code}-{status}", "status": status, "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]}}


def call(client, *orders: dict, trace: bool = False) -> dict:
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/pr1", "patientId": "p1"},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "p1"},
                         "medications": {"resourceType": "Bundle", "type": "searchset", "total": len(orders),
                                         "entry": [{"resource": o} for o in orders]}}}
    response = client.post(SERVICE + ("?_trace=true" if trace else ""), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def accept(client, body: dict, rule: str, clock: Clock) -> None:
    card = next(c for c in body["cards"] if c["source"]["topic"]["code"] == rule)
    item = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": clock().isoformat(),
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}
    response = client.post(SERVICE + "/feedback", json={"feedback": [item]})
    assert response.status_code == 200 and response.get_json()["stored"] == 1


def test_accepted_then_quiet_while_the_order_is_active_and_back_once_it_is_not(ehr, clock):
    accept(ehr, call(ehr), "WARN", clock)
    clock.now = T0 + timedelta(hours=2)
    for status in ("draft", "active", "on-hold"):
        answer = call(ehr, medication_request(PREDNISONE, status), trace=True)
        assert topics(answer) == ["CRIT"], status
        [quiet] = answer["extension"][TRACE]["quiet"]
        assert (quiet["rule"], quiet["reason"]) == ("WARN", "accepted")
        assert quiet["until"] == (T0 + timedelta(days=7)).isoformat(), "the Duration is the upper bound"
    for status in ("completed", "stopped", "cancelled", "entered-in-error"):
        assert topics(call(ehr, medication_request(PREDNISONE, status))) == ["CRIT", "WARN"], status
    assert topics(call(ehr)) == ["CRIT", "WARN"], "the order is absent"
    other = medication_request("1234567", "active")
    assert topics(call(ehr, other)) == ["CRIT", "WARN"], "an active order of another drug"


def test_an_order_written_with_a_product_code_is_the_suggested_ingredient(ehr, clock):
    accept(ehr, call(ehr), "WARN", clock)
    clock.now = T0 + timedelta(days=1)
    assert topics(call(ehr, medication_request(PREDNISONE_TABLET, "active"))) == ["CRIT"]


def test_a_product_of_two_ingredients_is_not_the_suggested_one(ehr, clock):
    accept(ehr, call(ehr), "WARN", clock)
    clock.now = T0 + timedelta(days=1)
    assert topics(call(ehr, medication_request(COMBINATION, "active"))) == ["CRIT", "WARN"]


def test_the_duration_still_ends_the_quiet_while_the_order_is_active(ehr, clock):
    accept(ehr, call(ehr), "WARN", clock)
    clock.now = T0 + timedelta(days=7, seconds=1)
    assert topics(call(ehr, medication_request(PREDNISONE, "active"))) == ["CRIT", "WARN"]


def test_a_critical_card_accepted_is_quiet_while_its_order_is_active_and_shown_once_it_is_stopped(ehr, clock):
    accept(ehr, call(ehr), "CRIT", clock)
    clock.now = T0 + timedelta(hours=1)
    assert topics(call(ehr, medication_request(PREDNISONE, "active"))) == ["WARN"]
    clock.now = T0 + timedelta(hours=5)
    assert topics(call(ehr, medication_request(PREDNISONE, "stopped"))) == ["CRIT", "WARN"]
