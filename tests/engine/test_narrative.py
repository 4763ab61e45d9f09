"""Every proposed resource says in words what it orders, from its own final structured content."""

from __future__ import annotations

from service.engine.narrative import describe, with_narrative
from tests.engine.helpers import action_type, project_ext
from tests.engine.test_apply import PV, observations, run

BASE = "http://example.org/fhir"


def test_medication_request_narrative_is_its_dosage_text_after_dynamic_values(tmp_path):
    draft = {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "m1",
                    "status": "draft",
                    "intent": "order",
                    "text": {
                        "status": "generated",
                        "div": '<div xmlns="http://www.w3.org/1999/xhtml">cyclophosphamide 1050 mg IV</div>',
                    },
                    "dosageInstruction": [{"text": "cyclophosphamide 1050 mg IV"}],
                }
            }
        ],
    }
    target = project_ext("cds-target", "%draftOrders.resources('MedicationRequest').first()")
    update = action_type("update")
    result = run(
        tmp_path,
        [
            {
                "id": "c",
                "title": "Fix dose",
                "trigger": PV,
                "action": [
                    {
                        "id": "u",
                        "title": "Change dose",
                        "type": update,
                        "extension": target,
                        "dynamicValue": [
                            {
                                "path": "dosageInstruction[0].text",
                                "expression": {
                                    "language": "text/fhirpath",
                                    "expression": "'Cyclophosphamide ' & (%weightKg * 15).toString() & ' mg IV once'",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
        data={"observations": observations(40)},
        draft=draft,
    )
    resource = result.actions[0].children[0].resource
    assert resource["dosageInstruction"][0]["text"] == "Cyclophosphamide 600 mg IV once"
    assert resource["text"] == {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Cyclophosphamide 600 mg IV once.</p></div>',
    }


def test_created_order_without_dosage_text_is_named_by_its_medication(tmp_path):
    result = run(
        tmp_path,
        [{"id": "c", "title": "Card", "trigger": PV, "definitionCanonical": f"{BASE}/ActivityDefinition/dose"}],
        data={"observations": observations(70)},
    )
    # the test ActivityDefinition codes rxnorm 3002 with no display and no dosage text: nothing to say
    assert "text" not in result.actions[0].resource


def test_describe_per_resource_type_and_escaping():
    assert (
        describe(
            {
                "resourceType": "ServiceRequest",
                "code": {"coding": [{"display": "Blood culture"}]},
                "note": [{"text": "two sets"}],
            }
        )
        == "Blood culture. two sets."
    )
    assert describe({"resourceType": "Task", "description": "Record body weight"}) == "Record body weight."
    assert describe({"resourceType": "CommunicationRequest", "payload": [{"contentString": "Call ICU"}]}) == "Call ICU."
    assert (
        describe(
            {
                "resourceType": "MedicationRequest",
                "medicationCodeableConcept": {"text": "Prednisolone 5 MG Oral Tablet"},
            }
        )
        == "Prednisolone 5 MG Oral Tablet."
    )
    # the drug is named once: added when the dosage text does not name it, not repeated when it does
    med = {"coding": [{"display": "methylprednisolone sodium succinate"}]}
    assert (
        describe(
            {
                "resourceType": "MedicationRequest",
                "medicationCodeableConcept": med,
                "dosageInstruction": [{"text": "1000 mg IV once daily"}],
            }
        )
        == "methylprednisolone sodium succinate: 1000 mg IV once daily."
    )
    assert (
        describe(
            {
                "resourceType": "MedicationRequest",
                "medicationCodeableConcept": med,
                "dosageInstruction": [{"text": "Methylprednisolone 1000 mg IV once daily"}],
            }
        )
        == "Methylprednisolone 1000 mg IV once daily."
    )
    out = with_narrative({"resourceType": "Task", "description": "a < b & c"})
    assert "a &lt; b &amp; c" in out["text"]["div"]
    assert "text" not in with_narrative({"resourceType": "Task", "text": {"status": "generated", "div": "old"}})
