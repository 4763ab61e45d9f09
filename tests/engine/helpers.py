"""Tiny synthetic content for engine unit tests."""

from __future__ import annotations

import json
from pathlib import Path

from service.engine.extensions import PROJECT_EXTENSION_BASE

BASE = "http://example.org/fhir"


def var(name: str, expr: str) -> dict:
    return {
        "url": "http://hl7.org/fhir/StructureDefinition/variable",
        "valueExpression": {"name": name, "language": "text/fhirpath", "expression": expr},
    }


def project_ext(name: str, expr: str) -> list[dict]:
    """A project extension holding an expression (`cds-for-each`, `cds-target`), as an extension list."""
    return [
        {
            "url": PROJECT_EXTENSION_BASE + name,
            "valueExpression": {"language": "text/fhirpath", "expression": expr},
        }
    ]


def action_type(code: str) -> dict:
    """PlanDefinition.action.type: create | update | remove."""
    return {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/action-type", "code": code}]}


def dv(path: str, expr: str) -> dict:
    """A dynamicValue."""
    return {"path": path, "expression": {"language": "text/fhirpath", "expression": expr}}


def cond(expr: str, kind: str = "applicability") -> dict:
    return {"kind": kind, "expression": {"language": "text/fhirpath", "expression": expr}}


def plan(actions: list, variables: list | None = None, library: list | None = None, pid: str = "t") -> dict:
    pd = {
        "resourceType": "PlanDefinition",
        "id": pid,
        "url": f"{BASE}/PlanDefinition/{pid}",
        "status": "active",
        "title": "Test plan",
        "action": actions,
    }
    if variables:
        pd["extension"] = variables
    if library:
        pd["library"] = library
    return pd


def library(lid: str, variables: list, data_requirements: list | None = None, depends: list | None = None) -> dict:
    lib = {
        "resourceType": "Library",
        "id": lid,
        "url": f"{BASE}/Library/{lid}",
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
        "extension": variables,
    }
    if data_requirements:
        lib["dataRequirement"] = data_requirements
    if depends:
        lib["relatedArtifact"] = [{"type": "depends-on", "resource": d} for d in depends]
    return lib


def write(folder: Path, *resources: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for res in resources:
        (folder / f"{res['resourceType']}-{res['id']}.json").write_text(json.dumps(res))
    return folder


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
STRENGTH = "http://example.org/fhir/concept-property/strength"
DOSE_FORM = "http://example.org/fhir/concept-property/dose-form"


def ingredient(code: str, display: str, strength: str | None = None, form: str | None = None) -> dict:
    """One ConceptMap target: an active ingredient of a product, with its strength and the dose form."""
    target = {"code": code, "display": display, "equivalence": "wider"}
    product = ([{"property": STRENGTH, "value": strength}] if strength else []) + (
        [{"property": DOSE_FORM, "value": form}] if form else []
    )
    if product:
        target["product"] = product
    return target


def product_map(products: dict, mid: str = "products") -> dict:
    """A product -> ingredient ConceptMap in the content's format: {code: (display, [targets])}."""
    return {
        "resourceType": "ConceptMap",
        "id": mid,
        "url": f"{BASE}/ConceptMap/{mid}",
        "status": "draft",
        "sourceUri": RXNORM,
        "targetUri": RXNORM,
        "group": [
            {
                "source": RXNORM,
                "target": RXNORM,
                "element": [
                    {"code": code, "display": display, "target": targets}
                    for code, (display, targets) in products.items()
                ],
            }
        ],
    }


def route_map(forms: dict, mid: str = "doseform-route") -> dict:
    """A dose form -> route ConceptMap: {form name: (snomed code, display) or None for no single route}."""
    return {
        "resourceType": "ConceptMap",
        "id": mid,
        "url": f"{BASE}/ConceptMap/{mid}",
        "status": "draft",
        "group": [
            {
                "source": RXNORM,
                "target": SNOMED,
                "element": [
                    {
                        "code": form,
                        "target": [
                            {"code": route[0], "display": route[1], "equivalence": "equivalent"}
                            if route
                            else {"equivalence": "unmatched"}
                        ],
                    }
                    for form, route in forms.items()
                ],
            }
        ],
    }


def valueset(vid: str, system: str, *codes: str) -> dict:
    return {
        "resourceType": "ValueSet",
        "id": vid,
        "url": f"{BASE}/ValueSet/{vid}",
        "status": "draft",
        "compose": {"include": [{"system": system, "concept": [{"code": c} for c in codes]}]},
    }
