"""`dah-cds validate` checks PlanDefinitions against the CDS Hooks Clinical Reasoning IG profile
CDSHooksServicePlanDefinition (`service.engine.conformance`): one broken-content fixture per check,
made from the synthetic content of tests/fixtures/content/ with one element broken."""

from __future__ import annotations

import json
import shutil

import pytest

from service.cli import main
from service.content import load_folder
from service.engine.extensions import EXT_CDS_HOOKS_ENDPOINT
from tests.conftest import CONTENT, SYNTHETIC

PLAN = "PlanDefinition-proto.json"


def fixture(tmp_path, edit) -> str:
    """The synthetic content with its PlanDefinition changed by `edit` (a function of the resource)."""
    folder = tmp_path / "content"
    shutil.copytree(SYNTHETIC, folder)
    plan = json.loads((folder / PLAN).read_text(encoding="utf-8"))
    edit(plan)
    (folder / PLAN).write_text(json.dumps(plan, indent=2), encoding="utf-8")
    return str(folder)


def validate(folder: str, capsys) -> tuple[int, str, str]:
    code = main(["validate", folder])
    out, err = capsys.readouterr()
    return code, out, err


def endpoint(**value) -> dict:
    return {"url": EXT_CDS_HOOKS_ENDPOINT, **value}


def set_extensions(*extensions: dict):
    def edit(plan: dict) -> None:
        plan["extension"] = list(extensions)
    return edit


def test_the_bundled_single_hook_plans_conform_and_keep_their_service_ids():
    content = load_folder(CONTENT)
    for pid in ("iph", "sle-dah"):
        plan = next(p for p in content.plans.values() if p.id == pid)
        assert [e["valueUri"] for e in plan.raw["extension"] if e["url"] == EXT_CDS_HOOKS_ENDPOINT] == \
            [f"{pid}-patient-view"]
        assert content.services[f"{pid}-patient-view"].plan is plan


def test_the_bundled_content_loads_with_no_profile_warning(capsys):
    content = load_folder(CONTENT)
    assert [str(i) for i in content.issues if "CDSHooksServicePlanDefinition" in i.message] == []
    for sid, svc in content.services.items():  # every service is one PlanDefinition naming it, for one hook
        assert len(svc.hooks) == 1
        assert [e["valueUri"] for e in svc.plan.raw["extension"] if e["url"] == EXT_CDS_HOOKS_ENDPOINT] == [sid]
    code, out, err = validate(str(CONTENT), capsys)
    assert code == 0 and "WARNING" not in out + err


def test_a_rules_plan_applied_by_a_service_plan_needs_no_endpoint(tmp_path, capsys):
    """The synthetic plan, applied for patient-view by a service plan, is no longer a service of its own."""
    folder = fixture(tmp_path, lambda plan: None)
    service_plan = {
        "resourceType": "PlanDefinition", "id": "proto-view", "url": "http://example.org/fhir/PlanDefinition/proto-view",
        "status": "active", "title": "Synthetic plan, patient-view", "extension": [endpoint(valueUri="proto-view")],
        "action": [{"id": "proto-rules", "trigger": [{"type": "named-event", "name": "patient-view"}],
                    "definitionCanonical": "http://example.org/fhir/PlanDefinition/proto"}],
    }
    (tmp_path / "content" / "PlanDefinition-proto-view.json").write_text(json.dumps(service_plan), encoding="utf-8")
    code, out, _ = validate(folder, capsys)
    assert code == 0 and "WARNING" not in out
    assert "services: proto-both, proto-view\n" in out


def test_a_plan_serving_several_hooks_is_reported_as_not_conformant(tmp_path, capsys):
    code, out, _ = validate(fixture(tmp_path, lambda plan: None), capsys)
    assert code == 0
    assert "WARNING PlanDefinition-proto.json:1 extension: triggered by 3 hooks" in out
    assert "proto-order-select, proto-order-sign, proto-patient-view" in out and "split it per hook" in out


def test_an_endpoint_names_the_service_for_all_its_hooks(tmp_path, capsys):
    folder = fixture(tmp_path, set_extensions(endpoint(valueUri="https://cds.example.net/cds-services/proto")))
    code, out, _ = validate(folder, capsys)
    assert code == 0 and "WARNING" not in out
    assert "services: proto, proto-both\n" in out  # proto-both names its own service


def test_an_endpoint_on_a_plan_without_a_hook_is_an_error(tmp_path, capsys):
    def edit(plan: dict) -> None:
        plan["extension"] = [endpoint(valueUri="proto")]
        for action in plan["action"]:
            action.pop("trigger", None)

    code, _, err = validate(fixture(tmp_path, edit), capsys)
    assert code == 1
    assert "extension[0]: cqf-cdsHooksEndpoint names a service, but no action has a named-event trigger" in err


def test_endpoint_as_a_string_is_an_error(tmp_path, capsys):
    code, _, err = validate(fixture(tmp_path, set_extensions(endpoint(valueString="proto"))), capsys)
    assert code == 1
    assert ("ERROR PlanDefinition-proto.json:392 extension[0]: cqf-cdsHooksEndpoint needs a non-empty "
            "valueUri (the service's URI or id), not valueString") in err


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_endpoint_is_an_error(tmp_path, capsys, value):
    code, _, err = validate(fixture(tmp_path, set_extensions(endpoint(valueUri=value))), capsys)
    assert code == 1 and "cqf-cdsHooksEndpoint needs a non-empty valueUri" in err


def test_two_endpoints_are_an_error(tmp_path, capsys):
    folder = fixture(tmp_path, set_extensions(endpoint(valueUri="proto"), endpoint(valueUri="proto-2")))
    code, _, err = validate(folder, capsys)
    assert code == 1
    assert "extension[1]: more than one cqf-cdsHooksEndpoint" in err


def test_a_service_id_that_is_not_a_url_path_segment_is_an_error(tmp_path, capsys):
    code, _, err = validate(fixture(tmp_path, set_extensions(endpoint(valueUri="urn:proto service"))), capsys)
    assert code == 1
    assert "cqf-cdsHooksEndpoint 'urn:proto service': the service id (its last path segment) may use only" in err


def test_a_trigger_that_is_not_a_named_event_is_an_error(tmp_path, capsys):
    def edit(plan: dict) -> None:
        plan["action"][0]["trigger"] = [{"type": "data-changed", "data": [{"type": "Observation"}]}]

    code, _, err = validate(fixture(tmp_path, edit), capsys)
    assert code == 1
    assert ("action very-high > trigger[0]: trigger type 'data-changed' is not supported: a CDS Hooks "
            "service is triggered by a 'named-event' trigger whose name is the hook") in err


def test_a_named_event_without_the_hook_name_is_an_error(tmp_path, capsys):
    def edit(plan: dict) -> None:
        plan["action"][0]["trigger"][0] = {"type": "named-event"}

    code, _, err = validate(fixture(tmp_path, edit), capsys)
    assert code == 1
    assert "action very-high > trigger[0]: a 'named-event' trigger needs the hook as its name" in err
    assert "1 error(s)" in err  # the missing name once, not also as an unknown hook
