"""Orders as the CDS Hooks sandbox really sends them (captured requests in ../shared): a product
code and a dose in {pill}.  Through a ConceptMap the engine knows the product's ingredient and
strength; without one the order matches nothing, which is the failure these maps fix."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.content import load_folder
from service.engine import ApplyContext, apply_plan
from tests.conftest import shared_path
from tests.engine.helpers import RXNORM, ingredient, plan, product_map, write
from tests.engine.medcontent import PRODUCTS, ROUTES, VALUESETS, VS_CYC, VS_PRED

NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # the capture day


def captured(name: str) -> dict:
    path = shared_path("external", "cds-hooks-examples", "sandbox-captured", name)
    return json.loads(path.read_text())["body"]


def dose_card(valueset_url: str, hook: str) -> dict:
    orders = f"%draftOrders.resources('MedicationRequest', '{valueset_url}')"
    return {"id": "dose", "title": "Dose check", "trigger": [{"type": "named-event", "name": hook}],
            "condition": [{"kind": "applicability", "expression": {"language": "text/fhirpath",
                                                                     "expression": f"{orders}.exists()"}}],
            "dynamicValue": [{"path": "action.description", "expression": {"language": "text/fhirpath", "expression":
                f"{orders}.dailyDose('mg').toString() & ' mg/day; route ' & {orders}.route().code.join(',')"
                f" & iif({orders}.identifiedByName(), '; recognised by its name', '')"}}]}


def apply(content, body: dict):
    ctx = ApplyContext(now=NOW, subject=f"Patient/{body['context']['patientId']}", data=body["prefetch"],
                       hook=body["hook"], hook_instance=body["hookInstance"],
                       draft_orders=body["context"]["draftOrders"], selections=body["context"].get("selections", []))
    return apply_plan(content, content.plan("t"), ctx)


@pytest.fixture
def cyc_request():
    return captured("order-select-cyc197550-request.json")


def test_197550_is_cyclophosphamide_and_five_pills_are_250_mg(tmp_path, cyc_request):
    content = load_folder(write(tmp_path, PRODUCTS, ROUTES, *VALUESETS, plan([dose_card(VS_CYC, "order-select")])))
    result = apply(content, cyc_request)
    assert [a.description for a in result.actions] == ["250 mg/day; route 26643006"]
    assert result.issues == []


def test_without_a_concept_map_the_product_code_matches_nothing(tmp_path, cyc_request):
    content = load_folder(write(tmp_path, *VALUESETS, plan([dose_card(VS_CYC, "order-select")])))
    assert apply(content, cyc_request).actions == []


def test_a_product_the_maps_do_not_list_is_recognised_by_its_name(tmp_path, cyc_request):
    """The maps name cyclophosphamide (another product), not 197550: the RxNorm name decides."""
    other = product_map({"210570": ("cyclophosphamide 25 MG Oral Tablet [Cytoxan]",
                                    [ingredient("3002", "cyclophosphamide", "25 mg", "Oral Tablet")])})
    content = load_folder(write(tmp_path, other, ROUTES, *VALUESETS, plan([dose_card(VS_CYC, "order-select")])))
    result = apply(content, cyc_request)
    assert [a.description for a in result.actions] == ["250 mg/day; route 26643006; recognised by its name"]


def test_312615_is_prednisone_and_five_pills_are_100_mg(tmp_path):
    body = captured("order-sign-pred312615-request.json")
    prednisone = product_map({"312615": ("prednisone 20 MG Oral Tablet",
                                         [ingredient("8640", "prednisone", "20 mg", "Oral Tablet")])}, mid="prednisone")
    content = load_folder(write(tmp_path, PRODUCTS, prednisone, ROUTES, *VALUESETS,
                                 plan([dose_card(VS_PRED, "order-sign")])))
    result = apply(content, body)
    assert [a.description for a in result.actions] == ["100 mg/day; route 26643006"]


def test_the_captured_orders_are_what_the_tests_claim(cyc_request):
    """Guard: the capture really codes a product and doses in {pill}."""
    mr = cyc_request["context"]["draftOrders"]["entry"][0]["resource"]
    assert mr["medicationCodeableConcept"]["coding"][0] == {
        "display": "Cyclophosphamide 50 MG Oral Tablet", "system": RXNORM, "code": "197550"}
    assert mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "{pill}"
