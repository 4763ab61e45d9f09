"""EHR-shaped data: every scenario case, re-sent the way real EHRs send the same facts, must give
the same cards (metamorphic tests over the whole scenario suite).

Each transform below changes how the data is written, never what it means:
- `unsorted`: every Bundle's entries in reverse order (searchsets are not sorted by date);
- `record_noise`: recent records that must never count (amendment A1), both copies of the case's
  own records and new ones for every code the content reads (its ValueSets and the codes named
  in its expressions): entered-in-error and cancelled Observations with other values, refuted and
  entered-in-error Conditions and allergies, not-done and entered-in-error Procedures,
  entered-in-error / cancelled / draft MedicationRequests in the patient's list, revoked and
  entered-in-error ServiceRequests.

The cards (summary, detail, indicator, source, suggestions with their orders) must be exactly the
tidy case's.  Because the transforms run over every case, every critical rule of the content is
checked under each of them (`test_every_critical_rule_is_covered`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import CONTENT
from tests.scenarios.test_scenarios import CASES, case_id, golden_path

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
            if isinstance(res.get("valueQuantity"), dict) and isinstance(res["valueQuantity"].get("value"), (int, float)):
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
            base = {"resourceType": kind, "patient": {"reference": f"Patient/{patient}"}, "code": concept,
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
                    "recordedDate": recent}
        elif kind == "Observation":
            base.update(effectiveDateTime=recent, valueQuantity={"value": 1, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"},
                        interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "POS"}]}])
        elif kind == "Condition":
            base.update(onsetDateTime=recent, recordedDate=recent, clinicalStatus={"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]})
        elif kind == "Procedure":
            base.update(status="completed", performedDateTime=recent)
        elif kind in ("ServiceRequest", "MedicationRequest"):
            base.update(status="active", intent="order", authoredOn=recent)
            if kind == "MedicationRequest":
                base["dosageInstruction"] = [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                                              "doseAndRate": [{"doseQuantity": {"value": 1000, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}]
        base["id"] = f"noise-{abs(hash((system, code, kind))) % 10**8}"
        if kind == "AllergyIntolerance":
            for status in ("refuted", "entered-in-error"):
                res = copy.deepcopy(base)
                res["id"] += "-" + status
                res["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": status}]}
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


TRANSFORMS: dict[str, Transform] = {
    "unsorted": unsorted,
    "record-noise": record_noise,
}


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


@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_same_cards_from_ehr_shaped_data(path: Path, transform: str, service):
    case = json.loads(path.read_text())
    expected = json.loads(golden_path(path).read_text())
    got = service(TRANSFORMS[transform](case))
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
