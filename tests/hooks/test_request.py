"""The typed request (service.hooks.request): parsed once from a valid body, the token never shown."""

from __future__ import annotations

import pytest

from service.content import load_folder as load_content
from service.errors import InvalidRequest
from service.hooks.request import parse_hook_request
from tests.engine.helpers import plan, write

TOKEN = "tok-3f1c9a-never-shown"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    rule = {"id": "r", "title": "R", "trigger": [{"type": "named-event", "name": "order-select"}]}
    content = load_content(write(tmp_path_factory.mktemp("c"), plan([rule])))
    return next(iter(content.services.values()))


def body(**context) -> dict:
    drafts = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "draft",
                                      "intent": "proposal", "subject": {"reference": "Patient/p"}}}]}
    return {"hook": "order-select", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": "https://ehr.example.org/fhir",
            "fhirAuthorization": {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                  "scope": "user/*.read", "subject": "svc"},
            "context": {"userId": "Practitioner/u1", "patientId": "p", "draftOrders": drafts,
                        "selections": ["MedicationRequest/m1"], **context},
            "prefetch": {"patient": None}}


def test_fields_are_read_from_the_body_once(service):
    request = parse_hook_request(body(encounterId="e1"), service)
    assert (request.hook, request.context.patient_id, request.context.user_id, request.context.encounter_id) == \
        ("order-select", "p", "Practitioner/u1", "e1")
    assert request.context.selections == ("MedicationRequest/m1",)
    assert request.context.draft_orders["entry"][0]["resource"]["id"] == "m1"
    assert request.fhir_server == "https://ehr.example.org/fhir" and request.access_token == TOKEN
    assert dict(request.prefetch) == {"patient": None}
    assert request.context.sent["encounterId"] == "e1"


def test_the_access_token_is_in_no_repr(service):
    assert TOKEN not in repr(parse_hook_request(body(), service))


def test_an_invalid_body_is_refused_before_anything_is_read(service):
    with pytest.raises(InvalidRequest):
        parse_hook_request(body(patientId=7), service)
