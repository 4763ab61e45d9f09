"""Medication identity: orders coded at any RxNorm level, or by a Medication reference, match the
content's ingredient ValueSets through its ConceptMaps; names are read only as a last resort."""

from __future__ import annotations

import pytest

from tests.engine.medcontent import (
    RXNORM,
    VS_CYC,
    VS_MP,
    VS_PRED,
    VS_RTX,
    VS_SMX,
    VS_TMP,
    Evaluator,
    bundle,
    load,
    order,
    quantity,
    rx,
)

EPIC_LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288"  # an EHR's local medication code system


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    return load(tmp_path_factory.mktemp("meds"))


@pytest.mark.parametrize("code, display, valueset", [
    ("197550", "cyclophosphamide 50 MG Oral Tablet", VS_CYC),  # clinical drug (SCD)
    ("206954", "Prednisone 5 MG Oral Tablet [Deltasone]", VS_PRED),  # branded drug (SBD)
    ("763181", "{21 (prednisone 5 MG Oral Tablet) } Pack", VS_PRED),  # generic pack (GPCK)
    ("1657864", "10 ML rituximab 10 MG/ML Injection [Rituxan]", VS_RTX),
])
def test_product_codes_match_the_ingredient_valueset(content, code, display, valueset):
    drafts = bundle(order("o1", rx(code, display), quantity(1, "{tbl}")))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{valueset}').id", d=drafts) == ["o1"]
    assert evaluate(f"%d.resources('MedicationRequest').coded('{valueset}').id", d=drafts) == ["o1"]
    assert evaluate(f"%d.resources('MedicationRequest').memberOf('{valueset}')", d=drafts) == [True]
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_CYC if valueset != VS_CYC else VS_PRED}').id",
                    d=drafts) == []
    assert evaluate("%d.resources('MedicationRequest').identifiedByName()", d=drafts) == [False]


def test_a_combination_product_matches_each_ingredient(content):
    drafts = bundle(order("smx-tmp", rx("198335", "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"),
                          quantity(1, "{tbl}")))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_SMX}').id", d=drafts) == ["smx-tmp"]
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_TMP}').id", d=drafts) == ["smx-tmp"]
    assert evaluate(f"%d.resources('MedicationRequest', '{RXNORM}|198335').id", d=drafts) == ["smx-tmp"]


def test_an_ingredient_coded_order_still_matches_and_an_unmapped_product_does_not(content):
    drafts = bundle(order("in", rx("3002", "cyclophosphamide"), quantity(750, "mg")),
                    order("other", rx("198014", "Naproxen 500 MG Oral Tablet"), quantity(1, "{tbl}")))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_CYC}').id", d=drafts) == ["in"]
    assert evaluate(f"%d.resources('MedicationRequest').coded('{VS_CYC}', '{VS_PRED}').id", d=drafts) == ["in"]


CONTAINED = {"resourceType": "Medication", "id": "med1",
             "code": rx("206954", "Prednisone 5 MG Oral Tablet [Deltasone]", "predniSONE 5 mg tablet")}
LOCAL_WITH_INGREDIENT = {
    "resourceType": "Medication", "id": "m-local",
    "code": {"coding": [{"system": EPIC_LOCAL, "code": "12345", "display": "CYCLOPHOSPHAMIDE 50 MG PO TABS"}]},
    "ingredient": [{"itemCodeableConcept": rx("3002", "cyclophosphamide"),
                    "strength": {"numerator": quantity(50, "mg"), "denominator": quantity(1, "{tbl}")}}]}


def test_medication_reference_to_a_contained_medication(content):
    mr = order("o1", None, quantity(2, "{tbl}"), medicationReference={"reference": "#med1"}, contained=[CONTAINED])
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_PRED}').id", d=drafts) == ["o1"]
    assert evaluate("%d.resources('MedicationRequest').dose('mg')", d=drafts) == [10]


def test_medication_reference_to_a_medication_in_another_prefetch_key(content):
    """The order is a draft; its Medication came in the medications prefetch (_include)."""
    drafts = bundle(order("o1", None, quantity(5, "{tbl}"), medicationReference={"reference": "Medication/m-local"}))
    medications = bundle(LOCAL_WITH_INGREDIENT)
    evaluate = Evaluator(content, drafts, medications)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_CYC}').id", d=drafts) == ["o1"]
    # the Medication's own ingredient strength (Ratio 50 mg per tablet) doses the tablets
    assert evaluate("%d.resources('MedicationRequest').dailyDose('mg')", d=drafts) == [250]
    assert evaluate("%d.resources('MedicationRequest').identifiedByName()", d=drafts) == [False]


def test_medication_reference_in_the_same_bundle_by_full_url(content):
    med = {"resourceType": "Medication", "id": "x", "code": rx("197550", "cyclophosphamide 50 MG Oral Tablet")}
    mr = order("o1", None, quantity(2, "{tbl}"), medicationReference={"reference": "urn:uuid:x"})
    data = bundle(mr, med, full_urls=True)
    evaluate = Evaluator(content, data)
    assert evaluate(f"%b.resources('MedicationRequest', '{VS_CYC}').id", b=data) == ["o1"]
    assert evaluate("%b.resources('MedicationRequest').dose('mg')", b=data) == [100]


def test_an_unresolvable_reference_matches_nothing_and_does_not_fail(content):
    drafts = bundle(order("o1", None, quantity(2, "{tbl}"), medicationReference={"reference": "Medication/absent"}),
                    order("o2", None, quantity(2, "{tbl}"), medicationReference={"display": "cyclophosphamide"}))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_CYC}').id", d=drafts) == []
    assert evaluate("%d.resources('MedicationRequest').dose('mg')", d=drafts) == []


# ---- by name, as a last resort ----------------------------------------------------------------


@pytest.mark.parametrize("name, valueset, daily_mg", [
    ("Cyclophosphamide 50 MG Oral Tablet", VS_CYC, 100),
    ("predniSONE 20 MG Oral Tablet [Deltasone]", VS_PRED, 40),  # brand suffix
])
def test_an_unknown_local_code_is_identified_by_its_rxnorm_name(content, name, valueset, daily_mg):
    mr = order("o1", rx("99887", name, system=EPIC_LOCAL), quantity(2, "{tbl}"))
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{valueset}').id", d=drafts) == ["o1"]
    assert evaluate("%d.resources('MedicationRequest').identifiedByName()", d=drafts) == [True]
    assert evaluate("%d.resources('MedicationRequest').dailyDose('mg')", d=drafts) == [daily_mg]
    assert evaluate("%d.resources('MedicationRequest').route().code", d=drafts) == ["26643006"]


def test_a_salt_names_its_base_ingredient(content):
    mr = order("o1", rx("99887", "methylPREDNISolone sodium succinate 1000 MG Injection", system=EPIC_LOCAL),
               quantity(1, "g"), route={"coding": [{"system": "http://snomed.info/sct", "code": "47625008",
                                                     "display": "Intravenous route"}]})
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_MP}').id", d=drafts) == ["o1"]
    assert evaluate("%d.resources('MedicationRequest').dailyDose('mg')", d=drafts) == [1000]
    assert evaluate("%d.resources('MedicationRequest').route().code", d=drafts) == ["47625008"]


def test_a_quantified_name_gives_the_concentration(content):
    mr = order("o1", rx(text="1 ML rituximab 10 MG/ML Injection"), quantity(50, "mL"), period=None)
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_RTX}').id", d=drafts) == ["o1"]
    assert evaluate("%d.resources('MedicationRequest').dose('mg')", d=drafts) == [500]
    assert evaluate("%d.resources('MedicationRequest').route()", d=drafts) == []  # an injection: IV, IM or SC


def test_a_combination_name_gives_each_ingredient_its_strength(content):
    mr = order(
        "o1",
        rx(text="sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"),
        quantity(1, "tablet", system=None),
        frequency=3,
        period=1,
        period_unit="wk",
    )
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_SMX}').id", d=drafts) == ["o1"]
    assert evaluate(f"%d.resources('MedicationRequest').dose('mg', '{VS_TMP}')", d=drafts) == [160]
    assert evaluate(f"%d.resources('MedicationRequest').dose('mg', '{VS_SMX}')", d=drafts) == [800]


def test_a_pack_name_gives_identity_only(content):
    mr = order("o1", rx(text="{21 (prednisone 5 MG Oral Tablet) } Pack [Sterapred]"), quantity(1, "{tbl}"))
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_PRED}').id", d=drafts) == ["o1"]
    assert evaluate("%d.resources('MedicationRequest').dose('mg')", d=drafts) == []


def test_a_drug_no_map_names_stays_unmatched(content):
    mr = order("o1", rx("99887", "Naproxen 500 MG Oral Tablet", system=EPIC_LOCAL), quantity(1, "{tbl}"))
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    for vs in (VS_CYC, VS_PRED, VS_MP, VS_SMX, VS_TMP, VS_RTX):
        assert evaluate(f"%d.resources('MedicationRequest', '{vs}').id", d=drafts) == []
    assert evaluate("%d.resources('MedicationRequest').identifiedByName()", d=drafts) == [False]
    assert evaluate("%d.resources('MedicationRequest').doseProblem()", d=drafts) == [
        "dose given in tablets, and the tablet strength of this product is not known"]


def test_names_are_whole_words_only(content):
    """"prednisolone" is no whole word of "methylprednisolone", nor "rituximab" of the biosimilar."""
    drafts = bundle(order("a", rx(text="prednisolone 5 MG Oral Tablet"), quantity(1, "{tbl}")),
                    order("b", rx(text="10 ML rituximab-abbs 10 MG/ML Injection [Truxima]"), quantity(50, "mL")))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_PRED}').id", d=drafts) == []
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_MP}').id", d=drafts) == []
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_RTX}').id", d=drafts) == []


def test_a_known_code_is_never_second_guessed_by_its_name(content):
    """A code the content knows decides; a display that disagrees is not read."""
    drafts = bundle(order("o1", rx("3002", "predniSONE 20 MG Oral Tablet"), quantity(100, "mg")))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_PRED}').id", d=drafts) == []
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_CYC}').id", d=drafts) == ["o1"]
    assert evaluate("%d.resources('MedicationRequest').identifiedByName()", d=drafts) == [False]


def test_without_concept_maps_codes_are_read_as_sent(tmp_path):
    from service.content import load_folder
    from tests.engine.helpers import valueset, write

    content = load_folder(write(tmp_path, valueset("cyc", RXNORM, "3002")))
    drafts = bundle(order("o1", rx("197550", "Cyclophosphamide 50 MG Oral Tablet"), quantity(5, "{pill}")),
                    order("o2", rx("3002", "cyclophosphamide"), quantity(250, "mg")))
    evaluate = Evaluator(content, drafts)
    assert evaluate(f"%d.resources('MedicationRequest', '{VS_CYC}').id", d=drafts) == ["o2"]
    assert evaluate("%d.resources('MedicationRequest').dailyDose('mg')", d=drafts) == [250]


def test_a_dose_form_in_another_case_still_finds_its_route(content):
    mr = order("o1", rx(text="CYCLOPHOSPHAMIDE 50 MG ORAL TABLET"), quantity(1, "{tbl}"))
    drafts = bundle(mr)
    evaluate = Evaluator(content, drafts)
    assert evaluate("%d.resources('MedicationRequest').route().code", d=drafts) == ["26643006"]
    assert evaluate("%d.resources('MedicationRequest').dose('mg')", d=drafts) == [50]
