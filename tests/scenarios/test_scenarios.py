"""Scenario (golden) tests: every case in plandefinitions/tests/<RULE-ID>/ (format:
plandefinitions/tests/README.md), called once per session through the Flask test client
(`scenario_runs`); the whole response must equal the golden file beside it, the rule ids it
expects must be present, the ones it forbids absent, and every suggested resource must be
valid FHIR R4.  Regenerate goldens after a reviewed content change with UPDATE_GOLDEN=1: the change
is printed card by card and field by field at the end of the run (tests/scenarios/golden.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cards.schema import response_errors
from tests.conftest import shared_path
from tests.scenarios import golden as goldens
from tests.scenarios.cases import CASES, case_id, golden_path, moment


def topics(response: dict) -> list[str]:
    return [c["source"].get("topic", {}).get("code") for c in response["cards"]]


def suggested_resources(response: dict):
    for card in response["cards"]:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                if "resource" in action:
                    yield action["resource"]


@pytest.fixture(scope="module")
def fhir_schema():
    import jsonschema

    try:
        schema = json.loads(shared_path("external", "fhir-schema", "fhir.schema.json").read_text())
    except pytest.skip.Exception:
        return None
    return jsonschema.Draft6Validator(schema)


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_scenario(path: Path, scenario_runs, fhir_schema):
    run = scenario_runs[case_id(path)]
    case = run.case
    assert run.status == 200, run.body
    response = run.body

    found = topics(response)
    for rule in case["expect"]["present"]:
        assert rule in found, f"{rule} expected in {found}"
    for rule in case["expect"]["absent"]:
        assert rule not in found, f"{rule} must not fire ({found})"
    assert response_errors(response) == []
    assert len(found) == len(response["cards"]), "every card names its rule in source.topic"

    from fhir.resources.R4B import get_fhir_model_class

    for resource in suggested_resources(response):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)

        if fhir_schema is not None:
            errors = sorted(fhir_schema.iter_errors(resource), key=str)
            assert not errors, errors[0].message

    for card in response["cards"]:  # a created order names its drug in text and code: clients (the CDS Hooks
        for suggestion in card.get("suggestions", []):  # sandbox) switch the drafted drug only with both
            for action in suggestion["actions"]:
                medication = (
                    action.get("resource", {}).get("medicationCodeableConcept") if action["type"] == "create" else None
                )
                if medication is not None:
                    assert medication.get("text") and medication.get("coding", [{}])[0].get("code"), medication

    golden = golden_path(path)
    if goldens.updating():
        goldens.update(case_id(path), golden, response)
        return
    assert golden.exists(), f"no golden file {golden.name}; run with UPDATE_GOLDEN=1 after reviewing the response"
    assert response == json.loads(golden.read_text())


def test_there_are_scenarios():
    assert len(CASES) >= 20


def apply_parameters(case: dict) -> dict:
    """The hook call as PlanDefinition/$apply Parameters (subject, hook, prefetchData, drafts)."""
    request = case["request"]
    context = request["context"]
    params = [{"name": "subject", "valueString": f"Patient/{context['patientId']}"},
              {"name": "hook", "valueCode": request["hook"]}]
    if context.get("encounterId"):
        params.append({"name": "encounter", "valueString": f"Encounter/{context['encounterId']}"})
    for key, value in request.get("prefetch", {}).items():
        if value is not None:
            params.append({"name": "prefetchData", "part": [{"name": "key", "valueString": key},
                                                            {"name": "data", "resource": value}]})
    if context.get("draftOrders"):
        params.append({"name": "draftOrders", "resource": context["draftOrders"]})
    params += [{"name": "selections", "valueString": s} for s in context.get("selections", [])]
    return {"resourceType": "Parameters", "parameter": params}


def request_group_rules(care_plan: dict) -> list[str]:
    group = next(r for r in care_plan["contained"] if r["resourceType"] == "RequestGroup")

    def walk(actions):
        for action in actions:
            if action.get("title"):
                yield action["code"][0]["coding"][0]["code"]
            else:
                yield from walk(action.get("action", []))

    return list(walk(group.get("action", [])))


@pytest.mark.parametrize("path", CASES, ids=case_id)
def test_scenario_through_apply(path: Path, tmp_path, content):
    """The same case through PlanDefinition/$apply gives the same rules as the hook call."""
    from service.app import create_app

    case = json.loads(path.read_text())
    golden = json.loads(golden_path(path).read_text())
    plan_id = content.services[case["service"]].plan.id
    now = moment(case)
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: now, content=content)
    response = app.test_client().post(f"/PlanDefinition/{plan_id}/$apply", json=apply_parameters(case))
    assert response.status_code == 200, response.get_json()
    assert sorted(request_group_rules(response.get_json())) == sorted(topics(golden))


def _one_case_per_service() -> list[Path]:
    """The first case with cards of each service whose PlanDefinition applies a rules plan shared with other hooks."""
    chosen: dict[str, Path] = {}
    for path in CASES:
        service = json.loads(path.read_text())["service"]
        if service.rsplit("-", 2)[0] in ("dah", "safety", "dose-checks") and golden_path(path).exists() \
                and json.loads(golden_path(path).read_text())["cards"]:
            chosen.setdefault(service, path)
    return [chosen[s] for s in sorted(chosen)]


@pytest.mark.parametrize("path", _one_case_per_service(), ids=case_id)
def test_the_rules_plan_applied_for_the_hook_gives_the_services_rules(path: Path, tmp_path, content):
    """`$apply` on a rules plan (dah, safety, dose-checks: applied by one service plan per hook) with the call's hook
    gives the rules of that hook's service."""
    from service.app import create_app

    case = json.loads(path.read_text())
    golden = json.loads(golden_path(path).read_text())
    [rules] = {a.plan.id for a in content.services[case["service"]].plan.actions if a.plan is not None}
    assert case["service"] == f"{rules}-{case['request']['hook']}"
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'f.sqlite3'}"}, clock=lambda: moment(case),
                     content=content)
    response = app.test_client().post(f"/PlanDefinition/{rules}/$apply", json=apply_parameters(case))
    assert response.status_code == 200, response.get_json()
    care_plan = response.get_json()
    assert care_plan["instantiatesCanonical"] == [f"http://example.org/fhir/PlanDefinition/{rules}"]
    assert sorted(request_group_rules(care_plan)) == sorted(topics(golden))
