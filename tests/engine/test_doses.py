"""Doses from any unit EHRs send (tablets, mL, mass), routes, and unit strings without UCUM codes."""

from __future__ import annotations

import pytest

from tests.engine.helpers import DOSE_FORM, RXNORM, STRENGTH, product_map, route_map
from tests.engine.medcontent import (
    VS_CYC,
    VS_MP,
    VS_SMX,
    VS_TMP,
    Evaluator,
    bundle,
    load,
    order,
    quantity,
    rx,
)

CYC_TAB = rx("197550", "cyclophosphamide 50 MG Oral Tablet")
SMX_TMP_TAB = rx("198335", "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet")
SMX_TMP_SUSP = rx("313134", "sulfamethoxazole 40 MG/ML / trimethoprim 8 MG/ML Oral Suspension")
RTX_VIAL = rx("1657864", "10 ML rituximab 10 MG/ML Injection [Rituxan]")
IV = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008", "display": "Intravenous route"}]}


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    return load(tmp_path_factory.mktemp("doses"))


def run(content, *orders, expr: str):
    drafts = bundle(*orders)
    return Evaluator(content, drafts)(expr, d=drafts)


@pytest.mark.parametrize("dose", [
    quantity(2, "{pill}"),  # the CDS Hooks sandbox
    quantity(2, "{tablet}"),
    quantity(2, "{tbl}", unit="tabs"),  # as Cerner sends it
    quantity(2, unit="tablet"),  # a unit string, no code
    quantity(2, unit="Tablet(s)"),
    quantity(2, "TAB", unit="TAB", system="http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"),
    quantity(2, "1"),  # unity
])
def test_a_count_of_tablets_is_multiplied_by_the_strength(content, dose):
    mr = order("o1", CYC_TAB, dose)
    assert run(content, mr, expr="%d.resources('MedicationRequest').dose('mg')") == [100]
    assert run(content, mr, expr="%d.resources('MedicationRequest').dose('g')") == [0.1]
    assert run(content, mr, expr="%d.resources('MedicationRequest').dailyDose('mg')") == [100]
    assert run(content, mr, expr="%d.resources('MedicationRequest').doseProblem()") == []


def test_mass_doses_convert_directly(content):
    orders = [order("g", CYC_TAB, quantity(0.5, "g")), order("MG", CYC_TAB, quantity(500, unit="MG")),
              order("mcg", CYC_TAB, quantity(500000, unit="mcg"))]
    assert run(content, *orders, expr="%d.resources('MedicationRequest').dose('mg')") == [500, 500, 500]


def test_a_volume_is_multiplied_by_the_concentration(content):
    rtx = order("rtx", RTX_VIAL, quantity(50, "mL"), period=None, route=IV)
    assert run(content, rtx, expr="%d.resources('MedicationRequest').dose('mg')") == [500]
    cc = order("cc", RTX_VIAL, quantity(50, unit="cc"), period=None)
    assert run(content, cc, expr="%d.resources('MedicationRequest').dose('mg')") == [500]
    litre = order("l", RTX_VIAL, quantity(0.05, "L"), period=None)
    assert run(content, litre, expr="%d.resources('MedicationRequest').dose('mg')") == [500]


def test_a_combination_product_is_dosed_per_ingredient(content):
    tablet = order("tab", SMX_TMP_TAB, quantity(1, "{tbl}"), frequency=3, period=1, period_unit="wk")
    assert run(content, tablet, expr=f"%d.resources('MedicationRequest').dose('mg', '{VS_TMP}')") == [160]
    assert run(content, tablet, expr=f"%d.resources('MedicationRequest').dose('mg', '{VS_SMX}')") == [800]
    assert run(content, tablet, expr=f"%d.resources('MedicationRequest').dailyDose('mg', '{VS_TMP}')") == [
        pytest.approx(68.5714)]
    assert run(content, tablet, expr="%d.resources('MedicationRequest').dose('mg')") == []
    assert run(content, tablet, expr="%d.resources('MedicationRequest').dailyDose('mg')") == []
    assert run(content, tablet, expr="%d.resources('MedicationRequest').doseProblem()") == [
        "dose given in tablets of a product with several ingredients (sulfamethoxazole / trimethoprim)"]
    assert run(content, tablet, expr=f"%d.resources('MedicationRequest').doseProblem('{VS_TMP}')") == []
    suspension = order("susp", SMX_TMP_SUSP, quantity(20, "mL"), frequency=2)
    assert run(content, suspension, expr=f"%d.resources('MedicationRequest').dailyDose('mg', '{VS_TMP}')") == [320]
    assert run(content, suspension, expr="%d.resources('MedicationRequest').dose('mg')") == []


def test_an_ingredient_the_product_does_not_contain_gives_nothing(content):
    mr = order("o1", SMX_TMP_TAB, quantity(1, "{tbl}"))
    assert run(content, mr, expr=f"%d.resources('MedicationRequest').dose('mg', '{VS_CYC}')") == []
    assert run(content, mr, expr=f"%d.resources('MedicationRequest').doseProblem('{VS_CYC}')") == [
        "the ordered medication does not contain the ingredient asked for"]


@pytest.mark.parametrize("dose, problem", [
    (quantity(5, unit="scoops"), "dose unit 'scoops' is not understood"),
    (quantity(5, "{puff}"), "dose unit '{puff}' does not convert to mg"),
    (quantity(5, "mL"), "dose given as a volume (mL), and the concentration of this product is not known"),
    ({"value": 5}, "dose has no unit"),
    (None, "no dose given"),
])
def test_a_dose_that_cannot_be_computed_is_empty_and_says_why(content, dose, problem):
    mr = order("o1", CYC_TAB, dose)
    assert run(content, mr, expr="%d.resources('MedicationRequest').dose('mg')") == []
    assert run(content, mr, expr="%d.resources('MedicationRequest').dailyDose('mg')") == []
    assert run(content, mr, expr="%d.resources('MedicationRequest').doseProblem()") == [problem]


def test_a_tablet_count_of_an_unknown_product_says_the_strength_is_unknown(content):
    mr = order("o1", rx("3002", "cyclophosphamide"), quantity(5, "{pill}"))
    assert run(content, mr, expr="%d.resources('MedicationRequest').dose('mg')") == []
    assert run(content, mr, expr="%d.resources('MedicationRequest').doseProblem()") == [
        "dose given in tablets, and the tablet strength of this product is not known"]


def test_a_dose_without_frequency_has_a_dose_but_no_daily_dose(content):
    mr = order("o1", CYC_TAB, quantity(2, "{tbl}"), period=None)
    assert run(content, mr, expr="%d.resources('MedicationRequest').dose('mg')") == [100]
    assert run(content, mr, expr="%d.resources('MedicationRequest').dailyDose('mg')") == []
    assert run(content, mr, expr="%d.resources('MedicationRequest').doseProblem()") == ["no frequency given"]


def test_daily_dose_sums_dosage_instructions_and_maps_over_orders(content):
    split = order("split", CYC_TAB, quantity(1, "{tbl}"))
    split["dosageInstruction"].append({"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                                       "doseAndRate": [{"doseQuantity": quantity(2, "{tbl}")}]})
    broken = order("broken", CYC_TAB, quantity(1, unit="scoops"))
    assert run(content, split, broken, expr="%d.resources('MedicationRequest').dailyDose('mg')") == [150]


def test_a_dosage_on_its_own_converts_only_what_needs_no_product(content):
    orders = [order("mg", CYC_TAB, quantity(100, "mg")), order("tab", CYC_TAB, quantity(2, "{tbl}"))]
    assert run(content, *orders, expr="%d.resources('MedicationRequest').dosageInstruction.dose('mg')") == [100]


def test_a_medication_administration_dose(content):
    admin = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
             "medicationCodeableConcept": CYC_TAB, "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": "2026-02-28T08:00:00Z", "dosage": {"dose": quantity(3, "{tbl}")}}
    assert run(content, admin, expr="%d.resources('MedicationAdministration').dose('mg')") == [150]


# ---- route --------------------------------------------------------------------------------------


def test_route_from_the_dosage_first(content):
    mr = order("o1", CYC_TAB, quantity(2, "{tbl}"), route=IV)
    assert run(content, mr, expr="%d.resources('MedicationRequest').route().code") == ["47625008"]


def test_route_from_the_dose_form_when_the_dosage_has_no_coded_route(content):
    coded_form = order("a", CYC_TAB, quantity(2, "{tbl}"))
    text_only = order("b", CYC_TAB, quantity(2, "{tbl}"), route={"text": "by mouth"})
    assert run(content, coded_form, expr="%d.resources('MedicationRequest').route()") == [
        {"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]
    assert run(content, text_only, expr="%d.resources('MedicationRequest').route().code") == ["26643006"]


def test_an_injection_has_no_route_unless_the_dosage_says(content):
    mr = order("o1", RTX_VIAL, quantity(50, "mL"), period=None)
    assert run(content, mr, expr="%d.resources('MedicationRequest').route()") == []
    mr = order("o2", RTX_VIAL, quantity(50, "mL"), period=None, route=IV)
    assert run(content, mr, expr="%d.resources('MedicationRequest').route().code") == ["47625008"]


def test_an_unknown_product_has_no_route(content):
    mr = order("o1", rx("3002", "cyclophosphamide"), quantity(750, "mg"))
    assert run(content, mr, expr="%d.resources('MedicationRequest').route()") == []


# ---- inUnit: unit strings as EHRs send them (A2) -------------------------------------------------


def observation(value, unit=None, code=None, system=None):
    q = {"value": value}
    q.update({k: v for k, v in (("unit", unit), ("code", code), ("system", system)) if v is not None})
    return {"resourceType": "Observation", "id": "o", "status": "final", "valueQuantity": q}


@pytest.mark.parametrize("value, unit, code, target, expected", [
    (150, "lbs", None, "kg", 68.0389),
    (150, "lb", None, "kg", 68.0389),
    (150, "pounds", None, "kg", 68.0389),
    (70, "Kg", None, "kg", 70),
    (70, "kgs", None, "kg", 70),
    (70, None, "Kg", "kg", 70),  # a code without a system, misspelt
    (70, "inches", None, "cm", 177.8),
    (70, "in", None, "cm", 177.8),
    (180, "CM", None, "cm", 180),
    (2.4, "mg/dl", None, "mg/dL", 2.4),
    (90, "g/L", None, "g/dL", 9),
    (212, "umol/l", None, "umol/L", 212),
    (5, "mmol/l", None, "mmol/L", 5),
    (500, "mcg", None, "mg", 0.5),
    (1.5, "gm", None, "mg", 1500),
])
def test_unit_strings_are_read_as_ucum(content, value, unit, code, target, expected):
    result = run(content, observation(value, unit, code), expr=f"%d.resources('Observation').value.inUnit('{target}')")
    assert result == [pytest.approx(expected, abs=1e-4)]


def test_ucum_coded_quantities_are_used_as_they_are(content):
    obs = observation(150, "lbs", "[lb_av]", "http://unitsofmeasure.org")
    assert run(content, obs, expr="%d.resources('Observation').value.inUnit('kg')") == [
        pytest.approx(68.0389, abs=1e-4)
    ]


@pytest.mark.parametrize("unit", ["stone", "st", "U", "m"])
def test_a_unit_not_understood_gives_nothing_while_the_value_is_still_there(content, unit):
    obs = observation(11, unit)
    assert run(content, obs, expr="%d.resources('Observation').value.inUnit('kg')") == []
    assert run(content, obs, expr="%d.resources('Observation').value.value") == [11]


def test_an_ingredient_is_asked_for_through_what_it_maps_to(tmp_path):
    """A local formulary product maps to its salt (with the strength), the salt to the RxNorm base
    ingredient: asking for the base ingredient's ValueSet finds the salt's strength."""
    formulary = "http://hospital.example.org/fhir/CodeSystem/formulary"
    maps = product_map({"F-100": ("methylprednisolone sodium succinate 62.5 mg/mL vial", [
        {"code": "F-SALT", "display": "methylprednisolone sodium succinate", "equivalence": "wider", "product": [
            {"property": STRENGTH, "value": "62.5 mg/mL"}, {"property": DOSE_FORM, "value": "Injection"}]}])},
        mid="formulary")
    maps["group"][0].update(source=formulary, target=formulary)
    maps["group"].append({"source": formulary, "target": RXNORM, "element": [
        {"code": "F-SALT", "target": [{"code": "6902", "display": "methylprednisolone", "equivalence": "wider"}]}]})
    routes = route_map({"Injection": None}, mid="formulary-routes")
    routes["group"][0]["source"] = formulary
    content = load(tmp_path, maps, routes)
    mr = order("o1", rx("F-100", system=formulary), quantity(2, "mL"), period=None)
    assert run(content, mr, expr=f"%d.resources('MedicationRequest', '{VS_MP}').id") == ["o1"]
    assert run(content, mr, expr=f"%d.resources('MedicationRequest').dose('mg', '{VS_MP}')") == [125]
    assert run(content, mr, expr="%d.resources('MedicationRequest').route()") == []
