"""EHR-shaped data: every scenario case, re-sent the way real EHRs send the same facts, must give
the same cards (metamorphic tests over the whole scenario suite).

Each transform below changes how the data is written, never what it means:
- `unsorted`: every Bundle's entries in reverse order (searchsets are not sorted by date);
- `duplicated`: every record sent twice under two ids (charts merged from two systems);
- `record_noise`: recent records that must never count (amendment A1), both copies of the case's
  own records and new ones for every code the content reads (its ValueSets and the codes named
  in its expressions): entered-in-error and cancelled Observations with other values, refuted and
  entered-in-error Conditions and allergies, not-done and entered-in-error Procedures,
  entered-in-error / cancelled / draft MedicationRequests in the patient's list, revoked and
  entered-in-error ServiceRequests.

- `unit_spellings`: every UCUM-coded Observation value and dose sent as EHRs often do, a unit
  string with no UCUM code and another spelling ("Kg", "g/dl", "mg/dl", "umol/l", "mmHg", "ng/ml");
- `product_codes`: every ingredient-coded drug order (drafts and the patient's list) coded instead by
  an RxNorm product of that ingredient from the content's ConceptMap, dosed in tablets (`{tablet}`,
  or the string "tablet(s)" without a code) when a tablet strength divides the dose, else in mL of a
  solution; oral orders get oral products, others injectable ones (amendment A2, issue "real EHR data");
- `medication_reference`: the same product-coded orders naming a Medication resource instead, contained
  in the order or sent in the patient's medication Bundle (as `_include=MedicationRequest:medication`).

For the first three the cards (summary, detail, indicator, source, suggestions with their orders) must
be exactly the tidy case's.  Recoding an order changes how its drug is named in text, so for the
product transforms the comparison is of every card's identity (uuid, rule, indicator) and every number
it states: in summary and detail, and the doses of the orders it proposes.  Because the transforms run over every
case, every critical rule of the content is
checked under each of them (`test_every_critical_rule_is_covered`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import CONTENT
from tests.scenarios.cases import CASES, case_id, golden_path

Transform = Callable[[dict], dict]


# ---- walking a case's data --------------------------------------------------------------------------------


def prefetch_bundles(case: dict) -> Iterator[dict]:
    for value in case["request"].get("prefetch", {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            yield value


def all_bundles(case: dict) -> Iterator[dict]:
    yield from prefetch_bundles(case)
    drafts = case["request"]["context"].get("draftOrders")
    if isinstance(drafts, dict):
        yield drafts


def _now(case: dict) -> datetime:
    return datetime.fromisoformat(case["now"].replace("Z", "+00:00"))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- transforms ---------------------------------------------------------------------------------------------


def unsorted(case: dict) -> dict:
    case = copy.deepcopy(case)
    for bundle in all_bundles(case):
        bundle.get("entry", []).reverse()
    return case


def _noise_for(resource: dict, recent: str) -> list[dict]:
    """Copies of `resource` that a clinically valid read must ignore, dated `recent`."""
    kind = resource["resourceType"]
    out = []

    def variant(suffix: str, **changes) -> dict:
        res = copy.deepcopy(resource)
        res["id"] = f"{resource.get('id', 'x')}-{suffix}"
        res.update(changes)
        return res

    if kind == "Observation":
        for status in ("entered-in-error", "cancelled"):
            res = variant(status, status=status, effectiveDateTime=recent)
            res.pop("effectivePeriod", None)
            if isinstance(res.get("valueQuantity"), dict) and isinstance(
                res["valueQuantity"].get("value"), (int, float)
            ):
                res["valueQuantity"]["value"] = res["valueQuantity"]["value"] * 10 + 1
            out.append(res)
    elif kind == "Condition":
        for status in ("refuted", "entered-in-error"):
            out.append(variant(status, onsetDateTime=recent, recordedDate=recent, verificationStatus={"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": status}]}))
    elif kind == "Procedure":
        for status in ("not-done", "entered-in-error"):
            res = variant(status, status=status, performedDateTime=recent)
            res.pop("performedPeriod", None)
            out.append(res)
    elif kind == "MedicationRequest":
        for status in ("entered-in-error", "cancelled", "draft"):
            res = variant(status, status=status, authoredOn=recent)
            res.pop("statusReason", None)  # a cancelled order with a reason is a contraindication record
            out.append(res)
    elif kind == "ServiceRequest":
        for status in ("revoked", "entered-in-error"):
            out.append(variant(status, status=status, authoredOn=recent))
    return out


# Which resource types a code of each system can stand in, for records coded by the content's codes.
_TYPES_BY_SYSTEM = {
    "http://loinc.org": ("Observation", "ServiceRequest"),
    "http://snomed.info/sct": ("Condition", "Procedure", "ServiceRequest", "AllergyIntolerance"),
    "http://hl7.org/fhir/sid/icd-10-cm": ("Condition",),
    "http://www.ama-assn.org/go/cpt": ("Procedure", "ServiceRequest"),
    "http://www.nlm.nih.gov/research/umls/rxnorm": ("MedicationRequest", "AllergyIntolerance"),
}
_CODE_ELEMENT = {"MedicationRequest": "medicationCodeableConcept"}


def _content_codes() -> list[tuple[str, str]]:
    """Every system|code the content reads: its ValueSets' concepts and the literals in its expressions."""
    codes = set()
    for path in CONTENT.glob("*.json"):
        text = path.read_text()
        resource = json.loads(text)
        if resource.get("resourceType") == "ValueSet":
            for inc in resource.get("compose", {}).get("include", []):
                codes |= {(inc["system"], c["code"]) for c in inc.get("concept", []) if inc.get("system")}
        codes |= set(re.findall(r"'(http://[^'|]+)\|([^']+)'", text))
    return sorted(c for c in codes if c[0] in _TYPES_BY_SYSTEM)


def _key_by_type() -> dict[str, str]:
    library = json.loads((CONTENT / "Library-dah-case-features.json").read_text())
    return {dr["type"]: dr["id"] for dr in library.get("dataRequirement", [])}


def _coded_noise(system: str, code: str, patient: str, recent: str) -> list[dict]:
    out = []
    concept = {"coding": [{"system": system, "code": code}]}
    for kind in _TYPES_BY_SYSTEM[system]:
        base = {"resourceType": kind, "subject": {"reference": f"Patient/{patient}"},
                _CODE_ELEMENT.get(kind, "code"): concept}
        if kind == "AllergyIntolerance":
            base = {
                "resourceType": kind,
                "patient": {"reference": f"Patient/{patient}"},
                "code": concept,
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "recordedDate": recent,
            }
        elif kind == "Observation":
            base.update(
                effectiveDateTime=recent,
                valueQuantity={"value": 1, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"},
                interpretation=[
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                "code": "POS",
                            }
                        ]
                    }
                ],
            )
        elif kind == "Condition":
            base.update(onsetDateTime=recent, recordedDate=recent, clinicalStatus={"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]})
        elif kind == "Procedure":
            base.update(status="completed", performedDateTime=recent)
        elif kind in ("ServiceRequest", "MedicationRequest"):
            base.update(status="active", intent="order", authoredOn=recent)
            if kind == "MedicationRequest":
                base["dosageInstruction"] = [
                    {
                        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [
                            {
                                "doseQuantity": {
                                    "value": 1000,
                                    "unit": "mg",
                                    "system": "http://unitsofmeasure.org",
                                    "code": "mg",
                                }
                            }
                        ],
                    }
                ]
        base["id"] = f"noise-{abs(hash((system, code, kind))) % 10**8}"
        if kind == "AllergyIntolerance":
            for status in ("refuted", "entered-in-error"):
                res = copy.deepcopy(base)
                res["id"] += "-" + status
                res["verificationStatus"] = {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                            "code": status,
                        }
                    ]
                }
                out.append(res)
        else:
            out += _noise_for(base, recent)
    return out


CONTENT_CODES = _content_codes()
KEY_BY_TYPE = _key_by_type()


def record_noise(case: dict) -> dict:
    case = copy.deepcopy(case)
    recent = _stamp(_now(case) - timedelta(hours=1))
    prefetch = case["request"].setdefault("prefetch", {})
    for bundle in prefetch_bundles(case):
        extra = []
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict):
                extra += [{"resource": r} for r in _noise_for(resource, recent)]
        bundle.setdefault("entry", []).extend(extra)
    patient = case["request"]["context"]["patientId"]
    for system, code in CONTENT_CODES:
        for resource in _coded_noise(system, code, patient, recent):
            key = KEY_BY_TYPE.get(resource["resourceType"])
            if key not in prefetch:
                continue  # a key the case leaves to the FHIR server
            if not isinstance(prefetch[key], dict):  # null: no data; noise alone is still no valid data
                prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
            prefetch[key].setdefault("entry", []).append({"resource": resource})
    return case


# Spellings EHRs use for UCUM units, sent as `unit` with no `code`.
SPELLINGS = {"kg": "Kg", "g/dL": "g/dl", "mg/dL": "mg/dl", "umol/L": "umol/l", "mm[Hg]": "mmHg", "ng/mL": "ng/ml",
             "mmol/L": "mmol/l", "g/L": "g/l", "cm": "cm", "%": "%", "mg": "mg", "[in_i]": "in", "[lb_av]": "lbs"}


def _respell(quantity: dict) -> None:
    """A UCUM-coded quantity whose unit text is just the unit: sent as a spelling, no code.  A unit
    text that says more ("mg elemental iron") is left as it is."""
    if quantity.get("unit") not in (None, quantity.get("code")):
        return
    if quantity.get("system") == "http://unitsofmeasure.org" and quantity.get("code") in SPELLINGS:
        quantity["unit"] = SPELLINGS[quantity.pop("code")]
        quantity.pop("system")


def unit_spellings(case: dict) -> dict:
    case = copy.deepcopy(case)
    for bundle in all_bundles(case):
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") or {}
            if isinstance(resource.get("valueQuantity"), dict):
                _respell(resource["valueQuantity"])
            for dosage in resource.get("dosageInstruction") or []:
                for dr in dosage.get("doseAndRate") or []:
                    if isinstance(dr.get("doseQuantity"), dict):
                        _respell(dr["doseQuantity"])
    return case


# ---- product codes ------------------------------------------------------------------------------------------

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_STRENGTH = "http://example.org/fhir/concept-property/strength"
_FORM = "http://example.org/fhir/concept-property/dose-form"
ORAL_FORMS = ("Oral Tablet", "Oral Capsule")
SOLUTION_FORMS = {True: ("Oral Solution", "Oral Suspension"), False: ("Injectable Solution", "Injection")}
NOT_RECODED = {"24947"}  # iron: its doses are stated as elemental iron, not as the salt a product's strength gives


def _products() -> dict[str, list[tuple[str, str, Decimal, str]]]:
    """ingredient code -> (product code, display, strength value, 'mg' or 'mg/mL', dose form) of single-ingredient
    products."""
    cm = json.loads((CONTENT / "ConceptMap-rxnorm-product-ingredient.json").read_text())
    out: dict[str, list] = {}
    for element in cm["group"][0]["element"]:
        with_data = [t for t in element["target"] if t.get("product")]
        if len(with_data) != 1:
            continue
        props = {x["property"]: x["value"] for x in with_data[0]["product"]}
        if _STRENGTH not in props or _FORM not in props:
            continue
        value, unit = props[_STRENGTH].split(" ", 1)
        if unit in ("mg", "mg/mL"):
            out.setdefault(with_data[0]["code"], []).append(
                (element["code"], element["display"], Decimal(value), unit, props[_FORM])
            )
    return out


PRODUCTS = _products()


def _is_oral(dosage: dict) -> bool:
    route = dosage.get("route") or {}
    words = " ".join([route.get("text") or ""] + [c.get("display") or "" for c in route.get("coding") or []]).lower()
    return any(w in words for w in ("oral", "mouth")) or words.strip() == "po"


def _exact(amount: Decimal) -> bool:
    return amount > 0 and amount == amount.quantize(Decimal("0.0001"))


def _recode(order: dict, salt: int) -> dict | None:
    """The order coded by a product of its ingredient, its dose in tablets or mL; None when no product fits exactly."""
    concept = order.get("medicationCodeableConcept") or {}
    codings = [c for c in concept.get("coding") or [] if c.get("system") == RXNORM]
    dosages = order.get("dosageInstruction") or []
    if len(codings) != 1 or codings[0].get("code") in NOT_RECODED or codings[0].get("code") not in PRODUCTS:
        return None
    quantities = [dr["doseQuantity"] for d in dosages for dr in d.get("doseAndRate") or [] if "doseQuantity" in dr]
    if not quantities or any(q.get("code", q.get("unit")) != "mg" or not isinstance(q.get("value"), (int, float))
                             for q in quantities):
        return None
    products = PRODUCTS[codings[0]["code"]]
    if any(d.get("route") for d in dosages):
        oral = all(_is_oral(d) for d in dosages)
    else:  # no route written: oral only for a drug the map knows no injectable form of
        oral = not any(p[4] in SOLUTION_FORMS[False] for p in products)
    doses = [Decimal(str(q["value"])) for q in quantities]
    candidates = sorted(products, key=lambda p: p[0])
    solids = [p for p in candidates if oral and p[3] == "mg" and p[4] in ORAL_FORMS
              and all((2 * d / p[2]) == int(2 * d / p[2]) for d in doses)]  # whole or half tablets
    liquids = [
        p
        for p in candidates
        if p[3] == "mg/mL" and p[4] in SOLUTION_FORMS[oral] and all(_exact(d / p[2]) for d in doses)
    ]
    choice = (solids or liquids or [None])[salt % max(1, len(solids or liquids))]
    if choice is None:
        return None
    code, display, strength, unit, _form = choice
    order = copy.deepcopy(order)
    order["medicationCodeableConcept"] = {
        "coding": [{"system": RXNORM, "code": code, "display": display}],
        "text": display,
    }
    for dosage in order["dosageInstruction"]:
        for dr in dosage.get("doseAndRate") or []:
            q = dr.get("doseQuantity")
            if q is None:
                continue
            amount = (Decimal(str(q["value"])) / strength).normalize()
            value = int(amount) if amount == int(amount) else float(amount)
            if unit == "mg":  # tablets: a UCUM annotation, or a plain unit string as many EHRs send
                dr["doseQuantity"] = (
                    {"value": value, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tablet}"}
                    if salt % 2
                    else {"value": value, "unit": "tablet(s)"}
                )
            else:
                dr["doseQuantity"] = {"value": value, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"}
    return order


def _orders(case: dict) -> Iterator[dict]:
    for bundle in all_bundles(case):
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "MedicationRequest":
                yield entry


def product_codes(case: dict) -> dict:
    case = copy.deepcopy(case)
    for n, entry in enumerate(_orders(case)):
        recoded = _recode(entry["resource"], n)
        if recoded is not None:
            entry["resource"] = recoded
    return case


def medication_reference(case: dict) -> dict:
    """product_codes, then each recoded order names a Medication: contained (even orders) or in the
    patient's medication Bundle (odd orders; the drafts' own Medications are contained, as EHRs send them)."""
    case = product_codes(case)
    meds_key = KEY_BY_TYPE.get("MedicationRequest")
    meds = case["request"].get("prefetch", {}).get(meds_key)
    drafts = case["request"]["context"].get("draftOrders")
    for n, entry in enumerate(_orders(case)):
        order = entry["resource"]
        concept = order.get("medicationCodeableConcept")
        if not concept or not any(c.get("code") not in {x for x in PRODUCTS} for c in concept.get("coding", [])):
            continue  # not recoded: leave it coded by ingredient
        medication = {"resourceType": "Medication", "id": f"med-{order.get('id', n)}", "code": concept}
        del order["medicationCodeableConcept"]
        in_drafts = isinstance(drafts, dict) and any(e is entry for e in drafts.get("entry", []))
        if n % 2 == 0 or in_drafts or not isinstance(meds, dict):
            medication["id"] = "med"
            order["contained"] = [medication]
            order["medicationReference"] = {"reference": "#med"}
        else:
            meds.setdefault("entry", []).append({"resource": medication, "search": {"mode": "include"}})
            order["medicationReference"] = {"reference": f"Medication/{medication['id']}"}
    return case


DUPLICATED_TYPES = ("Observation", "Condition", "Procedure", "AllergyIntolerance")


def duplicated(case: dict) -> dict:
    """Every result, diagnosis, procedure and allergy sent twice under two ids (charts merged from two
    systems).  Orders are not duplicated: two identical active orders can be a real split dose."""
    case = copy.deepcopy(case)
    for bundle in prefetch_bundles(case):
        copies = []
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") in DUPLICATED_TYPES:
                twin = copy.deepcopy(resource)
                twin["id"] = f"{resource.get('id', 'x')}-copy"
                copies.append({"resource": twin})
        bundle.setdefault("entry", []).extend(copies)
    return case


TRANSFORMS: dict[str, Transform] = {
    "unsorted": unsorted,
    "duplicated": duplicated,
    "record-noise": record_noise,
    "unit-spellings": unit_spellings,
    "product-codes": product_codes,
    "medication-reference": medication_reference,
}
RENAMING = {"product-codes", "medication-reference"}  # change how drugs are named: compare cards by their numbers


# ---- running ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory, content):
    """One app for the module; the clock is set per case (cases carry their own `now`)."""
    from service.app import create_app

    state: dict = {}
    db = tmp_path_factory.mktemp("ehr") / "f.sqlite3"
    app = create_app({"database_url": f"sqlite:///{db}"}, clock=lambda: state["now"], content=content)
    client = app.test_client()

    def call(case: dict) -> dict:
        state["now"] = _now(case)
        response = client.post(f"/cds-services/{case['service']}", json=case["request"])
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return call


def by_uuid(response: dict) -> list[dict]:
    return sorted(response["cards"], key=lambda c: c["uuid"])


NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def numbers_of(card: dict) -> dict:
    """A card reduced to what recoding a drug must not change: identity, rule, indicator, every number
    it states, and the type and structured dose of every order it proposes."""
    def doses(resource):  # value and unit: a corrected dose must never keep the draft's tablets or mL
        return [
            (q.get("value"), q.get("code") or q.get("unit"))
            for d in (resource or {}).get("dosageInstruction") or []
            for dr in d.get("doseAndRate") or []
            for q in [dr.get("doseQuantity") or {}]
        ]
    return {
        "uuid": card["uuid"], "rule": card["source"]["topic"]["code"], "indicator": card["indicator"],
        "summary": NUMBER.findall(card["summary"]), "detail": NUMBER.findall(card.get("detail", "")),
        "suggestions": [[(a["type"], a.get("resourceId"), doses(a.get("resource"))) for a in s["actions"]]
                        for s in card.get("suggestions", [])],
    }


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_same_cards_from_ehr_shaped_data(path: Path, transform: str, service):
    case = json.loads(path.read_text())
    expected = json.loads(golden_path(path).read_text())
    got = service(TRANSFORMS[transform](case))
    if transform == "duplicated":  # a card may cite either copy of the same record
        got = json.loads(json.dumps(got).replace('-copy"', '"'))
    if transform in RENAMING:
        assert [numbers_of(c) for c in by_uuid(got)] == [numbers_of(c) for c in by_uuid(expected)]
    else:
        assert by_uuid(got) == by_uuid(expected)


def _critical_rules() -> set[str]:
    rules = set()
    for plan_file in CONTENT.glob("PlanDefinition-*.json"):
        stack = list(json.loads(plan_file.read_text()).get("action", []))
        while stack:
            action = stack.pop()
            if action.get("priority") == "stat" and action.get("title"):
                rules |= {c["code"] for cc in action.get("code", []) for c in cc.get("coding", [])}
            stack += action.get("action", [])
    return rules


def test_every_critical_rule_is_covered():
    """Each critical rule fires in at least one case, so each transform is checked against it."""
    fired = set()
    for path in CASES:
        golden = json.loads(golden_path(path).read_text())
        fired |= {c["source"]["topic"]["code"] for c in golden["cards"] if c["indicator"] == "critical"}
    critical = _critical_rules()
    assert critical, "the content has critical rules"
    assert critical <= fired, f"critical rules no case shows firing: {sorted(critical - fired)}"


# ---- units that change the number, or cannot be read: critical cards never disappear -----------------------

WEIGHT, HEIGHT = "29463-7", "8302-2"


def _observations(case: dict, loinc: str) -> Iterator[dict]:
    for bundle in prefetch_bundles(case):
        for entry in bundle.get("entry", []):
            resource = entry.get("resource") or {}
            if resource.get("resourceType") == "Observation" and any(
                    c.get("code") == loinc for c in (resource.get("code") or {}).get("coding", [])):
                yield resource


def weight_in(unit: str, factor: Decimal | None) -> Transform:
    """Every weight re-sent in `unit` (a string, no UCUM code): converted by `factor`, or unreadable (None)."""
    def transform(case: dict) -> dict:
        case = copy.deepcopy(case)
        for obs in _observations(case, WEIGHT):
            q = obs.get("valueQuantity") or {}
            if isinstance(q.get("value"), (int, float)):
                value = Decimal(str(q["value"])) * (factor or 1)
                obs["valueQuantity"] = {"value": float(round(value, 2)), "unit": unit}
        return case
    return transform


def height_in_inches(case: dict) -> dict:
    case = copy.deepcopy(case)
    for obs in _observations(case, HEIGHT):
        q = obs.get("valueQuantity") or {}
        if isinstance(q.get("value"), (int, float)) and q.get("code", q.get("unit")) == "cm":
            obs["valueQuantity"] = {
                "value": float(round(Decimal(str(q["value"])) / Decimal("2.54"), 2)),
                "unit": "inches",
            }
    return case


UNIT_TRANSFORMS: dict[str, Transform] = {
    "weight-in-lbs": weight_in("lbs", Decimal("1") / Decimal("0.45359237")),
    "weight-in-stone": weight_in("stone", None),
    "height-in-inches": height_in_inches,
}


def critical(response: dict) -> list[str]:
    return sorted(c["source"]["topic"]["code"] for c in response["cards"] if c["indicator"] == "critical")


@pytest.mark.parametrize("transform", sorted(UNIT_TRANSFORMS))
@pytest.mark.parametrize("path", [p for p in CASES if critical(json.loads(golden_path(p).read_text()))], ids=case_id)
def test_critical_cards_survive_units_as_ehrs_send_them(path: Path, transform: str, service):
    """Pounds and inches are read (the doses may round differently); a weight in a unit that cannot be
    read is present but unusable: the critical cards stay, and a card that needs the weight says why."""
    case = json.loads(path.read_text())
    expected = json.loads(golden_path(path).read_text())
    changed = UNIT_TRANSFORMS[transform](case)
    got = service(changed)
    assert critical(got) == critical(expected)
    current = [
        o
        for o in _observations(changed, WEIGHT)
        if (o.get("effectiveDateTime") or "") >= _stamp(_now(case) - timedelta(days=30))
    ]
    if transform == "weight-in-stone" and current:
        # a current weight is present but unusable: never "no weight", never "record weight"; the unit is named
        texts = " ".join(c["summary"] + " " + c.get("detail", "") + " " +
                         " ".join(s["label"] for s in c.get("suggestions", [])) for c in got["cards"]).lower()
        assert "no weight in 30 days" not in texts and "record weight" not in texts, texts
        if "re-enter it in kg" in texts:
            assert '"stone"' in texts
