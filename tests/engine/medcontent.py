"""Small medication content for engine tests: ingredient ValueSets and ConceptMaps in the
content's format (product -> ingredients with strength and dose form; dose form -> route), and
a way to evaluate FHIRPath against it."""

from __future__ import annotations

from datetime import UTC, datetime

from service.content import load_folder
from service.engine.fhirpath import Evaluation, Expression, to_python
from service.engine.index import DataIndex
from tests.engine.helpers import BASE, RXNORM, SNOMED, UCUM, ingredient, product_map, route_map, valueset, write

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VS_CYC = f"{BASE}/ValueSet/cyc"
VS_PRED = f"{BASE}/ValueSet/pred"
VS_SMX = f"{BASE}/ValueSet/smx"
VS_TMP = f"{BASE}/ValueSet/tmp"
VS_RTX = f"{BASE}/ValueSet/rtx"
VS_MP = f"{BASE}/ValueSet/mp"
ORAL = ("26643006", "Oral route")

PRODUCTS = product_map(
    {
        "197550": (
            "cyclophosphamide 50 MG Oral Tablet",
            [ingredient("3002", "cyclophosphamide", "50 mg", "Oral Tablet")],
        ),
        "312617": ("prednisone 5 MG Oral Tablet", [ingredient("8640", "prednisone", "5 mg", "Oral Tablet")]),
        "206954": (
            "Prednisone 5 MG Oral Tablet [Deltasone]",
            [ingredient("8640", "prednisone", "5 mg", "Oral Tablet")],
        ),
        "763181": (
            "{21 (prednisone 5 MG Oral Tablet) } Pack",
            [ingredient("8640", "prednisone", "5 mg", "Oral Tablet")],
        ),
        "198335": (
            "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet",
            [
                ingredient("10180", "sulfamethoxazole", "800 mg", "Oral Tablet"),
                ingredient("10829", "trimethoprim", "160 mg", "Oral Tablet"),
            ],
        ),
        "313134": (
            "sulfamethoxazole 40 MG/ML / trimethoprim 8 MG/ML Oral Suspension",
            [
                ingredient("10180", "sulfamethoxazole", "40 mg/mL", "Oral Suspension"),
                ingredient("10829", "trimethoprim", "8 mg/mL", "Oral Suspension"),
            ],
        ),
        "1657864": (
            "10 ML rituximab 10 MG/ML Injection [Rituxan]",
            [ingredient("121191", "rituximab", "10 mg/mL", "Injection")],
        ),
        "10831": (
            "sulfamethoxazole / trimethoprim",
            [ingredient("10180", "sulfamethoxazole"), ingredient("10829", "trimethoprim")],
        ),
        "259966": (
            "methylprednisolone 4 MG Oral Tablet",
            [ingredient("6902", "methylprednisolone", "4 mg", "Oral Tablet")],
        ),
    }
)
ROUTES = route_map({"Oral Tablet": ORAL, "Oral Suspension": ORAL, "Injection": None})
VALUESETS = [valueset("cyc", RXNORM, "3002"), valueset("pred", RXNORM, "8640"), valueset("smx", RXNORM, "10180"),
             valueset("tmp", RXNORM, "10829"), valueset("rtx", RXNORM, "121191"), valueset("mp", RXNORM, "6902")]


def load(folder, *extra):
    return load_folder(write(folder, PRODUCTS, ROUTES, *VALUESETS, *extra))


class Evaluator:
    """FHIRPath over `content` with a fresh per-call index (what one hook call sees)."""

    def __init__(self, content, *data):
        self.terminology = content.terminology
        self.index = DataIndex(self.terminology)
        for value in data:
            self.index.add(value)

    def __call__(self, expr: str, **variables):
        return to_python(Expression(expr).evaluate(Evaluation(NOW, self.index, self.terminology), {}, variables))


def rx(code: str | None = None, display: str | None = None, text: str | None = None, system: str = RXNORM) -> dict:
    concept: dict = {}
    if code or display:
        concept["coding"] = [{k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}]
    if text:
        concept["text"] = text
    return concept


def quantity(value, code: str | None = None, unit: str | None = None, system: str | None = UCUM) -> dict:
    q = {"value": value}
    if unit is not None:
        q["unit"] = unit
    if code is not None:
        q["code"] = code
        if system:
            q["system"] = system
    return q


def order(rid: str, medication: dict | None = None, dose: dict | None = None, frequency=1, period=1, period_unit="d",
          route: dict | None = None, **extra) -> dict:
    """A MedicationRequest as EHRs send it (medicationCodeableConcept unless `extra` says otherwise)."""
    dosage: dict = {}
    if period is not None:
        dosage["timing"] = {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}}
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": dose}]
    if route is not None:
        dosage["route"] = route
    mr = {"resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
          "subject": {"reference": "Patient/p1"}, "dosageInstruction": [dosage], **extra}
    if medication is not None:
        mr["medicationCodeableConcept"] = medication
    return mr


def bundle(*resources: dict, full_urls: bool = False) -> dict:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [
        {"resource": r, **({"fullUrl": f"urn:uuid:{r['id']}"} if full_urls else {})} for r in resources]}


__all__ = ["BASE", "RXNORM", "SNOMED", "UCUM", "Evaluator", "bundle", "load", "order", "quantity", "rx"]
