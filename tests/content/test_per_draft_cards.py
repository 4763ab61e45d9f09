"""One dose-check card per drafted order, each with suggestions of its own: a rule that checks every
draft (cds-for-each) and proposes its change through sub-actions gives each draft's card its own card,
suggestion and resource ids (service/engine/apply.py: a sub-action's ids extend its parent's item).
Before, the sub-actions of every draft got the same ids, the second card repeated the first one's
suggestion uuid and was withheld as not CDS Hooks conformant: a dose check silently missing.  Through
the real Flask app on plandefinitions/, with the scenario case DC-MP-PULSE-LOW/prednisone-first-gc
(oral prednisone drafted as the first glucocorticoid of acute DAH) sent at order-sign with a second
prednisone draft beside the first."""

from __future__ import annotations

import copy
import json

from service.app import create_app
from tests.conftest import CONTENT
from tests.scenarios.cases import moment

CASE = CONTENT / "tests" / "DC-MP-PULSE-LOW" / "prednisone-first-gc.json"
RULE = "DC-MP-PULSE-LOW"


def _order_sign_with_two_drafts(tmp_path) -> tuple[int, dict]:
    case = json.loads(CASE.read_text(encoding="utf-8"))
    request = copy.deepcopy(case["request"])
    request["hook"] = "order-sign"
    request["context"].pop("selections", None)
    first = request["context"]["draftOrders"]["entry"][0]["resource"]
    second = copy.deepcopy(first)
    second["id"] = "draft-pred-2"
    second["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 40
    request["context"]["draftOrders"]["entry"].append({"resource": second})
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.db'}"}, clock=lambda: moment(case))
    response = app.test_client().post("/cds-services/dose-checks-order-sign?_trace=true", json=request)
    return response.status_code, response.get_json()


def test_each_draft_gets_its_own_card_with_its_own_suggestion(tmp_path):
    status, body = _order_sign_with_two_drafts(tmp_path)
    assert status == 200
    cards = [c for c in body["cards"] if c["source"]["topic"]["code"] == RULE]
    assert len(cards) == 2, [c["summary"] for c in body["cards"]]
    assert {"60 mg" in c["summary"] for c in cards} == {True, False}
    assert any("40 mg" in c["summary"] for c in cards)
    uuids = [c["uuid"] for c in body["cards"]] + [s["uuid"] for c in body["cards"] for s in c.get("suggestions", [])]
    assert len(uuids) == len(set(uuids))
    doses = sorted(json.dumps(a["resource"]["dosageInstruction"], sort_keys=True) for c in cards
                   for s in c.get("suggestions", []) for a in s.get("actions", []) if "resource" in a)
    assert len(doses) == 2  # each card proposes its own change
    trace = body["extension"]["http://example.org/fhir/cds-hooks/extension/trace"]
    assert not [i for i in trace["issues"] if "withheld" in i["message"]]
