"""Tiny synthetic content for engine unit tests."""

from __future__ import annotations

import json
from pathlib import Path

BASE = "http://example.org/fhir"


def var(name: str, expr: str) -> dict:
    return {"url": "http://hl7.org/fhir/StructureDefinition/variable",
            "valueExpression": {"name": name, "language": "text/fhirpath", "expression": expr}}


def cond(expr: str, kind: str = "applicability") -> dict:
    return {"kind": kind, "expression": {"language": "text/fhirpath", "expression": expr}}


def plan(actions: list, variables: list | None = None, library: list | None = None, pid: str = "t") -> dict:
    pd = {"resourceType": "PlanDefinition", "id": pid, "url": f"{BASE}/PlanDefinition/{pid}", "status": "active",
          "title": "Test plan", "action": actions}
    if variables:
        pd["extension"] = variables
    if library:
        pd["library"] = library
    return pd


def library(lid: str, variables: list, data_requirements: list | None = None, depends: list | None = None) -> dict:
    lib = {"resourceType": "Library", "id": lid, "url": f"{BASE}/Library/{lid}", "status": "active",
           "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/library-type", "code": "logic-library"}]},
           "extension": variables}
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
