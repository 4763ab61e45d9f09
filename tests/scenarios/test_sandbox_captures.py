"""Orders as the CDS Hooks sandbox's order screens send them (requests captured from the real client:
RxNorm clinical-drug codes, doses as a count of `{pill}`), against the same orders coded by
ingredient and dosed in mg: the same safety cards, and a dose check of the drug's own family
(oral cyclophosphamide is checked as oral, never against the IV dose).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from tests.conftest import shared_path

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ORAL = {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]}
# The capture's data is dated 2026-11-28 around 12:43 UTC (moved to the capture day); its call came just after.
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def capture(name: str) -> dict:
    return json.loads(shared_path("external", "cds-hooks-examples", "sandbox-captured", name).read_text())["body"]


def ingredient_coded(body: dict, code: str, display: str, mg: int) -> dict:
    """The captured request with its draft coded by ingredient and dosed in mg, route oral."""
    twin = copy.deepcopy(body)
    for entry in twin["context"]["draftOrders"]["entry"]:
        order = entry["resource"]
        order["medicationCodeableConcept"] = {"coding": [{"system": RXNORM, "code": code, "display": display}]}
        dosage = order["dosageInstruction"][0]
        dosage["route"] = ORAL
        dosage["doseAndRate"] = [
            {"doseQuantity": {"value": mg, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}
        ]
    return twin


@pytest.fixture(scope="module")
def call(tmp_path_factory, content):
    from service.app import create_app

    db = tmp_path_factory.mktemp("captures") / "f.sqlite3"
    client = create_app({"database_url": f"sqlite:///{db}"}, clock=lambda: NOW, content=content).test_client()

    def post(service: str, body: dict) -> list[dict]:
        body = json.loads(json.dumps(body).replace("{FHIR_BASE}", "http://127.0.0.1:9/fhir"))
        response = client.post(f"/cds-services/{service}", json=body)
        assert response.status_code == 200, response.get_json()
        return response.get_json()["cards"]

    return post


def rules(cards: list[dict]) -> list[tuple[str, str]]:
    return sorted((c["source"]["topic"]["code"], c["indicator"]) for c in cards)


def test_cyclophosphamide_50_mg_tablets_get_the_safety_cards_of_the_ingredient_coded_order(call):
    body = capture("order-select-cyc197550-request.json")
    twin = ingredient_coded(body, "3002", "cyclophosphamide", 250)  # 5 tablets x 50 mg
    product = call("safety-order-select", body)
    assert rules(product) == rules(call("safety-order-select", twin))
    assert ("SAFE-LTBI", "warning") in rules(product)  # no TB screen before cyclophosphamide


def test_oral_cyclophosphamide_tablets_are_checked_as_oral(call):
    body = capture("order-select-cyc197550-request.json")
    cards = call("dose-checks-order-select", body)
    found = rules(cards)
    # 250 mg/day for 80 kg = 3.1 mg/kg/day, above the 2 mg/kg/day oral dose; never the IV 15 mg/kg check
    assert found == [("DC-CYC-PO2", "warning")], found
    card = cards[0]
    assert "250 mg/day" in card["summary"] and "3.1 mg/kg/day" in card["summary"]
    assert not any(code.startswith("DC-CYC-IV") for code, _ in found)
    update = card["suggestions"][0]["actions"][0]
    assert update["type"] == "update"
    dose = update["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose == {
        "value": 150,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }  # 2 mg/kg, 25 mg steps
    assert found == rules(call("dose-checks-order-select", ingredient_coded(body, "3002", "cyclophosphamide", 250)))


def test_prednisone_20_mg_tablets_get_the_cards_of_the_ingredient_coded_order(call):
    body = capture("order-sign-pred312615-request.json")
    twin = ingredient_coded(body, "8640", "prednisone", 100)  # 5 tablets x 20 mg
    for service in ("safety-order-sign", "dose-checks-order-sign", "dah-order-sign"):
        assert rules(call(service, body)) == rules(call(service, twin)), service
    # oral prednisone as the first glucocorticoid of acute DAH: the pulse card; and the TB screen
    assert ("DC-MP-PULSE-LOW", "warning") in rules(call("dose-checks-order-sign", body))
    assert ("SAFE-LTBI", "warning") in rules(call("safety-order-sign", body))


def test_without_the_product_map_the_order_would_be_silent(call, tmp_path):
    """The failure this guards against: the same capture on content without the product ConceptMap
    is recognised from its RxNorm name only, and the cards say so."""
    import shutil

    from service.app import create_app
    from service.content import load_folder
    from tests.conftest import CONTENT

    folder = tmp_path / "content"
    shutil.copytree(CONTENT, folder, ignore=shutil.ignore_patterns("tests"))
    cm = json.loads((folder / "ConceptMap-rxnorm-product-ingredient.json").read_text())
    cm["group"][0]["element"] = [e for e in cm["group"][0]["element"] if e["code"] != "197550"]
    (folder / "ConceptMap-rxnorm-product-ingredient.json").write_text(json.dumps(cm))
    client = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: NOW,
                        content=load_folder(folder)).test_client()
    body = json.loads(json.dumps(capture("order-select-cyc197550-request.json")).replace("{FHIR_BASE}", "http://127.0.0.1:9/fhir"))
    cards = client.post("/cds-services/dose-checks-order-select", json=body).get_json()["cards"]
    assert rules(cards) == [("DC-CYC-PO2", "warning")]
    assert "recognised from its name only" in cards[0]["detail"]
