"""Medication identity content (plandefinitions/ConceptMap-rxnorm-*.json): two valid FHIR R4B ConceptMaps
whose targets are ingredient codes of the drug ValueSets, whose strengths the dose conversion can use,
whose every dose form has a route entry, and which know the products EHR order screens send."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import pytest
from fhir.resources.R4B.conceptmap import ConceptMap

from service.engine.ucum import UnitError, factor
from tests.conftest import CONTENT

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
STRENGTH = "http://example.org/fhir/concept-property/strength"
DOSE_FORM = "http://example.org/fhir/concept-property/dose-form"
ORAL_ROUTE = "26643006"


def _load(name: str) -> dict:
    return json.loads((CONTENT / name).read_text(encoding="utf-8"))


PRODUCTS = _load("ConceptMap-rxnorm-product-ingredient.json")
ROUTES = _load("ConceptMap-rxnorm-doseform-route.json")
ELEMENTS = PRODUCTS["group"][0]["element"]
BY_CODE = {e["code"]: e for e in ELEMENTS}


def _valueset_codes() -> dict[str, set[str]]:
    """Ingredient codes listed by each drug ValueSet (vs-med-*), by ValueSet id."""
    sets = {}
    for path in sorted(CONTENT.glob("ValueSet-vs-med-*.json")):
        vs = json.loads(path.read_text(encoding="utf-8"))
        sets[vs["id"]] = {c["code"] for inc in vs["compose"]["include"] if inc.get("system") == RXNORM
                          for c in inc.get("concept", [])}
    return sets


VALUESETS = _valueset_codes()


def _props(target: dict) -> dict[str, str]:
    return {p["property"]: p["value"] for p in target.get("product", [])}


def _mapped(target: dict) -> bool:
    return bool(target.get("code")) and target.get("equivalence") not in ("unmatched", "disjoint")


def _products_in(valueset_id: str) -> set[str]:
    """Codes of elements that carry a strength and map to an ingredient (or the combination) of the ValueSet."""
    codes = VALUESETS[valueset_id]
    return {e["code"] for e in ELEMENTS
            if any(t.get("code") in codes for t in e["target"]) and any(STRENGTH in _props(t) for t in e["target"])}


@pytest.mark.parametrize("name", ["ConceptMap-rxnorm-product-ingredient.json", "ConceptMap-rxnorm-doseform-route.json"])
def test_conceptmap_is_valid_fhir_r4b(name):
    cm = ConceptMap.model_validate(_load(name))
    assert cm.status == "draft" and cm.group and cm.group[0].element


def test_identities_follow_the_contract():
    assert (PRODUCTS["id"], PRODUCTS["url"]) == (
        "rxnorm-product-ingredient", "http://example.org/fhir/ConceptMap/rxnorm-product-ingredient")
    assert (ROUTES["id"], ROUTES["url"]) == ("rxnorm-doseform-route", "http://example.org/fhir/ConceptMap/rxnorm-doseform-route")
    assert [(g["source"], g["target"]) for g in PRODUCTS["group"]] == [(RXNORM, RXNORM)]
    assert [(g["source"], g["target"]) for g in ROUTES["group"]] == [(RXNORM, SNOMED)]


def test_description_names_every_source_with_its_commit():
    text = PRODUCTS["description"]
    for repo in ("cds-hooks/sandbox", "PEDSnet/Variable-Dictionary", "nmdp-ig/cibmtr-reporting-ig",
                 "cqframework/ecqm-content-qicore-2025", "cpicpgx/cpic-schema"):
        assert re.search(re.escape(repo) + r" commit [0-9a-f]{40}", text), repo


def test_one_element_per_code_sorted_by_code():
    codes = [e["code"] for e in ELEMENTS]
    assert all(c.isdigit() for c in codes)
    assert codes == sorted(set(codes), key=int)


def test_every_mapped_ingredient_is_in_a_drug_valueset():
    """Each target is read by a drug ValueSet, or is a component of a combination the element also maps to
    (sulfamethoxazole and trimethoprim count only as the combination 10831 in the prophylaxis ValueSet)."""
    known = set().union(*VALUESETS.values())
    missing = {
        (t["code"], t.get("display"))
        for e in ELEMENTS
        for t in e["target"]
        if _mapped(t)
        and t["code"] not in known
        and e["code"] not in known
        and not any(c.get("code") in known and "product" not in c for c in e["target"])
    }
    assert missing == set()
    assert all(t["equivalence"] == "wider" for e in ELEMENTS for t in e["target"])


def test_every_strength_is_a_decimal_and_a_mass_or_concentration_unit():
    for e in ELEMENTS:
        for t in e["target"]:
            strength = _props(t).get(STRENGTH)
            if strength is None:
                continue
            m = re.fullmatch(r"(\d+(?:\.\d+)?) (\S+)", strength)
            assert m, f"{e['code']}: {strength!r}"
            unit = m.group(2)
            per_volume = "/" in unit
            try:
                factor(unit, "mg/mL" if per_volume else "mg")
            except UnitError as exc:
                pytest.fail(f"{e['code']}: {strength!r} is not usable for a dose in mg ({exc})")


def test_every_dose_form_has_exactly_one_route_entry():
    used = {_props(t)[DOSE_FORM] for e in ELEMENTS for t in e["target"] if DOSE_FORM in _props(t)}
    listed = Counter(e["code"] for e in ROUTES["group"][0]["element"])
    assert set(listed) == used  # complete, and nothing that no product uses
    assert all(n == 1 for n in listed.values())


def test_oral_forms_map_to_oral_route_and_injectables_to_no_route():
    for e in ROUTES["group"][0]["element"]:
        form, targets = e["code"], e["target"]
        if "Inject" in form:
            assert targets == [{"equivalence": "unmatched"}], form
        else:
            assert "Oral" in form or form in ("Pill", "Chewable Tablet"), form
            assert [(t.get("code"), t["equivalence"]) for t in targets] == [(ORAL_ROUTE, "equivalent")], form


@pytest.mark.parametrize("code, ingredient, strength, form", [
    ("197550", "3002", "50 mg", "Oral Tablet"),      # Cyclophosphamide 50 MG Oral Tablet (sandbox order screen)
    ("312615", "8640", "20 mg", "Oral Tablet"),      # Prednisone 20 MG Oral Tablet
    ("259966", "6902", "4 mg", "Oral Tablet"),       # Methylprednisolone 4 MG Oral Tablet
    ("1657867", "121191", "10 mg/mL", "Injection"),  # 50 ML rituximab 10 MG/ML Injection
    ("485020", "7145", "180 mg", "Delayed Release Oral Tablet"),  # mycophenolic acid 180 MG DR tablet
])
def test_order_screen_products_have_ingredient_strength_and_form(code, ingredient, strength, form):
    [target] = BY_CODE[code]["target"]
    assert (target["code"], _props(target)) == (ingredient, {STRENGTH: strength, DOSE_FORM: form})


def test_sulfamethoxazole_trimethoprim_has_one_target_per_ingredient():
    targets = {t["code"]: _props(t).get(STRENGTH) for t in BY_CODE["198335"]["target"]}
    assert targets == {"10180": "800 mg", "10829": "160 mg", "10831": None}  # and the combination, for identity
    suspension = {t["code"]: _props(t).get(STRENGTH) for t in BY_CODE["313134"]["target"]}
    assert suspension == {"10180": "40 mg/mL", "10829": "8 mg/mL", "10831": None}


def test_biosimilar_products_map_to_their_own_ingredient_in_the_rituximab_valueset():
    rtx = VALUESETS["vs-med-rtx"]
    by_ingredient = defaultdict(set)
    for e in ELEMENTS:
        for t in e["target"]:
            if t["code"] in rtx and STRENGTH in _props(t):
                by_ingredient[t["display"]].add(e["code"])
    assert {"rituximab", "rituximab-abbs", "rituximab-pvvr", "rituximab-arrx"} <= set(by_ingredient)
    # the branded dose-form concept names the parent ingredient, the brand tells the biosimilar
    assert [t["display"] for t in BY_CODE["2105829"]["target"]] == ["rituximab-abbs"]


def test_each_product_name_names_its_ingredient_or_a_brand_of_it():
    """The display of every element names each target ingredient (salts included: 'methylprednisolone
    acetate'), or names a brand that another element of the map ties to that ingredient."""
    aliases = {"mycophenolic acid": ["mycophenolic acid", "mycophenolate sodium"]}

    def names_of(ingredient: str) -> list[str]:
        # a combination target ("sulfamethoxazole / trimethoprim") is named by its first component
        return aliases.get(ingredient, [ingredient.split(" / ")[0]])
    brands = defaultdict(set)  # brand -> ingredient displays, from '... [Brand]' names that name the ingredient
    for e in ELEMENTS:
        m = re.search(r"\[([^\]]+)\]$", e["display"])
        if m:
            for t in e["target"]:
                if any(re.search(rf"\b{re.escape(a)}\b", e["display"], re.I) for a in names_of(t["display"])):
                    brands[m.group(1)].add(t["display"])
    unexplained = []
    for e in ELEMENTS:
        for t in e["target"]:
            names = names_of(t["display"])
            if any(re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", e["display"], re.I) for n in names):
                continue
            if any(b in e["display"] and t["display"] in ings for b, ings in brands.items()):
                continue
            unexplained.append((e["code"], e["display"], t["display"]))
    assert unexplained == []


@pytest.mark.parametrize("valueset, at_least", [
    ("vs-med-cyc", 30), ("vs-med-rtx", 30), ("vs-med-mmf", 20), ("vs-med-aza", 20), ("vs-med-hcq", 4),
    ("vs-med-methylprednisolone", 75), ("vs-med-prednisone", 160), ("vs-med-pcp-proph", 10), ("vs-med-iron", 40),
])
def test_each_drug_valueset_reaches_many_products_with_a_strength(valueset, at_least):
    assert len(_products_in(valueset)) >= at_least


def test_cyclophosphamide_and_methylprednisolone_have_oral_and_injectable_products():
    for valueset in ("vs-med-cyc", "vs-med-methylprednisolone"):
        forms = {_props(t).get(DOSE_FORM) for e in ELEMENTS for t in e["target"] if t["code"] in VALUESETS[valueset]}
        assert {"Oral Tablet", "Injection"} <= forms, valueset


def test_salt_and_multiple_ingredient_codes_map_to_the_ingredient_without_product_data():
    for code, ingredients in {"203189": {"6902"}, "10831": {"10180", "10829"}, "237112": {"68149"}}.items():
        assert {t["code"] for t in BY_CODE[code]["target"]} == ingredients
        assert all("product" not in t for t in BY_CODE[code]["target"])


def test_products_outside_the_guidance_are_not_mapped():
    """Topical forms, combinations with another active drug, and trimethoprim or sulfamethoxazole alone."""
    for e in ELEMENTS:
        assert not re.search(
            r"Topical|Paste|Ophthalmic|proguanil|lidocaine|aspirin|folic acid|ascorbic", e["display"], re.I
        ), e
        codes = {t["code"] for t in e["target"]}
        assert not (codes & {"10180", "10829"}) or codes >= {"10180", "10829"}, e
