"""Request bodies for the HTTP benchmark, built from the scenario cases in plandefinitions/tests/.

Rule: a body is a scenario case's request with every date and dateTime moved by the same amount,
so that the case's `now` becomes the moment the body is built (the service reads the real clock,
and the rules that fire in the case fire in the benchmark), then padded with extra Observations
of the kind an EHR sends with a chart (vital signs and routine chemistry, hourly, going back in
time, none of them a code the content reads) until the prefetch holds `size` resources.  The
padding changes the work of reading the data, not which cards are answered.
"""

from __future__ import annotations

import copy
import json
import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "plandefinitions" / "tests"

# The benchmark's cases: (name, scenario case, service called).
SCENARIOS = {
    "patient-view": ("DAH-05/p01-gpa-hypoxemic.json", "dah-patient-view"),
    "order-select": ("DC-CYC-IV15/cyc-1500-p01.json", "dose-checks-order-select"),
    "order-sign": ("DAH-12/diagnostics-drafted-no-steroid.json", "dah-order-sign"),
}

# Padding: (LOINC code, display, UCUM unit, low, high, category).  Codes no rule of the content reads.
PADDING = [
    ("8867-4", "Heart rate", "/min", 60, 120, "vital-signs"),
    ("9279-1", "Respiratory rate", "/min", 12, 30, "vital-signs"),
    ("8310-5", "Body temperature", "Cel", 36.2, 38.6, "vital-signs"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 95, 150, "vital-signs"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 50, 95, "vital-signs"),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 132, 146, "laboratory"),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.3, 5.3, "laboratory"),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 210, "laboratory"),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 3.5, 16, "laboratory"),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 140, 420, "laboratory"),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 1, 180, "laboratory"),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 40, "laboratory"),
]

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def case(name: str) -> dict[str, Any]:
    return json.loads((CASES / SCENARIOS[name][0]).read_text(encoding="utf-8"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def moved(value: Any, delta: timedelta) -> Any:
    """`value` with every FHIR date and dateTime string in it moved by `delta`."""
    if isinstance(value, dict):
        return {k: moved(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [moved(v, delta) for v in value]
    if isinstance(value, str):
        if _DATETIME.match(value):
            return _iso(datetime.fromisoformat(value.replace("Z", "+00:00")) + delta)
        if _DATE.match(value):
            return (date.fromisoformat(value) + timedelta(days=delta.days)).isoformat()
    return value


def _observation(rnd: random.Random, patient: str, i: int, when: datetime) -> dict[str, Any]:
    code, display, unit, low, high, category = PADDING[i % len(PADDING)]
    value = round(low + (high - low) * rnd.random(), 1)
    return {
        "fullUrl": f"urn:uuid:{uuid.UUID(int=rnd.getrandbits(128), version=4)}",
        "resource": {
            "resourceType": "Observation", "id": f"pad-{i}",
            "meta": {"lastUpdated": _iso(when + timedelta(minutes=7))},
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": category}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": _iso(when),
            "issued": _iso(when + timedelta(minutes=5)),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        },
    }


def count_resources(request: dict[str, Any]) -> int:
    total = 0
    for value in (request.get("prefetch") or {}).values():
        if isinstance(value, dict):
            total += len(value.get("entry") or []) if value.get("resourceType") == "Bundle" else 1
    return total


def body(name: str, size: int, now: datetime | None = None, seed: int = 5) -> dict[str, Any]:
    """The request of scenario `name`, dates moved to `now`, padded to `size` prefetch resources."""
    source = case(name)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    delta = now - datetime.fromisoformat(source["now"].replace("Z", "+00:00"))
    request = moved(copy.deepcopy(source["request"]), delta)
    patient = request["context"]["patientId"]
    observations = request["prefetch"].setdefault("observations", {"resourceType": "Bundle", "type": "searchset"})
    entries = observations.setdefault("entry", [])
    rnd = random.Random(seed)
    missing = size - count_resources(request)
    # Padding starts 2 h before now: one round of every code each hour, back in time.
    per_hour = len(PADDING)
    for i in range(max(0, missing)):
        when = now - timedelta(hours=2 + i // per_hour, minutes=rnd.randint(0, 50))
        entries.append(_observation(rnd, patient, i, when))
    if "total" in observations:
        observations["total"] = len(entries)
    return request
