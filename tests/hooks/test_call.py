"""One service call without Flask: our own output is checked before it is sent."""

from __future__ import annotations

from service.content import load_folder
from service.engine.extensions import EXT_IS_RECOMMENDED
from service.hooks.call import call_service
from service.hooks.request import parse_hook_request
from tests.conftest import T0
from tests.engine.helpers import BASE, cond, plan, write

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
    assert [c["summary"] for c in answer.cards] == ["Fine"]
    assert any("isRecommended" in i["message"] for i in answer.issues)
