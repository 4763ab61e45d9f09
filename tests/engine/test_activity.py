"""ActivityDefinition -> proposed resource, per kind (FHIR R4 §12.21.4.4)."""

from __future__ import annotations

from service.engine.activity import activity_resource
from service.engine.model import ActivityDef, Source

URL = "http://example.org/fhir/ActivityDefinition/a"
CODE = {"coding": [{"system": "http://snomed.info/sct", "code": "386053000"}]}


def propose(encounter="Encounter/e", practitioner="Practitioner/p", **elements):
    activity = ActivityDef(
        URL, {"resourceType": "ActivityDefinition", "status": "active", **elements}, Source("a.json", ""), []
    )
    return activity_resource(activity, "id-1", "Patient/p1", encounter, practitioner)


def test_medication_request_takes_product_dosage_and_description_as_note():
    dosage = [{"text": "once"}]
    res = propose(
        kind="MedicationRequest",
        version="2",
        priority="urgent",
        doNotPerform=True,
        description="why",
        productCodeableConcept=CODE,
        dosage=dosage,
    )
    assert res == {
        "resourceType": "MedicationRequest",
        "id": "id-1",
        "status": "draft",
        "intent": "proposal",
        "subject": {"reference": "Patient/p1"},
        "instantiatesCanonical": [URL + "|2"],
        "medicationCodeableConcept": CODE,
        "dosageInstruction": dosage,
        "priority": "urgent",
        "doNotPerform": True,
        "encounter": {"reference": "Encounter/e"},
        "requester": {"reference": "Practitioner/p"},
        "note": [{"text": "why"}],
    }
    assert res["dosageInstruction"] is not dosage  # dynamicValues change the copy, not the definition


def test_service_request_timing_becomes_occurrence():
    res = propose(kind="ServiceRequest", intent="order", code=CODE, timingDateTime="2026-03-02", practitioner=None)
    assert res["intent"] == "order" and res["code"] == CODE and res["occurrenceDateTime"] == "2026-03-02"
    assert "requester" not in res and "timingDateTime" not in res


def test_communication_request_code_is_its_category_and_description_its_payload():
    res = propose(kind="CommunicationRequest", code=CODE, description="call", encounter=None)
    assert res == {
        "resourceType": "CommunicationRequest",
        "id": "id-1",
        "status": "draft",
        "subject": {"reference": "Patient/p1"},
        "category": [CODE],
        "requester": {"reference": "Practitioner/p"},
        "payload": [{"contentString": "call"}],
    }


def test_task_is_for_the_patient_and_instantiates_one_canonical():
    res = propose(kind="Task", code=CODE, description="do", doNotPerform=True)
    assert res["for"] == {"reference": "Patient/p1"} and "subject" not in res
    assert res["instantiatesCanonical"] == URL and res["description"] == "do"
    assert "doNotPerform" not in res and "requester" not in res and res["encounter"] == {"reference": "Encounter/e"}


def test_other_kinds_get_status_subject_and_code_only():
    res = propose(kind="Appointment", code=CODE, priority="stat", description="x")
    assert res == {
        "resourceType": "Appointment",
        "id": "id-1",
        "status": "draft",
        "subject": {"reference": "Patient/p1"},
        "code": CODE,
    }
