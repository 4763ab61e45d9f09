"""One service call without Flask: our own output is checked before it is sent."""

from __future__ import annotations

from cards.schema import card_errors
from service.content import load_folder
from service.engine import DataIndex
from service.engine.extensions import EXT_IS_RECOMMENDED
from service.hooks.call import call_service
from service.hooks.request import parse_hook_request
from tests.conftest import T0
from tests.engine.helpers import BASE, cond, library, plan, var, write

AD = {"resourceType": "ActivityDefinition", "id": "o", "url": f"{BASE}/ActivityDefinition/o", "status": "active",
      "kind": "ServiceRequest", "code": {"text": "x"}}
REC = [{"url": EXT_IS_RECOMMENDED, "valueBoolean": True}]


def test_a_card_breaking_the_spec_invariants_is_withheld(tmp_path):
    bad = {
        "id": "bad",
        "title": "Two recommended options",
        "priority": "urgent",
        "selectionBehavior": "at-most-one",
        "trigger": [{"type": "named-event", "name": "patient-view"}],
        "condition": [cond("true")],
        "action": [
            {"id": f"s{i}", "title": f"Option {i}", "extension": REC, "definitionCanonical": AD["url"]} for i in (1, 2)
        ],
    }
    good = {"id": "good", "title": "Fine", "trigger": [{"type": "named-event", "name": "patient-view"}]}
    content = load_folder(write(tmp_path, AD, plan([bad, good])))
    body = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/1", "patientId": "p"}, "prefetch": {}}
    service = content.services["t-patient-view"]
    answer = call_service(content, service, parse_hook_request(body, service), T0)
    # The card withheld is not sent, and not silently missing: a notice names it, as urgent as it was.
    assert [c["summary"] for c in answer.cards] == [
        "A recommendation could not be shown: review the guidance yourself", "Fine"]
    notice = answer.cards[0]
    assert notice["indicator"] == "warning"
    assert notice["source"]["topic"]["code"] == "withheld"
    assert "Two recommended options" not in str(notice)  # the withheld card's own text is not sent
    assert "suggestions" not in notice
    assert card_errors(notice) == []
    assert any("isRecommended" in i["message"] for i in answer.issues)


def test_the_draft_orders_are_indexed_once_per_call(tmp_path, monkeypatch):
    """A prefetch token reads the draft orders (CDS Hooks 3.0 ballot §Prefetch tokens) and so does a
    condition: both read them through the call's one data index."""
    lib = library("l", [var("drafted", "%draftOrders.resources('MedicationRequest')")], [{
        "id": "meds", "type": "Medication",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/cqf-fhirQueryPattern", "valueString":
                       "Medication?_id={{context.draftOrders.entry.resource.ofType(MedicationRequest)"
                       ".medicationReference.resolve().id}}"}]}])
    card = {"id": "c", "title": "Drafted", "trigger": [{"type": "named-event", "name": "order-sign"}],
            "condition": [cond("%drafted.exists()")]}
    content = load_folder(write(tmp_path, lib, plan([card], library=[lib["url"]])))
    drafts = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
                      "subject": {"reference": "Patient/p"}, "medicationReference": {"reference": "Medication/m1"}}},
        {"resource": {"resourceType": "Medication", "id": "m1", "code": {"text": "a medicine"}}}]}
    body = {"hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": "https://ehr.example.org/fhir",
            "context": {"userId": "Practitioner/1", "patientId": "p", "draftOrders": drafts}, "prefetch": {}}
    fetched: list[str] = []

    class Reader:
        def fetch(self, url: str) -> dict:
            fetched.append(url)
            return {"resourceType": "Bundle", "type": "searchset", "entry": []}

        def rest_of(self, bundle: dict) -> dict:
            return bundle

    indexes: set[int] = set()  # every data index (by id) the draft orders Bundle was read through
    bundle_resources = DataIndex.bundle_resources

    def spied(index: DataIndex, bundle: dict) -> dict:
        if bundle is drafts:
            indexes.add(id(index))
        return bundle_resources(index, bundle)

    monkeypatch.setattr(DataIndex, "bundle_resources", spied)
    service = content.services["t-order-sign"]
    answer = call_service(content, service, parse_hook_request(body, service), T0, lambda base, token: Reader())
    assert fetched == ["Medication?_id=m1"]
    assert [c["summary"] for c in answer.cards] == ["Drafted"]
    assert len(indexes) == 1
