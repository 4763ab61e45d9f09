"""ConceptMaps in the content: loaded strictly, their strengths and dose forms checked at load,
and unit literals in expressions checked too (conversions of patient data fail quietly)."""

from __future__ import annotations

import copy

import pytest

from service.content import load_folder
from service.errors import ContentErrors
from tests.engine.helpers import cond, ingredient, plan, product_map, route_map, write
from tests.engine.medcontent import ORAL, PRODUCTS, ROUTES, VALUESETS, load

GOOD_ACTION = {"id": "a", "title": "Card", "trigger": [{"type": "named-event", "name": "order-select"}],
               "condition": [cond("true")]}


def errors_of(folder) -> list[str]:
    with pytest.raises(ContentErrors) as exc:
        load_folder(folder)
    return [str(e) for e in exc.value.errors]


def test_concept_maps_load_with_the_rest_of_the_content(tmp_path):
    content = load(tmp_path, plan([GOOD_ACTION]))
    catalog = content.terminology.medications
    product = catalog.product("http://www.nlm.nih.gov/research/umls/rxnorm|198335")
    assert [(i.token.split("|")[1], str(i.strength[0]), i.strength[1]) for i in product.ingredients] == [
        ("10180", "800", "mg"), ("10829", "160", "mg")]
    assert product.dose_form == "Oral Tablet"
    assert catalog.route(product.form_token) == [{"system": "http://snomed.info/sct", "code": "26643006",
                                                  "display": "Oral route"}]
    assert "http://example.org/fhir/ConceptMap/products" in content.resources  # published with the rest


def test_a_concept_map_that_breaks_the_fhir_model_names_file_and_path(tmp_path):
    bad = copy.deepcopy(PRODUCTS)
    del bad["group"][0]["element"][0]["target"][0]["equivalence"]
    errs = errors_of(write(tmp_path, bad, ROUTES, *VALUESETS))
    assert any(e.startswith("ConceptMap-products.json: ConceptMap.group[0].element[0].target[0].equivalence")
               for e in errs), errs


@pytest.mark.parametrize("strength", ["50mg", "200 mg/5 mL", "50 milligrams", "fifty mg", "50 MG/ML"])
def test_a_strength_must_be_a_decimal_and_a_ucum_unit(tmp_path, strength):
    products = product_map({"197550": ("cyclophosphamide 50 MG Oral Tablet",
                                       [ingredient("3002", "cyclophosphamide", strength, "Oral Tablet")])})
    errs = errors_of(write(tmp_path, products, ROUTES))
    assert errs == [f"ConceptMap-products.json: ConceptMap.group[0].element[0].target[0].product[0].value: "
                    f"strength {strength!r} must be '<decimal> <UCUM unit>' (e.g. '50 mg', '10 mg/mL'; UCUM is "
                    "case-sensitive)"]


def test_every_dose_form_of_a_product_must_be_listed_in_a_route_map(tmp_path):
    products = product_map(
        {
            "197550": (
                "cyclophosphamide 50 MG Oral Tablet",
                [ingredient("3002", "cyclophosphamide", "50 mg", "Oral Tablet")],
            ),
            "1657864": (
                "10 ML rituximab 10 MG/ML Injection [Rituxan]",
                [ingredient("121191", "rituximab", "10 mg/mL", "Injection")],
            ),
        }
    )
    errs = errors_of(write(tmp_path, products, route_map({"Oral Tablet": ORAL})))
    assert errs == ["ConceptMap-products.json: ConceptMap.group[0].element[1].target[0].product[1].value: dose form "
                    "'Injection' is not listed in any dose-form -> route ConceptMap (list it, with equivalence "
                    "'unmatched' if it has no single route)"]
    assert load_folder(write(tmp_path, route_map({"Oral Tablet": ORAL, "Injection": None})))  # listed: loads


def test_unmatched_and_disjoint_targets_map_nothing(tmp_path):
    products = product_map({"197550": ("cyclophosphamide 50 MG Oral Tablet", [
        dict(ingredient("3002", "cyclophosphamide"), equivalence="disjoint")])})
    content = load_folder(write(tmp_path, products))
    catalog = content.terminology.medications
    assert catalog.ingredients("http://www.nlm.nih.gov/research/umls/rxnorm|197550") == frozenset()
    assert catalog.product("http://www.nlm.nih.gov/research/umls/rxnorm|197550") is None


@pytest.mark.parametrize("expression, message", [
    ("%draftOrders.resources('MedicationRequest').dose('mgs') > 1", "dose('mgs'): 'mgs' is not a UCUM unit"),
    ("%draftOrders.resources('Observation').value.inUnit('Kg') > 1", "inUnit('Kg'): 'Kg' is not a UCUM unit"),
    ("%draftOrders.resources('MedicationRequest').dailyDose('MG') > 1", "dailyDose('MG'): write 'mg'"),
    ("%draftOrders.resources('Observation').value.inUnit('stone', 113.12) > 1", "inUnit('stone'): 'stone' is not"),
])
def test_a_unit_literal_that_is_not_ucum_fails_at_load(tmp_path, expression, message):
    errs = errors_of(write(tmp_path, plan([dict(GOOD_ACTION, condition=[cond(expression)])])))
    assert len(errs) == 1 and errs[0].startswith("PlanDefinition-t.json: PlanDefinition.action[0].condition[0]") \
        and message in errs[0], errs


def test_unit_literals_in_valid_ucum_load(tmp_path):
    expression = ("%draftOrders.resources('Observation').value.inUnit('[lb_av]').exists() "
                  "and %draftOrders.resources('MedicationRequest').dailyDose('mg').exists() "
                  "and %draftOrders.resources('Observation').value.inUnit('mm[Hg]').exists()")
    assert load_folder(write(tmp_path, plan([dict(GOOD_ACTION, condition=[cond(expression)])])))
