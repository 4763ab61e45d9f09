"""Generality: the engine runs guidance it has never seen.  The FHIR specification's own
example PlanDefinitions load; those whose logic is CQL are reported as unsupported instead
of failing the content set; the rest apply; and a spec example rewritten in FHIRPath runs."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest

from service.content import load_folder
from service.engine import ApplyContext, apply_activity, apply_plan
from tests.conftest import shared_path

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def examples():
    return load_folder(shared_path("external", "fhir-examples"))


def ctx(**kw):
    return ApplyContext(now=NOW, subject="Patient/example", **kw)


def test_cql_examples_load_as_unsupported_issues(examples):
    messages = {i.source.file: i.message for i in examples.issues}
    for name in ("PlanDefinition-chlamydia-screening-intervention.json", "PlanDefinition-opioidcds-04.json",
                 "ActivityDefinition-citalopramPrescription.json"):
        assert "text/cql" in messages[name]
    assert "CQL" in messages["ActivityDefinition-serum-zika-dengue-virus-igm.json"]
    assert examples.plan("PlanDefinition/chlamydia-screening-intervention") is None


def test_examples_without_cql_apply(examples):
    plan = examples.plan("PlanDefinition/options-example")
    result = apply_plan(examples, plan, ctx())
    group = result.actions[0]
    assert group.selection_behavior == "all"
    kinds = [c.resource["resourceType"] for c in group.children]
    assert kinds == ["MedicationRequest", "MedicationRequest"]
    assert all(c.resource["subject"] == {"reference": "Patient/example"} for c in group.children)
    assert result.issues == []


def test_activity_examples_apply(examples):
    applied = {}
    for url, activity in examples.activities.items():
        if "#" in url:
            continue
        resource, issues = apply_activity(examples, activity, ctx())
        assert resource is not None, (url, issues)
        applied[activity.raw["id"]] = resource
    assert applied["heart-valve-replacement"]["resourceType"] == "ServiceRequest"
    assert applied["blood-tubes-supply"]["resourceType"] == "SupplyRequest"


def test_a_spec_example_rewritten_in_fhirpath_runs(tmp_path):
    """The chlamydia screening example with its CQL condition replaced by FHIRPath."""
    source = shared_path("external", "fhir-examples", "PlanDefinition-chlamydia-screening-intervention.json")
    plan = json.loads(source.read_text())
    plan.pop("library", None)
    plan["url"] = "http://example.org/fhir/PlanDefinition/chlamydia"
    plan["extension"] = [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/variable",
            "valueExpression": {
                "name": "screened",
                "language": "text/fhirpath",
                "expression": "%observations.resources('Observation', 'http://loinc.org|21613-5')"
                ".since(%now - 1 year).exists()",
            },
        }
    ]
    action = plan["action"][0]
    action["condition"][0]["expression"] = {"language": "text/fhirpath", "expression": "%screened.not()"}
    action.pop("dynamicValue")
    action["input"] = [{"id": "observations", "type": "Observation"}]
    (tmp_path / "PlanDefinition-chlamydia.json").write_text(json.dumps(plan))
    content = load_folder(tmp_path)
    screening = {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Observation", "id": "o", "status": "final", "effectiveDateTime": "2025-12-01",
        "code": {"coding": [{"system": "http://loinc.org", "code": "21613-5"}]}}}]}
    fired = apply_plan(content, content.plan(plan["url"]), ctx(data={"observations": {"resourceType": "Bundle"}}))
    quiet = apply_plan(content, content.plan(plan["url"]), ctx(data={"observations": screening}))
    assert [a.title for a in fired.actions] == [action["title"]] and quiet.actions == []


def test_whole_example_folder_replaces_the_bundled_content(tmp_path):
    """The service starts on someone else's content without a line of Python changed."""
    from service.app import create_app

    folder = tmp_path / "content"
    shutil.copytree(shared_path("external", "fhir-examples"), folder)
    app = create_app({"content_dir": str(folder), "database_url": "sqlite:///:memory:"})
    assert app.test_client().get("/cds-services").get_json() == {"services": []}
